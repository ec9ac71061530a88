package api

import (
	"context"
	"io"
	"time"

	"github.com/strata-data/strata/meta"
)

// Remote workers (strata worker) run datums of any pipeline on other
// machines. A worker claims a task, which holds one datum under a lease;
// it heartbeats while the datum runs, uploads the datum's logs and its
// /pfs/out, and reports the end. A task whose lease runs out goes back to
// the job, which hands the datum to the next worker (local or remote);
// whatever the first worker reports afterwards is refused with ErrStale.

// Task is one datum handed to a remote worker.
type Task struct {
	ID       string `json:"id"`
	Pipeline string `json:"pipeline"`
	Version  int    `json:"version"` // the pipeline's spec version
	Job      string `json:"job"`
	Datum    string `json:"datum"`
	// View is the tree the container sees at /pfs (read it through the
	// tree routes); /pfs/out is the worker's own, uploaded at the end.
	View meta.Hash `json:"view"`
	// LeaseExpires is when the task goes back to the job unless a
	// heartbeat extends it; Lease is the lease's length.
	LeaseExpires time.Time     `json:"lease_expires"`
	Lease        time.Duration `json:"lease"`
	// Tries is how many times the worker may run the command before it
	// reports a failure (the spec's datum_tries).
	Tries int `json:"tries"`

	// The container: as local workers start theirs.
	Image   string   `json:"image"`
	Env     []string `json:"env,omitempty"` // the container's environment
	Network bool     `json:"network,omitempty"`
	CPU     float64  `json:"cpu,omitempty"`    // cores; 0: no limit
	Memory  int64    `json:"memory,omitempty"` // bytes; 0: no limit

	// The command of each try (agent.Request's fields).
	Args    []string      `json:"args"`
	CmdEnv  []string      `json:"cmd_env,omitempty"`
	Dir     string        `json:"dir,omitempty"`
	User    string        `json:"user,omitempty"`
	Stdin   []byte        `json:"stdin,omitempty"`
	Timeout time.Duration `json:"timeout,omitempty"`
}

// ClaimRequest asks for a task.
type ClaimRequest struct {
	// Worker names the claimer (host and slot, e.g. "node7-0"); datum
	// records show it.
	Worker string `json:"worker"`
	// Wait is how long the daemon may hold the request open while no
	// datum is waiting (a long poll); 0 answers at once.
	Wait time.Duration `json:"wait,omitempty"`
}

// Lease is the answer to a heartbeat.
type Lease struct {
	Expires time.Time `json:"expires"`
}

// Task results reported by FinishTask.
const (
	TaskSuccess = "success" // the output was uploaded
	TaskFailure = "failure" // every try failed; Error says why
	// TaskReleased: the worker gives the datum back to run elsewhere,
	// because it stops or (Fault set) because it could not run it.
	TaskReleased = "released"
)

// TaskResult is how a task ended on the worker.
type TaskResult struct {
	Worker string `json:"worker"`
	State  string `json:"state"` // TaskSuccess, TaskFailure or TaskReleased
	Error  string `json:"error,omitempty"`
	Tries  int    `json:"tries,omitempty"`
	// Fault, on a release, says the worker could not run the datum (its
	// image, its container or its upload failed) rather than that it
	// stops. The daemon counts such a release as a lost datum, as it does
	// an expired lease, so a datum that breaks every worker fails its job
	// in the end instead of going round for ever.
	Fault bool `json:"fault,omitempty"`
}

// TaskOutput is what the daemon stored of an uploaded /pfs/out.
type TaskOutput struct {
	Root  meta.Hash `json:"root"`
	Files int       `json:"files"`
}

// RemoteWorker is a remote worker as the daemon saw it last.
type RemoteWorker struct {
	Name     string    `json:"name"`
	LastSeen time.Time `json:"last_seen"`
	// Task is the ID of the task it runs, if any; Pipeline, Job and Datum
	// say which datum.
	Task     string `json:"task,omitempty"`
	Pipeline string `json:"pipeline,omitempty"`
	Job      string `json:"job,omitempty"`
	Datum    string `json:"datum,omitempty"`
}

// Workers is the side of the pipeline daemon that remote workers talk to.
// The controller implements it next to Pipelines; the API finds it by
// type assertion. Every call naming a task fails with store.ErrStale
// (HTTP 412) when the task is no longer the caller's: its lease ran out,
// its job ended, or another worker holds it; the worker then drops the
// datum. Methods are safe for concurrent use.
type Workers interface {
	// ClaimTask returns a task for req.Worker, waiting up to req.Wait for
	// one; nil (and no error) when none came.
	ClaimTask(ctx context.Context, req ClaimRequest) (*Task, error)
	// Heartbeat extends the task's lease.
	Heartbeat(ctx context.Context, worker, task string) (*Lease, error)
	// AppendTaskLog appends r to the datum's log.
	AppendTaskLog(ctx context.Context, worker, task string, r io.Reader) error
	// PutTaskOutput stores a tar stream of the datum's /pfs/out as the
	// task's output (a second upload replaces the first).
	PutTaskOutput(ctx context.Context, worker, task string, r io.Reader) (*TaskOutput, error)
	// FinishTask ends the task. A success needs an uploaded output.
	FinishTask(ctx context.Context, task string, res TaskResult) error
	// ListWorkers lists the remote workers seen within a lease.
	ListWorkers(ctx context.Context) ([]*RemoteWorker, error)
	// ExportImage writes the image called name as an OCI image-layout
	// tarball (which ImportImage with ImageArchive reads back).
	ExportImage(ctx context.Context, name string, w io.Writer) error
}
