package chunk

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"
)

// seqGetter records, per chunk, whether it was fetched as part of a
// sequential read.
type seqGetter struct {
	g   Getter
	mu  sync.Mutex
	seq map[ID]bool
}

func (s *seqGetter) Get(ctx context.Context, ref Ref) ([]byte, error) {
	s.mu.Lock()
	s.seq[ref.ID] = isSequential(ctx)
	s.mu.Unlock()
	return s.g.Get(ctx, ref)
}

// TestReaderSequential: the chunk a read needs is fetched as an ordinary
// read; the chunks fetched ahead of it, and by Prefetch, as a sequential
// one (which Dir reads with O_DIRECT).
func TestReaderSequential(t *testing.T) {
	ctx := context.Background()
	s, refs := sixChunks(t, 31)
	g := &seqGetter{g: s, seq: map[ID]bool{}}
	r := NewReaderFrom(ctx, g, refs)
	r.Keep(len(refs))
	r.Prefetch(5 * 4 << 10)
	if _, err := io.ReadAll(r); err != nil { // chunk 0, then 1 and 2 ahead, ...
		t.Fatal(err)
	}
	for i, want := range []bool{false, true, true, true, true, true} {
		if got, ok := g.seq[refs[i].ID]; !ok || got != want {
			t.Errorf("chunk %d: fetched %v, sequential %v; want sequential %v", i, ok, got, want)
		}
	}
}

// gatedGetter counts fetches per chunk and holds each until gate is
// closed.
type gatedGetter struct {
	g    Getter
	gate chan struct{}
	mu   sync.Mutex
	n    map[ID]int
}

func (g *gatedGetter) Get(ctx context.Context, ref Ref) ([]byte, error) {
	g.mu.Lock()
	g.n[ref.ID]++
	g.mu.Unlock()
	<-g.gate
	return g.g.Get(ctx, ref)
}

// TestReaderEvict: a Reader over its keep count drops chunks it has read
// before chunks fetched ahead and not read yet, and never a fetch still
// pending; either would read a chunk twice.
func TestReaderEvict(t *testing.T) {
	ctx := context.Background()
	const size = 4 << 10
	s, refs := sixChunks(t, 37)
	read := func(r *Reader, i int) {
		t.Helper()
		b, done, err := r.Slice(int64(i)*size, size)
		if err != nil || len(b) != size || b[1] != byte(i*37+1) {
			t.Fatalf("chunk %d: %d bytes, %v", i, len(b), err)
		}
		done()
	}
	check := func(g *gatedGetter, refs []Ref) {
		t.Helper()
		for i, ref := range refs {
			if n := g.n[ref.ID]; n != 1 {
				t.Errorf("chunk %d fetched %d times, want once", i, n)
			}
		}
	}

	// Fetched ahead and unread: kept over the chunks already read.
	open := make(chan struct{})
	close(open)
	g := &gatedGetter{g: s, gate: open, n: map[ID]int{}}
	r := NewReaderFrom(ctx, g, refs)
	r.Keep(3)
	read(r, 0)
	r.Prefetch(1 * size)
	r.Prefetch(2 * size)
	read(r, 1)
	r.Prefetch(3 * size) // evicts 0
	r.Prefetch(4 * size) // evicts 1, not 2 (least recently used, unread)
	for i := 2; i < 5; i++ {
		read(r, i)
	}
	check(g, refs[:5])

	// Pending fetches past the keep count are all kept.
	g = &gatedGetter{g: s, gate: make(chan struct{}), n: map[ID]int{}}
	r = NewReaderFrom(ctx, g, refs)
	r.Keep(2)
	for i := range refs {
		r.Prefetch(int64(i) * size)
	}
	close(g.gate)
	for i := range refs {
		read(r, i)
	}
	check(g, refs)
}

// leaseGetter leases every chunk it returns, counting releases per chunk.
type leaseGetter struct {
	g        Getter
	gate     chan struct{} // closed: Gets go through
	mu       sync.Mutex
	released map[ID]int
}

func (g *leaseGetter) Get(ctx context.Context, ref Ref) ([]byte, error) {
	<-g.gate
	data, err := g.g.Get(ctx, ref)
	if l := leaseOf(ctx); l != nil && err == nil {
		l.release = func() {
			g.mu.Lock()
			g.released[ref.ID]++
			g.mu.Unlock()
		}
	}
	return data, err
}

func (g *leaseGetter) count(id ID) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.released[id]
}

// TestReaderReuse: in Reuse mode a chunk's buffer is released once, when
// the Reader no longer keeps it and no Slice holds it; Close releases the
// rest, pending fetches when they end.
func TestReaderReuse(t *testing.T) {
	ctx := context.Background()
	const size = 4 << 10
	s, refs := sixChunks(t, 41)
	open := make(chan struct{})
	close(open)
	g := &leaseGetter{g: s, gate: open, released: map[ID]int{}}
	r := NewReaderFrom(ctx, g, refs)
	r.Reuse()
	r.Keep(2)
	slice := func(i int) func() {
		t.Helper()
		b, done, err := r.Slice(int64(i)*size, size)
		if err != nil || len(b) != size || b[2] != byte(i*41+2) {
			t.Fatalf("chunk %d: %d bytes, %v", i, len(b), err)
		}
		return done
	}
	done0 := slice(0)
	for i := 1; i < 4; i++ {
		slice(i)()
	}
	if n := g.count(refs[0].ID); n != 0 {
		t.Fatalf("chunk 0 released %d times while a Slice holds it", n)
	}
	done0()
	if n := g.count(refs[0].ID); n != 1 {
		t.Fatalf("chunk 0 released %d times after its Slice is done, want once", n)
	}
	if n := g.count(refs[1].ID); n != 1 {
		t.Fatalf("chunk 1, evicted, released %d times, want once", n)
	}
	buf := make([]byte, 2*size)
	if _, err := r.ReadAt(buf, 3*size); err != nil { // chunks 3 and 4, copied
		t.Fatal(err)
	}
	g.gate = make(chan struct{})
	r.Prefetch(5 * size) // pending at Close
	r.Close()
	close(g.gate)
	for i, ref := range refs {
		deadline := time.Now().Add(5 * time.Second)
		for g.count(ref.ID) == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if n := g.count(ref.ID); n != 1 {
			t.Errorf("after Close: chunk %d released %d times, want once", i, n)
		}
	}
}

// TestLeaseAliased: a Store keeps a lease only if the plaintext it
// returns lies in the leased blob.
func TestLeaseAliased(t *testing.T) {
	blob := make([]byte, 100)
	for _, tc := range []struct {
		data []byte
		keep bool
	}{
		{blob[1:96], true},
		{blob[99:], true},
		{make([]byte, 95), false},
		{nil, false},
	} {
		l := &lease{}
		dropped := false
		l.release = func() { dropped = true }
		l.keepIfAliased(tc.data, blob)
		if dropped == tc.keep {
			t.Errorf("data of %d bytes: kept %v, want %v", len(tc.data), !dropped, tc.keep)
		}
	}
}

// sixChunks stores six chunks of 4 KiB, byte j of chunk i being
// i*mul+j, and returns the store and their refs.
func sixChunks(t *testing.T, mul int) (*Store, []Ref) {
	t.Helper()
	mem := NewMem()
	s, err := NewStore(Config{Polynomial: 0x3DA3358B4DC173, Hash: "sha256", Codec: "none", MinSize: 4 << 10, MaxSize: 16 << 10, SmallLimit: 1 << 10}, mem, mem)
	if err != nil {
		t.Fatal(err)
	}
	var refs []Ref
	for i := range 6 {
		b := make([]byte, 4<<10)
		for j := range b {
			b[j] = byte(i*mul + j)
		}
		ref, err := s.Put(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, ref)
	}
	return s, refs
}
