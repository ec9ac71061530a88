package pipeline

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/pipeline/agent"
	"github.com/strata-data/strata/store"
)

// The remote-worker protocol against a real controller and store, over
// real HTTP, with local workers that run in-process (no containers).

// fakeExec starts workers that write the datum's input file name to
// /pfs/out/NAME.out, after gate is closed.
type fakeExec struct{ gate chan struct{} }

func (e *fakeExec) StartWorker(ctx context.Context, w WorkerSpec) (Worker, error) {
	return &fakeWorker{out: w.Out, gate: e.gate}, nil
}

type fakeWorker struct {
	out  string
	gate chan struct{}
}

func (w *fakeWorker) Exec(ctx context.Context, req agent.Request, stdout, stderr io.Writer) (agent.Result, error) {
	select {
	case <-w.gate:
	case <-ctx.Done():
		return agent.Result{}, ctx.Err()
	}
	for _, kv := range req.Env {
		if v, ok := strings.CutPrefix(kv, "in=/pfs/in/"); ok {
			if err := os.WriteFile(filepath.Join(w.out, v+".out"), []byte("local"), 0o644); err != nil {
				return agent.Result{}, err
			}
		}
	}
	return agent.Result{}, nil
}
func (w *fakeWorker) Alive() bool                     { return true }
func (w *fakeWorker) Close(ctx context.Context) error { return nil }

type fakeMounter struct{}

func (fakeMounter) MountTrees(string, Trees) (func() error, error) {
	return func() error { return nil }, nil
}
func (fakeMounter) MountTree(string, meta.Hash) (func() error, error) {
	return func() error { return nil }, nil
}

func remoteSetup(t *testing.T, lease time.Duration, files int) (*Controller, *api.Client, *store.Store, chan struct{}) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "data"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Meta.CreateRepo("in", "", ""); err != nil {
		t.Fatal(err)
	}
	for i := range files {
		name := string(rune('a' + i))
		if _, err := st.PutFile(context.Background(), "in", meta.DefaultBranch, "/"+name, strings.NewReader(name), store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	gate := make(chan struct{})
	c, err := New(Options{Store: st, Exec: &fakeExec{gate: gate}, Mount: fakeMounter{}, Dir: filepath.Join(dir, "pipelines"), Log: log, Lease: lease})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(st, log, func() api.Status { return api.Status{} })
	srv.SetPipelines(c)
	hs := httptest.NewServer(srv.Handler(""))
	t.Cleanup(func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
		hs.Close()
		c.Close()
	})
	cl, err := api.NewClient(hs.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	return c, cl, st, gate
}

const remoteSpec = `
name: p
transform: {image: busybox, cmd: ["/bin/true"]}
input: {pfs: {repo: in, glob: "/*"}}
parallelism: 1
`

// outputTar is a tar with one file, NAME.out, saying who made it.
func outputTar(t *testing.T, task *api.Task, cl *api.Client, who string) io.Reader {
	t.Helper()
	es, err := cl.Tree(context.Background(), mustLookup(t, cl, task.View, "/in").Tree)
	if err != nil || len(es) != 1 {
		t.Fatalf("the task's view of /in: %v, %v", es, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: es[0].Name + ".out", Mode: 0o644, Size: int64(len(who))})
	tw.Write([]byte(who))
	tw.Close()
	return &buf
}

func mustLookup(t *testing.T, cl *api.Client, root meta.Hash, p string) *meta.Entry {
	t.Helper()
	e, err := cl.LookupTree(context.Background(), root, p)
	if err != nil {
		t.Fatalf("lookup %s in %s: %v", p, root, err)
	}
	return e
}

func runRemote(t *testing.T, cl *api.Client, worker string, task *api.Task) {
	t.Helper()
	ctx := context.Background()
	if _, err := cl.Heartbeat(ctx, worker, task.ID); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	if err := cl.AppendTaskLog(ctx, worker, task.ID, strings.NewReader("hello from "+worker+"\n")); err != nil {
		t.Fatalf("log: %v", err)
	}
	out, err := cl.PutTaskOutput(ctx, worker, task.ID, outputTar(t, task, cl, worker))
	if err != nil || out.Files != 1 {
		t.Fatalf("output: %+v, %v", out, err)
	}
	if err := cl.FinishTask(ctx, task.ID, api.TaskResult{Worker: worker, State: api.TaskSuccess, Tries: 1}); err != nil {
		t.Fatalf("done: %v", err)
	}
}

func TestRemoteWorkerLeaseExpiry(t *testing.T) {
	c, cl, st, gate := remoteSetup(t, 300*time.Millisecond, 4)
	ctx := context.Background()
	if _, err := c.CreatePipelines(ctx, []byte(remoteSpec), false, false); err != nil {
		t.Fatal(err)
	}
	// The local worker is stuck on its first datum (gate), so remote
	// claims get the other three.
	claim := func(worker string) *api.Task {
		t.Helper()
		task, err := cl.ClaimTask(ctx, api.ClaimRequest{Worker: worker, Wait: 5 * time.Second})
		if err != nil {
			t.Fatalf("claim: %v", err)
		}
		return task
	}
	lostTask := claim("dies-0")
	if lostTask == nil || lostTask.Pipeline != "p" || lostTask.Tries != 3 || lostTask.Image != "busybox" || lostTask.Lease != 300*time.Millisecond {
		t.Fatalf("first claim: %+v", lostTask)
	}
	first := claim("good-0")
	if first == nil || first.Datum == lostTask.Datum {
		t.Fatalf("second claim: %+v (first %+v)", first, lostTask)
	}
	if err := cl.FinishTask(ctx, first.ID, api.TaskResult{Worker: "good-0", State: api.TaskSuccess}); !errors.Is(err, meta.ErrInvalid) {
		t.Errorf("success without an output: %v, want ErrInvalid", err)
	}
	if _, err := cl.Heartbeat(ctx, "someone-else", first.ID); !errors.Is(err, store.ErrStale) {
		t.Errorf("heartbeat by another worker: %v, want ErrStale", err)
	}
	runRemote(t, cl, "good-0", first)

	// dies-0 never heartbeats: after the lease its datum runs elsewhere,
	// and whatever it says then is refused.
	time.Sleep(600 * time.Millisecond)
	if _, err := cl.Heartbeat(ctx, "dies-0", lostTask.ID); !errors.Is(err, store.ErrStale) {
		t.Errorf("heartbeat after the lease: %v, want ErrStale", err)
	}
	if _, err := cl.PutTaskOutput(ctx, "dies-0", lostTask.ID, outputTar(t, lostTask, cl, "dies-0")); !errors.Is(err, store.ErrStale) {
		t.Errorf("output after the lease: %v, want ErrStale", err)
	}
	if err := cl.FinishTask(ctx, lostTask.ID, api.TaskResult{Worker: "dies-0", State: api.TaskSuccess}); !errors.Is(err, store.ErrStale) {
		t.Errorf("report after the lease: %v, want ErrStale", err)
	}
	ran := map[string]bool{first.Datum: true}
	for {
		task, err := cl.ClaimTask(ctx, api.ClaimRequest{Worker: "good-0", Wait: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if task == nil {
			break
		}
		ran[task.Datum] = true
		runRemote(t, cl, "good-0", task)
	}
	if !ran[lostTask.Datum] || len(ran) != 3 {
		t.Errorf("good-0 ran %v; want 3 datums with the lost one (%s)", ran, lostTask.Datum)
	}
	ws, err := cl.ListWorkers(ctx)
	if err != nil || len(ws) != 1 || ws[0].Name != "good-0" {
		t.Errorf("workers: %+v, %v; want good-0 only (dies-0 was not seen for a while)", ws, err)
	}
	close(gate)

	jobs, err := c.ListJobs(ctx, "p", 0)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("jobs: %v %v", jobs, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	j, err := c.WaitJob(wctx, jobs[0].ID)
	if err != nil || j.State != api.JobSuccess || j.Processed != 4 {
		t.Fatalf("job: %+v, %v", j, err)
	}
	ds, err := c.ListDatums(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	byWorker := map[string]int{}
	for _, d := range ds {
		byWorker[d.Worker]++
		if d.State != api.DatumSuccess {
			t.Errorf("datum %+v", d)
		}
	}
	if byWorker["good-0"] != 3 || byWorker["p-0"] != 1 {
		t.Errorf("datums by worker: %v; want 3 on good-0 and 1 on the local p-0", byWorker)
	}
	for _, f := range "abcd" {
		p := "/" + string(f) + ".out"
		fl, err := st.Open(ctx, "p", j.ID, p)
		if err != nil {
			t.Fatalf("output %s: %v", p, err)
		}
		got, _ := io.ReadAll(fl)
		if string(got) != "good-0" && string(got) != "local" {
			t.Errorf("%s = %q", p, got)
		}
	}
	var logs bytes.Buffer
	if err := c.Logs(ctx, api.LogQuery{Pipeline: "p", Job: j.ID, Datum: lostTask.Datum}, &logs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"given to remote worker dies-0", "did not renew its lease", "hello from good-0", "succeeded on good-0"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log of the lost datum lacks %q:\n%s", want, logs.String())
		}
	}
}

func TestRemoteWorkerFailureFailsJob(t *testing.T) {
	c, cl, _, _ := remoteSetup(t, 5*time.Second, 2)
	ctx := context.Background()
	if _, err := c.CreatePipelines(ctx, []byte(remoteSpec), false, false); err != nil {
		t.Fatal(err)
	}
	task, err := cl.ClaimTask(ctx, api.ClaimRequest{Worker: "w-0", Wait: 5 * time.Second})
	if err != nil || task == nil {
		t.Fatalf("claim: %+v, %v", task, err)
	}
	if err := cl.FinishTask(ctx, task.ID, api.TaskResult{Worker: "w-0", State: api.TaskFailure, Error: "exit status 3", Tries: 1}); err != nil {
		t.Fatal(err)
	}
	jobs, _ := c.ListJobs(ctx, "p", 0)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	j, err := c.WaitJob(wctx, jobs[0].ID)
	if err != nil || j.State != api.JobFailure || !strings.Contains(j.Error, "exit status 3") || !strings.Contains(j.Error, "w-0") {
		t.Fatalf("job: %+v, %v", j, err)
	}
	if err := cl.FinishTask(ctx, task.ID, api.TaskResult{Worker: "w-0", State: api.TaskFailure}); !errors.Is(err, store.ErrStale) {
		t.Errorf("a second report: %v, want ErrStale", err)
	}
}

func TestRemoteClaimTimesOut(t *testing.T) {
	_, cl, _, _ := remoteSetup(t, time.Second, 0)
	start := time.Now()
	task, err := cl.ClaimTask(context.Background(), api.ClaimRequest{Worker: "idle-0", Wait: 200 * time.Millisecond})
	if err != nil || task != nil {
		t.Fatalf("claim with nothing to do: %+v, %v", task, err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("claim returned after %v; want about 200ms", d)
	}
	if _, err := cl.ClaimTask(context.Background(), api.ClaimRequest{}); !errors.Is(err, meta.ErrInvalid) {
		t.Errorf("claim without a name: %v, want ErrInvalid", err)
	}
}

// A log append under way when its task ends is refused as stale, not
// written into the closed log.
func TestRemoteLateLogIsStale(t *testing.T) {
	c, cl, _, _ := remoteSetup(t, 5*time.Second, 2)
	ctx := context.Background()
	if _, err := c.CreatePipelines(ctx, []byte(remoteSpec), false, false); err != nil {
		t.Fatal(err)
	}
	task, err := cl.ClaimTask(ctx, api.ClaimRequest{Worker: "w-0", Wait: 5 * time.Second})
	if err != nil || task == nil {
		t.Fatalf("claim: %+v, %v", task, err)
	}
	pr, pw := io.Pipe()
	appended := make(chan error, 1)
	go func() { appended <- cl.AppendTaskLog(ctx, "w-0", task.ID, pr) }()
	pw.Write([]byte("first piece\n"))
	// The append has passed its check once its first piece is in the log.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var logs bytes.Buffer
		c.Logs(ctx, api.LogQuery{Pipeline: "p", Job: task.Job, Datum: task.Datum}, &logs)
		if strings.Contains(logs.String(), "first piece") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first piece never reached the log:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cl.FinishTask(ctx, task.ID, api.TaskResult{Worker: "w-0", State: api.TaskFailure, Error: "exit status 1", Tries: 1}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.WaitJob(wctx, task.Job); err != nil {
		t.Fatal(err)
	}
	pw.Write([]byte("late piece\n"))
	pw.Close()
	if err := <-appended; !errors.Is(err, store.ErrStale) {
		t.Errorf("an append that outlived its task: %v, want ErrStale", err)
	}
}

// The hub forgets workers it has not heard from for a few leases, but
// not one that waits in a claim.
func TestRemoteSeenPruned(t *testing.T) {
	c, cl, _, _ := remoteSetup(t, 100*time.Millisecond, 0)
	ctx := context.Background()
	for _, w := range []string{"gone-0", "gone-1"} {
		if _, err := cl.ClaimTask(ctx, api.ClaimRequest{Worker: w, Wait: 10 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	waiting := make(chan error, 1)
	go func() {
		_, err := cl.ClaimTask(ctx, api.ClaimRequest{Worker: "waits-0", Wait: 2 * time.Second})
		waiting <- err
	}()
	time.Sleep(time.Second)
	c.hub.mu.Lock()
	var names []string
	for name := range c.hub.seen {
		names = append(names, name)
	}
	c.hub.mu.Unlock()
	if len(names) != 1 || names[0] != "waits-0" {
		t.Errorf("the hub remembers %v; want waits-0 only", names)
	}
	if ws, err := cl.ListWorkers(ctx); err != nil || len(ws) != 1 || ws[0].Name != "waits-0" {
		t.Errorf("workers: %+v, %v; want waits-0, which waits in a claim", ws, err)
	}
	if err := <-waiting; err != nil {
		t.Fatal(err)
	}
}

// A worker that stops gives its datum back as often as it likes; one that
// could not run it (Fault) loses it, and the third loss fails the job.
func TestRemoteReleaseWithFault(t *testing.T) {
	c, cl, _, _ := remoteSetup(t, 5*time.Second, 2)
	ctx := context.Background()
	if _, err := c.CreatePipelines(ctx, []byte(remoteSpec), false, false); err != nil {
		t.Fatal(err)
	}
	release := func(worker string, res api.TaskResult) *api.Task {
		t.Helper()
		task, err := cl.ClaimTask(ctx, api.ClaimRequest{Worker: worker, Wait: 5 * time.Second})
		if err != nil || task == nil {
			t.Fatalf("claim: %+v, %v", task, err)
		}
		res.Worker, res.State = worker, api.TaskReleased
		if err := cl.FinishTask(ctx, task.ID, res); err != nil {
			t.Fatal(err)
		}
		return task
	}
	for range 4 {
		release("w-0", api.TaskResult{Error: "the worker stopped"})
	}
	// Three slots of one broken host count as one host losing it.
	full := api.TaskResult{Error: "start a container: no space left on device", Fault: true}
	for _, w := range []string{"a-0", "a-1", "a-2", "b-0"} {
		release(w, full)
	}
	jobs, _ := c.ListJobs(ctx, "p", 0)
	if j, err := c.InspectJob(ctx, jobs[0].ID); err != nil || j.State != api.JobRunning {
		t.Fatalf("after four stops and faults on two hosts: %+v, %v; want the job running", j, err)
	}
	task := release("c-0", full)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	j, err := c.WaitJob(wctx, task.Job)
	if err != nil || j.State != api.JobFailure || !strings.Contains(j.Error, "3 remote workers lost") || !strings.Contains(j.Error, "no space left") {
		t.Fatalf("job: %+v, %v; want a failure after three faults", j, err)
	}
}
