package chunk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sync"
)

// step bounds how much a Writer copies or reads before it looks for cuts,
// and so how much it moves into the next buffer after a cut.
const step = 256 << 10

var errAborted = errors.New("chunk writer: aborted")

// Writer splits one file into chunks and stores them. Its methods must be
// called from one goroutine, and it must end with Close or Abort. The chunker runs in that goroutine; hashing,
// compressing and storing run on the Store's workers, so a Writer does not
// wait for them until Close (or until too many chunks are in flight).
type Writer struct {
	s       *Store
	ctx     context.Context
	cancel  context.CancelFunc
	buf     []byte // the current chunk: buf[0] is room for the codec byte, buf[1:] the plaintext so far, then room for the seal
	scanned int    // cut candidates up to this length of the current chunk are checked
	size    int64
	done    bool
	wg      sync.WaitGroup

	mu   sync.Mutex
	refs []Ref // the workers fill in the IDs
	err  error // the first error; it cancels ctx
}

var _ io.ReaderFrom = (*Writer)(nil)

// NewWriter returns a Writer for a new file. The file's chunk boundaries
// depend only on its bytes, not on how they are split across Writes.
func (s *Store) NewWriter(ctx context.Context) *Writer {
	ctx, cancel := context.WithCancel(ctx)
	return &Writer{s: s, ctx: ctx, cancel: cancel}
}

// NewAppendWriter returns a Writer that continues the file made of
// existing. It keeps all refs but the last, whose chunk it reads back and
// writes again: the chunker restarts after every cut, so the result has the
// refs of writing the whole file at once.
func (s *Store) NewAppendWriter(ctx context.Context, existing []Ref) (*Writer, error) {
	w := s.NewWriter(ctx)
	if len(existing) == 0 {
		return w, nil
	}
	last := existing[len(existing)-1]
	data, err := s.Get(ctx, last)
	if err != nil {
		w.Abort()
		return nil, err
	}
	w.refs = slices.Clone(existing[:len(existing)-1])
	for _, r := range w.refs {
		w.size += int64(r.Size)
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return nil, err
	}
	return w, nil
}

func (w *Writer) Write(p []byte) (int, error) {
	if err := w.failed(); err != nil {
		return 0, err
	}
	n := 0
	for n < len(p) {
		m := copy(w.room(len(p)-n), p[n:])
		w.buf = w.buf[:len(w.buf)+m]
		w.size += int64(m)
		n += m
		if err := w.split(false); err != nil {
			return n, err
		}
	}
	return n, nil
}

// ReadFrom reads r until EOF straight into chunk buffers.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if err := w.failed(); err != nil {
		return 0, err
	}
	var n int64
	for {
		m, err := r.Read(w.room(step))
		w.buf = w.buf[:len(w.buf)+m]
		w.size += int64(m)
		n += int64(m)
		if serr := w.split(false); serr != nil {
			return n, serr
		}
		if err == io.EOF {
			return n, nil
		} else if err != nil {
			return n, err
		}
	}
}

// Close stores the last chunk, waits until every chunk is stored, and
// returns the first error. The chunks are durable only after Store.Sync.
func (w *Writer) Close() error {
	if !w.done {
		w.done = true
		err := w.split(true)
		w.wg.Wait()
		w.s.free(w.buf)
		w.buf = nil
		if err != nil {
			w.fail(err)
		}
		w.cancel()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Abort stops w and waits for its workers. Chunks already stored stay
// until garbage collection removes them. After Close it does nothing, so
// it can be deferred.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.fail(errAborted)
	w.wg.Wait()
	w.s.free(w.buf)
	w.buf = nil
}

// Refs returns the file's refs in order, after a successful Close.
func (w *Writer) Refs() []Ref {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done || w.err != nil {
		return nil
	}
	return w.refs
}

// Size returns the number of bytes in the file so far.
func (w *Writer) Size() int64 { return w.size }

func (w *Writer) failed() error {
	if w.done {
		return fmt.Errorf("chunk writer: %w", fs.ErrClosed)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// fail records err unless an error came first, stops the other workers,
// and returns the first error.
func (w *Writer) fail(err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
		w.cancel()
	}
	return w.err
}

// room returns free space for up to n more bytes of the current chunk. A
// file starts in a small buffer and moves to a MaxSize one when that is
// full, so small files do not pin large buffers.
func (w *Writer) room(n int) []byte {
	if w.buf == nil {
		w.buf = w.s.alloc(w.size > 0)
	}
	if len(w.buf) == cap(w.buf)-sealLen { // only a small buffer fills up: a full large one has been cut
		b := append(w.s.alloc(true), w.buf[1:]...)
		w.s.free(w.buf)
		w.buf = b
	}
	return w.buf[len(w.buf):min(cap(w.buf)-sealLen, len(w.buf)+min(n, step))]
}

// split cuts off and dispatches every complete chunk in the buffer; with
// final, the rest too. It scans for cuts only once scanAhead new bytes are
// in, so tiny Writes cost no more than big ones, and never in files shorter
// than MinSize.
func (w *Writer) split(final bool) error {
	minSize, maxSize := int(w.s.cfg.MinSize), int(w.s.cfg.MaxSize)
	for {
		n := len(w.buf) - 1
		if n <= 0 || !final && (n < minSize || n < maxSize && n-w.scanned < scanAhead) {
			return nil
		}
		cut := -1
		if n >= minSize {
			cut = w.s.rabin.scan(w.buf[1:], max(w.scanned+1, minSize), min(n, maxSize))
		}
		switch {
		case cut > 0:
		case n >= maxSize:
			cut = maxSize
		case final:
			cut = n
		default:
			w.scanned = n
			return nil
		}
		b := w.buf
		w.buf, w.scanned = nil, 0
		if rest := b[1+cut:]; len(rest) > 0 {
			w.buf = append(w.s.alloc(true), rest...)
		}
		if err := w.dispatch(b[:1+cut]); err != nil {
			return err
		}
	}
}

// dispatch hands the chunk b[1:] to a worker, waiting while too many
// chunks are in flight.
func (w *Writer) dispatch(b []byte) error {
	err := w.ctx.Err()
	if err == nil {
		select {
		case w.s.inflight <- struct{}{}:
		case <-w.ctx.Done():
			err = w.ctx.Err()
		}
	}
	if err != nil {
		w.s.free(b)
		return w.fail(err)
	}
	w.mu.Lock()
	i := len(w.refs)
	w.refs = append(w.refs, Ref{Size: uint32(len(b) - 1)})
	w.mu.Unlock()
	w.wg.Go(func() {
		w.s.work <- struct{}{}
		ref, err := w.s.put(w.ctx, b)
		<-w.s.work
		w.s.free(b)
		<-w.s.inflight
		if err != nil {
			w.fail(err)
		}
		w.mu.Lock()
		w.refs[i].ID = ref.ID
		w.mu.Unlock()
	})
	return nil
}

// alloc returns an empty chunk buffer (with room for the codec byte), a
// MaxSize one if large.
func (s *Store) alloc(large bool) []byte {
	pool := &s.bufs
	if !large && s.cfg.MaxSize > smallBuf {
		pool = &s.smallBufs
	}
	return (*pool.Get().(*[]byte))[:1]
}

func (s *Store) free(b []byte) {
	b = b[:0]
	switch cap(b) {
	case 1 + int(s.cfg.MaxSize) + sealLen:
		s.bufs.Put(&b)
	case 1 + smallBuf + sealLen:
		s.smallBufs.Put(&b)
	}
}
