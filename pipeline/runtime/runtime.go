// Package runtime executes pipeline datums in containers through
// containerd: it imports and builds images, starts long-lived worker
// containers whose init process is the strata agent (see package agent),
// and runs each datum as an exec through that agent, so that the
// per-datum cost is a fork/exec rather than a container start.
//
// It uses containerd's v2 Go client, which also drives Debian's 1.6
// daemon. Everything lives in the containerd namespace "strata". This is
// the only package that may import containerd.
package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
)

// Namespace is the containerd namespace that holds all of strata's
// images, containers and snapshots.
const Namespace = "strata"

// Config configures Start.
type Config struct {
	// Address is the socket of an external containerd; "" starts a
	// private one under Dir.
	Address string
	// Dir is the runtime's state directory (for example DATA/containerd):
	// the private containerd's root, state, config and log, and the FIFOs
	// of RunOnce.
	Dir string
	// AgentPath is the static strata binary that is bind-mounted read-only
	// at /.strata/strata in every worker and started as its init process.
	AgentPath string
	// Log receives the runtime's own messages; nil discards them.
	Log *slog.Logger
}

// Runtime is a connection to containerd plus the workers started through
// it.
type Runtime struct {
	client      *containerd.Client
	snapshotter string
	dir         string
	instance    string // short hash of dir, to tell runtimes apart on a host
	agentPath   string
	log         *slog.Logger
	daemon      *daemon // nil with an external containerd

	mu      sync.Mutex
	workers map[string]*Worker
	closed  bool
}

// Start connects to containerd, starting a private one when cfg.Address is
// empty, picks a snapshotter and removes what a previous crash left behind
// in the strata namespace.
func Start(ctx context.Context, cfg Config) (_ *Runtime, err error) {
	if cfg.Dir == "" {
		return nil, errors.New("runtime: Config.Dir is required")
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	sum := sha256.Sum256([]byte(dir))
	r := &Runtime{dir: dir, instance: hex.EncodeToString(sum[:4]), agentPath: cfg.AgentPath, log: log, workers: make(map[string]*Worker)}
	if cfg.AgentPath != "" {
		if r.agentPath, err = filepath.Abs(cfg.AgentPath); err != nil {
			return nil, fmt.Errorf("runtime: %w", err)
		}
	}

	address := cfg.Address
	if address == "" {
		r.daemon, err = startDaemon(ctx, dir, log)
		if err != nil {
			return nil, err
		}
		address = r.daemon.address
		defer func() {
			if err != nil {
				r.daemon.stop()
			}
		}()
	}
	r.client, err = containerd.New(address, containerd.WithDefaultNamespace(Namespace), containerd.WithTimeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("runtime: connecting to containerd at %s: %w", address, err)
	}
	defer func() {
		if err != nil {
			r.client.Close()
		}
	}()
	if err := waitServing(ctx, r.client, 20*time.Second, r.daemon); err != nil {
		return nil, fmt.Errorf("runtime: containerd at %s: %w", address, err)
	}
	if r.snapshotter, err = r.pickSnapshotter(ctx); err != nil {
		return nil, err
	}
	log.Info("containerd ready", "address", address, "snapshotter", r.snapshotter, "private", r.daemon != nil)
	if err := r.cleanLeftovers(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// waitServing polls containerd's health service until it answers. With a
// private daemon it gives up early when the process exits.
func waitServing(ctx context.Context, c *containerd.Client, timeout time.Duration, d *daemon) error {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		ok, err := c.IsServing(cctx)
		cancel()
		if ok {
			return nil
		}
		lastErr = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d != nil {
			if err := d.exitedEarly(); err != nil {
				return err
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d != nil {
		return fmt.Errorf("not serving after %v (last error: %v); see %s", timeout, lastErr, d.logPath)
	}
	return fmt.Errorf("not serving after %v: %v", timeout, lastErr)
}

// ctx adds the strata namespace, which some client helpers (spec
// generation) read from the context rather than from the client default.
func (r *Runtime) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, Namespace)
}

// Snapshotter is the name of the snapshotter in use ("overlayfs" or
// "native").
func (r *Runtime) Snapshotter() string { return r.snapshotter }

// pickSnapshotter prefers overlayfs and falls back to native. containerd's
// overlayfs plugin checks at load time that overlay mounts work on its root
// directory (tmpfs and ext4 both do here), so its plugin status is the
// test; native (full copies) works everywhere but costs a copy of the
// image per container.
func (r *Runtime) pickSnapshotter(ctx context.Context) (string, error) {
	ctx = r.ctx(ctx)
	resp, err := r.client.IntrospectionService().Plugins(ctx, "type==io.containerd.snapshotter.v1")
	if err != nil {
		return "", fmt.Errorf("runtime: listing snapshotters: %w", err)
	}
	usable := map[string]bool{}
	var broken []string
	for _, p := range resp.Plugins {
		if p.InitErr == nil {
			usable[p.ID] = true
		} else {
			broken = append(broken, p.ID+": "+p.InitErr.Message)
		}
	}
	for _, name := range []string{"overlayfs", "native"} {
		if usable[name] {
			return name, nil
		}
	}
	return "", fmt.Errorf("runtime: neither the overlayfs nor the native snapshotter works (%s)", strings.Join(broken, "; "))
}

// Leftover containers and snapshots are recognized by this label and by
// the snapshot key prefix.
const (
	labelWorker    = "strata.io/worker"
	snapshotPrefix = "strata-"
)

// cleanLeftovers deletes every task and container in the strata namespace
// and the active snapshots strata created, all of which belong to a
// previous run of this process that did not shut down cleanly.
func (r *Runtime) cleanLeftovers(ctx context.Context) error {
	ctx = r.ctx(ctx)
	containers, err := r.client.Containers(ctx)
	if err != nil {
		return fmt.Errorf("runtime: listing leftover containers: %w", err)
	}
	for _, c := range containers {
		r.log.Warn("removing leftover container", "id", c.ID())
		if err := deleteContainer(ctx, c); err != nil {
			return fmt.Errorf("runtime: removing leftover container %s: %w", c.ID(), err)
		}
	}
	sn := r.client.SnapshotService(r.snapshotter)
	var stale []string
	err = sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind == snapshots.KindActive && strings.HasPrefix(info.Name, snapshotPrefix) {
			stale = append(stale, info.Name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("runtime: listing leftover snapshots: %w", err)
	}
	for _, key := range stale {
		r.log.Warn("removing leftover snapshot", "key", key)
		if err := sn.Remove(ctx, key); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("runtime: removing leftover snapshot %s: %w", key, err)
		}
	}
	return nil
}

// deleteContainer kills and deletes c's task if it has one, then c and its
// snapshot.
func deleteContainer(ctx context.Context, c containerd.Container) error {
	task, err := c.Task(ctx, nil)
	switch {
	case err == nil:
		if err := killTask(ctx, task); err != nil {
			return err
		}
		if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("deleting task: %w", err)
		}
	case !errdefs.IsNotFound(err):
		return fmt.Errorf("loading task: %w", err)
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("deleting container: %w", err)
	}
	return nil
}

// killTask SIGKILLs every process of a task and waits until it is stopped.
func killTask(ctx context.Context, task containerd.Task) error {
	st, err := task.Status(ctx)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("task status: %w", err)
	}
	if st.Status == containerd.Stopped {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	exited, err := task.Wait(wctx)
	if err != nil {
		return fmt.Errorf("waiting for task: %w", err)
	}
	if err := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("killing task: %w", err)
	}
	select {
	case <-exited:
		return nil
	case <-wctx.Done():
		return fmt.Errorf("task did not exit within 10s of SIGKILL")
	}
}

// Close stops the workers started through r and, if it is private, the
// containerd daemon. Images stay.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	workers := make([]*Worker, 0, len(r.workers))
	for _, w := range r.workers {
		if w != nil { // nil: still starting
			workers = append(workers, w)
		}
	}
	r.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, w := range workers {
		if err := w.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, r.client.Close())
	if r.daemon != nil {
		errs = append(errs, r.daemon.stop())
	}
	return errors.Join(errs...)
}
