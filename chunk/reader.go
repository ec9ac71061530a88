package chunk

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sort"
	"sync"
)

const (
	readAhead   = 2             // chunks a sequential read fetches ahead
	cacheChunks = readAhead + 2 // decoded chunks a Reader keeps
)

// seqKey marks a context whose reads are part of a sequential read.
type seqKey struct{}

func sequential(ctx context.Context) context.Context { return context.WithValue(ctx, seqKey{}, true) }

func isSequential(ctx context.Context) bool { v, _ := ctx.Value(seqKey{}).(bool); return v }

// Reader reads the file made of refs. It implements io.Reader, io.Seeker,
// io.WriterTo and io.ReaderAt. Read, Seek and WriteTo share an offset and
// must be called from one goroutine; ReadAt is safe for concurrent use. A
// Reader keeps the last few chunks it decoded, so neighbouring small reads
// fetch each chunk once.
type Reader struct {
	g    Getter
	ctx  context.Context
	sctx context.Context // ctx, marked as a sequential read for fetches ahead
	refs []Ref
	ends []int64 // ends[i] is the offset just past chunk i
	off  int64
	cur  *cached // the chunk Read and WriteTo are in
	keep int     // decoded chunks kept

	mu    sync.Mutex
	cache []*cached // least recently used first
	last  int       // the chunk read last
	reuse bool      // fetch into reused buffers (Reuse)
}

// cached is a chunk fetched or being fetched; data and err are set when
// done is closed. refs counts its holders: the cache while it is cached,
// and every read using data; when none is left, release (set when the
// chunk came in a reused buffer) gives the buffer back.
type cached struct {
	i       int
	done    chan struct{}
	data    []byte
	err     error
	refs    int    // guarded by Reader.mu
	fetched bool   // guarded by Reader.mu: data, err and release are set
	release func() // guarded by Reader.mu
}

var _ interface {
	io.ReadSeeker
	io.ReaderAt
	io.WriterTo
} = (*Reader)(nil)

// Getter returns the plaintext of a whole chunk, verified against its
// ID. *Store is one; a remote mount's chunk fetcher is another.
type Getter interface {
	Get(ctx context.Context, ref Ref) ([]byte, error)
}

// NewReader returns a Reader for the file made of refs.
func (s *Store) NewReader(ctx context.Context, refs []Ref) *Reader {
	return NewReaderFrom(ctx, s, refs)
}

// NewReaderFrom returns a Reader for the file made of refs whose chunks g
// fetches.
func NewReaderFrom(ctx context.Context, g Getter, refs []Ref) *Reader {
	ends := make([]int64, len(refs))
	var end int64
	for i, ref := range refs {
		end += int64(ref.Size)
		ends[i] = end
	}
	return &Reader{g: g, ctx: ctx, sctx: sequential(ctx), refs: refs, ends: ends, keep: cacheChunks}
}

// Keep sets how many decoded chunks the Reader keeps (default 4), for a
// caller that prefetches further ahead with Prefetch, so that prefetched
// chunks are still there when it reads them. Call it before reading.
func (r *Reader) Keep(n int) {
	r.mu.Lock()
	r.keep = max(n, 1)
	r.mu.Unlock()
}

// Reuse makes the Reader read chunks fetched ahead into reused buffers
// where the backend offers them (a Dir reading with O_DIRECT), instead of
// a new buffer each for the garbage collector. The caller must then call
// the done func of every Slice, and Close the Reader when finished with
// it; until then, the buffers stay taken. Call it before reading.
func (r *Reader) Reuse() {
	r.mu.Lock()
	r.reuse = true
	r.mu.Unlock()
}

// Close drops the chunks the Reader keeps, giving back reused buffers
// once no Slice uses them. The Reader still works afterwards, without
// reusing buffers. Close must not run while a Read, ReadAt or WriteTo
// does; Slices may still be held.
func (r *Reader) Close() {
	r.mu.Lock()
	var rels []func()
	for _, f := range r.cache {
		if rel := r.unrefLocked(f); rel != nil {
			rels = append(rels, rel)
		}
	}
	r.cache = nil
	r.reuse = false
	if r.cur != nil {
		if rel := r.unrefLocked(r.cur); rel != nil {
			rels = append(rels, rel)
		}
		r.cur = nil
	}
	r.mu.Unlock()
	for _, rel := range rels {
		rel()
	}
}

// Size returns the length of the file.
func (r *Reader) Size() int64 {
	if len(r.ends) == 0 {
		return 0
	}
	return r.ends[len(r.ends)-1]
}

// Read reads from one chunk at a time.
func (r *Reader) Read(p []byte) (int, error) {
	data, err := r.next()
	n := copy(p, data)
	r.off += int64(n)
	return n, err
}

// next returns the rest of the chunk at the current offset; when moving to
// a new chunk, it starts fetching the ones after it.
func (r *Reader) next() ([]byte, error) {
	if r.off >= r.Size() {
		return nil, io.EOF
	}
	if f := r.cur; f == nil || r.off < r.start(f.i) || r.off >= r.ends[f.i] {
		f, err := r.chunk(r.find(r.off), r.find(r.off)+readAhead)
		if err != nil {
			return nil, err
		}
		if r.cur != nil {
			r.unref(r.cur)
		}
		r.cur = f
	}
	return r.cur.data[r.off-r.start(r.cur.i):], nil
}

// ReadAt fetches the chunks covering p, at most readAhead+1 at a time.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("chunk reader: offset %d: %w", off, fs.ErrInvalid)
	}
	last := r.find(off + int64(len(p)) - 1) // the last chunk p covers
	n := 0
	for i := r.find(off); n < len(p) && i < len(r.refs); i++ {
		f, err := r.chunk(i, min(last, i+readAhead))
		if err != nil {
			return n, err
		}
		n += copy(p[n:], f.data[off+int64(n)-r.start(i):])
		r.unref(f)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Slice returns the n bytes at off (fewer at the end of the file) without
// copying them, if one chunk holds them all, or nil if they span chunks.
// Like ReadAt it is safe for concurrent use; the result must not be
// modified. With a result comes done, to call once when finished with it:
// in Reuse mode the bytes may be reused after that.
func (r *Reader) Slice(off int64, n int) (b []byte, done func(), err error) {
	if off < 0 {
		return nil, nil, fmt.Errorf("chunk reader: offset %d: %w", off, fs.ErrInvalid)
	}
	if off >= r.Size() || n <= 0 {
		return nil, nil, io.EOF
	}
	i := r.find(off)
	end := min(off+int64(n), r.Size())
	if end > r.ends[i] {
		return nil, nil, nil
	}
	f, err := r.chunk(i, i)
	if err != nil {
		return nil, nil, err
	}
	s := off - r.start(i)
	return f.data[s : s+end-off : s+end-off], func() { r.unref(f) }, nil
}

// Prefetch starts fetching the chunk holding off, unless it is kept or
// being fetched, and returns at once. The fetch counts as part of a
// sequential read, which Dir reads past the page cache (see Dir).
func (r *Reader) Prefetch(off int64) {
	if off >= 0 && off < r.Size() {
		r.fetch(r.sctx, r.find(off), false)
	}
}

// WriteTo writes the file from the current offset on, chunk by chunk,
// without copying.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		data, err := r.next()
		if err == io.EOF {
			return total, nil
		} else if err != nil {
			return total, err
		}
		n, err := w.Write(data)
		r.off += int64(n)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
}

func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.Size()
	default:
		return r.off, fmt.Errorf("chunk reader: whence %d: %w", whence, fs.ErrInvalid)
	}
	if offset < 0 {
		return r.off, fmt.Errorf("chunk reader: offset %d: %w", offset, fs.ErrInvalid)
	}
	r.off = offset
	return offset, nil
}

// find returns the index of the chunk holding offset off, or len(refs).
func (r *Reader) find(off int64) int {
	return sort.Search(len(r.ends), func(i int) bool { return r.ends[i] > off })
}

// start returns the offset of chunk i.
func (r *Reader) start(i int) int64 {
	if i == 0 {
		return 0
	}
	return r.ends[i-1]
}

// chunk returns chunk i fetched, held for the caller, who must unref it;
// it has started fetches of the chunks after it up to ahead.
func (r *Reader) chunk(i, ahead int) (*cached, error) {
	r.mu.Lock()
	r.last = i
	r.mu.Unlock()
	f := r.fetch(r.ctx, i, true)
	for j := i + 1; j <= ahead && j < len(r.refs); j++ {
		r.fetch(r.sctx, j, false)
	}
	select {
	case <-f.done:
		if f.err != nil {
			r.unref(f)
			return nil, f.err
		}
		return f, nil
	case <-r.ctx.Done():
		r.unref(f)
		return nil, r.ctx.Err()
	}
}

// unref drops a hold on f.
func (r *Reader) unref(f *cached) {
	r.mu.Lock()
	rel := r.unrefLocked(f)
	r.mu.Unlock()
	if rel != nil {
		rel()
	}
}

// unrefLocked drops a hold on f and returns its release if that was the
// last one and the fetch is over.
func (r *Reader) unrefLocked(f *cached) func() {
	f.refs--
	if f.refs > 0 || !f.fetched {
		return nil
	}
	rel := f.release
	f.release = nil
	return rel
}

// victim returns the index in the cache of the chunk to evict, or -1 if
// every chunk is still being fetched: the least recently used of those at
// or behind the last chunk read, else of any fetched. Chunks fetched ahead
// and not read yet go last, and a pending fetch is never dropped, which
// would read its chunk twice.
func (r *Reader) victim() int {
	fallback := -1
	for j, f := range r.cache {
		select {
		case <-f.done:
		default:
			continue
		}
		if f.i <= r.last {
			return j
		}
		if fallback < 0 {
			fallback = j
		}
	}
	return fallback
}

// fetch returns the cached or pending fetch of chunk i, or starts one,
// held for the caller if hold is set.
func (r *Reader) fetch(ctx context.Context, i int, hold bool) *cached {
	var rels []func() // of evicted chunks, called once unlocked
	defer func() {
		for _, rel := range rels {
			rel()
		}
	}()
	r.mu.Lock()
	defer r.mu.Unlock()
	for j, f := range r.cache {
		if f.i == i {
			r.cache = append(slices.Delete(r.cache, j, j+1), f)
			if hold {
				f.refs++
			}
			return f
		}
	}
	for len(r.cache) >= r.keep {
		j := r.victim()
		if j < 0 {
			break // all pending: over keep until one is done
		}
		if rel := r.unrefLocked(r.cache[j]); rel != nil {
			rels = append(rels, rel)
		}
		r.cache = slices.Delete(r.cache, j, j+1)
	}
	f := &cached{i: i, done: make(chan struct{}), refs: 1}
	if hold {
		f.refs++
	}
	r.cache = append(r.cache, f)
	var l *lease
	if r.reuse {
		ctx, l = withLease(ctx)
	}
	go func() {
		data, err := r.g.Get(ctx, r.refs[i])
		r.mu.Lock()
		f.data, f.err, f.fetched = data, err, true
		if l != nil {
			f.release = l.release
		}
		if err != nil { // do not cache failures: a later read tries again
			if j := slices.Index(r.cache, f); j >= 0 {
				r.cache = slices.Delete(r.cache, j, j+1)
				f.refs--
			}
		}
		var rel func()
		if f.refs == 0 {
			rel, f.release = f.release, nil
		}
		r.mu.Unlock()
		close(f.done)
		if rel != nil {
			rel()
		}
	}()
	return f
}
