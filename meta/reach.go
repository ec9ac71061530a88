package meta

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/strata-data/strata/chunk"
)

// Reachable walks every node and chunk ref below root. visit is called for
// each node hash first; returning false skips that node (already seen), so
// one visit set shared across commits makes a full mark cost O(distinct
// nodes). onChunk gets every chunk ref with the path of its file. A missing
// or corrupt node is passed to onErr when it is set (and the walk goes on),
// otherwise it stops the walk.
func (db *DB) Reachable(root Hash, visit func(Hash) bool, onChunk func(path string, r chunk.Ref), onErr func(where string, err error)) error {
	if visit == nil {
		seen := make(map[Hash]bool)
		visit = func(h Hash) bool {
			if seen[h] {
				return false
			}
			seen[h] = true
			return true
		}
	}
	var walk func(h Hash, dir string) error
	fail := func(where string, err error) error {
		if onErr == nil {
			return err
		}
		onErr(where, err)
		return nil
	}
	walk = func(h Hash, dir string) error {
		if !visit(h) {
			return nil
		}
		n, err := db.verifiedNode(h)
		if err != nil {
			return fail(dir, err)
		}
		for _, c := range n.children {
			if !c.hash.IsZero() {
				if err := walk(c.hash, dir); err != nil {
					return err
				}
			}
		}
		for i := range n.entries {
			e := &n.entries[i]
			p := joinPath(dir, e.Name)
			switch {
			case e.Type == TypeDir:
				if err := walk(e.Tree, p); err != nil {
					return err
				}
			case !e.List.IsZero():
				if !visit(e.List) {
					continue
				}
				ln, err := db.verifiedNode(e.List)
				if err != nil {
					if err := fail(p, err); err != nil {
						return err
					}
					continue
				}
				for _, r := range ln.refs {
					onChunk(p, r)
				}
			default:
				for _, r := range e.Chunks {
					onChunk(p, r)
				}
			}
		}
		return nil
	}
	return walk(root, "/")
}

// verifiedNode loads a node from disk and checks its hash.
func (db *DB) verifiedNode(h Hash) (*node, error) {
	buf, err := db.get(append([]byte{famNode}, h[:]...))
	if err != nil {
		return nil, fmt.Errorf("tree node %s: %w", h, err)
	}
	if Hash(sha256.Sum256(buf)) != h {
		return nil, fmt.Errorf("tree node %s: content does not match its hash", h)
	}
	return decodeNode(buf)
}

// SweepNodes deletes every tree node that no commit or pin reaches, nor a
// tree ApplyTree (BuildTree) made at or after keepBuiltSince: such a tree
// is on its way to the pin or commit that will own it. mark is called
// with each root and a visit function to call for every reachable node
// (returning false when already seen). Writers wait while it runs.
func (db *DB) SweepNodes(keepBuiltSince time.Time, mark func(root Hash, visit func(Hash) bool) error) (int, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	live := map[Hash]bool{EmptyTree: true}
	visit := func(h Hash) bool {
		if live[h] {
			return false
		}
		live[h] = true
		return true
	}
	if err := db.AllCommits(func(c *Commit) error { return mark(c.Root, visit) }); err != nil {
		return 0, err
	}
	if err := db.Pins(func(_ string, root Hash) error { return mark(root, visit) }); err != nil {
		return 0, err
	}
	if err := db.builtSince(keepBuiltSince, func(root Hash) error { return mark(root, visit) }); err != nil {
		return 0, err
	}
	b := db.pdb.NewBatch()
	n := 0
	err := db.scan([]byte{famNode}, false, func(k, _ []byte) (bool, error) {
		var h Hash
		copy(h[:], k[1:])
		if !live[h] {
			b.Delete(k, nil)
			n++
		}
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	return n, b.Commit(pebble.Sync)
}
