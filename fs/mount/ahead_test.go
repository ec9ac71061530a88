package mount

import (
	"context"
	"sync"
	"testing"

	"github.com/strata-data/strata/chunk"
)

// countGetter returns ref.Size bytes of ref.ID[0] and counts its calls.
type countGetter struct {
	mu    sync.Mutex
	calls map[chunk.ID]int
}

func (g *countGetter) Get(_ context.Context, ref chunk.Ref) ([]byte, error) {
	g.mu.Lock()
	g.calls[ref.ID]++
	g.mu.Unlock()
	b := make([]byte, ref.Size)
	for i := range b {
		b[i] = ref.ID[0]
	}
	return b, nil
}

// TestAheadCache: chunks fetched ahead are handed over once, then
// fetched again; past aheadBytes the oldest go first.
func TestAheadCache(t *testing.T) {
	g := &countGetter{calls: map[chunk.ID]int{}}
	a := newAheadCache(g)
	defer a.stop()
	var refs []chunk.Ref
	for i := range 40 { // 40 MiB, past the 32 MiB bound
		refs = append(refs, chunk.Ref{ID: chunk.ID{byte(i)}, Size: 1 << 20})
	}
	a.fetch(refs)
	a.fetch(refs[39:]) // held already: not fetched again
	a.mu.Lock()
	held, bytes := len(a.m), a.bytes
	a.mu.Unlock()
	if held != 32 || bytes != 32<<20 {
		t.Fatalf("holds %d chunks, %d bytes; want 32, 32 MiB", held, bytes)
	}
	ctx := context.Background()
	for _, i := range []int{0, 7, 8, 39, 39} {
		b, err := a.Get(ctx, refs[i])
		if err != nil || len(b) != 1<<20 || b[0] != byte(i) {
			t.Fatalf("chunk %d: %d bytes, %v", i, len(b), err)
		}
	}
	a.wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	// 0 and 7 were evicted (fetched ahead, dropped, fetched again); 8 was
	// taken from the cache; 39 from the cache, then fetched again.
	for i, want := range map[int]int{0: 2, 7: 2, 8: 1, 39: 2, 20: 1} {
		if got := g.calls[refs[i].ID]; got != want {
			t.Errorf("chunk %d fetched %d times, want %d", i, got, want)
		}
	}
	if got := a.hits.Load(); got != 2 {
		t.Errorf("%d hits, want 2", got)
	}
}
