package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Records are JSON values that layers above meta (pipelines, jobs, datums)
// keep in the same database, so that their changes can be made atomic
// with commits. Keys are (namespace, key); a scan walks keys of one
// namespace by prefix, in byte order.
const (
	famRecord = 'x' // x ns 0 key -> JSON record
	famPin    = 'p' // p name -> root hash that gc keeps alive
)

// RecordBatch collects record writes, pins and at most one commit
// finish, and applies them in one atomic batch.
type RecordBatch struct {
	db     *DB
	b      *pebble.Batch
	finish *finishReq
}

type finishReq struct {
	repo, id, failure string
	root              *Hash
}

// NewRecordBatch starts a batch.
func (db *DB) NewRecordBatch() *RecordBatch {
	return &RecordBatch{db: db, b: db.pdb.NewBatch()}
}

// Put sets ns/key to v as JSON.
func (rb *RecordBatch) Put(ns, key string, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("record %s/%s: %w", ns, key, err)
	}
	return rb.b.Set(recordKey(ns, key), buf, nil)
}

// Delete removes ns/key.
func (rb *RecordBatch) Delete(ns, key string) error {
	return rb.b.Delete(recordKey(ns, key), nil)
}

// DeletePrefix removes every key of ns that starts with prefix.
func (rb *RecordBatch) DeletePrefix(ns, prefix string) error {
	p := recordKey(ns, prefix)
	return rb.b.DeleteRange(p, prefixEnd(p), nil)
}

// Pin keeps the tree at root (its nodes and chunks) alive through gc
// under name until Unpin.
func (rb *RecordBatch) Pin(name string, root Hash) error {
	return rb.b.Set(key(famPin, name), root[:], nil)
}

// Unpin drops a pin.
func (rb *RecordBatch) Unpin(name string) error {
	return rb.b.Delete(key(famPin, name), nil)
}

// UnpinPrefix drops every pin whose name starts with prefix.
func (rb *RecordBatch) UnpinPrefix(prefix string) error {
	p := key(famPin, prefix)
	return rb.b.DeleteRange(p, prefixEnd(p), nil)
}

// FinishCommit makes the batch also finish the open commit repo@id, with
// its whole tree replaced by root when root is not nil, and failed with
// the given reason when failure is set.
func (rb *RecordBatch) FinishCommit(repo, id string, root *Hash, failure string) {
	rb.finish = &finishReq{repo: repo, id: id, root: root, failure: failure}
}

// Commit applies the batch. With sync false it is durable no later than
// the next synced write.
func (rb *RecordBatch) Commit(sync bool) (*Commit, error) {
	db := rb.db
	var c *Commit
	if f := rb.finish; f != nil {
		db.mu.Lock()
		defer db.mu.Unlock()
		var err error
		if c, err = db.Commit(f.repo, f.id); err != nil {
			return nil, err
		}
		if c.State != StateOpen {
			return nil, fmt.Errorf("commit %s@%s is already %s: %w", f.repo, c.ID, c.State, ErrConflict)
		}
		if f.root != nil {
			n, err := db.node(*f.root)
			if err != nil {
				return nil, fmt.Errorf("new tree of %s@%s: %w", f.repo, c.ID, err)
			}
			c.Root = *f.root
			c.Size, c.Files = nodeStats(n)
		}
		finish(c, f.failure)
		setJSON(rb.b, key(famCommit, c.Repo, c.ID), c)
		sync = true
	}
	opt := pebble.NoSync
	if sync {
		opt = pebble.Sync
	}
	if err := rb.b.Commit(opt); err != nil {
		return nil, fmt.Errorf("write metadata: %w", err)
	}
	if c != nil {
		db.notify()
	}
	return c, nil
}

// GetRecord reads ns/key into v; ErrNotExist if absent.
func (db *DB) GetRecord(ns, key string, v any) error {
	err := db.getJSON(recordKey(ns, key), v)
	if errors.Is(err, ErrNotExist) {
		return fmt.Errorf("%s %q: %w", ns, key, ErrNotExist)
	}
	return err
}

// ScanRecords calls fn with every key of ns starting with prefix (the key
// without ns) and its JSON, in key order (reverse if rev), until fn
// returns false or an error.
func (db *DB) ScanRecords(ns, prefix string, rev bool, fn func(key string, raw []byte) (bool, error)) error {
	p := recordKey(ns, prefix)
	skip := len(recordKey(ns, ""))
	return db.scan(p, rev, func(k, v []byte) (bool, error) {
		return fn(string(k[skip:]), v)
	})
}

// BuildTree writes a new tree made of cs applied to an empty directory
// (OpPut creates missing parents) and returns its root. The nodes are
// written without a sync: they become durable with the next synced write
// that refers to them, and gc removes them unless a commit or a pin
// refers to them.
func (db *DB) BuildTree(cs []Change) (Hash, error) {
	return db.ApplyTree(EmptyTree, cs)
}

// ApplyTree is BuildTree starting from the tree at base.
func (db *DB) ApplyTree(base Hash, cs []Change) (Hash, error) {
	// Under db.mu, as every writer: SweepNodes holds it from marking to
	// deleting, so a tree is either built before (and noted, so marked)
	// or after the sweep (and then writes every node it needs).
	db.mu.Lock()
	defer db.mu.Unlock()
	b := db.pdb.NewBatch()
	w := &treeWriter{db: db, b: b, nodes: make(map[Hash]*node)}
	root, err := w.applyChanges(base, cs)
	if err != nil {
		return Hash{}, err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return Hash{}, fmt.Errorf("write metadata: %w", err)
	}
	for h, n := range w.nodes {
		db.nodes.add(h, n)
	}
	db.noteBuilt(root)
	return root, nil
}

// builtKept bounds how long noteBuilt remembers a root, whatever gc's
// grace: an owner pins or commits a tree within seconds of building it,
// and a bound keeps the map to about an hour's builds.
const builtKept = time.Hour

func (db *DB) noteBuilt(root Hash) {
	if root == EmptyTree {
		return
	}
	now := time.Now()
	db.builtMu.Lock()
	defer db.builtMu.Unlock()
	if db.built == nil {
		db.built = make(map[Hash]time.Time)
	}
	if len(db.built) >= 4096 && len(db.built)%4096 == 0 {
		for h, t := range db.built {
			if now.Sub(t) > builtKept {
				delete(db.built, h)
			}
		}
	}
	db.built[root] = now
}

// builtSince calls fn with every root ApplyTree made at or after t, and
// within builtKept: the roots are kept in memory, for that long at most.
func (db *DB) builtSince(t time.Time, fn func(Hash) error) error {
	if oldest := time.Now().Add(-builtKept); t.Before(oldest) {
		t = oldest
	}
	db.builtMu.Lock()
	var roots []Hash
	for h, at := range db.built {
		if !at.Before(t) {
			roots = append(roots, h)
		}
	}
	db.builtMu.Unlock()
	for _, h := range roots {
		if err := fn(h); err != nil {
			return err
		}
	}
	return nil
}

// TreeStats returns the total size and file count of the tree at root.
func (db *DB) TreeStats(root Hash) (size, files int64, err error) {
	n, err := db.node(root)
	if err != nil {
		return 0, 0, err
	}
	size, files = nodeStats(n)
	return size, files, nil
}

// Pins calls fn for every pinned root.
func (db *DB) Pins(fn func(name string, root Hash) error) error {
	return db.scan([]byte{famPin}, false, func(k, v []byte) (bool, error) {
		var h Hash
		if len(v) != len(h) {
			return false, fmt.Errorf("pin %q: bad value: %w", k[1:], ErrInvalid)
		}
		copy(h[:], v)
		return true, fn(string(k[1:]), h)
	})
}

func recordKey(ns, k string) []byte { return key(famRecord, ns, k) }
