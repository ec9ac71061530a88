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
}

// cached is a chunk fetched or being fetched; data and err are set when
// done is closed.
type cached struct {
	i    int
	done chan struct{}
	data []byte
	err  error
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
		i := r.find(r.off)
		data, err := r.chunk(i, i+readAhead)
		if err != nil {
			return nil, err
		}
		r.cur = &cached{i: i, data: data}
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
		data, err := r.chunk(i, min(last, i+readAhead))
		if err != nil {
			return n, err
		}
		n += copy(p[n:], data[off+int64(n)-r.start(i):])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Slice returns the n bytes at off (fewer at the end of the file) without
// copying them, if one chunk holds them all, or nil if they span chunks.
// Like ReadAt it is safe for concurrent use; the result must not be
// modified.
func (r *Reader) Slice(off int64, n int) ([]byte, error) {
	if off < 0 {
		return nil, fmt.Errorf("chunk reader: offset %d: %w", off, fs.ErrInvalid)
	}
	if off >= r.Size() || n <= 0 {
		return nil, io.EOF
	}
	i := r.find(off)
	end := min(off+int64(n), r.Size())
	if end > r.ends[i] {
		return nil, nil
	}
	data, err := r.chunk(i, i)
	if err != nil {
		return nil, err
	}
	s := off - r.start(i)
	return data[s : s+end-off : s+end-off], nil
}

// Prefetch starts fetching the chunk holding off, unless it is kept or
// being fetched, and returns at once. The fetch counts as part of a
// sequential read, which Dir reads past the page cache (see Dir).
func (r *Reader) Prefetch(off int64) {
	if off >= 0 && off < r.Size() {
		r.fetch(r.sctx, r.find(off))
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

// chunk returns the plaintext of chunk i, having started fetches of the
// chunks after it up to ahead.
func (r *Reader) chunk(i, ahead int) ([]byte, error) {
	r.mu.Lock()
	r.last = i
	r.mu.Unlock()
	f := r.fetch(r.ctx, i)
	for j := i + 1; j <= ahead && j < len(r.refs); j++ {
		r.fetch(r.sctx, j)
	}
	select {
	case <-f.done:
		return f.data, f.err
	case <-r.ctx.Done():
		return nil, r.ctx.Err()
	}
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

// fetch returns the cached or pending fetch of chunk i, or starts one.
func (r *Reader) fetch(ctx context.Context, i int) *cached {
	r.mu.Lock()
	defer r.mu.Unlock()
	for j, f := range r.cache {
		if f.i == i {
			r.cache = append(slices.Delete(r.cache, j, j+1), f)
			return f
		}
	}
	for len(r.cache) >= r.keep {
		j := r.victim()
		if j < 0 {
			break // all pending: over keep until one is done
		}
		r.cache = slices.Delete(r.cache, j, j+1)
	}
	f := &cached{i: i, done: make(chan struct{})}
	r.cache = append(r.cache, f)
	go func() {
		f.data, f.err = r.g.Get(ctx, r.refs[i])
		if f.err != nil { // do not cache failures: a later read tries again
			r.mu.Lock()
			if j := slices.Index(r.cache, f); j >= 0 {
				r.cache = slices.Delete(r.cache, j, j+1)
			}
			r.mu.Unlock()
		}
		close(f.done)
	}()
	return f
}
