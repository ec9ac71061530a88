package worker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/pipeline"
	"github.com/strata-data/strata/pipeline/agent"
	"github.com/strata-data/strata/store"
)

// maxContainers is how many pipeline versions' containers a slot keeps.
const maxContainers = 4

// slot runs one datum at a time.
type slot struct {
	w    *worker
	name string
	base string // DIR/work/NAME
	out  string // the container's /pfs/out

	ctrs []*container // most recently used last
}

type container struct {
	key string // pipeline@version
	w   pipeline.Worker
}

// claimSlack is how much longer than its wait a claim may take before the
// worker gives up on it (a connection dropped without a word).
const claimSlack = 30 * time.Second

// Backoff after a datum this worker could not run (see run): the datums
// it gives back go to other workers meanwhile.
const (
	faultBackoff    = 2 * time.Second
	maxFaultBackoff = time.Minute
)

// loop claims and runs tasks until claims ends; runs is the context of
// the datums themselves.
func (s *slot) loop(claims, runs context.Context) {
	o := s.w.o
	backoff := time.Second
	pause := faultBackoff
	for claims.Err() == nil {
		cctx, cancel := context.WithTimeout(claims, o.Wait+claimSlack)
		t, err := o.Daemon.ClaimTask(cctx, api.ClaimRequest{Worker: s.name, Wait: o.Wait})
		claimed := time.Now()
		cancel()
		if err != nil {
			if claims.Err() != nil {
				return
			}
			o.Log.Warn("claim failed; trying again", "slot", s.name, "in", backoff, "err", err)
			select {
			case <-time.After(backoff):
			case <-claims.Done():
				return
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		if t == nil {
			continue
		}
		if !s.run(runs, t, claimed) {
			pause = faultBackoff
			continue
		}
		o.Log.Warn("this worker could not run a datum; claiming again later", "slot", s.name, "in", pause)
		select {
		case <-time.After(pause):
		case <-claims.Done():
			return
		}
		pause = min(2*pause, maxFaultBackoff)
	}
}

// reportTimeout bounds the final report, a small request.
const reportTimeout = time.Minute

// run runs one task, claimed at claimed (by this host's clock), to its
// end and reports it, unless the task was taken away meanwhile. It says
// whether the worker gave the datum back because it could not run it
// (a Fault: its image, container or upload failed). Only the user's
// command failing every try is a failure of the datum; a problem of the
// worker's gives the datum back for another worker to run.
func (s *slot) run(ctx context.Context, t *api.Task, claimed time.Time) (fault bool) {
	o := s.w.o
	log := o.Log.With("slot", s.name, "pipeline", t.Pipeline, "job", t.Job, "datum", t.Datum, "task", t.ID)
	log.Info("datum claimed")
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go s.heartbeat(ctx, cancel, t, claimed)

	logw := newLogUploader(o.Daemon, s.name, t.ID)
	defer logw.Close()
	s.w.slots.Set(s.name, t.View)
	defer s.w.slots.Set(s.name, meta.EmptyTree)

	res := s.exec(ctx, t, logw)
	if res.State == api.TaskSuccess && ctx.Err() == nil {
		// The upload has no deadline of its own: a large output takes
		// as long as it takes, the heartbeats keep the lease meanwhile,
		// and ctx ends it if the daemon takes the task back.
		res = s.output(ctx, t, logw, res)
	}
	logw.Close()
	if cause := context.Cause(ctx); errors.Is(cause, errTaken) {
		log.Warn("datum taken away; dropped", "err", cause)
		return false
	}
	if res.State == taskStale {
		log.Warn("datum taken away during the upload; dropped", "err", res.Error)
		return false
	}
	if ctx.Err() != nil {
		// The worker stops and the grace period is over: give the datum
		// back now rather than after the lease.
		res = api.TaskResult{State: api.TaskReleased, Error: "the worker stopped"}
	}
	res.Worker = s.name
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
	defer rcancel()
	if err := o.Daemon.FinishTask(rctx, t.ID, res); err != nil {
		log.Warn("report failed", "state", res.State, "err", err)
		return res.Fault
	}
	log.Info("datum done", "state", res.State, "error", res.Error)
	return res.Fault
}

// taskStale is a result of output that is never reported: the daemon
// took the task back during the upload.
const taskStale = "stale"

// uploadTries is how many times output sends /pfs/out.
const uploadTries = 2

// output uploads /pfs/out for res, a success, and returns the result to
// report: res, a failure when the output itself is refused (as a local
// worker's would be), or a release with Fault when the upload failed
// twice.
func (s *slot) output(ctx context.Context, t *api.Task, logw io.Writer, res api.TaskResult) api.TaskResult {
	var err error
	for try := 1; try <= uploadTries; try++ {
		err = s.upload(ctx, t)
		switch {
		case err == nil:
			return res
		case errors.Is(err, store.ErrStale):
			return api.TaskResult{State: taskStale, Error: err.Error()}
		case ctx.Err() != nil:
			return api.TaskResult{State: api.TaskReleased, Error: err.Error()}
		case errors.Is(err, meta.ErrInvalid):
			fmt.Fprintf(logw, "--- datum %s: output refused: %v\n", t.Datum, err)
			return api.TaskResult{State: api.TaskFailure, Error: "upload /pfs/out: " + err.Error(), Tries: res.Tries}
		}
		fmt.Fprintf(logw, "--- datum %s: upload /pfs/out from %s failed (%d/%d): %v\n", t.Datum, s.name, try, uploadTries, err)
	}
	return api.TaskResult{State: api.TaskReleased, Fault: true, Error: fmt.Sprintf("upload /pfs/out from %s: %v", s.name, err), Tries: res.Tries}
}

var errTaken = errors.New("the daemon took the task back")

// heartbeat renews t's lease, claimed at claimed, until ctx ends; it
// cancels ctx with errTaken when the daemon says the task is no longer
// ours, or when the lease runs out before a heartbeat renews it.
//
// The lease is timed by this host's clock alone, never by the daemon's
// LeaseExpires (the clocks may differ): it ends one lease after the claim
// was answered, or after the last renewed heartbeat was sent (the daemon
// renewed it later than that, so our end comes no later than its). Each
// heartbeat has its own timeout, so a connection dropped without a word
// cannot stall the renewals past the lease.
func (s *slot) heartbeat(ctx context.Context, cancel context.CancelCauseFunc, t *api.Task, claimed time.Time) {
	lease := t.Lease
	if lease <= 0 {
		lease = pipeline.DefaultLease
	}
	every := max(lease/3, 50*time.Millisecond)
	expires := claimed.Add(lease)
	tick := time.NewTicker(every)
	defer tick.Stop()
	end := time.NewTimer(time.Until(expires))
	defer end.Stop()
	var last error
	for {
		select {
		case <-ctx.Done():
			return
		case <-end.C:
			cancel(fmt.Errorf("%w: the lease (%s) ran out without a renewal: %v", errTaken, lease, last))
			return
		case <-tick.C:
		}
		sent := time.Now()
		hctx, hcancel := context.WithTimeout(ctx, every)
		_, err := s.w.o.Daemon.Heartbeat(hctx, s.name, t.ID)
		hcancel()
		switch {
		case err == nil:
			expires = sent.Add(lease)
			end.Reset(time.Until(expires))
		case errors.Is(err, store.ErrStale):
			cancel(fmt.Errorf("%w: %v", errTaken, err))
			return
		case ctx.Err() == nil:
			last = err
			s.w.o.Log.Warn("heartbeat failed", "slot", s.name, "task", t.ID, "lease_left", time.Until(expires).Round(time.Millisecond), "err", err)
		}
	}
}

// exec runs t's command up to t.Tries times in a container of its
// pipeline version.
func (s *slot) exec(ctx context.Context, t *api.Task, logw io.Writer) api.TaskResult {
	c, err := s.container(ctx, t)
	switch {
	case err != nil && ctx.Err() != nil:
		return api.TaskResult{State: api.TaskReleased}
	case errors.Is(err, errNoImage):
		// The pipeline's image is not on the daemon: every worker
		// would fail alike, and the message says how to fix it.
		fmt.Fprintf(logw, "--- datum %s on %s: %v\n", t.Datum, s.name, err)
		return api.TaskResult{State: api.TaskFailure, Error: err.Error(), Tries: 1}
	case err != nil:
		msg := fmt.Sprintf("worker %s: %v", s.name, err)
		fmt.Fprintf(logw, "--- datum %s: %s; another worker runs it\n", t.Datum, msg)
		return api.TaskResult{State: api.TaskReleased, Fault: true, Error: msg}
	}
	req := agent.Request{Args: t.Args, Env: t.CmdEnv, Dir: t.Dir, User: t.User, Stdin: t.Stdin, Timeout: t.Timeout}
	tries := max(t.Tries, 1)
	var last string
	for try := 1; try <= tries; try++ {
		if ctx.Err() != nil {
			return api.TaskResult{State: api.TaskReleased, Tries: try}
		}
		if err := pipeline.ClearDir(s.out); err != nil {
			msg := fmt.Sprintf("worker %s: clear /pfs/out: %v", s.name, err)
			fmt.Fprintf(logw, "--- datum %s: %s; another worker runs it\n", t.Datum, msg)
			return api.TaskResult{State: api.TaskReleased, Fault: true, Error: msg, Tries: try}
		}
		fmt.Fprintf(logw, "--- datum %s try %d/%d on %s at %s\n", t.Datum, try, tries, s.name, time.Now().UTC().Format(time.RFC3339))
		res, err := c.w.Exec(ctx, req, logw, logw)
		switch {
		case err != nil && ctx.Err() != nil:
			return api.TaskResult{State: api.TaskReleased, Tries: try}
		case err != nil && !c.w.Alive():
			s.drop(c)
			msg := fmt.Sprintf("worker container on %s died: %v", s.name, err)
			fmt.Fprintf(logw, "--- datum %s: %s; another worker runs it\n", t.Datum, msg)
			return api.TaskResult{State: api.TaskReleased, Fault: true, Error: msg, Tries: try}
		case err != nil:
			last = err.Error()
		case !res.Success():
			last = res.String()
		default:
			return api.TaskResult{State: api.TaskSuccess, Tries: try}
		}
		fmt.Fprintf(logw, "--- datum %s try %d failed: %s\n", t.Datum, try, last)
	}
	return api.TaskResult{State: api.TaskFailure, Error: last, Tries: tries}
}

// container returns the slot's container for t's pipeline version,
// starting it (and fetching its image) when there is none.
func (s *slot) container(ctx context.Context, t *api.Task) (*container, error) {
	key := fmt.Sprintf("%s@%d", t.Pipeline, t.Version)
	for i, c := range s.ctrs {
		if c.key != key {
			continue
		}
		if c.w.Alive() {
			s.ctrs = append(append(s.ctrs[:i:i], s.ctrs[i+1:]...), c)
			return c, nil
		}
		s.drop(c)
		break
	}
	if err := s.w.ensureImage(ctx, t.Image); err != nil {
		return nil, err
	}
	if len(s.ctrs) >= maxContainers {
		s.drop(s.ctrs[0])
	}
	suffix := randomHex(3)
	// The slot's name tells its containers from the daemon's when both
	// run on one host.
	id := fmt.Sprintf("%s-%s-%s", t.Pipeline, s.name, suffix)
	run := filepath.Join(s.base, "run-"+suffix)
	if err := os.MkdirAll(run, 0o777); err != nil {
		return nil, err
	}
	os.Chmod(run, 0o777)
	w, err := s.w.o.Exec.StartWorker(ctx, pipeline.WorkerSpec{ID: id, Image: t.Image,
		PFS: filepath.Join(s.w.dir, "pfs", s.name), Out: s.out, Run: run, Env: t.Env,
		Network: t.Network, CPU: t.CPU, Memory: t.Memory})
	if err != nil {
		os.RemoveAll(run)
		return nil, fmt.Errorf("start a container for %s: %w", key, err)
	}
	c := &container{key: key, w: w}
	s.ctrs = append(s.ctrs, c)
	return c, nil
}

func (s *slot) drop(c *container) {
	for i, x := range s.ctrs {
		if x == c {
			s.ctrs = append(s.ctrs[:i], s.ctrs[i+1:]...)
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.w.Close(ctx); err != nil {
		s.w.o.Log.Warn("stop container", "slot", s.name, "pipeline", c.key, "err", err)
	}
}

func (s *slot) closeContainers(ctx context.Context) {
	for _, c := range s.ctrs {
		if err := c.w.Close(ctx); err != nil {
			s.w.o.Log.Warn("stop container", "slot", s.name, "pipeline", c.key, "err", err)
		}
	}
	s.ctrs = nil
}

// upload sends the slot's /pfs/out as the task's output. The error wraps
// meta.ErrInvalid when the output itself is refused (it holds something
// other than regular files and directories).
func (s *slot) upload(ctx context.Context, t *api.Task) error {
	pr, pw := io.Pipe()
	tarErr := make(chan error, 1)
	go func() {
		err := writeTar(pw, s.out)
		tarErr <- err
		pw.CloseWithError(err)
	}()
	_, err := s.w.o.Daemon.PutTaskOutput(ctx, s.name, t.ID, pr)
	pr.CloseWithError(errors.New("upload ended"))
	if err == nil {
		pipeline.ClearDir(s.out) // stored now; do not keep a second copy on disk
		return nil
	}
	if terr := <-tarErr; errors.Is(terr, meta.ErrInvalid) {
		return terr // the reason, not the broken stream it caused
	}
	return err
}

// writeTar writes the regular files and directories below dir; anything
// else is an error that names it, as a local worker's output would be.
func writeTar(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case info.IsDir():
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755})
		case info.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: int64(info.Mode().Perm()), Size: info.Size()}); err != nil {
				return err
			}
			_, err = io.CopyN(tw, f, info.Size())
			return err
		default:
			return fmt.Errorf("/%s is a %s; outputs hold regular files and directories only: %w", rel, info.Mode().Type(), meta.ErrInvalid)
		}
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// logUploader buffers a datum's output and appends it to the daemon's log
// of the datum about every half second and when closed.
type logUploader struct {
	d      Daemon
	worker string
	task   string

	flushMu sync.Mutex // keeps the pieces in order
	mu      sync.Mutex
	buf     bytes.Buffer
	closed  bool
	stop    chan struct{}
	done    chan struct{}
}

// maxLogBuffer makes a writer wait for an upload rather than buffer more.
const maxLogBuffer = 1 << 20

func newLogUploader(d Daemon, worker, task string) *logUploader {
	l := &logUploader{d: d, worker: worker, task: task, stop: make(chan struct{}), done: make(chan struct{})}
	go l.loop()
	return l
}

func (l *logUploader) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(p)
	full := l.buf.Len() > maxLogBuffer
	l.mu.Unlock()
	if full {
		l.flush()
	}
	return len(p), nil
}

func (l *logUploader) loop() {
	defer close(l.done)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			l.flush()
			return
		case <-tick.C:
			l.flush()
		}
	}
}

func (l *logUploader) flush() {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	data := bytes.Clone(l.buf.Bytes())
	l.buf.Reset()
	l.mu.Unlock()
	if len(data) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A failed piece is lost: the datum's result matters more than its
	// log, and a task taken away refuses it anyway.
	l.d.AppendTaskLog(ctx, l.worker, l.task, bytes.NewReader(data))
}

// Close uploads what is left; it may be called more than once.
func (l *logUploader) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	return nil
}
