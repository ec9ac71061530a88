package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/pipeline/agent"
	"github.com/strata-data/strata/pipeline/datum"
	"github.com/strata-data/strata/pipeline/spec"
)

// runJob runs j to its end: success, failure, or killed. A daemon that
// stops meanwhile leaves it running in the records; the next start
// resumes it, keeping its finished datums.
func (c *Controller) runJob(r *runner, p *pipelineRec, j *jobRec) {
	ctx, cancel := context.WithCancelCause(r.ctx)
	defer cancel(nil)
	if d := p.Spec.JobTimeout.Duration; d > 0 {
		left := d
		if j.Started != nil {
			left = time.Until(j.Started.Add(d))
		}
		var stop context.CancelFunc
		ctx, stop = context.WithTimeoutCause(ctx, left, fmt.Errorf("job timeout (%s) reached", d))
		defer stop()
	}
	c.mu.Lock()
	c.jobs[j.ID] = cancel
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.jobs, j.ID)
		c.mu.Unlock()
	}()

	root, err := c.execJob(ctx, r, p, j)
	if r.ctx.Err() != nil && context.Cause(ctx) == r.ctx.Err() {
		return // the daemon or the pipeline stops: resume later
	}
	state, failure := api.JobSuccess, ""
	if err != nil {
		state, failure = api.JobFailure, err.Error()
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			failure = cause.Error()
			if errors.Is(cause, errKilled) {
				state = api.JobKilled
			}
		}
	}
	if err := c.finishJob(p, j, state, failure, root); err != nil {
		c.log.Error("finish job", "pipeline", p.Name, "job", j.ID, "err", err)
	}
}

// finishJob records the job's end and finishes its output commit in one
// batch.
func (c *Controller) finishJob(p *pipelineRec, j *jobRec, state, failure string, root *meta.Hash) error {
	now := time.Now().UTC()
	j.State, j.Error, j.Finished = state, failure, &now
	rb := c.db.NewRecordBatch()
	if err := c.putJob(rb, j); err != nil {
		return err
	}
	if state != api.JobSuccess {
		root = nil
	}
	if oc, err := c.db.Commit(p.Name, j.ID); err == nil && oc.State == meta.StateOpen {
		rb.FinishCommit(p.Name, j.ID, root, failure)
	} else if state == api.JobSuccess {
		// Someone finished or deleted the output commit under us.
		j.State, j.Error = api.JobFailure, "the output commit was finished or deleted outside the job"
		failure = j.Error
	}
	if _, err := rb.Commit(true); err != nil {
		return err
	}
	level := c.log.Info
	if state != api.JobSuccess {
		level = c.log.Warn
	}
	level("job finished", "pipeline", p.Name, "job", j.ID, "state", state, "error", failure,
		"datums", j.Total, "processed", j.Processed, "skipped", j.Skipped, "failed", j.Failed)
	c.notify()
	return nil
}

// execJob lists the datums, reuses what it can, runs the rest and builds
// the output tree.
func (c *Controller) execJob(ctx context.Context, r *runner, p *pipelineRec, j *jobRec) (*meta.Hash, error) {
	if j.Started == nil {
		now := time.Now().UTC()
		j.Started = &now
	}
	j.State = api.JobRunning
	commits := datum.Inputs{}
	for _, in := range j.Inputs {
		cm, err := c.db.Commit(in.Repo, in.Commit)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", in.Name, err)
		}
		commits[in.Name] = cm
	}
	in := effectiveInput(p.Name, &p.Spec.Input)
	ds, err := datum.List(ctx, c.db, in, commits)
	if err != nil {
		return nil, fmt.Errorf("list datums: %w", err)
	}
	prior, err := c.datumRecs(j.ID)
	if err != nil {
		return nil, err
	}
	recs := make([]*api.Datum, len(ds))
	var todo []int
	rb := c.db.NewRecordBatch()
	j.Total, j.Processed, j.Skipped, j.Failed = len(ds), 0, 0, 0
	for i, d := range ds {
		h := d.Hash(j.Salt)
		if old := prior[d.ID]; old != nil && old.Hash == h && (old.State == api.DatumSuccess || old.State == api.DatumSkipped) {
			recs[i] = old
			j.count(old.State)
			continue
		}
		rec := &api.Datum{ID: d.ID, Job: j.ID, Hash: h, State: api.DatumPending, Inputs: datumFiles(d)}
		if p.Spec.Reprocess != "every_job" {
			var hr hashRec
			if err := c.db.GetRecord(nsHash, p.Name+"/"+h, &hr); err == nil {
				rec.State, rec.Output, rec.ReusedFrom = api.DatumSkipped, hr.Output, hr.Job
			} else if !errors.Is(err, meta.ErrNotExist) {
				return nil, err
			}
		}
		recs[i] = rec
		if rec.State == api.DatumPending {
			todo = append(todo, i)
		} else {
			j.count(rec.State)
		}
		if err := rb.Put(nsDatum, j.ID+"/"+d.ID, rec); err != nil {
			return nil, err
		}
	}
	if err := c.putJob(rb, j); err != nil {
		return nil, err
	}
	if _, err := rb.Commit(false); err != nil {
		return nil, err
	}
	c.notify()

	if len(todo) > 0 {
		pl, err := r.ensurePool(ctx, p)
		if err != nil {
			return nil, err
		}
		if err := c.runDatums(ctx, pl, p, j, ds, recs, todo); err != nil {
			return nil, err
		}
	}
	return c.mergeOutputs(recs)
}

func (j *jobRec) count(state string) {
	switch state {
	case api.DatumSuccess:
		j.Processed++
	case api.DatumSkipped:
		j.Skipped++
	case api.DatumFailed:
		j.Failed++
	}
}

// effectiveInput is the spec's input with cron inputs read as their tick
// repos (datum.List finds their commits by name).
func effectiveInput(pipeline string, in *spec.Input) *spec.Input {
	out := *in
	if in.Cron != nil {
		out.Cron = nil
		out.PFS = &spec.PFSInput{Repo: cronRepo(pipeline, in.Cron.Name), Branch: meta.DefaultBranch, Glob: "/", Name: in.Cron.Name}
	}
	for _, group := range []*[]spec.Input{&out.Cross, &out.Union, &out.Join, &out.Group} {
		if *group == nil {
			continue
		}
		g := make([]spec.Input, len(*group))
		for i := range *group {
			g[i] = *effectiveInput(pipeline, &(*group)[i])
		}
		*group = g
	}
	return &out
}

func datumFiles(d *datum.Datum) []api.DatumFile {
	out := make([]api.DatumFile, len(d.Files))
	for i, f := range d.Files {
		out[i] = api.DatumFile{Input: f.Input, Repo: f.Repo, Commit: f.Commit, Path: f.Path}
	}
	return out
}

func (c *Controller) datumRecs(job string) (map[string]*api.Datum, error) {
	out := make(map[string]*api.Datum)
	err := c.db.ScanRecords(nsDatum, job+"/", false, func(_ string, raw []byte) (bool, error) {
		var d api.Datum
		if err := json.Unmarshal(raw, &d); err != nil {
			return false, err
		}
		out[d.ID] = &d
		return true, nil
	})
	return out, err
}

// runDatums runs the datums at todo over the pool's workers and the
// remote workers that claim them; the first datum that fails for good
// cancels the rest. A datum a remote worker lost goes back to the queue.
func (c *Controller) runDatums(ctx context.Context, pl *pool, p *pipelineRec, j *jobRec, ds []*datum.Datum, recs []*api.Datum, todo []int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	// Each datum handed out is handed back once; at most len(todo) are out
	// at a time, so sends never block.
	back := make(chan handBack, len(todo))
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex // guards j's counts and the job record
		err error
	)
	finish := func(i int, derr error) {
		mu.Lock()
		j.count(recs[i].State)
		if derr != nil && err == nil {
			err = derr
			cancel(derr)
		}
		c.saveProgress(j, recs[i])
		mu.Unlock()
		c.notify()
	}
	for _, w := range pl.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				finish(i, c.runDatum(ctx, w, p, j, ds[i], recs[i]))
				back <- handBack{i: i}
			}
		}()
	}
	lost := make([]lostBy, len(ds))
	claims, stopClaims := context.WithCancel(ctx)
	defer stopClaims()
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.dispatchRemote(ctx, claims, &wg, next, back, finish, p, j, ds, recs, lost)
	}()
	queue := append([]int(nil), todo...)
	out := 0
loop:
	for len(queue) > 0 || out > 0 {
		var send chan<- int
		first := -1
		if len(queue) > 0 {
			send, first = next, queue[0]
		}
		select {
		case send <- first:
			queue = queue[1:]
			out++
		case b := <-back:
			out--
			if b.requeue {
				queue = append(queue, b.i)
			}
		case <-ctx.Done():
			break loop
		}
	}
	close(next)
	stopClaims()
	wg.Wait()
	if err != nil {
		return err
	}
	return context.Cause(ctx)
}

// datumPath is what the env var of an input names for a datum: the path
// of the datum's one file of that input under /pfs, or the input's
// directory when the datum has several (or none).
func datumPath(d *datum.Datum, input string) string {
	var paths []string
	for _, f := range d.Files {
		if f.Input == input {
			paths = append(paths, f.Path)
		}
	}
	if len(paths) == 1 && paths[0] != "/" {
		return "/pfs/" + input + paths[0]
	}
	return "/pfs/" + input
}

// saveDatum records a datum's state, unsynced.
func (c *Controller) saveDatum(j *jobRec, d *api.Datum) {
	rb := c.db.NewRecordBatch()
	rb.Put(nsDatum, j.ID+"/"+d.ID, d)
	if _, err := rb.Commit(false); err != nil {
		c.log.Error("save datum", "job", j.ID, "datum", d.ID, "err", err)
	}
}

// saveProgress writes a datum's record and the job's counts, unsynced:
// a crash loses at most some finished datums, which then run again.
func (c *Controller) saveProgress(j *jobRec, d *api.Datum) {
	rb := c.db.NewRecordBatch()
	rb.Put(nsDatum, j.ID+"/"+d.ID, d)
	c.putJob(rb, j)
	if d.State == api.DatumSuccess {
		rb.Put(nsHash, j.Pipeline+"/"+d.Hash, hashRec{Job: j.ID, Datum: d.ID, Output: d.Output})
		rb.Pin(pinHash+j.Pipeline+"/"+d.Hash, d.Output)
	}
	if _, err := rb.Commit(false); err != nil {
		c.log.Error("save datum", "job", j.ID, "datum", d.ID, "err", err)
	}
}

// runDatum runs one datum in worker w, with retries, and ingests its
// output. It returns an error only when the datum failed for good.
func (c *Controller) runDatum(ctx context.Context, w *worker, p *pipelineRec, j *jobRec, d *datum.Datum, rec *api.Datum) error {
	view, err := datum.View(c.db, d)
	if err != nil {
		rec.State, rec.Error = api.DatumFailed, err.Error()
		return fmt.Errorf("datum %s: %w", d.ID, err)
	}
	rb := c.db.NewRecordBatch()
	rb.Pin(pinSlot+w.name, view)
	rb.Commit(false)
	c.slots.Set(w.name, view)
	defer c.slots.Set(w.name, meta.EmptyTree)

	logPath := c.logPath(j.Pipeline, j.ID, d.ID)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return err
	}
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	lw := &syncWriter{w: lf}

	req := c.datumRequest(p, j, d)

	tries := max(p.Spec.DatumTries, 1)
	start := time.Now()
	now := start.UTC()
	rec.Started, rec.Worker, rec.State = &now, w.name, api.DatumRunning
	c.saveDatum(j, rec)
	var last string
	for try := 1; try <= tries; try++ {
		rec.Tries = try
		if err := ctx.Err(); err != nil {
			rec.State, rec.Error = api.DatumFailed, context.Cause(ctx).Error()
			return nil // the job's own error says why
		}
		if err := ClearDir(w.out); err != nil {
			return err
		}
		fmt.Fprintf(lw, "--- datum %s try %d/%d on %s at %s\n", d.ID, try, tries, w.name, time.Now().UTC().Format(time.RFC3339))
		res, err := w.w.Exec(ctx, req, lw, lw)
		switch {
		case err != nil && ctx.Err() != nil:
			rec.State, rec.Error = api.DatumFailed, context.Cause(ctx).Error()
			return nil
		case err != nil && !w.w.Alive():
			// The container is gone: fail the job; the next one starts
			// new workers.
			rec.State, rec.Error = api.DatumFailed, "worker "+w.name+" died: "+err.Error()
			return fmt.Errorf("datum %s: worker %s died: %w", d.ID, w.name, err)
		case err != nil:
			last = err.Error()
		case !res.Success():
			last = res.String()
		default:
			root, n, err := c.st.IngestDir(ctx, w.out)
			if err != nil {
				last = "capture /pfs/out: " + err.Error()
				break
			}
			ClearDir(w.out) // stored now; do not keep a second copy on disk
			rec.State, rec.Output, rec.Error = api.DatumSuccess, root, ""
			rec.Duration = time.Since(start).Seconds()
			rec.Outputs = nil
			if n <= 100 {
				c.db.Walk(root, "/", func(p string, e *meta.Entry) error {
					if !e.IsDir() {
						rec.Outputs = append(rec.Outputs, p)
					}
					return nil
				})
			}
			fmt.Fprintf(lw, "--- datum %s succeeded in %.3fs with %d output files\n", d.ID, rec.Duration, n)
			return nil
		}
		fmt.Fprintf(lw, "--- datum %s try %d failed: %s\n", d.ID, try, last)
	}
	rec.State, rec.Error = api.DatumFailed, last
	rec.Duration = time.Since(start).Seconds()
	return fmt.Errorf("datum %s failed after %d tries: %s (logs: strata logs --pipeline %s --job %s --datum %s)",
		d.ID, tries, last, p.Name, j.ID, d.ID)
}

// datumRequest is the command that runs datum d.
func (c *Controller) datumRequest(p *pipelineRec, j *jobRec, d *datum.Datum) agent.Request {
	env := []string{"STRATA_JOB_ID=" + j.ID, "STRATA_DATUM_ID=" + d.ID, "STRATA_PIPELINE=" + p.Name}
	for _, in := range j.Inputs {
		env = append(env, in.Name+"="+datumPath(d, in.Name), in.Name+"_COMMIT="+in.Commit)
	}
	var stdin []byte
	if len(p.Spec.Transform.Stdin) > 0 {
		stdin = []byte(strings.Join(p.Spec.Transform.Stdin, "\n") + "\n")
	}
	return agent.Request{Args: p.Spec.Transform.Cmd, Env: env, Dir: p.Spec.Transform.WorkingDir,
		User: p.Spec.Transform.User, Stdin: stdin, Timeout: p.Spec.DatumTimeout.Duration}
}

// mergeOutputs builds the job's output tree from its datums' outputs. Two
// datums writing one path is an error that names both.
func (c *Controller) mergeOutputs(recs []*api.Datum) (*meta.Hash, error) {
	sorted := append([]*api.Datum(nil), recs...)
	sort.Slice(sorted, func(a, b int) bool { return sorted[a].ID < sorted[b].ID })
	owner := make(map[string]string)
	var cs []meta.Change
	for _, d := range sorted {
		if d.Output.IsZero() || d.Output == meta.EmptyTree {
			continue
		}
		err := c.db.Walk(d.Output, "/", func(p string, e *meta.Entry) error {
			if e.IsDir() {
				if e.Files == 0 {
					cs = append(cs, meta.Change{Op: meta.OpMkdir, Path: p})
				}
				return nil
			}
			if o, dup := owner[p]; dup {
				return fmt.Errorf("datums %s and %s both write %s; each output path must come from one datum", o, d.ID, p)
			}
			owner[p] = d.ID
			cs = append(cs, meta.Change{Op: meta.OpPut, Path: p, Entry: *e})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	root, err := c.db.BuildTree(cs)
	if err != nil {
		return nil, err
	}
	return &root, nil
}

func (c *Controller) logPath(pipeline, job, datum string) string {
	return filepath.Join(c.o.Dir, "logs", pipeline, job, datum+".log")
}

// ClearDir empties dir, keeping dir itself (a worker's /pfs/out is a
// mount point in its container).
func ClearDir(dir string) error {
	es, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range es {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
