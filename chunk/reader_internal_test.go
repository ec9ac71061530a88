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
