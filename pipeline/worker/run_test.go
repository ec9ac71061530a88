package worker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/pipeline"
	"github.com/strata-data/strata/pipeline/agent"
)

// fakeDaemon is a Daemon that records what a slot tells it.
type fakeDaemon struct {
	api.Workers // calls not overridden here panic

	mu        sync.Mutex
	results   []api.TaskResult
	uploads   int
	failPuts  int                                           // uploads to fail before one succeeds
	heartbeat func(ctx context.Context) (*api.Lease, error) // nil: renewed
}

func (d *fakeDaemon) ListImages(ctx context.Context) ([]*api.Image, error) {
	return []*api.Image{{Name: "img", Digest: "sha256:1"}}, nil
}

func (d *fakeDaemon) ExportImage(ctx context.Context, name string, w io.Writer) error {
	_, err := io.WriteString(w, "an image tarball")
	return err
}

func (d *fakeDaemon) Heartbeat(ctx context.Context, worker, task string) (*api.Lease, error) {
	if d.heartbeat != nil {
		return d.heartbeat(ctx)
	}
	return &api.Lease{Expires: time.Now().Add(-time.Hour)}, nil // a daemon whose clock is an hour behind
}

func (d *fakeDaemon) AppendTaskLog(ctx context.Context, worker, task string, r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}

func (d *fakeDaemon) PutTaskOutput(ctx context.Context, worker, task string, r io.Reader) (*api.TaskOutput, error) {
	io.Copy(io.Discard, r)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.uploads++
	if d.uploads <= d.failPuts {
		return nil, errors.New("connection reset by peer")
	}
	return &api.TaskOutput{Files: 1}, nil
}

func (d *fakeDaemon) FinishTask(ctx context.Context, task string, res api.TaskResult) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.results = append(d.results, res)
	return nil
}

type fakeImages struct{}

func (fakeImages) Normalize(name string) (string, error) { return name, nil }
func (fakeImages) Digest(ctx context.Context, name string) (string, error) {
	return "sha256:1", nil
}
func (fakeImages) ImportArchive(ctx context.Context, name string, r io.Reader) (*api.Image, error) {
	return nil, errors.New("no space left on device")
}

// fakeExec starts containers (or fails to, with startErr) whose command
// ends with exit, or dies when dead is set, or runs until canceled when
// block is set.
type fakeExec struct {
	startErr error
	exit     int
	dead     bool
	block    bool
}

func (e *fakeExec) StartWorker(ctx context.Context, w pipeline.WorkerSpec) (pipeline.Worker, error) {
	if e.startErr != nil {
		return nil, e.startErr
	}
	return &fakeContainer{e: e, out: w.Out}, nil
}

type fakeContainer struct {
	e   *fakeExec
	out string
}

func (c *fakeContainer) Exec(ctx context.Context, req agent.Request, stdout, stderr io.Writer) (agent.Result, error) {
	switch {
	case c.e.dead:
		return agent.Result{}, errors.New("agent: connection refused")
	case c.e.block:
		<-ctx.Done()
		return agent.Result{}, ctx.Err()
	}
	os.WriteFile(filepath.Join(c.out, "f"), []byte("out"), 0o644)
	return agent.Result{ExitCode: c.e.exit}, nil
}
func (c *fakeContainer) Alive() bool                     { return !c.e.dead }
func (c *fakeContainer) Close(ctx context.Context) error { return nil }

func testSlot(t *testing.T, d *fakeDaemon, e *fakeExec) *slot {
	t.Helper()
	dir := t.TempDir()
	w := &worker{o: Options{Daemon: d, Exec: e, Images: fakeImages{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))},
		dir: dir, slots: pipeline.NewSlotTable(), images: map[string]string{}}
	base := filepath.Join(dir, "work", "w-0")
	s := &slot{w: w, name: "w-0", base: base, out: filepath.Join(base, "out")}
	if err := os.MkdirAll(s.out, 0o777); err != nil {
		t.Fatal(err)
	}
	return s
}

func testTask() *api.Task {
	return &api.Task{ID: "t1", Pipeline: "p", Version: 1, Datum: "d1", Image: "img", Tries: 2, Lease: time.Second}
}

// Only the user's command failing every try fails the datum; the worker's
// own problems give it back, marked as a fault.
func TestRunReportsWhoseFault(t *testing.T) {
	for _, tc := range []struct {
		name      string
		exec      *fakeExec
		failPuts  int
		state     string
		fault     bool
		uploads   int
		wantError string
	}{
		{name: "success", exec: &fakeExec{}, state: api.TaskSuccess, uploads: 1},
		{name: "command fails", exec: &fakeExec{exit: 3}, state: api.TaskFailure},
		{name: "container will not start", exec: &fakeExec{startErr: errors.New("no space left on device")}, state: api.TaskReleased, fault: true, wantError: "no space left"},
		{name: "container dies", exec: &fakeExec{dead: true}, state: api.TaskReleased, fault: true, wantError: "died"},
		{name: "upload fails once", exec: &fakeExec{}, failPuts: 1, state: api.TaskSuccess, uploads: 2},
		{name: "upload fails twice", exec: &fakeExec{}, failPuts: 2, state: api.TaskReleased, fault: true, uploads: 2, wantError: "connection reset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &fakeDaemon{failPuts: tc.failPuts}
			s := testSlot(t, d, tc.exec)
			fault := s.run(context.Background(), testTask(), time.Now())
			if len(d.results) != 1 {
				t.Fatalf("reports: %+v; want one", d.results)
			}
			res := d.results[0]
			if res.State != tc.state || res.Fault != tc.fault || fault != tc.fault || res.Worker != "w-0" {
				t.Errorf("report %+v (run says fault %v); want state %s, fault %v", res, fault, tc.state, tc.fault)
			}
			if d.uploads != tc.uploads {
				t.Errorf("%d uploads; want %d", d.uploads, tc.uploads)
			}
			if tc.wantError != "" && !strings.Contains(res.Error, tc.wantError) {
				t.Errorf("error %q; want it to say %q", res.Error, tc.wantError)
			}
		})
	}
}

// An image that will not import is the worker's problem too.
func TestRunImageImportFails(t *testing.T) {
	d := &fakeDaemon{}
	s := testSlot(t, d, &fakeExec{})
	s.w.o.Images = digestImages{fakeImages{}, "sha256:0"}
	s.run(context.Background(), testTask(), time.Now())
	if len(d.results) != 1 || d.results[0].State != api.TaskReleased || !d.results[0].Fault {
		t.Errorf("reports: %+v; want a release with a fault", d.results)
	}
}

// An image the daemon does not have either fails the datum: every worker
// would fail alike.
func TestRunImageNotOnDaemon(t *testing.T) {
	d := &fakeDaemon{}
	s := testSlot(t, d, &fakeExec{})
	task := testTask()
	task.Image = "no-such-image"
	s.run(context.Background(), task, time.Now())
	if len(d.results) != 1 || d.results[0].State != api.TaskFailure || d.results[0].Fault || !strings.Contains(d.results[0].Error, "not on the daemon") {
		t.Errorf("reports: %+v; want a failure naming the missing image", d.results)
	}
}

type digestImages struct {
	fakeImages
	digest string
}

func (i digestImages) Digest(ctx context.Context, name string) (string, error) { return i.digest, nil }

// A heartbeat that hangs (a connection dropped without a word) does not
// keep the datum: the lease runs out by the worker's clock, however far
// ahead the daemon's LeaseExpires says it ends, and the command is killed
// without a report.
func TestHeartbeatHangs(t *testing.T) {
	d := &fakeDaemon{heartbeat: func(ctx context.Context) (*api.Lease, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	s := testSlot(t, d, &fakeExec{block: true})
	task := testTask()
	task.Lease = 300 * time.Millisecond
	task.LeaseExpires = time.Now().Add(time.Hour) // a daemon an hour ahead
	done := make(chan struct{})
	start := time.Now()
	go func() {
		s.run(context.Background(), task, time.Now())
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the datum still runs 5s into a 300ms lease with no heartbeat through")
	}
	if took := time.Since(start); took < task.Lease {
		t.Errorf("dropped after %v, before the lease ran out", took)
	}
	if len(d.results) != 0 {
		t.Errorf("reports: %+v; want none (the datum is no longer ours)", d.results)
	}
}

// Heartbeats that get through keep the datum, whatever the daemon's clock
// says.
func TestHeartbeatKeepsLease(t *testing.T) {
	d := &fakeDaemon{} // answers with an Expires an hour in the past
	s := testSlot(t, d, &fakeExec{})
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	task := testTask()
	task.Lease = 150 * time.Millisecond
	go s.heartbeat(ctx, cancel, task, time.Now())
	select {
	case <-ctx.Done():
		t.Fatalf("lease dropped: %v", context.Cause(ctx))
	case <-time.After(time.Second):
	}
	cancel(nil)
}
