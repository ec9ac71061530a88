package meta

import (
	"bytes"
	"container/list"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
)

// Key families. Every key starts with one byte naming its family; names
// inside keys are separated by 0x00, which ValidName never allows.
const (
	famRepo   = 'r' // r repo -> Repo
	famBranch = 'b' // b repo 0 branch -> Branch
	famCommit = 'c' // c repo 0 id -> Commit
	famSeq    = 's' // s repo 0 seq(8, big endian) -> id
	famNode   = 'n' // n hash -> encoded tree node
	famChunk  = 'k' // k id -> small chunk (see ChunkBackend)
	famCTime  = 'K' // K id -> the chunk's last write time
	famConfig = 'm' // m name -> store-wide settings
)

// Options tune the database.
type Options struct {
	// CacheBytes sizes Pebble's block cache (default 128 MiB).
	CacheBytes int64
	// NodeCache is how many decoded tree nodes stay cached (default 65536).
	NodeCache int
}

// DB is strata's metadata database. It is safe for concurrent use.
type DB struct {
	pdb *pebble.DB

	// mu serializes writers so read-modify-write sequences are atomic.
	mu sync.Mutex

	watchMu sync.Mutex
	watch   chan struct{}

	nodes *nodeCache

	// built holds the roots ApplyTree made and when: a tree built for a
	// pin or a commit is unreferenced until its owner writes that, and gc
	// (SweepNodes) treats recent ones as roots so that moment is safe.
	builtMu sync.Mutex
	built   map[Hash]time.Time
}

// Open opens (creating if needed) the database in dir.
func Open(dir string, o Options) (*DB, error) {
	if o.CacheBytes <= 0 {
		o.CacheBytes = 128 << 20
	}
	if o.NodeCache <= 0 {
		o.NodeCache = 65536
	}
	cache := pebble.NewCache(o.CacheBytes)
	defer cache.Unref()
	po := &pebble.Options{
		Cache:                 cache,
		MemTableSize:          64 << 20,
		L0CompactionThreshold: 4,
		LBaseMaxBytes:         512 << 20,
		Logger:                quietLogger{},
		// Value separation keeps small chunks (most of the bytes here) in
		// blob files that compactions reference instead of rewriting.
		FormatMajorVersion: pebble.FormatValueSeparation,
	}
	po.Experimental.EnableColumnarBlocks = func() bool { return true }
	po.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{Enabled: true, MinimumSize: 512, MaxBlobReferenceDepth: 10,
			RewriteMinimumAge: 10 * time.Minute, TargetGarbageRatio: 0.2}
	}
	for i := range po.Levels {
		// Bloom filters make the dedup check for a new chunk a memory lookup;
		// chunks are compressed already, and tree nodes are mostly hashes.
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		po.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
	}
	pdb, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("open metadata in %s: %w", dir, err)
	}
	db := &DB{pdb: pdb, watch: make(chan struct{}), nodes: newNodeCache(o.NodeCache)}
	// The empty directory is every new tree's root.
	b := db.pdb.NewBatch()
	db.putNode(b, &node{kind: kindLeaf})
	if err := b.Commit(pebble.Sync); err != nil {
		pdb.Close()
		return nil, fmt.Errorf("open metadata: %w", err)
	}
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error { return db.pdb.Close() }

// Pebble returns the underlying database (for the small-chunk backend and
// metrics).
func (db *DB) Pebble() *pebble.DB { return db.pdb }

// Changed returns a channel that is closed at the next committed change.
// Callers wait on it and then call Changed again.
func (db *DB) Changed() <-chan struct{} {
	db.watchMu.Lock()
	defer db.watchMu.Unlock()
	return db.watch
}

func (db *DB) notify() {
	db.watchMu.Lock()
	close(db.watch)
	db.watch = make(chan struct{})
	db.watchMu.Unlock()
}

// commit writes b with Sync and wakes watchers.
func (db *DB) commit(b *pebble.Batch) error {
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("write metadata: %w", err)
	}
	db.notify()
	return nil
}

// GetConfig reads a store-wide setting into v; ErrNotExist if unset.
func (db *DB) GetConfig(name string, v any) error {
	return db.getJSON(key(famConfig, name), v)
}

// SetConfig writes a store-wide setting.
func (db *DB) SetConfig(name string, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return db.pdb.Set(key(famConfig, name), buf, pebble.Sync)
}

func key(fam byte, parts ...string) []byte {
	n := 1
	for _, p := range parts {
		n += len(p) + 1
	}
	k := make([]byte, 1, n)
	k[0] = fam
	for i, p := range parts {
		if i > 0 {
			k = append(k, 0)
		}
		k = append(k, p...)
	}
	return k
}

// prefixEnd returns the first key after every key starting with p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

func (db *DB) get(k []byte) ([]byte, error) {
	v, closer, err := db.pdb.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotExist
	}
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, nil
}

func (db *DB) getJSON(k []byte, v any) error {
	buf, err := db.get(k)
	if err != nil {
		return err
	}
	return json.Unmarshal(buf, v)
}

func setJSON(b *pebble.Batch, k []byte, v any) {
	buf, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own record types are marshalled
	}
	b.Set(k, buf, nil)
}

// scan calls fn for every key with prefix p, in order (reverse if rev).
func (db *DB) scan(p []byte, rev bool, fn func(k, v []byte) (bool, error)) error {
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return err
	}
	defer it.Close()
	valid := it.First()
	if rev {
		valid = it.Last()
	}
	for ; valid; valid = step(it, rev) {
		more, err := fn(it.Key(), it.Value())
		if err != nil || !more {
			return err
		}
	}
	return it.Error()
}

func step(it *pebble.Iterator, rev bool) bool {
	if rev {
		return it.Prev()
	}
	return it.Next()
}

type quietLogger struct{}

// quietLogger drops Pebble's chatter but keeps its errors in the daemon's
// log (stderr).
func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "metadata: "+format+"\n", args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintln(os.Stderr, "metadata: fatal: "+msg)
	panic(msg)
}

// nodeCache is a small LRU of decoded, immutable tree nodes.
type nodeCache struct {
	mu  sync.Mutex
	max int
	ll  *list.List
	m   map[Hash]*list.Element
}

type cacheItem struct {
	h Hash
	n *node
}

func newNodeCache(max int) *nodeCache {
	return &nodeCache{max: max, ll: list.New(), m: make(map[Hash]*list.Element)}
}

func (c *nodeCache) get(h Hash) *node {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[h]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*cacheItem).n
	}
	return nil
}

func (c *nodeCache) add(h Hash, n *node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[h]; ok {
		return
	}
	c.m[h] = c.ll.PushFront(&cacheItem{h, n})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(*cacheItem).h)
	}
}
