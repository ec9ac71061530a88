package pipeline

import (
	"sync"

	"github.com/strata-data/strata/meta"
)

// SlotTable is the Trees of a workers' mount (fs/mount.Trees): each
// worker's name and the view of the datum it runs now. It is safe for
// concurrent use; the mount reads it while workers switch datums.
type SlotTable struct {
	mu    sync.RWMutex
	roots map[string]meta.Hash
}

func NewSlotTable() *SlotTable { return &SlotTable{roots: make(map[string]meta.Hash)} }

func (t *SlotTable) Tree(name string) (meta.Hash, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	h, ok := t.roots[name]
	return h, ok
}

func (t *SlotTable) Names() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]string, 0, len(t.roots))
	for n := range t.roots {
		out = append(out, n)
	}
	return out
}

// Set shows root for name.
func (t *SlotTable) Set(name string, root meta.Hash) {
	t.mu.Lock()
	t.roots[name] = root
	t.mu.Unlock()
}

// Drop removes name.
func (t *SlotTable) Drop(name string) {
	t.mu.Lock()
	delete(t.roots, name)
	t.mu.Unlock()
}
