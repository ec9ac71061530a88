// Package worker is a remote worker: a process on another machine that
// claims datums of any pipeline from a daemon's API and runs them under
// its own node's containers, with the same container view as the daemon's
// local workers.
//
// A worker has Slots slots; each runs one datum at a time. A slot claims
// a task (one datum under a lease), shows the datum's view at
// DIR/pfs/SLOT (a trees mount read through the API), runs the command in
// a long-lived container of the task's pipeline version (started on first
// use, kept for later datums of that version), heartbeats while it runs,
// streams the command's output to the datum's log, and at the end uploads
// /pfs/out as a tar and reports. When the daemon says the task is no
// longer the worker's (its lease ran out, its job ended), or the lease
// runs out by the worker's own clock before a heartbeat gets through, the
// slot kills the command and drops the datum without a report. Only the
// user's command failing every try fails the datum; when the worker
// cannot run it (the image will not import, the container will not start
// or dies, the upload fails twice) it gives the datum back for another
// worker and waits a while before it claims again. Images come from the
// daemon (exported as OCI tarballs) the first time a pipeline needs one
// whose digest the worker's containerd does not have.
package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/pipeline"
)

// Daemon is what a worker asks of the daemon (an *api.Client).
type Daemon interface {
	api.Workers
	ListImages(ctx context.Context) ([]*api.Image, error)
}

var _ Daemon = (*api.Client)(nil)

// Images is the worker's own image store.
type Images interface {
	// Normalize returns the full name under which name is stored
	// ("busybox" is "docker.io/library/busybox:latest").
	Normalize(name string) (string, error)
	// Digest returns the digest of the image called name, "" when there
	// is none.
	Digest(ctx context.Context, name string) (string, error)
	// ImportArchive imports an OCI image-layout or docker-save tarball as
	// name.
	ImportArchive(ctx context.Context, name string, r io.Reader) (*api.Image, error)
}

// Mounter shows, at dir, one directory per name of src (see
// pipeline.Mounter.MountTrees), read through the daemon.
type Mounter interface {
	MountTrees(dir string, src pipeline.Trees) (unmount func() error, err error)
}

// Defaults of Options.
const (
	DefaultWait  = 30 * time.Second
	DefaultGrace = 30 * time.Second
)

// Options configure Run.
type Options struct {
	Daemon Daemon
	// Name names the worker in datum records (its slots are NAME-0,
	// NAME-1, ...); it must be unique among the daemon's workers.
	Name  string
	Slots int // datums run at once (default 1)
	// Dir holds the trees mount (DIR/pfs) and the slots' output and agent
	// directories (DIR/work).
	Dir    string
	Exec   pipeline.Executor
	Images Images
	Mount  Mounter
	// Wait is how long one claim waits for a datum (DefaultWait when 0).
	Wait time.Duration
	// Grace is how long running datums may go on once ctx ends before
	// they are given back to the daemon (DefaultGrace when 0).
	Grace time.Duration
	Log   *slog.Logger
}

// Run checks that the daemon takes this worker, then claims and runs
// datums until ctx ends. It then stops claiming, lets running datums
// finish for up to Grace (giving back those that do not), stops its
// containers and unmounts.
func Run(ctx context.Context, o Options) error {
	if o.Slots <= 0 {
		o.Slots = 1
	}
	if o.Wait <= 0 {
		o.Wait = DefaultWait
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Name == "" {
		return fmt.Errorf("worker: a name is required: %w", meta.ErrInvalid)
	}
	// Fail now, with the daemon's reason: unreachable, wrong token, or
	// pipelines off.
	if _, err := o.Daemon.ListWorkers(ctx); err != nil {
		return fmt.Errorf("worker %s: %w", o.Name, err)
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	slots := pipeline.NewSlotTable()
	w := &worker{o: o, dir: dir, slots: slots, images: map[string]string{}}
	for i := range o.Slots {
		name := fmt.Sprintf("%s-%d", o.Name, i)
		slots.Set(name, meta.EmptyTree)
		base := filepath.Join(dir, "work", name)
		os.RemoveAll(base)
		s := &slot{w: w, name: name, out: filepath.Join(base, "out"), base: base}
		if err := os.MkdirAll(s.out, 0o777); err != nil {
			return err
		}
		os.Chmod(s.out, 0o777) // the container's user may not be root
		w.all = append(w.all, s)
	}
	unmount, err := o.Mount.MountTrees(filepath.Join(dir, "pfs"), slots)
	if err != nil {
		return fmt.Errorf("worker %s: mount the datums' views: %w", o.Name, err)
	}
	defer func() {
		if err := unmount(); err != nil {
			o.Log.Error("unmount the datums' views", "err", err)
		}
	}()

	// Running datums outlive ctx by the grace period.
	runCtx, stopRuns := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRuns()
	go func() {
		select {
		case <-ctx.Done():
		case <-runCtx.Done():
			return
		}
		t := time.NewTimer(o.Grace)
		defer t.Stop()
		select {
		case <-t.C:
			stopRuns()
		case <-runCtx.Done():
		}
	}()

	o.Log.Info("worker ready", "name", o.Name, "slots", o.Slots, "dir", dir)
	var wg sync.WaitGroup
	for _, s := range w.all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.loop(ctx, runCtx)
		}()
	}
	wg.Wait()
	stopRuns()
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range w.all {
		s.closeContainers(cctx)
	}
	o.Log.Info("worker stopped", "name", o.Name)
	return nil
}

type worker struct {
	o     Options
	dir   string
	slots *pipeline.SlotTable
	all   []*slot

	imagesMu sync.Mutex
	images   map[string]string // full image name -> digest known to match the daemon's
}

// errNoImage is wrapped by ensureImage's error when the daemon does not
// have the image either: no worker could run the datum.
var errNoImage = fmt.Errorf("no such image: %w", meta.ErrNotExist)

// ensureImage makes the image the daemon calls name present here, with
// the daemon's digest, importing it from the daemon when it is missing or
// differs.
func (w *worker) ensureImage(ctx context.Context, name string) error {
	w.imagesMu.Lock()
	defer w.imagesMu.Unlock()
	full, err := w.o.Images.Normalize(name)
	if err != nil {
		return err
	}
	list, err := w.o.Daemon.ListImages(ctx)
	if err != nil {
		return fmt.Errorf("image %s: list the daemon's images: %w", name, err)
	}
	want := ""
	for _, img := range list {
		if img.Name == full {
			want = img.Digest
		}
	}
	if want == "" {
		return fmt.Errorf("image %s is not on the daemon: import it there with 'strata image import': %w", full, errNoImage)
	}
	if w.images[full] == want {
		return nil
	}
	have, err := w.o.Images.Digest(ctx, full)
	if err != nil {
		return err
	}
	if have != want {
		start := time.Now()
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(w.o.Daemon.ExportImage(ctx, full, pw)) }()
		img, err := w.o.Images.ImportArchive(ctx, full, pr)
		pr.CloseWithError(errors.New("import ended"))
		if err != nil {
			return fmt.Errorf("image %s: copy from the daemon: %w", full, err)
		}
		w.o.Log.Info("image copied from the daemon", "image", full, "digest", img.Digest, "bytes", img.Size, "took", time.Since(start).Round(time.Millisecond))
		if img.Digest != want {
			return fmt.Errorf("image %s: the daemon's is %s, the copy is %s", full, want, img.Digest)
		}
	}
	w.images[full] = want
	return nil
}
