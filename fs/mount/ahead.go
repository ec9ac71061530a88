package mount

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/meta"
)

// Reading the files of a directory one after another in name order (cat
// dir/*, cp -r, tar, a loop over sorted(os.listdir(d))) waits on one
// chunk fetch per file, and a cold fetch is a random read of the disk:
// of the metadata database's blob files for a small chunk, of the chunk
// directory for a larger one. A directory whose files are read in name
// order has the chunks of the next small files fetched ahead, a few at a
// time, into a bounded cache that the files' readers take them from.
// Only files whose reads reach the mount count: a pass over files the
// page cache holds fetches nothing.
const (
	aheadRun      = 3       // files read in name order before fetching ahead
	aheadFiles    = 64      // how far ahead of the file read
	aheadFileMax  = 1 << 20 // larger files are left to their own read-ahead
	aheadBytes    = 32 << 20
	aheadFetchers = 4 // fetches in flight
)

// aheadCache holds chunks fetched ahead of their files' reads. It is the
// Getter of every file's chunk.Reader: a chunk it holds is handed over
// (and forgotten), any other is fetched from g.
type aheadCache struct {
	g      chunk.Getter
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{}

	mu    sync.Mutex
	m     map[chunk.ID]*aheadChunk
	order []chunk.ID // oldest first, for eviction; may name chunks gone from m
	bytes int64

	fetched, hits atomic.Int64 // for tests and the curious
}

type aheadChunk struct {
	size int64
	done chan struct{}
	data []byte
	err  error
}

func newAheadCache(g chunk.Getter) *aheadCache {
	ctx, cancel := context.WithCancel(context.Background())
	return &aheadCache{g: g, ctx: ctx, cancel: cancel, sem: make(chan struct{}, aheadFetchers), m: make(map[chunk.ID]*aheadChunk)}
}

// Get returns the chunk, from the cache if it was fetched ahead.
func (a *aheadCache) Get(ctx context.Context, ref chunk.Ref) ([]byte, error) {
	a.mu.Lock()
	c := a.m[ref.ID]
	if c != nil {
		a.dropLocked(ref.ID, c)
	}
	a.mu.Unlock()
	if c != nil {
		select {
		case <-c.done:
			if c.err == nil {
				a.hits.Add(1)
				return c.data, nil
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return a.g.Get(ctx, ref)
}

func (a *aheadCache) dropLocked(id chunk.ID, c *aheadChunk) {
	delete(a.m, id)
	a.bytes -= c.size
}

// fetch starts fetching refs not held yet, evicting the oldest chunks
// held to stay within aheadBytes.
func (a *aheadCache) fetch(refs []chunk.Ref) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx.Err() != nil {
		return
	}
	for _, ref := range refs {
		if _, ok := a.m[ref.ID]; ok {
			continue
		}
		size := int64(ref.Size)
		for a.bytes+size > aheadBytes && len(a.order) > 0 {
			id := a.order[0]
			a.order = a.order[1:]
			if c := a.m[id]; c != nil {
				a.dropLocked(id, c)
			}
		}
		if a.bytes+size > aheadBytes {
			return
		}
		c := &aheadChunk{size: size, done: make(chan struct{})}
		a.m[ref.ID] = c
		a.order = append(a.order, ref.ID)
		a.bytes += size
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			defer close(c.done)
			select {
			case a.sem <- struct{}{}:
			case <-a.ctx.Done():
				c.err = a.ctx.Err()
				return
			}
			c.data, c.err = a.g.Get(a.ctx, ref)
			<-a.sem
			if c.err == nil {
				a.fetched.Add(1)
			}
		}()
	}
	if len(a.order) > 4*len(a.m)+64 {
		a.order = slices.DeleteFunc(a.order, func(id chunk.ID) bool { return a.m[id] == nil })
	}
}

// stop cancels the fetches and waits for them to end, before the store
// they read is closed.
func (a *aheadCache) stop() {
	a.mu.Lock()
	a.cancel()
	a.mu.Unlock()
	a.wg.Wait()
}

// dirAhead follows the reads of a directory's files, to fetch ahead once
// they come in name order.
type dirAhead struct {
	mu      sync.Mutex
	last    string       // the name read last
	run     int          // files read in name order up to last
	entries []meta.Entry // the directory's entries while a run lasts
	tree    meta.Hash    // the tree entries were read from
	read    time.Time    // when
	upto    int          // entries before this one are fetched ahead or passed
	done    bool         // every entry is: entries are dropped
}

// reading notes that the file name in d is being read (its first read
// reached the mount), and fetches ahead the chunks of the small files
// after it if the files are being read in name order.
func (d *dirNode) reading(name string) {
	a := &d.ahead
	a.mu.Lock()
	defer a.mu.Unlock()
	if name == a.last {
		return
	}
	if name < a.last {
		a.reset(name)
		return
	}
	a.last = name
	a.run++
	if a.run < aheadRun {
		return
	}
	stale := !d.top.pinned && time.Since(a.read) > d.top.timeout()
	if a.done && !stale {
		return
	}
	if a.entries == nil || stale {
		if err := a.load(d); err != nil {
			a.reset(name)
			return
		}
		if a.done {
			return // the same tree, read through already
		}
	}
	i, found := slices.BinarySearchFunc(a.entries, name, func(e meta.Entry, n string) int { return strings.Compare(e.Name, n) })
	if !found {
		return // a file being written, not in the tree yet
	}
	from, to := max(a.upto, i+1), min(len(a.entries), i+1+aheadFiles)
	if from >= to {
		return
	}
	a.upto = to
	var refs []chunk.Ref
	src := d.top.srv.view.Source()
	for k := from; k < to; k++ {
		e := &a.entries[k]
		if e.Type != meta.TypeFile || e.Size == 0 || e.Size > aheadFileMax {
			continue
		}
		rs, err := src.Refs(e)
		if err != nil {
			return
		}
		refs = append(refs, rs...)
	}
	if a.upto == len(a.entries) {
		a.entries, a.done = nil, true // kept no longer than needed
	}
	d.top.srv.ahead.fetch(refs)
}

// reset starts a new run at name.
func (a *dirAhead) reset(name string) {
	a.last, a.run = name, 1
	a.entries, a.tree, a.read, a.upto, a.done = nil, meta.Hash{}, time.Time{}, 0, false
}

// load reads the directory's entries: a pinned view's once, a live
// view's again when the tree has moved on.
func (a *dirAhead) load(d *dirNode) error {
	tree := d.tree
	if !d.top.pinned {
		e, _, err := d.self()
		if err != nil {
			return err
		}
		if !e.IsDir() {
			return meta.ErrNotDir
		}
		tree = e.Tree
	}
	a.read = time.Now()
	if tree == a.tree && (a.entries != nil || a.done) {
		return nil
	}
	es, err := d.top.srv.view.ReadTree(tree)
	if err != nil {
		return err
	}
	a.entries, a.tree, a.upto, a.done = es, tree, 0, false
	if a.entries == nil {
		a.entries = []meta.Entry{}
	}
	return nil
}
