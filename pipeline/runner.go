package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/pipeline/spec"
	"github.com/strata-data/strata/store"
)

// runner is the goroutine of one running pipeline: it waits for new input
// heads and runs one job at a time.
type runner struct {
	c      *Controller
	name   string
	pokeCh chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	pool *pool    // workers, started with the first job
	svc  *service // a service pipeline's process
}

func (c *Controller) startRunner(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.runners[name]; ok {
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	r := &runner{c: c, name: name, pokeCh: make(chan struct{}, 1), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	c.runners[name] = r
	c.wg.Add(1)
	go r.run()
	r.poke()
}

// stopRunner stops a pipeline's runner and its workers, and waits.
func (c *Controller) stopRunner(name string) {
	c.mu.Lock()
	r := c.runners[name]
	delete(c.runners, name)
	c.mu.Unlock()
	if r != nil {
		r.stop()
	}
}

func (r *runner) poke() {
	select {
	case r.pokeCh <- struct{}{}:
	default:
	}
}

func (r *runner) stop() {
	r.cancel()
	<-r.done
}

func (r *runner) run() {
	defer r.c.wg.Done()
	defer close(r.done)
	defer func() {
		r.svc.stop()
		if r.pool != nil {
			r.pool.close()
		}
	}()
	p, err := r.c.pipeline(r.name)
	if err != nil {
		r.c.log.Error("pipeline runner", "pipeline", r.name, "err", err)
		return
	}
	for _, cr := range cronInputs(&p.Spec.Input) {
		go r.cron(p, cr)
	}
	for {
		if err := r.step(); err != nil && r.ctx.Err() == nil {
			r.c.log.Error("pipeline", "pipeline", r.name, "err", err)
		}
		select {
		case <-r.ctx.Done():
			return
		case <-r.pokeCh:
		}
	}
}

// step resumes an unfinished job or starts one for new input heads, and
// runs it to the end.
func (r *runner) step() error {
	for r.ctx.Err() == nil {
		p, err := r.c.pipeline(r.name)
		if err != nil {
			return err
		}
		j, err := r.unfinished(p)
		if err != nil {
			return err
		}
		if j == nil && p.Spec.Service != nil && r.svc == nil && p.LastJob != "" {
			// A service whose daemon restarted: serve its last job's
			// inputs again.
			if last, err := r.c.job(p.LastJob); err == nil && last.State == api.JobSuccess {
				j = last
			}
		}
		if j == nil {
			if j, err = r.newJob(p); err != nil || j == nil {
				return err
			}
		}
		if p.Spec.Service != nil {
			r.c.runService(r, p, j)
			return nil
		}
		r.c.runJob(r, p, j)
	}
	return nil
}

// unfinished returns the pipeline's newest job if it was interrupted
// (created or running); it also drops an output commit that a crash left
// without its job.
func (r *runner) unfinished(p *pipelineRec) (*jobRec, error) {
	var last *jobRec
	err := r.c.jobsOf(p.Name, 1, func(j *jobRec) bool { last = j; return false })
	if err != nil {
		return nil, err
	}
	if last != nil && (last.State == api.JobCreated || last.State == api.JobRunning) {
		return last, nil
	}
	head, err := r.c.db.Resolve(p.Name, meta.DefaultBranch)
	if err == nil && head.State == meta.StateOpen && (last == nil || last.ID != head.ID) {
		r.c.log.Info("pipeline: dropping an output commit that has no job", "pipeline", p.Name, "commit", head.ID)
		if _, err := r.c.db.DeleteCommit(p.Name, head.ID); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// inputs resolves the heads of the pipeline's inputs; ready is false while
// an input has no finished commit or its head failed.
func (c *Controller) inputs(p *pipelineRec) (ins []api.JobInput, ready bool, why string, err error) {
	for _, in := range pfsInputs(p.Name, &p.Spec.Input) {
		head, err := c.db.ResolveFinished(in.Repo, in.Branch)
		if errors.Is(err, meta.ErrNotExist) {
			return nil, false, fmt.Sprintf("waiting for a commit on %s@%s", in.Repo, in.Branch), nil
		}
		if err != nil {
			return nil, false, "", err
		}
		if head.State == meta.StateFailed {
			return nil, false, fmt.Sprintf("input %s@%s is failed", in.Repo, head.ID), nil
		}
		ins = append(ins, api.JobInput{Name: in.Name, Repo: in.Repo, Branch: in.Branch, Commit: head.ID})
	}
	return ins, true, "", nil
}

// newJob starts a job when the input heads differ from the last job's.
func (r *runner) newJob(p *pipelineRec) (*jobRec, error) {
	c := r.c
	ins, ready, _, err := c.inputs(p)
	if err != nil || !ready {
		return nil, err
	}
	key := inputKey(ins)
	if key == p.LastInputs {
		return nil, nil
	}
	prov := make([]meta.CommitRef, len(ins))
	for i, in := range ins {
		prov[i] = meta.CommitRef{Repo: in.Repo, ID: in.Commit}
	}
	specRef := fmt.Sprintf("%s@%d", p.Name, p.Version)
	oc, err := c.db.StartCommit(p.Name, meta.DefaultBranch, meta.CommitOptions{
		Message:    "output of pipeline " + specRef,
		Origin:     meta.Origin{Kind: "pipeline", Name: p.Name},
		Provenance: prov,
		Spec:       specRef,
	})
	if err != nil {
		return nil, fmt.Errorf("start output commit: %w", err)
	}
	j := &jobRec{Job: api.Job{ID: oc.ID, Pipeline: p.Name, SpecVersion: p.Version, State: api.JobCreated,
		Inputs: ins, Output: p.Name + "@" + oc.ID, Created: time.Now().UTC()}, Seq: p.NextSeq, Salt: p.Salt}
	p.NextSeq++
	p.LastInputs = key
	p.LastJob = j.ID
	rb := c.db.NewRecordBatch()
	if err := c.putJob(rb, j); err != nil {
		return nil, err
	}
	if err := rb.Put(nsPipeline, p.Name, p); err != nil {
		return nil, err
	}
	if _, err := rb.Commit(true); err != nil {
		return nil, err
	}
	c.log.Info("job created", "pipeline", p.Name, "job", j.ID, "inputs", key)
	c.notify()
	return j, nil
}

// cron commits a tick to the cron input's repo on its schedule.
func (r *runner) cron(p *pipelineRec, cr *spec.CronInput) {
	sched, err := spec.ParseCron(cr.Spec)
	if err != nil {
		r.c.log.Error("cron", "pipeline", p.Name, "input", cr.Name, "err", err)
		return
	}
	repo := cronRepo(p.Name, cr.Name)
	for {
		next := sched.Next(time.Now().UTC())
		t := time.NewTimer(time.Until(next))
		select {
		case <-r.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		name := "/time"
		if !cr.Overwrite {
			name = "/" + next.Format(time.RFC3339)
		}
		_, err := r.c.st.PutFile(r.ctx, repo, meta.DefaultBranch, name, strings.NewReader(next.Format(time.RFC3339)+"\n"),
			store.PutOptions{Commit: meta.CommitOptions{Message: "cron tick", Origin: meta.Origin{Kind: "cron", Name: p.Name + "/" + cr.Name}}})
		if err != nil && r.ctx.Err() == nil {
			r.c.log.Error("cron tick", "pipeline", p.Name, "repo", repo, "err", err)
		}
	}
}

// pool is a pipeline's long-lived workers.
type pool struct {
	c       *Controller
	version int
	workers []*worker
	mu      sync.Mutex
}

type worker struct {
	name     string // slot name
	w        Worker
	out, run string
}

// ensurePool starts the pipeline's workers for spec version p.Version,
// replacing workers of an older version.
func (r *runner) ensurePool(ctx context.Context, p *pipelineRec) (*pool, error) {
	if r.pool != nil && r.pool.version == p.Version && r.pool.healthy() {
		return r.pool, nil
	}
	if r.pool != nil {
		r.pool.close()
		r.pool = nil
	}
	c := r.c
	if c.o.Exec == nil {
		return nil, errors.New("no container runtime: start the daemon with containerd installed (apt-get install containerd runc)")
	}
	if c.slotDir == "" {
		return nil, errors.New("no mount for the workers' views")
	}
	pl := &pool{c: c, version: p.Version}
	env, cpu, mem, err := containerSpec(p)
	if err != nil {
		return nil, err
	}
	for i := range p.Spec.Parallelism {
		name := fmt.Sprintf("%s-%d", p.Name, i)
		base := filepath.Join(c.o.Dir, "work", name)
		wk := &worker{name: name, out: filepath.Join(base, "out"), run: filepath.Join(base, "run")}
		os.RemoveAll(base)
		for _, d := range []string{wk.out, wk.run} {
			if err := os.MkdirAll(d, 0o777); err != nil {
				pl.close()
				return nil, err
			}
			os.Chmod(d, 0o777) // the container's user may not be root
		}
		c.slots.Set(name, meta.EmptyTree)
		// Container IDs are new for every pool: a container of an older
		// pool may still be going away.
		id := fmt.Sprintf("%s-%d-%s", p.Name, i, newSalt()[:6])
		w, err := c.o.Exec.StartWorker(ctx, WorkerSpec{ID: id, Image: p.Spec.Transform.Image,
			PFS: filepath.Join(c.slotDir, name), Out: wk.out, Run: wk.run, Env: env,
			Network: p.Spec.Transform.Network || p.Spec.Service != nil, CPU: cpu, Memory: mem})
		if err != nil {
			c.slots.Drop(name)
			pl.close()
			return nil, fmt.Errorf("start worker %s: %w", name, err)
		}
		wk.w = w
		pl.workers = append(pl.workers, wk)
	}
	r.pool = pl
	return pl, nil
}

// containerSpec is the environment and limits of p's worker containers.
func containerSpec(p *pipelineRec) (env []string, cpu float64, mem int64, err error) {
	if res := p.Spec.Resources; res != nil {
		if res.CPU != "" {
			if cpu, err = res.CPU.Cores(); err != nil {
				return nil, 0, 0, err
			}
		}
		if res.Memory != "" {
			if mem, err = res.Memory.Bytes(); err != nil {
				return nil, 0, 0, err
			}
		}
	}
	for k, v := range p.Spec.Transform.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env, cpu, mem, nil
}

func (pl *pool) healthy() bool {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for _, w := range pl.workers {
		if !w.w.Alive() {
			return false
		}
	}
	return true
}

func (pl *pool) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, w := range pl.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.w.Close(ctx); err != nil {
				pl.c.log.Error("stop worker", "worker", w.name, "err", err)
			}
			pl.c.slots.Drop(w.name)
		}()
	}
	wg.Wait()
	pl.workers = nil
}
