package api

import (
	"context"
	"encoding/json"
	"io"
	"time"

	"github.com/strata-data/strata/meta"
)

// Pipeline states.
const (
	PipelineRunning = "running" // watching its inputs
	PipelineStopped = "stopped" // by 'strata pipeline stop'
	PipelineFailed  = "failed"  // cannot run (e.g. its image is missing); Error says why
)

// Job states.
const (
	JobCreated = "created"
	JobRunning = "running"
	JobSuccess = "success"
	JobFailure = "failure"
	JobKilled  = "killed"
)

// Datum states.
const (
	DatumPending = "pending"
	DatumRunning = "running"
	DatumSuccess = "success"
	DatumSkipped = "skipped" // reused from an earlier successful datum with the same hash
	DatumFailed  = "failed"
)

// Pipeline is a pipeline as the daemon knows it.
type Pipeline struct {
	Name string `json:"name"`
	// Spec is the spec as JSON, with defaults filled in.
	Spec    json.RawMessage `json:"spec"`
	Version int             `json:"version"`
	State   string          `json:"state"`
	Error   string          `json:"error,omitempty"`
	Created time.Time       `json:"created"`
	Updated time.Time       `json:"updated"`
	// LastJob is the ID of the pipeline's newest job.
	LastJob string `json:"last_job,omitempty"`
	// JobStates counts the pipeline's jobs by state.
	JobStates map[string]int `json:"job_states,omitempty"`
}

// JobInput is one input commit of a job.
type JobInput struct {
	Name   string `json:"name"`
	Repo   string `json:"repo"`
	Branch string `json:"branch,omitempty"`
	Commit string `json:"commit"`
}

// Job is one run of a pipeline over one set of input commits. Its ID is
// the ID of its output commit.
type Job struct {
	ID          string     `json:"id"`
	Pipeline    string     `json:"pipeline"`
	SpecVersion int        `json:"spec_version"`
	State       string     `json:"state"`
	Error       string     `json:"error,omitempty"`
	Inputs      []JobInput `json:"inputs"`
	Output      string     `json:"output"` // repo@commit
	Created     time.Time  `json:"created"`
	Started     *time.Time `json:"started,omitempty"`
	Finished    *time.Time `json:"finished,omitempty"`
	// Datum counts.
	Total     int `json:"datums_total"`
	Processed int `json:"datums_processed"`
	Skipped   int `json:"datums_skipped"`
	Failed    int `json:"datums_failed"`
}

// DatumFile is one input file (or directory) of a datum.
type DatumFile struct {
	Input  string `json:"input"`
	Repo   string `json:"repo"`
	Commit string `json:"commit"`
	Path   string `json:"path"`
}

// Datum is one unit of a job's work.
type Datum struct {
	ID       string      `json:"id"`
	Job      string      `json:"job"`
	Hash     string      `json:"hash"`
	State    string      `json:"state"`
	Inputs   []DatumFile `json:"inputs"`
	Tries    int         `json:"tries,omitempty"`
	Worker   string      `json:"worker,omitempty"`
	Started  *time.Time  `json:"started,omitempty"`
	Duration float64     `json:"duration_seconds,omitempty"`
	// Output is the root of the datum's output tree; Outputs lists its
	// files.
	Output  meta.Hash `json:"output"`
	Outputs []string  `json:"outputs,omitempty"`
	// ReusedFrom names the job whose datum's output was reused.
	ReusedFrom string `json:"reused_from,omitempty"`
	Error      string `json:"error,omitempty"`
}

// Lineage says what produced a file of a pipeline's output.
type Lineage struct {
	Repo     string      `json:"repo"`
	Commit   string      `json:"commit"`
	Path     string      `json:"path"`
	Pipeline string      `json:"pipeline,omitempty"` // empty for a file of an input repo
	Job      string      `json:"job,omitempty"`
	Datum    string      `json:"datum,omitempty"`
	Spec     string      `json:"spec,omitempty"` // pipeline@version
	Inputs   []DatumFile `json:"inputs,omitempty"`
	// Upstream holds the lineage of each input that is itself a
	// pipeline's output.
	Upstream []*Lineage `json:"upstream,omitempty"`
}

// Image is a container image known to the daemon's containerd.
type Image struct {
	Name    string    `json:"name"`
	Digest  string    `json:"digest"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
}

// LogQuery selects datum logs.
type LogQuery struct {
	Pipeline string `json:"pipeline"`
	Job      string `json:"job,omitempty"`   // default: the pipeline's newest job
	Datum    string `json:"datum,omitempty"` // default: every datum of the job
	Follow   bool   `json:"follow,omitempty"`
}

// Image formats accepted by ImportImage.
const (
	ImageArchive = "archive" // an OCI image-layout or docker-save tarball
	ImageRootfs  = "rootfs"  // a tar of a root directory, made into a one-layer image
)

// Pipelines is the pipeline daemon as the API serves it. The daemon plugs
// in the pipeline controller; without one, pipeline routes answer that
// pipelines are off.
type Pipelines interface {
	// CreatePipelines reads one or more specs (YAML or JSON) and creates
	// them, or with update replaces existing ones (reprocess: rerun every
	// datum).
	CreatePipelines(ctx context.Context, spec []byte, update, reprocess bool) ([]*Pipeline, error)
	ListPipelines(ctx context.Context) ([]*Pipeline, error)
	InspectPipeline(ctx context.Context, name string) (*Pipeline, error)
	// DeletePipeline removes a pipeline, its jobs and its output repo.
	DeletePipeline(ctx context.Context, name string) error
	StopPipeline(ctx context.Context, name string) error
	StartPipeline(ctx context.Context, name string) error

	// ListJobs lists jobs, newest first; pipeline "" lists every
	// pipeline's jobs.
	ListJobs(ctx context.Context, pipeline string, limit int) ([]*Job, error)
	InspectJob(ctx context.Context, id string) (*Job, error)
	// WaitJob blocks until the job has finished (or ctx ends).
	WaitJob(ctx context.Context, id string) (*Job, error)
	StopJob(ctx context.Context, id string) error
	// WaitCommit blocks until every job downstream of repo@ref (which
	// must be finished) has finished, and returns those jobs.
	WaitCommit(ctx context.Context, repo, ref string) ([]*Job, error)

	ListDatums(ctx context.Context, job string) ([]*Datum, error)
	InspectDatum(ctx context.Context, job, datum string) (*Datum, error)
	// Logs writes the selected logs to w; with Follow it keeps writing
	// until ctx ends.
	Logs(ctx context.Context, q LogQuery, w io.Writer) error
	Lineage(ctx context.Context, repo, ref, path string) (*Lineage, error)

	ImportImage(ctx context.Context, name, format string, r io.Reader) (*Image, error)
	ListImages(ctx context.Context) ([]*Image, error)

	// MountDatum mounts at dir what a container of the spec's pipeline
	// would see for datum n (0-based, in datum order) of its inputs'
	// current heads, until UnmountDatum(dir). It returns the datum.
	MountDatum(ctx context.Context, spec []byte, dir string, n int) (*Datum, error)
	UnmountDatum(ctx context.Context, dir string) error
}
