package pipeline

import (
	"sync"

	"github.com/strata-data/strata/meta"
)

// slotTable is the Trees of the workers' mount: each worker's name and the
// view of the datum it runs now.
type slotTable struct {
	mu    sync.RWMutex
	roots map[string]meta.Hash
}

func newSlotTable() *slotTable { return &slotTable{roots: make(map[string]meta.Hash)} }

func (t *slotTable) Tree(name string) (meta.Hash, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	h, ok := t.roots[name]
	return h, ok
}

func (t *slotTable) Names() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]string, 0, len(t.roots))
	for n := range t.roots {
		out = append(out, n)
	}
	return out
}

func (t *slotTable) set(name string, root meta.Hash) {
	t.mu.Lock()
	t.roots[name] = root
	t.mu.Unlock()
}

func (t *slotTable) drop(name string) {
	t.mu.Lock()
	delete(t.roots, name)
	t.mu.Unlock()
}
