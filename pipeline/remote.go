package pipeline

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/pipeline/datum"
	"github.com/strata-data/strata/store"
)

// Remote workers (strata worker on other machines) claim datums through
// the API. A job hands a datum to a remote worker only when one is
// waiting in a claim, so a datum never queues for a remote worker while a
// local one is idle. The task holds the datum under a lease that the
// worker's heartbeats extend; when the lease runs out (the worker died or
// lost the network) the datum goes back to the job's queue, where any
// worker, local or remote, takes it, and the first worker's late reports
// are refused (store.ErrStale).

// DefaultLease is how long a remote worker holds a datum without a
// heartbeat.
const DefaultLease = 10 * time.Second

// maxLost is how many worker hosts may lose one datum in a job (its lease
// ran out, or a worker gave it back with Fault set) before the datum
// fails: a datum that kills every worker it runs on must not go round for
// ever. A worker that gives a datum back because it stops does not count.
const maxLost = 3

// lostBy is the hosts that lost one datum in a job. The slots of one host
// (NAME-0, NAME-1, ...) count once: a broken host giving a datum back
// from several slots must not fail it alone.
type lostBy map[string]bool

// workerHost is the host part of a worker's slot name NAME-N.
func workerHost(worker string) string {
	if i := strings.LastIndexByte(worker, '-'); i > 0 {
		if _, err := strconv.Atoi(worker[i+1:]); err == nil {
			return worker[:i]
		}
	}
	return worker
}

var _ api.Workers = (*Controller)(nil)

// hub matches the claims of remote workers with the jobs' datums.
type hub struct {
	lease time.Duration

	mu      sync.Mutex
	waiters []*claim      // claims waiting for a datum, oldest first
	arrived chan struct{} // closed and replaced when a claim starts waiting
	tasks   map[string]*task
	seen    map[string]time.Time // worker name -> last claim or heartbeat
}

// claim is one waiting claim request.
type claim struct {
	worker string
	got    *task         // set by give, under hub.mu
	ready  chan struct{} // closed by give
	gone   chan struct{} // closed when the claimer stopped waiting
	left   bool          // under hub.mu
}

// task is a datum handed to a remote worker.
type task struct {
	api.Task
	worker string
	logw   *taskLog

	// Under hub.mu:
	output *api.TaskOutput
	ended  bool
	end    chan taskEnd // receives exactly one end
}

// taskLog is a task's datum log. The daemon writes its own lines with
// Write until close; a worker's appends go through workerWriter, which
// refuses them once the task has ended.
type taskLog struct {
	mu     sync.Mutex
	f      *os.File
	closed bool
}

func (l *taskLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, fmt.Errorf("datum log: %w", os.ErrClosed)
	}
	return l.f.Write(p)
}

func (l *taskLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return l.f.Close()
}

// workerWriter appends a worker's piece of log to t's, piece by piece,
// checking each time that the task is still running: an append that is
// under way when the task ends (its lease ran out, its job ended) stops
// with store.ErrStale rather than writing after the daemon's last line or
// into a closed file.
type workerWriter struct {
	h *hub
	t *task
}

func (w workerWriter) Write(p []byte) (int, error) {
	w.h.mu.Lock()
	ended := w.t.ended
	w.h.mu.Unlock()
	if ended {
		return 0, w.h.staleErr(w.t.ID)
	}
	w.t.logw.mu.Lock()
	defer w.t.logw.mu.Unlock()
	if w.t.logw.closed {
		return 0, w.h.staleErr(w.t.ID)
	}
	return w.t.logw.f.Write(p)
}

// taskEnd is how a task ended: a worker's result, or expired (lease ran
// out) or canceled (the job ended).
type taskEnd struct {
	res    api.TaskResult
	output *api.TaskOutput
}

// Ends that do not come from the worker.
const (
	taskExpired  = "expired"
	taskCanceled = "canceled"
)

func newHub(lease time.Duration) *hub {
	if lease <= 0 {
		lease = DefaultLease
	}
	return &hub{lease: lease, arrived: make(chan struct{}), tasks: make(map[string]*task), seen: make(map[string]time.Time)}
}

// wait registers a claim and waits up to d for a task.
func (h *hub) wait(ctx context.Context, worker string, d time.Duration) *task {
	cl := &claim{worker: worker, ready: make(chan struct{}), gone: make(chan struct{})}
	h.mu.Lock()
	h.seen[worker] = time.Now()
	h.waiters = append(h.waiters, cl)
	close(h.arrived)
	h.arrived = make(chan struct{})
	h.mu.Unlock()

	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-cl.ready:
	case <-timer.C:
	case <-ctx.Done():
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen[worker] = time.Now()
	if cl.got != nil {
		if ctx.Err() != nil {
			// The claimer is gone before it heard of the task: the datum
			// goes back at once rather than after a lease.
			h.endLocked(cl.got, taskEnd{res: api.TaskResult{State: api.TaskReleased}})
			return nil
		}
		return cl.got
	}
	for i, w := range h.waiters {
		if w == cl {
			h.waiters = append(h.waiters[:i], h.waiters[i+1:]...)
			break
		}
	}
	cl.left = true
	close(cl.gone)
	return nil
}

// takeWaiter removes and returns the oldest waiting claim, waiting for
// one; nil when ctx ends.
func (h *hub) takeWaiter(ctx context.Context) *claim {
	for {
		h.mu.Lock()
		if len(h.waiters) > 0 {
			cl := h.waiters[0]
			h.waiters = h.waiters[1:]
			h.mu.Unlock()
			return cl
		}
		ch := h.arrived
		h.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil
		}
	}
}

// giveBack returns a claim taken but not answered to the front of the
// line.
func (h *hub) giveBack(cl *claim) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cl.left {
		return
	}
	h.waiters = append([]*claim{cl}, h.waiters...)
	close(h.arrived)
	h.arrived = make(chan struct{})
}

// give answers cl with t and starts t's lease; false when the claimer has
// stopped waiting.
func (h *hub) give(cl *claim, t *task) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cl.left {
		return false
	}
	now := time.Now()
	t.worker = cl.worker
	t.Lease = h.lease
	t.LeaseExpires = now.Add(h.lease).UTC()
	h.tasks[t.ID] = t
	h.seen[cl.worker] = now
	cl.got = t
	close(cl.ready)
	return true
}

// endLocked ends t with e unless it has ended; h.mu must be held.
func (h *hub) endLocked(t *task, e taskEnd) bool {
	if t.ended {
		return false
	}
	t.ended = true
	delete(h.tasks, t.ID)
	t.end <- e
	return true
}

func (h *hub) end(t *task, e taskEnd) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.endLocked(t, e)
}

// taskLocked returns the task id if worker holds it; h.mu must be held.
// An empty worker holds nothing.
func (h *hub) taskLocked(worker, id string) (*task, error) {
	t := h.tasks[id]
	if t == nil || worker == "" || t.worker != worker {
		return nil, h.staleErr(id)
	}
	return t, nil
}

func (h *hub) staleErr(id string) error {
	return fmt.Errorf("task %s is no longer this worker's (its lease ran out, its job ended, or another worker runs the datum): %w", id, store.ErrStale)
}

// seenLeases is how many leases a worker is listed after it was last
// heard from; expire then forgets it (pods get a new name each time they
// start, so names would otherwise pile up).
const seenLeases = 3

// expire ends the tasks whose lease has run out, and forgets the workers
// not heard from for seenLeases leases, until ctx ends.
func (h *hub) expire(ctx context.Context) {
	tick := time.NewTicker(max(h.lease/10, 20*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			h.mu.Lock()
			for _, t := range h.tasks {
				if now.After(t.LeaseExpires) {
					h.endLocked(t, taskEnd{res: api.TaskResult{State: taskExpired}})
				}
			}
			for _, cl := range h.waiters {
				h.seen[cl.worker] = now // a worker in a long claim is here
			}
			for name, at := range h.seen {
				if now.Sub(at) > seenLeases*h.lease {
					delete(h.seen, name)
				}
			}
			h.mu.Unlock()
		}
	}
}

// ClaimTask hands req.Worker a datum of any running job, waiting up to
// req.Wait for one.
func (c *Controller) ClaimTask(ctx context.Context, req api.ClaimRequest) (*api.Task, error) {
	t := c.hub.wait(ctx, req.Worker, req.Wait)
	if t == nil {
		return nil, nil
	}
	c.hub.mu.Lock()
	out := t.Task
	c.hub.mu.Unlock()
	return &out, nil
}

func (c *Controller) Heartbeat(ctx context.Context, worker, id string) (*api.Lease, error) {
	h := c.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	t, err := h.taskLocked(worker, id)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	h.seen[t.worker] = now
	t.LeaseExpires = now.Add(h.lease).UTC()
	return &api.Lease{Expires: t.LeaseExpires}, nil
}

func (c *Controller) AppendTaskLog(ctx context.Context, worker, id string, r io.Reader) error {
	c.hub.mu.Lock()
	t, err := c.hub.taskLocked(worker, id)
	c.hub.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = io.Copy(workerWriter{h: c.hub, t: t}, r)
	return err
}

func (c *Controller) PutTaskOutput(ctx context.Context, worker, id string, r io.Reader) (*api.TaskOutput, error) {
	c.hub.mu.Lock()
	_, err := c.hub.taskLocked(worker, id)
	c.hub.mu.Unlock()
	if err != nil {
		return nil, err
	}
	root, n, err := c.st.IngestTar(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("output of task %s: %w", id, err)
	}
	out := &api.TaskOutput{Root: root, Files: n}
	c.hub.mu.Lock()
	defer c.hub.mu.Unlock()
	t, err := c.hub.taskLocked(worker, id)
	if err != nil {
		return nil, err // lost meanwhile: the stored tree is garbage
	}
	t.output = out
	return out, nil
}

func (c *Controller) FinishTask(ctx context.Context, id string, res api.TaskResult) error {
	h := c.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	t, err := h.taskLocked(res.Worker, id)
	if err != nil {
		return err
	}
	if res.State == api.TaskSuccess && t.output == nil {
		return fmt.Errorf("task %s: a success needs its output uploaded first: %w", id, meta.ErrInvalid)
	}
	h.endLocked(t, taskEnd{res: res, output: t.output})
	return nil
}

func (c *Controller) ListWorkers(ctx context.Context) ([]*api.RemoteWorker, error) {
	h := c.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	byName := map[string]*api.RemoteWorker{}
	for name, at := range h.seen {
		if time.Since(at) < seenLeases*h.lease {
			byName[name] = &api.RemoteWorker{Name: name, LastSeen: at.UTC()}
		}
	}
	for _, t := range h.tasks {
		w := byName[t.worker]
		if w == nil {
			w = &api.RemoteWorker{Name: t.worker, LastSeen: h.seen[t.worker].UTC()}
			byName[t.worker] = w
		}
		w.Task, w.Pipeline, w.Job, w.Datum = t.ID, t.Pipeline, t.Job, t.Datum
	}
	out := make([]*api.RemoteWorker, 0, len(byName))
	for _, w := range byName {
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ImageExporter is the optional part of an ImageStore that remote workers
// fetch images through.
type ImageExporter interface {
	// ExportImage writes the image called name as an OCI image-layout
	// tarball; the error wraps meta.ErrNotExist when there is none.
	ExportImage(ctx context.Context, name string, w io.Writer) error
}

func (c *Controller) ExportImage(ctx context.Context, name string, w io.Writer) error {
	ex, ok := c.o.Images.(ImageExporter)
	if !ok {
		return fmt.Errorf("this daemon has no container runtime to export image %s from: %w", name, api.ErrUnavailable)
	}
	return ex.ExportImage(ctx, name, w)
}

// idleHold is how long a job holds a claim while none of its datums is
// waiting (they all run, and one may come back) before it lets other jobs
// have it.
const idleHold = 200 * time.Millisecond

// handBack is what a worker goroutine of runDatums says about a datum it
// took: done (its record says how), or to be run again.
type handBack struct {
	i       int
	requeue bool
}

// dispatchRemote hands datums from next to remote workers' claims until
// next closes, ctx ends (the job's) or claims ends (no datum is left to
// hand out); each handed datum ends with one handBack. The goroutines it
// starts are counted in wg.
func (c *Controller) dispatchRemote(ctx, claims context.Context, wg *sync.WaitGroup, next <-chan int, back chan<- handBack,
	finish func(i int, err error), p *pipelineRec, j *jobRec, ds []*datum.Datum, recs []*api.Datum, lost []lostBy) {
	for {
		cl := c.hub.takeWaiter(claims)
		if cl == nil {
			return
		}
		var (
			i  int
			ok bool
		)
		idle := time.NewTimer(idleHold)
		select {
		case i, ok = <-next:
		case <-cl.gone:
			idle.Stop()
			continue
		case <-claims.Done():
			c.hub.giveBack(cl)
			return
		case <-idle.C:
			// Every datum of this job is running: let another job
			// have the claim, and look again in a while.
			c.hub.giveBack(cl)
			select {
			case <-time.After(idleHold):
			case <-claims.Done():
				return
			}
			continue
		}
		idle.Stop()
		if !ok {
			c.hub.giveBack(cl)
			return
		}
		t, err := c.newTask(p, j, ds[i])
		if err != nil {
			recs[i].State, recs[i].Error = api.DatumFailed, err.Error()
			finish(i, fmt.Errorf("datum %s: %w", ds[i].ID, err))
			back <- handBack{i: i}
			c.hub.giveBack(cl)
			continue
		}
		if !c.hub.give(cl, t) {
			c.closeTask(t)
			back <- handBack{i: i, requeue: true}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			requeue, err := c.awaitTask(ctx, t, p, j, ds[i], recs[i], &lost[i])
			if !requeue {
				finish(i, err)
			}
			back <- handBack{i: i, requeue: requeue}
		}()
	}
}

// newTask prepares datum d for a remote worker: its view, pinned until
// the task ends, and its log.
func (c *Controller) newTask(p *pipelineRec, j *jobRec, d *datum.Datum) (*task, error) {
	env, cpu, mem, err := containerSpec(p)
	if err != nil {
		return nil, err
	}
	view, err := datum.View(c.db, d)
	if err != nil {
		return nil, err
	}
	req := c.datumRequest(p, j, d)
	t := &task{Task: api.Task{ID: newSalt(), Pipeline: p.Name, Version: p.Version, Job: j.ID, Datum: d.ID, View: view,
		Tries: max(p.Spec.DatumTries, 1), Image: p.Spec.Transform.Image, Env: env, Network: p.Spec.Transform.Network,
		CPU: cpu, Memory: mem, Args: req.Args, CmdEnv: req.Env, Dir: req.Dir, User: req.User, Stdin: req.Stdin, Timeout: req.Timeout},
		end: make(chan taskEnd, 1)}
	logPath := c.logPath(j.Pipeline, j.ID, d.ID)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	t.logw = &taskLog{f: f}
	rb := c.db.NewRecordBatch()
	rb.Pin(pinSlot+"task/"+t.ID, view)
	if _, err := rb.Commit(false); err != nil {
		t.logw.close()
		return nil, err
	}
	return t, nil
}

func (c *Controller) closeTask(t *task) {
	rb := c.db.NewRecordBatch()
	rb.Unpin(pinSlot + "task/" + t.ID)
	if _, err := rb.Commit(false); err != nil {
		c.log.Error("unpin a task's view", "task", t.ID, "err", err)
	}
	t.logw.close()
}

// awaitTask follows a task handed to a remote worker to its end and
// records the datum's outcome in rec, as runDatum does for a local one.
// requeue says the datum must run again (the lease ran out, or the worker
// gave it back); err is set when the datum failed for good.
func (c *Controller) awaitTask(ctx context.Context, t *task, p *pipelineRec, j *jobRec, d *datum.Datum, rec *api.Datum, lost *lostBy) (requeue bool, err error) {
	defer c.closeTask(t)
	start := time.Now()
	now := start.UTC()
	rec.Started, rec.Worker, rec.State, rec.Error = &now, t.worker, api.DatumRunning, ""
	c.saveDatum(j, rec)
	fmt.Fprintf(t.logw, "--- datum %s given to remote worker %s at %s (task %s)\n", d.ID, t.worker, now.Format(time.RFC3339), t.ID)

	var e taskEnd
	select {
	case e = <-t.end:
	case <-ctx.Done():
		c.hub.end(t, taskEnd{res: api.TaskResult{State: taskCanceled}})
		e = <-t.end
	}
	rec.Tries = max(e.res.Tries, rec.Tries)
	switch e.res.State {
	case api.TaskSuccess:
		rec.State, rec.Output, rec.Error = api.DatumSuccess, e.output.Root, ""
		rec.Duration = time.Since(start).Seconds()
		rec.Outputs = nil
		if e.output.Files <= 100 {
			c.db.Walk(e.output.Root, "/", func(p string, en *meta.Entry) error {
				if !en.IsDir() {
					rec.Outputs = append(rec.Outputs, p)
				}
				return nil
			})
		}
		fmt.Fprintf(t.logw, "--- datum %s succeeded on %s in %.3fs with %d output files\n", d.ID, t.worker, rec.Duration, e.output.Files)
		return false, nil
	case api.TaskFailure:
		rec.State, rec.Error = api.DatumFailed, e.res.Error
		rec.Duration = time.Since(start).Seconds()
		return false, fmt.Errorf("datum %s failed after %d tries on %s: %s (logs: strata logs --pipeline %s --job %s --datum %s)",
			d.ID, rec.Tries, t.worker, e.res.Error, p.Name, j.ID, d.ID)
	case taskCanceled:
		rec.State, rec.Error = api.DatumFailed, context.Cause(ctx).Error()
		return false, nil // the job's own error says why
	}
	why := "gave it back"
	if *lost == nil {
		*lost = lostBy{}
	}
	switch {
	case e.res.State == taskExpired:
		(*lost)[workerHost(t.worker)] = true
		why = fmt.Sprintf("did not renew its lease (%s)", c.hub.lease)
	case e.res.Fault:
		// The worker could not run it; the datum may be what broke it.
		(*lost)[workerHost(t.worker)] = true
		why = "could not run it: " + e.res.Error
	case e.res.Error != "":
		why += ": " + e.res.Error
	}
	fmt.Fprintf(t.logw, "--- datum %s: remote worker %s %s; the datum runs again\n", d.ID, t.worker, why)
	if n := len(*lost); n >= maxLost {
		rec.State = api.DatumFailed
		rec.Error = fmt.Sprintf("%d remote workers lost this datum (the last, %s, %s)", n, t.worker, why)
		return false, fmt.Errorf("datum %s: %s", d.ID, rec.Error)
	}
	rec.State, rec.Worker, rec.Started = api.DatumPending, "", nil
	c.saveDatum(j, rec)
	return true, nil
}
