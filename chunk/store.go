package chunk

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
)

// ErrCorrupt is wrapped by errors for chunks whose stored bytes do not
// decode to plaintext with the expected ID and size.
var ErrCorrupt = errors.New("chunk: corrupt")

// Store is the one place that hashes, compresses, verifies and routes
// chunks. Chunks shorter than Config.SmallLimit live in the small backend,
// the others in the large one. It is safe for concurrent use.
type Store struct {
	cfg          Config
	codec        byte
	rabin        *rabin
	small, large Backend

	// Writers hand chunks to goroutines that hash, compress and store them.
	// work bounds how many run at once (one per CPU); inflight bounds how
	// many chunks are waiting or running, and so the memory they hold.
	work     chan struct{}
	inflight chan struct{}

	bufs, smallBufs, encBufs sync.Pool // *[]byte
}

// TouchAfter is how old a chunk must be before a Put that deduplicates
// against it refreshes its ModTime. Refreshing every hit would rewrite the
// small chunks of every re-put; gc grace periods must be at least this long
// to protect concurrent writers that rely on ModTime.
const TouchAfter = 10 * time.Minute

// smallBuf is the capacity of a Writer's first buffer, so small files do not
// take a MaxSize buffer each.
const smallBuf = 64 << 10

// NewStore returns a Store using cfg for new chunks. small may equal large;
// a nil small means large.
func NewStore(cfg Config, small, large Backend) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if large == nil {
		return nil, errors.New("chunk store: nil backend")
	}
	if small == nil {
		small = large
	}
	p := runtime.GOMAXPROCS(0)
	s := &Store{
		cfg:   cfg,
		codec: codecs[cfg.Codec],
		rabin: rabinFor(cfg.Polynomial),
		small: small,
		large: large,
		// Twice the CPUs: a worker waiting on backend I/O leaves its core
		// to another.
		work:     make(chan struct{}, 2*p),
		inflight: make(chan struct{}, 4*p+2),
	}
	// Room for the codec byte before a chunk and its seal after: a chunk
	// stored raw is written from the buffer it was cut in.
	s.bufs.New = func() any { b := make([]byte, 0, 1+cfg.MaxSize+sealLen); return &b }
	s.smallBufs.New = func() any { b := make([]byte, 0, 1+smallBuf+sealLen); return &b }
	s.encBufs.New = func() any { b := make([]byte, 0, 1+s2.MaxEncodedLen(int(cfg.MaxSize))+sealLen); return &b }
	return s, nil
}

// Config returns the store's config.
func (s *Store) Config() Config { return s.cfg }

func (s *Store) backend(size int) Backend {
	if !IsLarge(uint32(size), s.cfg.SmallLimit) {
		return s.small
	}
	return s.large
}

// backends returns the distinct backends.
func (s *Store) backends() []Backend {
	if s.small == s.large {
		return []Backend{s.large}
	}
	return []Backend{s.small, s.large}
}

// Put stores data as one chunk and returns its Ref. A chunk the backend
// already holds is not written again, only touched, so garbage collection
// sees it as recent.
func (s *Store) Put(ctx context.Context, data []byte) (Ref, error) {
	b := make([]byte, 1+len(data), 1+len(data)+sealLen)
	copy(b[1:], data)
	return s.put(ctx, b)
}

// put stores the plaintext b[1:]; b[0] is room for the codec byte, so that
// raw chunks are stored without a copy (the seal is appended in place if b
// has the capacity).
func (s *Store) put(ctx context.Context, b []byte) (Ref, error) {
	data := b[1:]
	if uint64(len(data)) > math.MaxUint32 {
		return Ref{}, fmt.Errorf("put chunk: %d bytes: %w", len(data), fs.ErrInvalid)
	}
	ref := Ref{ID: Sum(data), Size: uint32(len(data))}
	be := s.backend(len(data))
	switch info, err := be.Stat(ctx, ref.ID); {
	case err == nil:
		if time.Since(info.ModTime) < TouchAfter {
			return ref, nil // recent enough for any grace period >= TouchAfter
		}
		if t, ok := be.(Toucher); ok {
			err := t.Touch(ctx, ref.ID)
			if err == nil {
				return ref, nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return Ref{}, fmt.Errorf("touch chunk %s: %w", ref.ID, err)
			}
			// Deleted since Stat: store it again.
		}
		// Without Touch, putting it again refreshes its ModTime.
	case !errors.Is(err, fs.ErrNotExist):
		return Ref{}, fmt.Errorf("put chunk %s: %w", ref.ID, err)
	}

	// Store raw unless a sample compresses well and then the whole does.
	blob := b
	b[0] = codecNone
	if s.codec != codecNone && compressible(data) {
		var dst []byte
		if len(data) > smallBuf {
			p := s.encBufs.Get().(*[]byte)
			defer s.encBufs.Put(p)
			dst = *p
		}
		if c := compress(s.codec, data, dst); c != nil {
			blob = c
		}
	}
	if err := be.Put(ctx, ref.ID, seal(ref.ID, blob, data)); err != nil {
		return Ref{}, fmt.Errorf("put chunk %s: %w", ref.ID, err)
	}
	return ref, nil
}

// Get returns the plaintext of the chunk ref names, verified: by its seal
// if it comes sealed from a Local backend, else against its ID. ref.Size
// routes to the small or large backend and must be right.
func (s *Store) Get(ctx context.Context, ref Ref) ([]byte, error) {
	be := s.backend(int(ref.Size))
	l := leaseOf(ctx) // set by the backend if the blob is in a reused buffer
	blob, err := be.Get(ctx, ref.ID)
	if err != nil {
		l.drop()
		return nil, fmt.Errorf("get chunk %s: %w", ref.ID, err)
	}
	data, err := decodeRef(ref, blob, !isLocal(be))
	if c, ok := be.(Cache); ok && errors.Is(err, ErrCorrupt) {
		// A damaged local copy: drop it and read the source once more.
		l.drop()
		if eerr := c.Evict(ctx, ref.ID); eerr != nil {
			return nil, err
		}
		if blob, err = be.Get(ctx, ref.ID); err != nil {
			l.drop()
			return nil, fmt.Errorf("get chunk %s: %w", ref.ID, err)
		}
		data, err = decodeRef(ref, blob, !isLocal(be))
	}
	if err != nil {
		l.drop()
		return nil, err
	}
	l.keepIfAliased(data, blob)
	return data, nil
}

// isLocal reports whether be is a Local backend that says so.
func isLocal(be Backend) bool {
	l, ok := be.(Local)
	return ok && l.Local()
}

// Decode returns the plaintext of blob, the stored form of ref's chunk as
// a Backend returns it, verified against ref's ID and size: an error
// wrapping ErrCorrupt if it does not match. It always hashes the
// plaintext, as the Store does for blobs from a backend that is not Local:
// readers that fetch blobs from a backend themselves (a remote mount
// reading S3 directly) decode with it. The result may alias blob.
func Decode(ref Ref, blob []byte) ([]byte, error) {
	return decodeRef(ref, blob, true)
}

// decodeRef is Decode; without hash, a sealed blob is checked by its seal
// only.
func decodeRef(ref Ref, blob []byte, hash bool) ([]byte, error) {
	data, err := open(ref.ID, blob, int(ref.Size), hash)
	if err == nil && len(data) != int(ref.Size) {
		err = fmt.Errorf("chunk %s: %d bytes, ref says %d: %w", ref.ID, len(data), ref.Size, ErrCorrupt)
	}
	return data, err
}

// IsLarge reports whether a chunk of size bytes is kept in the large
// backend rather than the small one, under a config whose SmallLimit is
// smallLimit.
func IsLarge(size uint32, smallLimit int) bool { return int64(size) >= int64(smallLimit) }

// open decodes and verifies a stored chunk of at most limit bytes: by its
// seal if it has one, and by the hash of its plaintext if hash is set or
// it has none.
func open(id ID, blob []byte, limit int, hash bool) ([]byte, error) {
	body, sum, sealed, err := unseal(blob)
	var data []byte
	if err == nil {
		data, err = decode(body, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w: %w", id, ErrCorrupt, err)
	}
	if sealed && plainSum(id, data) != sum {
		return nil, fmt.Errorf("chunk %s: checksum mismatch: %w", id, ErrCorrupt)
	}
	if (hash || !sealed) && Sum(data) != id {
		return nil, fmt.Errorf("chunk %s: hash mismatch: %w", id, ErrCorrupt)
	}
	return data, nil
}

// Sync makes every chunk stored before the call durable.
func (s *Store) Sync(ctx context.Context) error {
	for _, be := range s.backends() {
		if sy, ok := be.(Syncer); ok {
			if err := sy.Sync(ctx); err != nil {
				return fmt.Errorf("sync chunks: %w", err)
			}
		}
	}
	return nil
}

// Verify reads back and re-hashes every stored chunk. It calls fn for each
// one, one call at a time, with nil or the fault (wrapping ErrCorrupt for bad
// contents). It returns an error only if it could not walk the backends.
func (s *Store) Verify(ctx context.Context, fn func(id ID, err error)) error {
	var mu sync.Mutex
	for _, be := range s.backends() {
		if c, ok := be.(Cache); ok {
			be = c.Origin() // check what is stored, not local copies
		}
		ids := make(chan ID)
		var wg sync.WaitGroup
		for range cap(s.work) {
			wg.Go(func() {
				for id := range ids {
					blob, err := be.Get(ctx, id)
					if err == nil {
						_, err = open(id, blob, math.MaxInt, true)
					} else {
						err = fmt.Errorf("get chunk %s: %w", id, err)
					}
					mu.Lock()
					fn(id, err)
					mu.Unlock()
				}
			})
		}
		err := be.List(ctx, func(id ID, _ Info) error {
			select {
			case ids <- id:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		close(ids)
		wg.Wait()
		if err != nil {
			return fmt.Errorf("verify chunks: %w", err)
		}
	}
	return nil
}

// Sweep deletes every chunk for which keep returns false and that was
// neither put nor touched within grace of now, and returns how many it
// deleted and their stored bytes. keep is called from Sweep's goroutine.
//
// A Writer that deduplicates against an old chunk touches it, and Sweep
// checks the time again right before deleting; yet a file written while
// Sweep runs is safe only if its chunks are younger than grace, or keep
// already knows them.
func (s *Store) Sweep(ctx context.Context, keep func(ID) bool, grace time.Duration) (deleted int, bytes int64, err error) {
	cutoff := time.Now().Add(-grace)
	for _, be := range s.backends() {
		var doomed []ID
		err := be.List(ctx, func(id ID, info Info) error {
			if info.ModTime.Before(cutoff) && !keep(id) {
				doomed = append(doomed, id)
			}
			return nil
		})
		if err != nil {
			return deleted, bytes, fmt.Errorf("sweep chunks: %w", err)
		}
		for _, id := range doomed {
			info, err := be.Stat(ctx, id)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			} else if err != nil {
				return deleted, bytes, fmt.Errorf("sweep chunk %s: %w", id, err)
			}
			if !info.ModTime.Before(cutoff) {
				continue
			}
			if err := be.Delete(ctx, id); err != nil {
				return deleted, bytes, fmt.Errorf("sweep chunk %s: %w", id, err)
			}
			deleted++
			bytes += info.Size
		}
	}
	return deleted, bytes, nil
}
