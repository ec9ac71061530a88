package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/store"
)

// fakeWorkers is a Pipelines that also takes remote workers: one task,
// held by "w-0" until its report.
type fakeWorkers struct {
	*fakePipelines
	mu     sync.Mutex
	held   bool
	log    strings.Builder
	result *TaskResult
	waited time.Duration
}

func (f *fakeWorkers) stale(worker, id string) error {
	if !f.held || worker != "w-0" || id != "t1" {
		return fmt.Errorf("task %s: %w", id, store.ErrStale)
	}
	return nil
}

func (f *fakeWorkers) ClaimTask(ctx context.Context, req ClaimRequest) (*Task, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waited = req.Wait
	if f.held || req.Worker != "w-0" {
		return nil, nil
	}
	f.held = true
	return &Task{ID: "t1", Pipeline: "edges", Datum: "d1", Args: []string{"true"}, Lease: time.Second}, nil
}

func (f *fakeWorkers) Heartbeat(ctx context.Context, worker, id string) (*Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stale(worker, id); err != nil {
		return nil, err
	}
	return &Lease{Expires: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}, nil
}

func (f *fakeWorkers) AppendTaskLog(ctx context.Context, worker, id string, r io.Reader) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stale(worker, id); err != nil {
		return err
	}
	_, err := io.Copy(&f.log, r)
	return err
}

func (f *fakeWorkers) PutTaskOutput(ctx context.Context, worker, id string, r io.Reader) (*TaskOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stale(worker, id); err != nil {
		return nil, err
	}
	n, _ := io.Copy(io.Discard, r)
	return &TaskOutput{Files: int(n)}, nil
}

func (f *fakeWorkers) FinishTask(ctx context.Context, id string, res TaskResult) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stale(res.Worker, id); err != nil {
		return err
	}
	f.held, f.result = false, &res
	return nil
}

func (f *fakeWorkers) ListWorkers(ctx context.Context) ([]*RemoteWorker, error) { return nil, nil }

func (f *fakeWorkers) ExportImage(ctx context.Context, name string, w io.Writer) error {
	if name != "busybox" {
		return fmt.Errorf("image %s: %w", name, meta.ErrNotExist)
	}
	_, err := io.WriteString(w, "an image tarball")
	return err
}

func TestWorkerRoutes(t *testing.T) {
	f := &fakeWorkers{fakePipelines: newFake()}
	cl := servePipelines(t, f)
	ctx := context.Background()

	task, err := cl.ClaimTask(ctx, ClaimRequest{Worker: "w-0", Wait: time.Hour})
	if err != nil || task == nil || task.ID != "t1" || task.Lease != time.Second || task.Args[0] != "true" {
		t.Fatalf("claim: %+v, %v", task, err)
	}
	if f.waited != maxClaimWait {
		t.Errorf("the daemon waited %v; want the wait capped at %v", f.waited, maxClaimWait)
	}
	if again, err := cl.ClaimTask(ctx, ClaimRequest{Worker: "w-0"}); again != nil || err != nil {
		t.Errorf("claim with nothing left: %+v, %v; want nil, nil (204)", again, err)
	}
	if _, err := cl.ClaimTask(ctx, ClaimRequest{}); !errors.Is(err, meta.ErrInvalid) {
		t.Errorf("claim without a name: %v", err)
	}
	if l, err := cl.Heartbeat(ctx, "w-0", "t1"); err != nil || l.Expires.IsZero() {
		t.Errorf("heartbeat: %+v, %v", l, err)
	}
	if _, err := cl.Heartbeat(ctx, "w-1", "t1"); !errors.Is(err, store.ErrStale) {
		t.Errorf("heartbeat of another worker: %v, want ErrStale", err)
	}
	if err := cl.AppendTaskLog(ctx, "w-0", "t1", strings.NewReader("line\n")); err != nil || f.log.String() != "line\n" {
		t.Errorf("log: %v, %q", err, f.log.String())
	}
	if out, err := cl.PutTaskOutput(ctx, "w-0", "t1", strings.NewReader("12345")); err != nil || out.Files != 5 {
		t.Errorf("output: %+v, %v", out, err)
	}
	if err := cl.FinishTask(ctx, "t1", TaskResult{Worker: "w-0", State: "maybe"}); !errors.Is(err, meta.ErrInvalid) {
		t.Errorf("done with a bad state: %v", err)
	}
	if err := cl.FinishTask(ctx, "t1", TaskResult{Worker: "w-0", State: TaskSuccess, Tries: 2}); err != nil || f.result.Tries != 2 {
		t.Errorf("done: %v, %+v", err, f.result)
	}
	if err := cl.FinishTask(ctx, "t1", TaskResult{Worker: "w-0", State: TaskSuccess}); !errors.Is(err, store.ErrStale) {
		t.Errorf("a late report: %v, want ErrStale", err)
	}
	var img strings.Builder
	if err := cl.ExportImage(ctx, "busybox", &img); err != nil || img.String() != "an image tarball" {
		t.Errorf("export: %q, %v", img.String(), err)
	}
	if err := cl.ExportImage(ctx, "nope", io.Discard); !errors.Is(err, meta.ErrNotExist) {
		t.Errorf("export of a missing image: %v", err)
	}
}

// A daemon whose Pipelines takes no remote workers, or that runs no
// pipelines, says so.
func TestWorkerRoutesUnavailable(t *testing.T) {
	for _, p := range []Pipelines{nil, newFake()} {
		cl := servePipelines(t, p)
		if _, err := cl.ClaimTask(context.Background(), ClaimRequest{Worker: "w-0"}); !errors.Is(err, ErrUnavailable) {
			t.Errorf("claim: %v, want ErrUnavailable", err)
		}
		if _, err := cl.ListWorkers(context.Background()); !errors.Is(err, ErrUnavailable) {
			t.Errorf("list: %v, want ErrUnavailable", err)
		}
	}
}

// An empty worker name names no worker: every task route refuses it
// before the daemon looks for the task.
func TestWorkerRoutesNeedName(t *testing.T) {
	f := &fakeWorkers{fakePipelines: newFake()}
	cl := servePipelines(t, f)
	ctx := context.Background()
	if task, err := cl.ClaimTask(ctx, ClaimRequest{Worker: "w-0"}); err != nil || task == nil {
		t.Fatalf("claim: %+v, %v", task, err)
	}
	calls := map[string]error{
		"heartbeat": func() error { _, err := cl.Heartbeat(ctx, "", "t1"); return err }(),
		"log":       cl.AppendTaskLog(ctx, "", "t1", strings.NewReader("line\n")),
		"output":    func() error { _, err := cl.PutTaskOutput(ctx, "", "t1", strings.NewReader("x")); return err }(),
		"done":      cl.FinishTask(ctx, "t1", TaskResult{State: TaskFailure}),
	}
	for name, err := range calls {
		if !errors.Is(err, meta.ErrInvalid) {
			t.Errorf("%s without a worker name: %v, want ErrInvalid", name, err)
		}
	}
	if f.log.Len() != 0 || f.result != nil || !f.held {
		t.Errorf("the daemon acted on a nameless call: log %q, result %+v, held %v", f.log.String(), f.result, f.held)
	}
}
