package s3

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/strata-data/strata/chunk"
)

// Cached keeps chunks read from (or written to) S3 in a bounded local
// directory so repeated reads stay off the network. Files are evicted
// least recently used first (by mtime, bumped on each hit) once the
// directory exceeds its size. Chunks are immutable (the ID is the hash of
// the content), so a cached copy never goes stale; Delete drops it.
type Cached struct {
	*Backend
	dir    string
	copies *chunk.Dir // the files, laid out like a data dir's chunks
	max    int64
	fills  chan struct{} // bounds the copies written behind Gets

	mu      sync.Mutex
	size    int64
	filling map[chunk.ID]*bool // copies being written behind Gets: dropped since?
}

var (
	_ chunk.Backend = (*Cached)(nil)
	_ chunk.Toucher = (*Cached)(nil)
	_ chunk.Cache   = (*Cached)(nil)
)

// Evict drops the local copy of id, if any; the next Get reads S3.
func (c *Cached) Evict(ctx context.Context, id chunk.ID) error {
	c.forget(id)
	return nil
}

// forget drops the local copy of id, including one being written.
func (c *Cached) forget(id chunk.ID) {
	c.mu.Lock()
	if d := c.filling[id]; d != nil {
		*d = true
	}
	c.mu.Unlock()
	c.drop(c.path(id))
}

// Origin is the bucket behind the cache.
func (c *Cached) Origin() chunk.Backend { return c.Backend }

// NewCached wraps b with a cache of at most maxBytes under dir.
func NewCached(b *Backend, dir string, maxBytes int64) (*Cached, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	copies, err := chunk.NewDir(dir)
	if err != nil {
		return nil, err
	}
	c := &Cached{Backend: b, dir: dir, copies: copies, max: maxBytes, fills: make(chan struct{}, maxFills), filling: map[chunk.ID]*bool{}}
	for _, f := range c.files() {
		c.size += f.size
	}
	c.mu.Lock()
	c.evict()
	c.mu.Unlock()
	return c, nil
}

func (c *Cached) path(id chunk.ID) string { return c.copies.Path(id) }

func (c *Cached) Get(ctx context.Context, id chunk.ID) ([]byte, error) {
	p := c.path(id)
	if data, err := os.ReadFile(p); err == nil {
		now := time.Now()
		os.Chtimes(p, now, now)
		return data, nil
	}
	data, err := c.Backend.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	c.fill(id, data)
	return data, nil
}

// maxFills is how many copies of chunks read from S3 may be written to
// the cache at once, behind the reads.
const maxFills = 8

// fill keeps a copy of a chunk just read from S3 without making the read
// wait for the local write: a cold sequential read would otherwise write
// each chunk to the disk before it could use it. When maxFills copies are
// being written already, the chunk is not kept (a later read keeps it).
func (c *Cached) fill(id chunk.ID, data []byte) {
	c.mu.Lock()
	if c.filling[id] != nil {
		c.mu.Unlock()
		return
	}
	select {
	case c.fills <- struct{}{}:
	default:
		c.mu.Unlock()
		return
	}
	dropped := new(bool)
	c.filling[id] = dropped
	c.mu.Unlock()
	go func() {
		c.add(id, data)
		c.mu.Lock()
		delete(c.filling, id)
		drop := *dropped
		c.mu.Unlock()
		if drop { // deleted or evicted while being written
			c.drop(c.path(id))
		}
		<-c.fills
	}()
}

func (c *Cached) Put(ctx context.Context, id chunk.ID, data []byte) error {
	if err := c.Backend.Put(ctx, id, data); err != nil {
		return err
	}
	c.add(id, data)
	return nil
}

func (c *Cached) Delete(ctx context.Context, id chunk.ID) error {
	c.forget(id)
	return c.Backend.Delete(ctx, id)
}

// add keeps a copy of a chunk. It is not synced: a copy a crash damaged
// fails the Store's hash check, which evicts it (chunk.Cache).
func (c *Cached) add(id chunk.ID, data []byte) {
	if int64(len(data)) > c.max/4 {
		return
	}
	if _, err := os.Stat(c.path(id)); err == nil {
		return
	}
	if err := c.copies.Put(context.Background(), id, data); err != nil {
		return
	}
	c.mu.Lock()
	c.size += int64(len(data))
	c.evict()
	c.mu.Unlock()
}

func (c *Cached) drop(p string) {
	fi, err := os.Stat(p)
	if err != nil {
		return
	}
	if os.Remove(p) == nil {
		c.mu.Lock()
		c.size -= fi.Size()
		c.mu.Unlock()
	}
}

type cfile struct {
	path string
	size int64
	mod  time.Time
}

func (c *Cached) files() []cfile {
	var fs_ []cfile
	filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if filepath.Base(p)[0] == '.' { // temp file from a crash
			os.Remove(p)
			return nil
		}
		fs_ = append(fs_, cfile{p, fi.Size(), fi.ModTime()})
		return nil
	})
	return fs_
}

// evict removes least recently used files until the cache is at most 90%
// full. c.mu is held.
func (c *Cached) evict() {
	if c.size <= c.max {
		return
	}
	fl := c.files()
	sort.Slice(fl, func(i, j int) bool { return fl[i].mod.Before(fl[j].mod) })
	var total int64
	for _, f := range fl {
		total += f.size
	}
	for _, f := range fl {
		if total <= c.max*9/10 {
			break
		}
		if err := os.Remove(f.path); err == nil || errors.Is(err, fs.ErrNotExist) {
			total -= f.size
		}
	}
	c.size = total
}
