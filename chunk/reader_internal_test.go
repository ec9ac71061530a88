package chunk

import (
	"context"
	"io"
	"sync"
	"testing"
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
	mem := NewMem()
	s, err := NewStore(Config{Polynomial: 0x3DA3358B4DC173, Hash: "sha256", Codec: "none", MinSize: 4 << 10, MaxSize: 16 << 10, SmallLimit: 1 << 10}, mem, mem)
	if err != nil {
		t.Fatal(err)
	}
	var refs []Ref
	for i := range 6 { // one chunk each: 4 KiB of distinct bytes
		b := make([]byte, 4<<10)
		for j := range b {
			b[j] = byte(i*31 + j)
		}
		ref, err := s.Put(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, ref)
	}
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
	mem := NewMem()
	s, err := NewStore(Config{Polynomial: 0x3DA3358B4DC173, Hash: "sha256", Codec: "none", MinSize: 4 << 10, MaxSize: 16 << 10, SmallLimit: 1 << 10}, mem, mem)
	if err != nil {
		t.Fatal(err)
	}
	const size = 4 << 10
	var refs []Ref
	for i := range 6 {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(i*37 + j)
		}
		ref, err := s.Put(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, ref)
	}
	read := func(r *Reader, i int) {
		t.Helper()
		b, err := r.Slice(int64(i)*size, size)
		if err != nil || len(b) != size || b[1] != byte(i*37+1) {
			t.Fatalf("chunk %d: %d bytes, %v", i, len(b), err)
		}
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
