package mount

import (
	"context"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/fs/view"
	"github.com/strata-data/strata/meta"
)

// fileNode is a file of a view. In a writable view it may be dirty: its
// bytes are in a draft being written, or its content (entry) is not
// applied to the open commit yet.
type fileNode struct {
	fusefs.Inode
	top     *viewTop
	parent  *dirNode // guarded by top.br.mu
	name    string   // guarded by top.br.mu
	deleted atomic.Bool

	flushMu sync.Mutex // one flush at a time, so applies land in order

	mu        sync.Mutex
	entry     meta.Entry  // the content, as applied or about to be
	refs      []chunk.Ref // entry's chunk refs, loaded on first use
	loaded    bool        // refs are loaded
	gen       uint64      // bumped whenever entry changes
	hash      *meta.Hash  // entry's content hash, computed on first use
	mtime     time.Time
	draft     *view.Draft
	unapplied bool   // entry is newer than the open commit
	release   func() // the Writer hold while dirty
	writers   int    // open handles that may write
}

var (
	_ fusefs.NodeOpener    = (*fileNode)(nil)
	_ fusefs.NodeGetattrer = (*fileNode)(nil)
	_ fusefs.NodeSetattrer = (*fileNode)(nil)
	_ fusefs.FileReader    = (*fileHandle)(nil)
	_ fusefs.FileWriter    = (*fileHandle)(nil)
	_ fusefs.FileFlusher   = (*fileHandle)(nil)
	_ fusefs.FileFsyncer   = (*fileHandle)(nil)
	_ fusefs.FileReleaser  = (*fileHandle)(nil)
)

func (f *fileNode) path() string { return f.parent.pathOf(f.name) }

func (f *fileNode) describe() string {
	unlock := f.top.rlock()
	defer unlock()
	return f.top.name(f.path())
}

func (f *fileNode) dirty() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.draft != nil || f.unapplied
}

// sameContent reports whether e has f's content, so f can stand for it;
// a new mode is taken over.
func (f *fileNode) sameContent(e *meta.Entry) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.draft != nil || f.unapplied || f.entry.Size != e.Size {
		return false
	}
	src := f.top.srv.view.Source()
	if f.hash == nil {
		h, err := src.ContentHash(&f.entry)
		if err != nil {
			return false
		}
		f.hash = &h
	}
	h, err := src.ContentHash(e)
	if err != nil || h != *f.hash {
		return false
	}
	f.entry.Mode = e.Mode
	return true
}

func (f *fileNode) attr(a *fuse.Attr) {
	f.mu.Lock()
	size := f.entry.Size
	if f.draft != nil {
		size = f.draft.Size()
	}
	mode, mtime := f.entry.Mode, f.mtime
	f.mu.Unlock()
	f.top.srv.fileAttr(a, mode, size, mtime)
}

func (f *fileNode) fillEntry(out *fuse.EntryOut) {
	f.attr(&out.Attr)
	f.top.srv.timeouts(out, f.top.timeout(), f.top.timeout())
}

func (f *fileNode) Getattr(ctx context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.attr(&out.Attr)
	out.SetTimeout(f.top.timeout())
	return 0
}

// refsLocked returns the refs of f.entry: metadata only, no chunk is read.
func (f *fileNode) refsLocked() ([]chunk.Ref, error) {
	if !f.loaded {
		refs, err := f.top.srv.view.Source().Refs(&f.entry)
		if err != nil {
			return nil, err
		}
		f.refs, f.loaded = refs, true
	}
	return f.refs, nil
}

// setEntryLocked replaces the content.
func (f *fileNode) setEntryLocked(e meta.Entry, refs []chunk.Ref) {
	f.entry, f.refs, f.loaded, f.hash = e, refs, true, nil
	f.gen++
}

// markDirtyLocked holds the branch's Writer (no idle finish) until the
// file is clean again.
func (f *fileNode) markDirtyLocked() {
	if f.release == nil {
		f.release = f.top.br.w.Hold()
		f.top.br.setDirty(f, true)
	}
}

func (f *fileNode) cleanLocked() {
	if f.release != nil {
		f.release()
		f.release = nil
		f.top.br.setDirty(f, false)
	}
}

// startDraftLocked starts a draft from the current content.
func (f *fileNode) startDraftLocked() error {
	if f.draft != nil {
		return nil
	}
	refs, err := f.refsLocked()
	if err != nil {
		return err
	}
	f.draft = f.top.srv.view.NewDraft(refs)
	f.markDirtyLocked()
	return nil
}

// created makes f a new empty file: it is applied on its first flush
// even if nothing is written.
func (f *fileNode) created() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unapplied, f.loaded = true, true
	return f.startDraftLocked()
}

// flush closes the draft and applies the content to the open commit. A
// file deleted or replaced meanwhile keeps its bytes for its open
// handles but is not applied.
func (f *fileNode) flush() error {
	f.flushMu.Lock()
	defer f.flushMu.Unlock()
	f.mu.Lock()
	if d := f.draft; d != nil {
		f.draft = nil
		if d.Changed() || f.unapplied {
			refs, size, err := d.Close()
			if err != nil {
				f.unapplied = false
				f.cleanLocked()
				f.mu.Unlock()
				return err
			}
			f.setEntryLocked(meta.Entry{Type: meta.TypeFile, Mode: f.entry.Mode, Size: size, Chunks: refs}, refs)
			f.unapplied = true
		} else {
			d.Abort()
		}
	}
	if !f.unapplied {
		f.cleanLocked()
		f.mu.Unlock()
		return nil
	}
	e := f.entry
	f.mu.Unlock()

	unlock := f.top.rlock()
	var err error
	if !f.deleted.Load() {
		err = f.top.apply(meta.Change{Op: meta.OpPut, Path: f.path(), Entry: e})
	}
	unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		return err // still unapplied: release and unmount try again
	}
	f.unapplied = false
	f.mtime = time.Now()
	if f.draft == nil {
		f.cleanLocked()
	}
	return nil
}

// dropDraft gives up on unapplied bytes.
func (f *fileNode) dropDraft() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.draft != nil {
		f.draft.Abort()
		f.draft = nil
	}
	f.unapplied = false
	f.cleanLocked()
}

func (f *fileNode) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	write := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	if write && f.top.br == nil {
		return nil, 0, syscall.EROFS
	}
	h := &fileHandle{f: f, write: write}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	var fl uint32
	f.mu.Lock()
	if write {
		f.writers++
	} else {
		fl |= fuse.FOPEN_NOFLUSH
		if f.draft == nil && !f.unapplied {
			// Pinned: never changes. Live: a node stands for one
			// content only (see dirNode.child), and writes through
			// this node keep the kernel's cache current themselves.
			fl |= fuse.FOPEN_KEEP_CACHE
		}
	}
	var err error
	if f.top.pinned {
		var refs []chunk.Ref
		if refs, err = f.refsLocked(); err == nil {
			h.setReader(refs)
		}
	}
	f.mu.Unlock()
	if err != nil {
		h.cancel()
		return nil, 0, f.top.srv.errno("open "+f.describe(), err)
	}
	return h, fl, 0
}

// Setattr truncates (into the draft; applied at close, or at once when
// no file is open) and changes the mode. Times are accepted and not kept.
func (f *fileNode) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	_, wantSize := in.GetSize()
	_, wantMode := in.GetMode()
	if (wantSize || wantMode) && f.top.br == nil {
		return syscall.EROFS
	}
	if en := f.top.srv.checkOwner(in); en != 0 {
		return en
	}
	if size, ok := in.GetSize(); ok {
		f.mu.Lock()
		err := f.startDraftLocked()
		if err == nil {
			err = f.draft.Truncate(int64(size))
			f.mtime = time.Now()
		}
		f.mu.Unlock()
		if err == nil && fh == nil {
			err = f.flush() // truncate(2): no close will follow
		}
		if err != nil {
			return f.top.srv.errno("truncate "+f.describe(), err)
		}
	}
	if mode, ok := in.GetMode(); ok {
		if err := f.chmod(mode & 0o777); err != nil {
			return f.top.srv.errno("chmod "+f.describe(), err)
		}
	}
	f.attr(&out.Attr)
	out.SetTimeout(f.top.timeout())
	return 0
}

func (f *fileNode) chmod(mode uint32) error {
	f.mu.Lock()
	f.entry.Mode = mode
	e, dirty := f.entry, f.draft != nil || f.unapplied
	f.mu.Unlock()
	if dirty {
		return nil // applied with the content
	}
	unlock := f.top.rlock()
	defer unlock()
	if f.deleted.Load() {
		return nil
	}
	e.Name = ""
	return f.top.apply(meta.Change{Op: meta.OpPut, Path: f.path(), Entry: e})
}

// fileHandle is an open file. A handle of a pinned view reads through its
// own chunk.Reader; a live one reads the node's current content.
type fileHandle struct {
	f      *fileNode
	write  bool
	ctx    context.Context // ends at release: cancels chunk fetches
	cancel context.CancelFunc

	rd  *chunk.Reader // guarded by f.mu for live views
	ra  *readAhead    // rd's prefetcher, replaced with it
	gen uint64        // the f.gen rd reads

	// read is set by the first read through the handle, which tells the
	// directory a file of it is being read (see dirNode.reading). A file
	// read from the page cache sends no reads, and fetches none ahead.
	read atomic.Bool
}

// setReader makes the handle read refs. Its Reader reuses buffers for
// chunks fetched ahead (see chunk.Reader.Reuse); the one it replaces is
// closed, and so is the last at release.
func (h *fileHandle) setReader(refs []chunk.Ref) {
	o := h.f.top.srv.o
	if h.rd != nil {
		h.rd.Close()
	}
	h.rd = chunk.NewReaderFrom(h.ctx, h.f.top.srv.ahead, refs)
	h.rd.Reuse()
	h.ra = newReadAhead(h.rd, refs, o.ReadAheadChunks, max(2<<20, int64(o.ReadAheadKB)<<10))
	h.rd.Keep(keepChunks(h.ra.ends, o.ReadAheadKB, o.ReadAheadChunks))
}

// keepChunks is how many decoded chunks a handle keeps when reading the
// file whose chunk i ends at ends[i]: the one being read and the one before, the chunks fetched ahead, and the
// most that any stretch of the kernel's read-ahead window (raKB) touches.
// The kernel sends the requests of one window concurrently; keeping fewer
// chunks than they cover evicts fetched chunks before their requests are
// served, and each is read from the disk again.
func keepChunks(ends []int64, raKB, ahead int) int {
	window := 0
	if raKB > 0 && len(ends) > 0 {
		end := ends[len(ends)-1]
		// The window starting at the last byte of chunk i touches the
		// most chunks of those that start in chunk i.
		for i := range ends {
			last := min(ends[i]-1+int64(raKB)<<10-1, end-1)
			j, _ := slices.BinarySearch(ends, last+1) // the chunk holding last
			window = max(window, min(j, len(ends)-1)-i+1)
		}
	}
	return min(2+ahead+window, max(len(ends), 1))
}

// readAhead fetches the next chunks of a file that is read sequentially,
// so they are decoded and verified by the time the kernel's read-ahead
// asks for them: with the chunk files read from the disk with O_DIRECT,
// a few fetches in flight keep it busy. Random reads fetch only what they
// cover.
type readAhead struct {
	rd    *chunk.Reader
	ends  []int64 // ends[i]: the offset just past chunk i
	ahead int     // chunks past the current one to fetch (Options.ReadAheadChunks)
	slack int64   // how far from the last read a read still counts as sequential

	mu      sync.Mutex
	last    int64 // end of the last read
	fetched int   // chunks below this index have been asked for
}

// newReadAhead fetches up to ahead chunks past the current one (the
// handle's chunk.Reader keeps them, see keepChunks). Reads within slack of
// where the last one ended count as sequential: the kernel's concurrent
// read-ahead requests of one window may arrive out of order.
func newReadAhead(rd *chunk.Reader, refs []chunk.Ref, ahead int, slack int64) *readAhead {
	ra := &readAhead{rd: rd, ends: make([]int64, len(refs)), ahead: ahead, slack: slack}
	var end int64
	for i, r := range refs {
		end += int64(r.Size)
		ra.ends[i] = end
	}
	return ra
}

// read notes a read of [off, off+n) and starts fetching the next chunks if
// reads are sequential.
func (ra *readAhead) read(off int64, n int) {
	if n == 0 || len(ra.ends) < 2 {
		return
	}
	end := off + int64(n)
	ra.mu.Lock()
	seq := off >= ra.last-ra.slack && off <= ra.last+ra.slack
	ra.last = end
	if !seq {
		ra.mu.Unlock()
		return
	}
	cur, _ := slices.BinarySearch(ra.ends, end-1) // the chunk holding the last byte read
	if cur < len(ra.ends) && ra.ends[cur] == end-1 {
		cur++
	}
	from, to := max(ra.fetched, cur+1), min(cur+1+ra.ahead, len(ra.ends))
	if from < to {
		ra.fetched = to
	}
	ra.mu.Unlock()
	for i := from; i < to; i++ {
		ra.rd.Prefetch(ra.ends[i-1])
	}
}

func (h *fileHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f := h.f
	if !h.write && !h.read.Load() && h.read.CompareAndSwap(false, true) {
		unlock := f.top.rlock()
		parent, name := f.parent, f.name
		unlock()
		if parent != nil {
			parent.reading(name)
		}
	}
	var rd *chunk.Reader
	var ra *readAhead
	if f.top.pinned {
		rd, ra = h.rd, h.ra // set at open, never changed
	} else {
		f.mu.Lock()
		if f.draft != nil {
			n, err := f.draft.ReadAt(dest, off)
			f.mu.Unlock()
			return h.result(dest, n, err)
		}
		if h.rd == nil || h.gen != f.gen {
			refs, err := f.refsLocked()
			if err != nil {
				f.mu.Unlock()
				return nil, f.top.srv.errno("read "+f.describe(), err)
			}
			h.setReader(refs)
			h.gen = f.gen
		}
		rd, ra = h.rd, h.ra
		f.mu.Unlock()
	}
	ra.read(off, len(dest))
	// A request within one chunk (most are: a chunk is larger than a
	// request) is answered from the decoded chunk, without a copy; the
	// Reader may reuse its buffer once the reply is written.
	if b, done, err := rd.Slice(off, len(dest)); err != nil {
		return h.result(nil, 0, err)
	} else if b != nil {
		if poisonDone.Load() {
			b, done = poisoned(b, done)
		}
		return &sliceResult{b: b, done: done}, 0
	}
	n, err := rd.ReadAt(dest, off)
	return h.result(dest, n, err)
}

// poisonDone, set only by tests, answers each read from a chunk with a
// copy that Done overwrites, so a reply written after its Done reads
// wrong every time instead of once in a long while.
var poisonDone atomic.Bool

func poisoned(b []byte, done func()) ([]byte, func()) {
	c := slices.Clone(b)
	done()
	return c, func() {
		for i := range c {
			c[i] ^= 0xff
		}
	}
}

// sliceResult replies with bytes of a chunk a Reader holds until the
// reply is written. It must offer Slices: with splicing off, go-fuse
// calls Bytes and then Done before it writes the reply unless the
// result is vectored, and Done may hand the chunk's buffer to another
// read while the kernel has yet to copy it. With Slices, go-fuse
// writes the slices with writev and calls Done after.
type sliceResult struct {
	b    []byte
	done func()
	once sync.Once
}

// vectored is go-fuse's unexported interface for results written
// with writev and released after the write.
type vectored interface {
	fuse.ReadResult
	Slices() ([][]byte, fuse.Status)
}

var _ vectored = (*sliceResult)(nil)

func (r *sliceResult) Bytes([]byte) ([]byte, fuse.Status) { return r.b, fuse.OK }
func (r *sliceResult) Slices() ([][]byte, fuse.Status)    { return [][]byte{r.b}, fuse.OK }
func (r *sliceResult) Size() int                          { return len(r.b) }
func (r *sliceResult) Done()                              { r.once.Do(r.done) }

func (h *fileHandle) result(dest []byte, n int, err error) (fuse.ReadResult, syscall.Errno) {
	if err != nil && err != io.EOF {
		return nil, h.f.top.srv.errno("read "+h.f.describe(), err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *fileHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	f := h.f
	if !h.write {
		return 0, syscall.EBADF
	}
	f.mu.Lock()
	err := f.startDraftLocked()
	n := 0
	if err == nil {
		n, err = f.draft.WriteAt(data, off)
		f.mtime = time.Now()
	}
	f.mu.Unlock()
	if err != nil {
		return uint32(n), f.top.srv.errno("write "+f.describe(), err)
	}
	return uint32(n), 0
}

// Flush runs on every close(2) of a descriptor: the file's content goes
// into the open commit, and an error here is close's error.
func (h *fileHandle) Flush(ctx context.Context) syscall.Errno {
	if !h.write {
		return 0
	}
	if err := h.f.flush(); err != nil {
		return h.f.top.srv.errno("apply "+h.f.describe(), err)
	}
	return 0
}

// Fsync applies the file like Flush and makes it durable: Flush applies
// without a sync of the metadata.
func (h *fileHandle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if en := h.Flush(ctx); en != 0 {
		return en
	}
	if h.f.top.br == nil {
		return 0 // a read-only view: nothing to make durable
	}
	if err := h.f.top.br.w.Sync(context.Background()); err != nil {
		return h.f.top.srv.errno("fsync "+h.f.describe(), err)
	}
	return 0
}

// Release ends the handle. The last writer applies what a failed flush
// left, or gives it up (logged).
func (h *fileHandle) Release(ctx context.Context) syscall.Errno {
	h.cancel()
	f := h.f
	if f.top.pinned {
		if h.rd != nil {
			h.rd.Close()
		}
	} else {
		f.mu.Lock()
		if h.rd != nil {
			h.rd.Close()
		}
		f.mu.Unlock()
	}
	if !h.write {
		return 0
	}
	f.mu.Lock()
	f.writers--
	pending := f.writers == 0 && (f.draft != nil || f.unapplied)
	f.mu.Unlock()
	if pending {
		if err := f.flush(); err != nil {
			f.top.srv.log.Error("pfs: giving up on unapplied writes", "file", f.describe(), "err", err)
			f.dropDraft()
		}
	}
	return 0
}
