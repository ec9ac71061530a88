package view

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/strata-data/strata/meta"
)

// Writer writes to one branch through its open commit. FS.Writer returns
// the one Writer of a branch, shared by everything that writes to it
// through that FS. It is safe for concurrent use.
type Writer struct {
	v            *FS
	repo, branch string

	qmu     sync.Mutex
	queue   []*applyReq // Apply calls waiting for the running batch
	leading bool        // a caller is draining the queue

	mu     sync.Mutex
	commit string // the open commit last written to; "" when none
	holds  int    // drafts in progress; the idle finisher waits for them
	last   time.Time
	timer  *time.Timer
	closed bool
}

// Writer returns the Writer of repo@branch. A branch of a repo that a
// pipeline owns, and every branch of a read-only tree, is read-only: the
// error wraps fs.ErrPermission. After Close it fails with fs.ErrClosed.
func (v *FS) Writer(repo, branch string) (*Writer, error) {
	if v.ReadOnly() {
		return nil, fmt.Errorf("%s@%s: this tree is read-only: %w", repo, branch, fs.ErrPermission)
	}
	r, err := v.db.Repo(repo)
	if err != nil {
		return nil, err
	}
	if r.Pipeline != "" {
		return nil, fmt.Errorf("%s@%s is the output of pipeline %s and read-only: %w", repo, branch, r.Pipeline, fs.ErrPermission)
	}
	if _, err := v.db.Branch(repo, branch); err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil, fmt.Errorf("write %s@%s: %w", repo, branch, fs.ErrClosed)
	}
	k := repo + "@" + branch
	w := v.writers[k]
	if w == nil {
		w = &Writer{v: v, repo: repo, branch: branch}
		v.writers[k] = w
	}
	return w, nil
}

// Repo and Branch name what w writes to.
func (w *Writer) Repo() string   { return w.repo }
func (w *Writer) Branch() string { return w.branch }

// Apply applies changes, in order and atomically, to the branch's open
// commit, starting one if the branch has none. The chunks that the
// changes' file entries refer to must be stored (a closed Draft's are);
// Apply makes them durable before the commit refers to them. If the open
// commit is finished by someone else meanwhile, Apply starts a new one.
//
// The changes are applied without a sync of the metadata: a crash may
// lose them (whole, never in part) until Sync, or the commit's finish
// (always synced), makes them durable; the database's log is written in
// order, so either covers every earlier Apply.
//
// Concurrent calls are grouped: while one batch is being applied, the
// changes of the calls that arrive wait and then go in together, as one
// metadata commit instead of one each. Only additions are
// grouped (files, new directories); deletes and moves apply alone, in
// order. Each call still returns only once its changes are applied.
func (w *Writer) Apply(ctx context.Context, cs []meta.Change) (*meta.Commit, error) {
	if err := w.syncChunks(ctx, cs); err != nil {
		return nil, err
	}
	r := &applyReq{cs: cs, done: make(chan struct{})}
	w.qmu.Lock()
	w.queue = append(w.queue, r)
	lead := !w.leading
	w.leading = true
	w.qmu.Unlock()
	if lead {
		w.drain()
	}
	<-r.done
	return r.c, r.err
}

// applyReq is one call of Apply waiting to be applied.
type applyReq struct {
	cs   []meta.Change
	done chan struct{}
	c    *meta.Commit
	err  error
}

// additive reports whether cs only adds: it can be grouped with others.
func (r *applyReq) additive() bool {
	for _, c := range r.cs {
		switch {
		case c.Op == meta.OpMkdir:
		case c.Op == meta.OpPut && c.Entry.Type != meta.TypeDir:
		case c.Op == meta.OpPut && c.Entry.Tree == meta.EmptyTree:
		default:
			return false
		}
	}
	return true
}

// drain applies queued requests until the queue is empty; one caller at a
// time runs it.
func (w *Writer) drain() {
	for {
		w.qmu.Lock()
		q := w.queue
		w.queue = nil
		if len(q) == 0 {
			w.leading = false
			w.qmu.Unlock()
			return
		}
		w.qmu.Unlock()
		for len(q) > 0 {
			n := 1
			if q[0].additive() {
				for n < len(q) && q[n].additive() {
					n++
				}
			}
			w.applyGroup(q[:n])
			q = q[n:]
		}
	}
}

// applyGroup applies a group as one commit; if that fails, each request
// alone, so one bad change fails only its own call.
func (w *Writer) applyGroup(g []*applyReq) {
	defer func() {
		for _, r := range g {
			close(r.done)
		}
	}()
	if len(g) == 1 {
		g[0].c, g[0].err = w.applyNow(g[0].cs)
		return
	}
	var all []meta.Change
	for _, r := range g {
		all = append(all, r.cs...)
	}
	c, err := w.applyNow(all)
	for _, r := range g {
		if err != nil {
			r.c, r.err = w.applyNow(r.cs)
		} else {
			r.c = c
		}
	}
}

// applyNow applies cs to the open commit.
func (w *Writer) applyNow(cs []meta.Change) (*meta.Commit, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, fmt.Errorf("write %s@%s: %w", w.repo, w.branch, fs.ErrClosed)
	}
	// Apply first and start a commit only if the branch has no open one:
	// most applies go into the commit the last one went into, and looking
	// it up first would cost two more reads of keys that every apply
	// rewrites.
	var err error
	opened := false
	for range 3 {
		// By branch, not by commit ID: resolving an ID scans a key prefix,
		// and every apply leaves another version of the commit's key to
		// skip until the next compaction.
		var c *meta.Commit
		c, err = w.v.db.ApplyNoSync(w.repo, w.branch, cs)
		switch {
		case err == nil:
			w.commit = c.ID
			w.last = time.Now()
			w.armLocked(w.v.o.Idle)
			return c, nil
		case errors.Is(err, meta.ErrConflict): // finished under us, or never opened
		case errors.Is(err, fs.ErrNotExist) && !opened: // maybe a branch with no commits yet
		default:
			return nil, err
		}
		if _, oerr := w.openLocked(); errors.Is(oerr, meta.ErrConflict) {
			continue // another writer started one first
		} else if oerr != nil {
			return nil, oerr
		}
		opened = true
	}
	return nil, err
}

// Sync makes every change applied so far durable (fsync of a file).
// Their chunks already are: Apply syncs them first.
func (w *Writer) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return w.v.db.Sync()
}

// syncChunks makes the new chunks of cs durable. Chunks below the store's
// small limit live in the metadata database, whose next synced batch (the
// commit itself) makes them durable (see meta.ChunkBackend), so only
// files with a large chunk pay for a sync of the chunk directory.
func (w *Writer) syncChunks(ctx context.Context, cs []meta.Change) error {
	limit := w.v.st.Chunks.Config().SmallLimit
	for _, c := range cs {
		if c.Op != meta.OpPut || c.Entry.Type == meta.TypeDir {
			continue
		}
		for _, r := range c.Entry.Chunks {
			if int(r.Size) >= limit {
				return w.v.st.Chunks.Sync(ctx)
			}
		}
	}
	return nil
}

// openLocked returns the branch's open commit, starting one if needed.
func (w *Writer) openLocked() (string, error) {
	br, err := w.v.db.Branch(w.repo, w.branch)
	if err != nil {
		return "", err
	}
	if br.Head != "" {
		c, err := w.v.db.Commit(w.repo, br.Head)
		if err != nil {
			return "", err
		}
		if c.State == meta.StateOpen {
			return c.ID, nil
		}
	}
	c, err := w.v.db.StartCommit(w.repo, w.branch, meta.CommitOptions{Message: w.v.o.Message, Origin: w.v.o.Origin})
	if err != nil {
		return "", err
	}
	w.v.o.Log.Info("pfs: started commit", "repo", w.repo, "branch", w.branch, "commit", c.ID)
	return c.ID, nil
}

// Hold keeps the idle finisher from finishing the open commit until the
// returned function is called (once): a file is being written and its
// changes are not applied yet. Calling the function counts as activity.
func (w *Writer) Hold() (release func()) {
	w.mu.Lock()
	w.holds++
	w.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.holds--
			w.last = time.Now()
			w.armLocked(w.v.o.Idle)
		})
	}
}

// armLocked schedules the idle check in d.
func (w *Writer) armLocked(d time.Duration) {
	if d < 0 || w.commit == "" || w.closed {
		return
	}
	if w.timer == nil {
		w.timer = time.AfterFunc(d, w.idle)
		return
	}
	w.timer.Reset(d)
}

// idle finishes the open commit once no file is being written and no
// write came for the idle period.
func (w *Writer) idle() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.commit == "" || w.holds > 0 {
		return // Apply or the last release re-arms
	}
	if wait := w.v.o.Idle - time.Since(w.last); wait > 0 {
		w.timer.Reset(wait)
		return
	}
	if err := w.finishLocked("idle"); err != nil {
		w.v.o.Log.Error("pfs: finish idle commit", "repo", w.repo, "branch", w.branch, "err", err)
	}
}

// finishLocked finishes the commit w wrote to, if it is still open.
func (w *Writer) finishLocked(why string) error {
	id := w.commit
	if id == "" {
		return nil
	}
	w.commit = ""
	_, err := w.v.db.FinishCommit(w.repo, id, "")
	if errors.Is(err, meta.ErrConflict) || errors.Is(err, fs.ErrNotExist) {
		return nil // finished or deleted by someone else
	}
	if err != nil {
		return err
	}
	w.v.o.Log.Info("pfs: finished commit", "repo", w.repo, "branch", w.branch, "commit", id, "why", why)
	return nil
}

// Pending returns the open commit w wrote to and has not finished ("" if
// none).
func (w *Writer) Pending() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.commit
}

// Close finishes the open commit w wrote to, if it is still open, and
// stops w: later writes fail with fs.ErrClosed.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if w.timer != nil {
		w.timer.Stop()
	}
	return w.finishLocked("close")
}

// Close closes every Writer, finishing the commits they wrote to. The
// mount calls it on unmount, after it has applied every file still being
// written. Reading still works afterwards.
func (v *FS) Close() error {
	v.mu.Lock()
	v.closed = true
	ws := make([]*Writer, 0, len(v.writers))
	for _, w := range v.writers {
		ws = append(ws, w)
	}
	v.mu.Unlock()
	var errs []error
	for _, w := range ws {
		if err := w.Close(); err != nil {
			errs = append(errs, fmt.Errorf("finish %s@%s: %w", w.repo, w.branch, err))
		}
	}
	return errors.Join(errs...)
}
