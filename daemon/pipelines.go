package daemon

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/fs/mount"
	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/pipeline"
	"github.com/strata-data/strata/pipeline/agent"
	"github.com/strata-data/strata/pipeline/runtime"
	"github.com/strata-data/strata/store"
)

// startPipelines starts the pipeline controller. The container runtime
// (a private containerd unless o.Containerd names one) starts on first
// use, so a daemon that runs no pipelines never starts it; if it cannot
// start, the jobs that need it fail saying why.
func startPipelines(ctx context.Context, dir string, st *store.Store, o Options, log *slog.Logger) (*pipeline.Controller, func(), error) {
	lr := &lazyRuntime{cfg: runtime.Config{Address: o.Containerd, Dir: filepath.Join(dir, "containerd"), Log: log}}
	po := pipeline.Options{Store: st, Dir: filepath.Join(dir, "pipelines"), Log: log, Lease: o.WorkerLease,
		Mount: mounter{st: st, log: log}, Exec: executor{lr}, Images: images{lr}}
	c, err := pipeline.New(po)
	if err == nil {
		err = c.Start()
	}
	if err != nil {
		return nil, nil, err
	}
	return c, func() {
		if err := c.Close(); err != nil {
			log.Error("stop pipelines", "err", err)
		}
		if err := lr.close(); err != nil {
			log.Error("stop containerd", "err", err)
		}
	}, nil
}

// lazyRuntime starts the container runtime when first needed.
type lazyRuntime struct {
	cfg runtime.Config
	mu  sync.Mutex
	rt  *runtime.Runtime
}

func (l *lazyRuntime) get(ctx context.Context) (*runtime.Runtime, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rt != nil {
		return l.rt, nil
	}
	agentPath, err := staticSelf()
	if err != nil {
		return nil, err
	}
	cfg := l.cfg
	cfg.AgentPath = agentPath
	// The runtime outlives the request that first needs it.
	rt, err := runtime.Start(context.WithoutCancel(ctx), cfg)
	if err != nil {
		return nil, err
	}
	l.rt = rt
	return rt, nil
}

func (l *lazyRuntime) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rt == nil {
		return nil
	}
	return l.rt.Close()
}

// staticSelf returns our own executable, which workers run as their
// agent; it must be statically linked to run in any image.
func staticSelf() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	f, err := elf.Open(exe)
	if err != nil {
		return "", fmt.Errorf("inspect %s: %w", exe, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("%s is dynamically linked and cannot run inside containers; build it with CGO_ENABLED=0 ('make build' does)", exe)
		}
	}
	return exe, nil
}

type executor struct{ l *lazyRuntime }

func (e executor) StartWorker(ctx context.Context, w pipeline.WorkerSpec) (pipeline.Worker, error) {
	rt, err := e.l.get(ctx)
	if err != nil {
		return nil, err
	}
	spec := runtime.WorkerSpec{ID: w.ID, Image: w.Image, PFS: w.PFS, Out: w.Out, Run: w.Run,
		Env: w.Env, Network: w.Network, CPU: w.CPU, Memory: w.Memory}
	wk, err := rt.StartWorker(ctx, spec)
	if errors.Is(err, runtime.ErrImageNotFound) {
		// Not imported: try its registry, where one is reachable.
		if _, perr := rt.Pull(ctx, w.Image); perr != nil {
			return nil, fmt.Errorf("%w; pulling it failed too (%v): import it with 'strata image import'", err, perr)
		}
		wk, err = rt.StartWorker(ctx, spec)
	}
	if err != nil {
		return nil, err
	}
	return worker{wk}, nil
}

type worker struct{ w *runtime.Worker }

func (w worker) Exec(ctx context.Context, req agent.Request, stdout, stderr io.Writer) (agent.Result, error) {
	return w.w.Exec(ctx, req, stdout, stderr)
}
func (w worker) Close(ctx context.Context) error { return w.w.Close(ctx) }
func (w worker) Alive() bool                     { return w.w.Alive() }

type images struct{ l *lazyRuntime }

func toAPIImage(i *runtime.Image) *api.Image {
	return &api.Image{Name: i.Name, Digest: i.Digest, Size: i.Size, Created: i.Created}
}

func (m images) ImportArchive(ctx context.Context, name string, r io.Reader) (*api.Image, error) {
	rt, err := m.l.get(ctx)
	if err != nil {
		return nil, err
	}
	i, err := rt.ImportTar(ctx, name, r)
	if err != nil {
		return nil, err
	}
	return toAPIImage(i), nil
}

func (m images) ImportRootfs(ctx context.Context, name, dir string) (*api.Image, error) {
	rt, err := m.l.get(ctx)
	if err != nil {
		return nil, err
	}
	i, err := rt.ImportDir(ctx, name, dir)
	if err != nil {
		return nil, err
	}
	return toAPIImage(i), nil
}

func (m images) ExportImage(ctx context.Context, name string, w io.Writer) error {
	rt, err := m.l.get(ctx)
	if err != nil {
		return err
	}
	err = rt.ExportImage(ctx, name, w)
	if errors.Is(err, runtime.ErrImageNotFound) {
		return fmt.Errorf("%w: %w", err, meta.ErrNotExist)
	}
	return err
}

func (m images) ListImages(ctx context.Context) ([]*api.Image, error) {
	rt, err := m.l.get(ctx)
	if err != nil {
		return nil, err
	}
	is, err := rt.Images(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*api.Image, len(is))
	for i := range is {
		out[i] = toAPIImage(&is[i])
	}
	return out, nil
}

// mounter serves the pipeline controller's tree mounts with fs/mount.
type mounter struct {
	st  *store.Store
	log *slog.Logger
}

func (m mounter) MountTrees(dir string, src pipeline.Trees) (func() error, error) {
	s, err := mount.MountTrees(dir, m.st, src, mount.Options{Log: m.log})
	if err != nil {
		return nil, err
	}
	return s.Unmount, nil
}

// MountTree mounts one datum's view at dir with a writable scratch
// directory over its out, as a worker sees it.
func (m mounter) MountTree(dir string, root meta.Hash) (func() error, error) {
	s, err := mount.MountTree(dir, m.st, root, mount.Options{Log: m.log})
	if err != nil {
		return nil, err
	}
	scratch, err := os.MkdirTemp("", "strata-datum-out-")
	if err == nil {
		os.Chmod(scratch, 0o777)
		err = unix.Mount(scratch, filepath.Join(dir, mount.OutDir), "", unix.MS_BIND, "")
	}
	if err != nil {
		s.Unmount()
		os.RemoveAll(scratch)
		return nil, fmt.Errorf("writable out for the datum: %w", err)
	}
	return func() error {
		err := unix.Unmount(filepath.Join(dir, mount.OutDir), unix.MNT_DETACH)
		return errors.Join(err, s.Unmount(), os.RemoveAll(scratch))
	}, nil
}
