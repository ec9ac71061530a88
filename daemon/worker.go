package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/fs/mount"
	"github.com/strata-data/strata/fs/view/remote"
	"github.com/strata-data/strata/pipeline"
	"github.com/strata-data/strata/pipeline/runtime"
	remoteworker "github.com/strata-data/strata/pipeline/worker"
)

var _ pipeline.ImageExporter = images{}

// DefaultWorkerDir is where 'strata worker' keeps its state by default.
const DefaultWorkerDir = "/var/lib/strata-worker"

// WorkerOptions configure RunWorker.
type WorkerOptions struct {
	Client *api.Client
	Name   string
	Slots  int
	// Dir holds the worker's private containerd (DIR/containerd), the
	// datums' views (DIR/pfs) and the slots' directories (DIR/work).
	Dir string
	// Containerd is the address of a running containerd; "" starts a
	// private one under DIR/containerd.
	Containerd string
	// ChunkCache is the bytes of chunks kept in memory (see
	// remote.Options.ChunkCache).
	ChunkCache int64
	// S3Endpoint and S3Region override where the daemon says its S3
	// bucket is, for reading large input chunks straight from it (with
	// AWS_* credentials; see remote.OpenObjectStore).
	S3Endpoint, S3Region string
	Log                  *slog.Logger
}

// RunWorker runs a remote worker (package pipeline/worker) against the
// daemon behind o.Client until ctx ends: containers under this host's
// containerd, datum views mounted over the API.
func RunWorker(ctx context.Context, o WorkerOptions) error {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("worker dir: %w", err)
	}
	lr := &lazyRuntime{cfg: runtime.Config{Address: o.Containerd, Dir: filepath.Join(dir, "containerd"), Log: log}}
	defer func() {
		if err := lr.close(); err != nil {
			log.Error("stop containerd", "err", err)
		}
	}()
	// The daemon first (its reason beats a containerd error), then the
	// runtime, which also clears what a killed worker left behind.
	if _, err := o.Client.ListWorkers(ctx); err != nil {
		return fmt.Errorf("worker %s: %w", o.Name, err)
	}
	if _, err := lr.get(ctx); err != nil {
		return fmt.Errorf("worker %s: %w", o.Name, err)
	}
	ro := remote.Options{ChunkCache: o.ChunkCache, Log: log}
	// Large input chunks straight from the object store when the daemon's
	// chunks are in one and this host has credentials, as strata mount
	// --server does; through the daemon otherwise.
	log.Info(remote.UseObjectStore(ctx, o.Client, &ro, remote.ObjectStoreOptions{Endpoint: o.S3Endpoint, Region: o.S3Region}))
	src := remote.New(o.Client, ro)
	return remoteworker.Run(ctx, remoteworker.Options{
		Daemon: o.Client, Name: o.Name, Slots: o.Slots, Dir: dir,
		Exec: workerExecutor{lr}, Images: workerImages{images{lr}},
		Mount: sourceMounter{src: src, log: log}, Log: log,
	})
}

// workerExecutor starts containers for a remote worker, whose images come
// from the daemon (worker.Run fetches them first): it never pulls.
type workerExecutor struct{ l *lazyRuntime }

func (e workerExecutor) StartWorker(ctx context.Context, w pipeline.WorkerSpec) (pipeline.Worker, error) {
	rt, err := e.l.get(ctx)
	if err != nil {
		return nil, err
	}
	wk, err := rt.StartWorker(ctx, runtime.WorkerSpec{ID: w.ID, Image: w.Image, PFS: w.PFS, Out: w.Out, Run: w.Run,
		Env: w.Env, Network: w.Network, CPU: w.CPU, Memory: w.Memory})
	if err != nil {
		return nil, err
	}
	return worker{wk}, nil
}

type workerImages struct{ images }

func (workerImages) Normalize(name string) (string, error) { return runtime.NormalizeImageName(name) }

func (m workerImages) Digest(ctx context.Context, name string) (string, error) {
	rt, err := m.l.get(ctx)
	if err != nil {
		return "", err
	}
	img, err := rt.LookupImage(ctx, name)
	if errors.Is(err, runtime.ErrImageNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return img.Digest, nil
}

func (m workerImages) ImportArchive(ctx context.Context, name string, r io.Reader) (*api.Image, error) {
	return m.images.ImportArchive(ctx, name, r)
}

// sourceMounter mounts a remote worker's slots over the daemon's API.
type sourceMounter struct {
	src *remote.Source
	log *slog.Logger
}

func (m sourceMounter) MountTrees(dir string, trees pipeline.Trees) (func() error, error) {
	s, err := mount.MountSourceTrees(dir, m.src, trees, mount.Options{Log: m.log})
	if err != nil {
		return nil, err
	}
	return s.Unmount, nil
}
