package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

// Record namespaces and pin prefixes in the metadata database.
const (
	nsPipeline = "pipeline" // name -> pipelineRec
	nsJob      = "job"      // pipeline/seq(16 hex) -> jobRec
	nsJobID    = "jobid"    // job ID -> pipeline/seq
	nsDatum    = "datum"    // job ID/datum ID -> api.Datum
	nsHash     = "dhash"    // pipeline/datum hash -> hashRec

	pinHash = "dh/"   // dh/pipeline/hash -> a successful datum's output
	pinSlot = "slot/" // slot/name -> the view a worker shows now
)

// Options configure a Controller.
type Options struct {
	Store *store.Store
	// Exec starts workers; nil makes every job fail with a clear error.
	Exec Executor
	// Images imports and lists images (nil: image verbs are off).
	Images ImageStore
	Mount  Mounter
	// Dir holds work directories, logs and the workers' tree mount.
	Dir string
	Log *slog.Logger
	// Lease is how long a remote worker holds a datum between heartbeats
	// (DefaultLease when 0).
	Lease time.Duration
}

// ImageStore is the part of the container runtime that keeps images.
type ImageStore interface {
	ImportArchive(ctx context.Context, name string, r io.Reader) (*api.Image, error)
	ImportRootfs(ctx context.Context, name, dir string) (*api.Image, error)
	ListImages(ctx context.Context) ([]*api.Image, error)
}

// Controller runs pipelines. It implements api.Pipelines.
type Controller struct {
	o   Options
	st  *store.Store
	db  *meta.DB
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	slots   *SlotTable
	hub     *hub
	unmount func() error
	slotDir string

	mu          sync.Mutex
	runners     map[string]*runner // running pipelines
	jobs        map[string]context.CancelCauseFunc
	datumMounts map[string]func() error
	// changed is closed and replaced whenever a job or pipeline changes.
	changed chan struct{}
}

var errKilled = errors.New("killed by 'strata job stop'")

// pipelineRec is a pipeline as stored.
type pipelineRec struct {
	Name    string     `json:"name"`
	Spec    *spec.Spec `json:"spec"`
	Version int        `json:"version"`
	// Salt goes into every datum hash; it changes on create and on
	// update --reprocess, so old outputs are not reused.
	Salt    string    `json:"salt"`
	State   string    `json:"state"`
	Error   string    `json:"error,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// LastInputs is the input key of the newest job, so one set of input
	// heads makes one job.
	LastInputs string `json:"last_inputs,omitempty"`
	NextSeq    uint64 `json:"next_seq"`
	LastJob    string `json:"last_job,omitempty"`
}

type jobRec struct {
	api.Job
	Seq  uint64 `json:"seq"`
	Salt string `json:"salt"`
}

type hashRec struct {
	Job    string    `json:"job"`
	Datum  string    `json:"datum"`
	Output meta.Hash `json:"output"`
}

// New returns a controller; Start runs it.
func New(o Options) (*Controller, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	c := &Controller{o: o, st: o.Store, db: o.Store.Meta, log: o.Log,
		slots: NewSlotTable(), hub: newHub(o.Lease), runners: make(map[string]*runner),
		jobs: make(map[string]context.CancelCauseFunc), datumMounts: make(map[string]func() error),
		changed: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Start mounts the workers' trees, resumes interrupted jobs and starts
// watching inputs.
func (c *Controller) Start() error {
	if c.o.Mount != nil {
		c.slotDir = filepath.Join(c.o.Dir, "pfs")
		un, err := c.o.Mount.MountTrees(c.slotDir, c.slots)
		if err != nil {
			// Jobs that need workers fail saying so; the rest of the
			// daemon works.
			c.log.Error("pipelines cannot show datums to workers", "err", err)
			c.slotDir = ""
		} else {
			c.unmount = un
		}
	}
	// Views of datums that were running when we stopped are garbage now.
	rb := c.db.NewRecordBatch()
	rb.UnpinPrefix(pinSlot)
	if _, err := rb.Commit(false); err != nil {
		return err
	}
	recs, err := c.pipelines()
	if err != nil {
		return err
	}
	for _, p := range recs {
		if p.State == api.PipelineRunning {
			c.startRunner(p.Name)
		}
	}
	c.wg.Add(2)
	go c.watch()
	go func() {
		defer c.wg.Done()
		c.hub.expire(c.ctx)
	}()
	return nil
}

// Close stops every runner and worker (jobs stay recorded as running and
// resume on the next Start), then unmounts the workers' trees.
func (c *Controller) Close() error {
	c.cancel()
	c.mu.Lock()
	rs := make([]*runner, 0, len(c.runners))
	for _, r := range c.runners {
		rs = append(rs, r)
	}
	mounts := c.datumMounts
	c.datumMounts = map[string]func() error{}
	c.mu.Unlock()
	for _, r := range rs {
		r.stop()
	}
	c.wg.Wait()
	var errs []error
	for _, un := range mounts {
		errs = append(errs, un())
	}
	if c.unmount != nil {
		errs = append(errs, c.unmount())
	}
	return errors.Join(errs...)
}

// watch pokes every runner when the metadata changes.
func (c *Controller) watch() {
	defer c.wg.Done()
	for {
		ch := c.db.Changed()
		select {
		case <-c.ctx.Done():
			return
		case <-ch:
		}
		c.mu.Lock()
		for _, r := range c.runners {
			r.poke()
		}
		c.mu.Unlock()
	}
}

// notify wakes everyone waiting for a job or pipeline change.
func (c *Controller) notify() {
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *Controller) changes() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

func (c *Controller) pipeline(name string) (*pipelineRec, error) {
	var p pipelineRec
	if err := c.db.GetRecord(nsPipeline, name, &p); err != nil {
		if errors.Is(err, meta.ErrNotExist) {
			return nil, fmt.Errorf("pipeline %q: %w", name, meta.ErrNotExist)
		}
		return nil, err
	}
	return &p, nil
}

func (c *Controller) pipelines() ([]*pipelineRec, error) {
	var out []*pipelineRec
	err := c.db.ScanRecords(nsPipeline, "", false, func(_ string, raw []byte) (bool, error) {
		var p pipelineRec
		if err := json.Unmarshal(raw, &p); err != nil {
			return false, err
		}
		out = append(out, &p)
		return true, nil
	})
	return out, err
}

func jobKey(pipeline string, seq uint64) string { return fmt.Sprintf("%s/%016x", pipeline, seq) }

func (c *Controller) job(id string) (*jobRec, error) {
	var k string
	if err := c.db.GetRecord(nsJobID, id, &k); err != nil {
		if errors.Is(err, meta.ErrNotExist) {
			if full, err2 := c.jobByPrefix(id); err2 == nil {
				return c.job(full)
			} else if !errors.Is(err2, meta.ErrNotExist) {
				return nil, err2
			}
			return nil, fmt.Errorf("job %q: %w", id, meta.ErrNotExist)
		}
		return nil, err
	}
	var j jobRec
	return &j, c.db.GetRecord(nsJob, k, &j)
}

// jobByPrefix resolves a unique prefix of a job ID (at least 6 characters).
func (c *Controller) jobByPrefix(p string) (string, error) {
	if len(p) < 6 {
		return "", meta.ErrNotExist
	}
	var found []string
	err := c.db.ScanRecords(nsJobID, p, false, func(k string, _ []byte) (bool, error) {
		found = append(found, k)
		return len(found) < 2, nil
	})
	switch {
	case err != nil:
		return "", err
	case len(found) == 0:
		return "", meta.ErrNotExist
	case len(found) > 1:
		return "", fmt.Errorf("job ID prefix %q: %w", p, meta.ErrAmbiguous)
	}
	return found[0], nil
}

func (c *Controller) jobsOf(pipeline string, limit int, fn func(*jobRec) bool) error {
	n := 0
	return c.db.ScanRecords(nsJob, pipeline+"/", true, func(_ string, raw []byte) (bool, error) {
		var j jobRec
		if err := json.Unmarshal(raw, &j); err != nil {
			return false, err
		}
		n++
		return fn(&j) && (limit <= 0 || n < limit), nil
	})
}

func (c *Controller) putJob(rb *meta.RecordBatch, j *jobRec) error {
	if err := rb.Put(nsJob, jobKey(j.Pipeline, j.Seq), j); err != nil {
		return err
	}
	return rb.Put(nsJobID, j.ID, jobKey(j.Pipeline, j.Seq))
}

func newSalt() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// pfsInputs returns every input of in that reads a repo, with cron inputs
// as reads of their tick repos.
func pfsInputs(pipeline string, in *spec.Input) []spec.PFSInput {
	var out []spec.PFSInput
	var walk func(in *spec.Input)
	walk = func(in *spec.Input) {
		switch {
		case in.PFS != nil:
			out = append(out, *in.PFS)
		case in.Cron != nil:
			out = append(out, spec.PFSInput{Repo: cronRepo(pipeline, in.Cron.Name), Branch: meta.DefaultBranch, Glob: "/", Name: in.Cron.Name})
		}
		for _, group := range [][]spec.Input{in.Cross, in.Union, in.Join, in.Group} {
			for i := range group {
				walk(&group[i])
			}
		}
	}
	walk(in)
	return out
}

func cronRepo(pipeline, name string) string { return pipeline + "_" + name }

func cronInputs(in *spec.Input) []*spec.CronInput {
	var out []*spec.CronInput
	var walk func(in *spec.Input)
	walk = func(in *spec.Input) {
		if in.Cron != nil {
			out = append(out, in.Cron)
		}
		for _, group := range [][]spec.Input{in.Cross, in.Union, in.Join, in.Group} {
			for i := range group {
				walk(&group[i])
			}
		}
	}
	walk(in)
	return out
}

// inputKey names a set of input commits.
func inputKey(ins []api.JobInput) string {
	parts := make([]string, len(ins))
	for i, in := range ins {
		parts[i] = in.Name + "=" + in.Commit
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func toAPIPipeline(p *pipelineRec, states map[string]int) *api.Pipeline {
	raw, _ := json.Marshal(p.Spec)
	return &api.Pipeline{Name: p.Name, Spec: raw, Version: p.Version, State: p.State, Error: p.Error,
		Created: p.Created, Updated: p.Updated, LastJob: p.LastJob, JobStates: states}
}
