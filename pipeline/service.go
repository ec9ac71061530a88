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
	"time"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/pipeline/datum"
	"github.com/strata-data/strata/pipeline/spec"
)

var _ api.Pipelines = (*Controller)(nil)

func invalid(err error) error { return fmt.Errorf("%w: %w", err, meta.ErrInvalid) }

// CreatePipelines creates (or with update, replaces) the pipelines of a
// spec file. All specs are checked before any is created.
func (c *Controller) CreatePipelines(ctx context.Context, data []byte, update, reprocess bool) ([]*api.Pipeline, error) {
	specs, err := spec.Parse(data)
	if err != nil {
		return nil, invalid(err)
	}
	seen := map[string]bool{}
	for _, s := range specs {
		seen[s.Name] = false
	}
	for _, s := range specs {
		if seen[s.Name] {
			return nil, invalid(fmt.Errorf("pipeline %q is defined twice", s.Name))
		}
		seen[s.Name] = true // later specs of the file may read its output
		old, err := c.pipeline(s.Name)
		switch {
		case err == nil && !update:
			return nil, fmt.Errorf("pipeline %q exists; change it with 'strata pipeline update -f SPEC': %w", s.Name, meta.ErrExist)
		case errors.Is(err, meta.ErrNotExist) && update:
			return nil, fmt.Errorf("pipeline %q: %w; create it with 'strata pipeline create -f SPEC'", s.Name, meta.ErrNotExist)
		case err != nil && !errors.Is(err, meta.ErrNotExist):
			return nil, err
		}
		if old == nil {
			if r, err := c.db.Repo(s.Name); err == nil && r.Pipeline != s.Name {
				return nil, fmt.Errorf("repo %q exists and is not a pipeline's output; a pipeline's output repo takes its name: %w", s.Name, meta.ErrExist)
			}
		}
		for _, in := range pfsInputs(s.Name, &s.Input) {
			if in.Repo == s.Name {
				return nil, invalid(fmt.Errorf("pipeline %q reads its own output repo", s.Name))
			}
			if strings.HasPrefix(in.Repo, s.Name+"_") && in.Glob == "/" {
				continue // a cron repo, created below
			}
			if _, inFile := seen[in.Repo]; inFile {
				continue
			}
			if _, err := c.db.Repo(in.Repo); err != nil {
				return nil, fmt.Errorf("pipeline %q: input repo %q: %w (create it first, or create the pipeline that makes it)", s.Name, in.Repo, err)
			}
		}
	}
	var out []*api.Pipeline
	for _, s := range specs {
		p, err := c.createOne(s, update, reprocess)
		if err != nil {
			return out, err
		}
		out = append(out, toAPIPipeline(p, nil))
	}
	return out, nil
}

func (c *Controller) createOne(s *spec.Spec, update, reprocess bool) (*pipelineRec, error) {
	now := time.Now().UTC()
	old, err := c.pipeline(s.Name)
	if err != nil && !errors.Is(err, meta.ErrNotExist) {
		return nil, err
	}
	if old != nil {
		c.stopRunner(s.Name)
		// A job of the old version does not go on under the new one.
		var last *jobRec
		c.jobsOf(s.Name, 1, func(j *jobRec) bool { last = j; return false })
		if last != nil && !finished(last.State) {
			if err := c.finishJob(old, last, api.JobKilled, "killed by 'strata pipeline update'", nil); err != nil {
				return nil, err
			}
		}
	}
	if _, err := c.db.Repo(s.Name); errors.Is(err, meta.ErrNotExist) {
		if _, err := c.db.CreateRepo(s.Name, "output of pipeline "+s.Name, s.Name); err != nil {
			return nil, err
		}
	}
	for _, cr := range cronInputs(&s.Input) {
		repo := cronRepo(s.Name, cr.Name)
		if _, err := c.db.Repo(repo); errors.Is(err, meta.ErrNotExist) {
			if _, err := c.db.CreateRepo(repo, "ticks of pipeline "+s.Name+"'s cron input "+cr.Name, ""); err != nil {
				return nil, err
			}
		}
	}
	p := &pipelineRec{Name: s.Name, Spec: s, Version: 1, Salt: newSalt(), State: api.PipelineRunning, Created: now, Updated: now}
	if old != nil {
		p.Created, p.Version, p.NextSeq, p.LastJob, p.Salt = old.Created, old.Version+1, old.NextSeq, old.LastJob, old.Salt
		if reprocess {
			p.Salt = newSalt()
		}
		// A new version runs over the current inputs; datums whose hash
		// matches (same salt, same files) are reused.
		p.LastInputs = ""
	}
	rb := c.db.NewRecordBatch()
	if err := rb.Put(nsPipeline, p.Name, p); err != nil {
		return nil, err
	}
	if _, err := rb.Commit(true); err != nil {
		return nil, err
	}
	c.log.Info("pipeline saved", "pipeline", p.Name, "version", p.Version, "reprocess", reprocess)
	c.startRunner(p.Name)
	c.notify()
	return p, nil
}

func (c *Controller) jobStates(name string) map[string]int {
	m := map[string]int{}
	c.jobsOf(name, 0, func(j *jobRec) bool { m[j.State]++; return true })
	return m
}

func (c *Controller) ListPipelines(ctx context.Context) ([]*api.Pipeline, error) {
	recs, err := c.pipelines()
	if err != nil {
		return nil, err
	}
	out := make([]*api.Pipeline, len(recs))
	for i, p := range recs {
		out[i] = toAPIPipeline(p, c.jobStates(p.Name))
	}
	return out, nil
}

func (c *Controller) InspectPipeline(ctx context.Context, name string) (*api.Pipeline, error) {
	p, err := c.pipeline(name)
	if err != nil {
		return nil, err
	}
	return toAPIPipeline(p, c.jobStates(name)), nil
}

// DeletePipeline stops the pipeline and removes it, its jobs, datums and
// logs, and its output (and cron) repos.
func (c *Controller) DeletePipeline(ctx context.Context, name string) error {
	p, err := c.pipeline(name)
	if err != nil {
		return err
	}
	for _, other := range must(c.pipelines()) {
		for _, in := range pfsInputs(other.Name, &other.Spec.Input) {
			if in.Repo == name && other.Name != name {
				return fmt.Errorf("pipeline %q reads %q's output; delete it first: %w", other.Name, name, meta.ErrConflict)
			}
		}
	}
	c.stopRunner(name)
	var jobs []string
	c.jobsOf(name, 0, func(j *jobRec) bool { jobs = append(jobs, j.ID); return true })
	rb := c.db.NewRecordBatch()
	rb.Delete(nsPipeline, name)
	rb.DeletePrefix(nsJob, name+"/")
	rb.DeletePrefix(nsHash, name+"/")
	rb.UnpinPrefix(pinHash + name + "/")
	for _, id := range jobs {
		rb.Delete(nsJobID, id)
		rb.DeletePrefix(nsDatum, id+"/")
	}
	if _, err := rb.Commit(true); err != nil {
		return err
	}
	os.RemoveAll(filepath.Join(c.o.Dir, "logs", name))
	var errs []error
	if err := c.db.DeleteRepo(name, true); err != nil && !errors.Is(err, meta.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, cr := range cronInputs(&p.Spec.Input) {
		if err := c.db.DeleteRepo(cronRepo(name, cr.Name), true); err != nil && !errors.Is(err, meta.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	c.notify()
	return errors.Join(errs...)
}

func must[T any](v T, _ error) T { return v }

func (c *Controller) setState(name, state string) error {
	p, err := c.pipeline(name)
	if err != nil {
		return err
	}
	p.State, p.Updated = state, time.Now().UTC()
	rb := c.db.NewRecordBatch()
	rb.Put(nsPipeline, name, p)
	_, err = rb.Commit(true)
	c.notify()
	return err
}

// StopPipeline stops watching inputs; a running job is interrupted and
// resumes on start.
func (c *Controller) StopPipeline(ctx context.Context, name string) error {
	if err := c.setState(name, api.PipelineStopped); err != nil {
		return err
	}
	c.stopRunner(name)
	return nil
}

func (c *Controller) StartPipeline(ctx context.Context, name string) error {
	if err := c.setState(name, api.PipelineRunning); err != nil {
		return err
	}
	c.startRunner(name)
	return nil
}

func (c *Controller) ListJobs(ctx context.Context, pipeline string, limit int) ([]*api.Job, error) {
	var names []string
	if pipeline != "" {
		if _, err := c.pipeline(pipeline); err != nil {
			return nil, err
		}
		names = []string{pipeline}
	} else {
		for _, p := range must(c.pipelines()) {
			names = append(names, p.Name)
		}
	}
	var out []*api.Job
	for _, n := range names {
		if err := c.jobsOf(n, limit, func(j *jobRec) bool { out = append(out, &j.Job); return true }); err != nil {
			return nil, err
		}
	}
	sortJobs(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func sortJobs(js []*api.Job) {
	for i := 1; i < len(js); i++ {
		for k := i; k > 0 && js[k].Created.After(js[k-1].Created); k-- {
			js[k], js[k-1] = js[k-1], js[k]
		}
	}
}

func (c *Controller) InspectJob(ctx context.Context, id string) (*api.Job, error) {
	j, err := c.job(id)
	if err != nil {
		return nil, err
	}
	return &j.Job, nil
}

func finished(state string) bool {
	return state == api.JobSuccess || state == api.JobFailure || state == api.JobKilled
}

func (c *Controller) WaitJob(ctx context.Context, id string) (*api.Job, error) {
	for {
		ch := c.changes()
		j, err := c.job(id)
		if err != nil {
			return nil, err
		}
		if finished(j.State) {
			return &j.Job, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("job %s is still %s: %w", j.ID, j.State, ctx.Err())
		case <-ch:
		}
	}
}

func (c *Controller) StopJob(ctx context.Context, id string) error {
	j, err := c.job(id)
	if err != nil {
		return err
	}
	if finished(j.State) {
		return fmt.Errorf("job %s is already %s: %w", j.ID, j.State, meta.ErrConflict)
	}
	c.mu.Lock()
	cancel := c.jobs[j.ID]
	c.mu.Unlock()
	if cancel == nil {
		// Not running here (its pipeline is stopped): mark it killed.
		p, err := c.pipeline(j.Pipeline)
		if err != nil {
			return err
		}
		return c.finishJob(p, j, api.JobKilled, errKilled.Error(), nil)
	}
	cancel(errKilled)
	_, err = c.WaitJob(ctx, j.ID)
	return err
}

// WaitCommit waits for every job downstream of repo@ref, recursively.
func (c *Controller) WaitCommit(ctx context.Context, repo, ref string) ([]*api.Job, error) {
	cm, err := c.db.ResolveFinished(repo, ref)
	if err != nil {
		return nil, err
	}
	var out []*api.Job
	err = c.waitDownstream(ctx, cm, &out, map[string]bool{})
	return out, err
}

func (c *Controller) waitDownstream(ctx context.Context, cm *meta.Commit, out *[]*api.Job, seen map[string]bool) error {
	recs, err := c.pipelines()
	if err != nil {
		return err
	}
	for _, p := range recs {
		reads := false
		for _, in := range pfsInputs(p.Name, &p.Spec.Input) {
			reads = reads || in.Repo == cm.Repo
		}
		if !reads || p.State != api.PipelineRunning || seen[p.Name] {
			continue
		}
		seen[p.Name] = true
		j, err := c.waitJobFor(ctx, p.Name, cm)
		if err != nil {
			return err
		}
		if j == nil {
			continue
		}
		*out = append(*out, j)
		if j.State == api.JobSuccess {
			oc, err := c.db.Commit(p.Name, j.ID)
			if err != nil {
				return err
			}
			if err := c.waitDownstream(ctx, oc, out, seen); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitJobFor waits until pipeline has finished a job that read cm or a
// later commit of cm's repo. It returns nil if the pipeline waits for
// another input that has no commit.
func (c *Controller) waitJobFor(ctx context.Context, pipeline string, cm *meta.Commit) (*api.Job, error) {
	for {
		ch := c.changes()
		var found *api.Job
		err := c.jobsOf(pipeline, 0, func(j *jobRec) bool {
			for _, in := range j.Inputs {
				if in.Repo != cm.Repo {
					continue
				}
				ic, err := c.db.Commit(in.Repo, in.Commit)
				if err == nil && ic.Seq >= cm.Seq {
					found = &j.Job
					return false
				}
			}
			return true
		})
		if err != nil {
			return nil, err
		}
		if found != nil && finished(found.State) {
			return found, nil
		}
		if found == nil {
			p, err := c.pipeline(pipeline)
			if err != nil {
				return nil, err
			}
			if _, ready, _, err := c.inputs(p); err != nil {
				return nil, err
			} else if !ready {
				return nil, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for pipeline %s: %w", pipeline, ctx.Err())
		case <-ch:
		case <-time.After(time.Second):
		}
	}
}

func (c *Controller) ListDatums(ctx context.Context, job string) ([]*api.Datum, error) {
	j, err := c.job(job)
	if err != nil {
		return nil, err
	}
	m, err := c.datumRecs(j.ID)
	if err != nil {
		return nil, err
	}
	out := make([]*api.Datum, 0, len(m))
	for _, d := range m {
		out = append(out, d)
	}
	sortDatums(out)
	return out, nil
}

func sortDatums(ds []*api.Datum) {
	sort.Slice(ds, func(a, b int) bool { return ds[a].ID < ds[b].ID })
}

func (c *Controller) InspectDatum(ctx context.Context, job, id string) (*api.Datum, error) {
	j, err := c.job(job)
	if err != nil {
		return nil, err
	}
	var d api.Datum
	if err := c.db.GetRecord(nsDatum, j.ID+"/"+id, &d); err == nil {
		return &d, nil
	}
	var found *api.Datum
	c.db.ScanRecords(nsDatum, j.ID+"/"+id, false, func(_ string, raw []byte) (bool, error) {
		if found != nil {
			found = nil
			return false, nil
		}
		found = new(api.Datum)
		return true, json.Unmarshal(raw, found)
	})
	if found == nil {
		return nil, fmt.Errorf("datum %q of job %s: %w", id, j.ID, meta.ErrNotExist)
	}
	return found, nil
}

// ImportImage imports a container image.
func (c *Controller) ImportImage(ctx context.Context, name, format string, r io.Reader) (*api.Image, error) {
	if c.o.Images == nil {
		return nil, errors.New("no container runtime: install containerd and runc (apt-get install containerd runc) and restart the daemon")
	}
	switch format {
	case api.ImageArchive, "":
		return c.o.Images.ImportArchive(ctx, name, r)
	case api.ImageRootfs:
		dir, err := os.MkdirTemp(c.o.Dir, "rootfs-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if err := untar(r, dir); err != nil {
			return nil, invalid(fmt.Errorf("root directory tar: %w", err))
		}
		return c.o.Images.ImportRootfs(ctx, name, dir)
	}
	return nil, invalid(fmt.Errorf("image format %q: want %q or %q", format, api.ImageArchive, api.ImageRootfs))
}

func (c *Controller) ListImages(ctx context.Context) ([]*api.Image, error) {
	if c.o.Images == nil {
		return nil, nil
	}
	return c.o.Images.ListImages(ctx)
}

// MountDatum mounts what a worker would see for datum n of the spec over
// its inputs' current heads.
func (c *Controller) MountDatum(ctx context.Context, data []byte, dir string, n int) (*api.Datum, error) {
	if c.o.Mount == nil {
		return nil, errors.New("this daemon has no FUSE mount support")
	}
	specs, err := spec.Parse(data)
	if err != nil {
		return nil, invalid(err)
	}
	if len(specs) != 1 {
		return nil, invalid(fmt.Errorf("datum mount takes one spec; the file has %d", len(specs)))
	}
	s := specs[0]
	p := &pipelineRec{Name: s.Name, Spec: s}
	ins, ready, why, err := c.inputs(p)
	if err != nil {
		return nil, err
	}
	if !ready {
		return nil, fmt.Errorf("no datums yet: %s: %w", why, meta.ErrNotExist)
	}
	commits := datum.Inputs{}
	for _, in := range ins {
		if commits[in.Name], err = c.db.Commit(in.Repo, in.Commit); err != nil {
			return nil, err
		}
	}
	ds, err := datum.List(ctx, c.db, effectiveInput(s.Name, &s.Input), commits)
	if err != nil {
		return nil, err
	}
	if n < 0 || n >= len(ds) {
		return nil, invalid(fmt.Errorf("datum %d: the inputs have %d datums (0..%d)", n, len(ds), len(ds)-1))
	}
	d := ds[n]
	view, err := datum.View(c.db, d)
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	un, err := c.o.Mount.MountTree(dir, view)
	if err != nil {
		return nil, err
	}
	rb := c.db.NewRecordBatch()
	rb.Pin(pinSlot+"mount"+dir, view)
	rb.Commit(false)
	c.mu.Lock()
	if old := c.datumMounts[dir]; old != nil {
		old()
	}
	c.datumMounts[dir] = un
	c.mu.Unlock()
	return &api.Datum{ID: d.ID, Hash: d.Hash(""), State: api.DatumPending, Inputs: datumFiles(d)}, nil
}

func (c *Controller) UnmountDatum(ctx context.Context, dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	c.mu.Lock()
	un := c.datumMounts[dir]
	delete(c.datumMounts, dir)
	c.mu.Unlock()
	if un == nil {
		return fmt.Errorf("no datum is mounted at %s: %w", dir, meta.ErrNotExist)
	}
	rb := c.db.NewRecordBatch()
	rb.Unpin(pinSlot + "mount" + dir)
	rb.Commit(false)
	return un()
}
