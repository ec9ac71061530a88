package pipeline

import (
	"context"
	"io"

	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/pipeline/agent"
)

// Executor starts worker containers.
type Executor interface {
	StartWorker(ctx context.Context, w WorkerSpec) (Worker, error)
}

// WorkerSpec describes one long-lived worker container.
type WorkerSpec struct {
	ID    string
	Image string
	// PFS is the host directory shown read-only at /pfs (a slot of the
	// trees mount); Out is the host directory mounted writable at
	// /pfs/out; Run holds the agent's socket.
	PFS, Out, Run string
	Env           []string
	Network       bool
	CPU           float64 // cores; 0: no limit
	Memory        int64   // bytes; 0: no limit
}

// Worker runs one command per datum.
type Worker interface {
	Exec(ctx context.Context, req agent.Request, stdout, stderr io.Writer) (agent.Result, error)
	// Alive reports whether the worker's container still runs.
	Alive() bool
	Close(ctx context.Context) error
}

// Trees is what a trees mount shows (see fs/mount.Trees): per name, a
// tree that can switch at any time.
type Trees interface {
	Tree(name string) (meta.Hash, bool)
	Names() []string
}

// Mounter mounts trees: MountTrees shows one directory per name of src at
// dir; MountTree shows one tree at dir.
type Mounter interface {
	MountTrees(dir string, src Trees) (unmount func() error, err error)
	MountTree(dir string, root meta.Hash) (unmount func() error, err error)
}
