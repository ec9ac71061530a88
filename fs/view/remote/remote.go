// Package remote is a view.Source that reads a strata daemon through its
// HTTP API, so that a process other than the daemon, on the same machine or
// another one, can mount /pfs ('strata mount DIR --server URL').
//
// What a hash names never changes, so tree nodes, chunk lists, finished
// commits and chunks are cached, each in a bounded LRU: chunks up to
// Options.ChunkCache bytes (256 MiB by default), metadata up to
// Options.MetaCache. Every chunk is verified against its SHA-256 when it
// arrives, before it is cached. What moves (the repo list, a repo's
// branches and their heads) is asked for again once it is older than
// Options.TTL (250 ms), so a mount follows new commits as the daemon's own
// /pfs does, a fraction of a second later at most.
//
// # Chunks straight from the object store
//
// A daemon whose large chunks live in S3 says so (GET /v1/storage). Given
// Options.Large, a reader with its own access to that bucket, the Source
// fetches chunks of at least Options.SmallLimit bytes from it and decodes
// and verifies them with chunk.Decode, as the daemon's chunk store would;
// only metadata and small chunks (which live in the daemon's database)
// cross the daemon. If the object store fails a read, that chunk and those
// of the next minute come through the daemon instead, and the switch is
// logged.
package remote

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/fs/view"
	"github.com/strata-data/strata/meta"
)

// Defaults of Options.
const (
	DefaultChunkCache = 256 << 20
	DefaultMetaCache  = 64 << 20
	DefaultTTL        = 250 * time.Millisecond
	DefaultTimeout    = time.Minute
)

// Options tune New. The zero value is the default for every field.
type Options struct {
	// ChunkCache bounds the bytes of chunks kept in memory (default 256
	// MiB; < 0 keeps none).
	ChunkCache int64
	// MetaCache bounds the (estimated) bytes of directories, lookups and
	// chunk lists kept (default 64 MiB).
	MetaCache int64
	// TTL is how long the repo list and a repo's branches are reused
	// before the daemon is asked again (default 250 ms; < 0: always ask).
	TTL time.Duration
	// Timeout bounds each request to the daemon (default 1 minute).
	Timeout time.Duration

	// Large, if set, returns the stored form of large chunks (those of at
	// least SmallLimit bytes) straight from where the daemon keeps them;
	// nil: every chunk comes through the daemon.
	Large BlobGetter
	// SmallLimit is the daemon's chunk.Config.SmallLimit (api.Storage).
	SmallLimit int
	// Log gets a line when reads switch between Large and the daemon
	// (default slog.Default()).
	Log *slog.Logger
}

// BlobGetter returns a chunk's stored form (what chunk.Backend.Get
// returns), to be decoded and verified by chunk.Decode. It must be safe
// for concurrent use.
type BlobGetter interface {
	Get(ctx context.Context, id chunk.ID) ([]byte, error)
}

// largeBackoff is how long chunks come through the daemon after the
// object store failed a read.
const largeBackoff = time.Minute

// Source reads a daemon's repos, commits, trees and chunks through its API.
// It is safe for concurrent use.
type Source struct {
	c *api.Client
	o Options

	chunks  *chunkCache
	trees   *lru[meta.Hash, []meta.Entry]
	lookups *lru[lookupKey, meta.Entry]
	lists   *lru[meta.Hash, []chunk.Ref]
	commits *lru[commitKey, *meta.Commit] // finished commits

	mu       sync.Mutex
	repos    timed[[]*meta.Repo]
	branches map[string]timed[[]*meta.Branch]

	requests atomic.Int64
}

var _ view.Source = (*Source)(nil)

type lookupKey struct {
	root meta.Hash
	path string
}

type commitKey struct{ repo, id string }

type timed[T any] struct {
	v  T
	at time.Time
}

// New returns a Source reading through c.
func New(c *api.Client, o Options) *Source {
	if o.ChunkCache == 0 {
		o.ChunkCache = DefaultChunkCache
	}
	if o.MetaCache == 0 {
		o.MetaCache = DefaultMetaCache
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	s := &Source{
		c: c, o: o,
		trees:    newLRU[meta.Hash, []meta.Entry](o.MetaCache / 2),
		lookups:  newLRU[lookupKey, meta.Entry](o.MetaCache / 4),
		lists:    newLRU[meta.Hash, []chunk.Ref](o.MetaCache / 4),
		commits:  newLRU[commitKey, *meta.Commit](4 << 20),
		branches: make(map[string]timed[[]*meta.Branch]),
	}
	s.chunks = &chunkCache{s: s, lru: newLRU[chunk.ID, []byte](max(o.ChunkCache, 0)), inflight: make(map[chunk.ID]*fetch)}
	return s
}

// ctx bounds one request.
func (s *Source) ctx() (context.Context, context.CancelFunc) {
	s.requests.Add(1)
	return context.WithTimeout(context.Background(), s.o.Timeout)
}

func (s *Source) fresh(at time.Time) bool { return s.o.TTL > 0 && time.Since(at) < s.o.TTL }

// Repos lists the repos by name.
func (s *Source) Repos() ([]*meta.Repo, error) {
	s.mu.Lock()
	if c := s.repos; c.v != nil && s.fresh(c.at) {
		s.mu.Unlock()
		return c.v, nil
	}
	s.mu.Unlock()
	ctx, cancel := s.ctx()
	defer cancel()
	infos, err := s.c.Repos(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*meta.Repo, 0, len(infos))
	for _, r := range infos {
		if r.Repo != nil {
			out = append(out, r.Repo)
		}
	}
	slices.SortFunc(out, func(a, b *meta.Repo) int { return strings.Compare(a.Name, b.Name) })
	s.mu.Lock()
	s.repos = timed[[]*meta.Repo]{v: out, at: time.Now()}
	s.mu.Unlock()
	return out, nil
}

// Repo returns the repo called name.
func (s *Source) Repo(name string) (*meta.Repo, error) {
	rs, err := s.Repos()
	if err != nil {
		return nil, err
	}
	i, ok := slices.BinarySearchFunc(rs, name, func(r *meta.Repo, n string) int { return strings.Compare(r.Name, n) })
	if !ok {
		return nil, fmt.Errorf("repo %q: %w", name, meta.ErrNotExist)
	}
	r := *rs[i]
	return &r, nil
}

// Branches lists a repo's branches by name.
func (s *Source) Branches(repo string) ([]*meta.Branch, error) {
	s.mu.Lock()
	if c, ok := s.branches[repo]; ok && s.fresh(c.at) {
		s.mu.Unlock()
		return c.v, nil
	}
	s.mu.Unlock()
	ctx, cancel := s.ctx()
	defer cancel()
	bs, err := s.c.Branches(ctx, repo)
	if err != nil {
		if errors.Is(err, meta.ErrNotExist) {
			s.mu.Lock()
			delete(s.branches, repo)
			s.mu.Unlock()
		}
		return nil, err
	}
	out := make([]*meta.Branch, len(bs))
	for i := range bs {
		out[i] = &bs[i]
	}
	slices.SortFunc(out, func(a, b *meta.Branch) int { return strings.Compare(a.Name, b.Name) })
	s.mu.Lock()
	if len(s.branches) > 10000 {
		clear(s.branches)
	}
	s.branches[repo] = timed[[]*meta.Branch]{v: out, at: time.Now()}
	s.mu.Unlock()
	return out, nil
}

// Branch returns one branch.
func (s *Source) Branch(repo, name string) (*meta.Branch, error) {
	bs, err := s.Branches(repo)
	if err != nil {
		return nil, err
	}
	i, ok := slices.BinarySearchFunc(bs, name, func(b *meta.Branch, n string) int { return strings.Compare(b.Name, n) })
	if !ok {
		return nil, fmt.Errorf("branch %s@%s: %w", repo, name, meta.ErrNotExist)
	}
	b := *bs[i]
	return &b, nil
}

func finished(c *meta.Commit) bool { return c.State != meta.StateOpen }

func (s *Source) keep(c *meta.Commit) {
	if finished(c) {
		s.commits.add(commitKey{c.Repo, c.ID}, c, 1024+int64(len(c.Message)+len(c.Error)))
	}
}

func copyCommit(c *meta.Commit) *meta.Commit {
	cc := *c
	return &cc
}

// Commit returns a commit by full ID. Finished commits never change and
// are cached; open ones are asked for every time.
func (s *Source) Commit(repo, id string) (*meta.Commit, error) {
	if id == "" {
		return nil, fmt.Errorf("commit in repo %q: no ID: %w", repo, meta.ErrNotExist)
	}
	if c, ok := s.commits.get(commitKey{repo, id}); ok {
		return copyCommit(c), nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	c, err := s.c.Commit(ctx, repo, id)
	if err != nil {
		return nil, err
	}
	if c.ID != id {
		// The daemon resolved id as something else (a branch of that
		// name): there is no commit with this ID.
		return nil, fmt.Errorf("commit %s@%s: %w", repo, id, meta.ErrNotExist)
	}
	s.keep(c)
	return copyCommit(c), nil
}

// isID reports whether ref is a full commit ID.
func isID(ref string) bool {
	return len(ref) == 32 && strings.Trim(ref, "0123456789abcdef") == ""
}

// ResolveFinished resolves ref for reading, as meta.DB.ResolveFinished: the
// daemon's stat of the commit's root names the commit.
func (s *Source) ResolveFinished(repo, ref string) (*meta.Commit, error) {
	if isID(ref) {
		if c, ok := s.commits.get(commitKey{repo, ref}); ok {
			return copyCommit(c), nil
		}
	}
	ctx, cancel := s.ctx()
	fi, err := s.c.Stat(ctx, repo, ref, "/")
	cancel()
	if err != nil {
		return nil, err
	}
	return s.Commit(repo, fi.Commit)
}

// Commits lists a repo's commits newest first (limit <= 0: all).
func (s *Source) Commits(repo, branch string, limit int) ([]*meta.Commit, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	cs, err := s.c.Commits(ctx, repo, branch, limit)
	if err != nil {
		return nil, err
	}
	out := make([]*meta.Commit, len(cs))
	for i := range cs {
		out[i] = &cs[i]
		s.keep(copyCommit(&cs[i]))
	}
	return out, nil
}

// entryCost estimates the memory an entry takes.
func entryCost(e *meta.Entry) int64 { return 160 + int64(len(e.Name)) + 40*int64(len(e.Chunks)) }

// ReadDir returns the entries of the directory node h, sorted by name.
// The slice is shared with the cache: callers must not modify it.
func (s *Source) ReadDir(h meta.Hash) ([]meta.Entry, error) {
	if es, ok := s.trees.get(h); ok {
		return es, nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	es, err := s.c.Tree(ctx, h)
	if err != nil {
		return nil, err
	}
	cost := int64(64)
	for i := range es {
		cost += entryCost(&es[i])
	}
	s.trees.add(h, es, cost)
	return es, nil
}

// Lookup returns the entry at the clean path p below the directory node
// root. It walks the directories it has cached and asks the daemon for the
// rest of the path from the first one it has not.
func (s *Source) Lookup(root meta.Hash, p string) (*meta.Entry, error) {
	h := root
	rest := strings.TrimPrefix(p, "/")
	for rest != "" {
		es, ok := s.trees.get(h)
		if !ok {
			break
		}
		name, more, _ := strings.Cut(rest, "/")
		i, found := slices.BinarySearchFunc(es, name, func(e meta.Entry, n string) int { return strings.Compare(e.Name, n) })
		if !found {
			return nil, fmt.Errorf("%s: %w", p, meta.ErrNotExist)
		}
		if more == "" {
			e := es[i]
			return &e, nil
		}
		if !es[i].IsDir() {
			return nil, fmt.Errorf("%s: %w", p, meta.ErrNotDir)
		}
		h, rest = es[i].Tree, more
	}
	k := lookupKey{h, "/" + rest}
	if e, ok := s.lookups.get(k); ok {
		return &e, nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	e, err := s.c.LookupTree(ctx, h, k.path)
	if err != nil {
		if errors.Is(err, meta.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", p, meta.ErrNotExist)
		}
		if errors.Is(err, meta.ErrNotDir) {
			return nil, fmt.Errorf("%s: %w", p, meta.ErrNotDir)
		}
		return nil, err
	}
	s.lookups.add(k, *e, entryCost(e)+int64(len(k.path)))
	return e, nil
}

// Refs returns a file entry's chunk refs.
func (s *Source) Refs(e *meta.Entry) ([]chunk.Ref, error) {
	if e.List.IsZero() {
		return e.Chunks, nil
	}
	refs, ok := s.lists.get(e.List)
	if !ok {
		ctx, cancel := s.ctx()
		defer cancel()
		var err error
		if refs, err = s.c.ChunkList(ctx, e.List); err != nil {
			return nil, err
		}
		s.lists.add(e.List, refs, 64+40*int64(len(refs)))
	}
	var size int64
	for _, r := range refs {
		size += int64(r.Size)
	}
	if size != e.Size {
		return nil, fmt.Errorf("chunk list %s: %d bytes of chunks for a file of %d: %w", e.List, size, e.Size, chunk.ErrCorrupt)
	}
	return refs, nil
}

// ContentHash identifies a file's content: its chunk list's hash, or a
// hash of its inline refs. (Only comparisons within this process use it.)
func (s *Source) ContentHash(e *meta.Entry) (meta.Hash, error) {
	switch {
	case e.Type == meta.TypeDir:
		return e.Tree, nil
	case !e.List.IsZero():
		return e.List, nil
	}
	h := sha256.New()
	h.Write([]byte("strata inline refs\x00"))
	var b [4]byte
	for _, r := range e.Chunks {
		h.Write(r.ID[:])
		binary.BigEndian.PutUint32(b[:], r.Size)
		h.Write(b[:])
	}
	return meta.Hash(h.Sum(nil)), nil
}

// Chunks fetches chunks from the daemon through the chunk cache.
func (s *Source) Chunks() chunk.Getter { return s.chunks }

// Stats counts what the Source did.
type Stats struct {
	Requests    int64 // requests sent to the daemon
	ChunkHits   int64 // chunks served from the cache
	ChunkMisses int64 // chunks fetched
	ChunkBytes  int64 // bytes of chunks cached now
	// Of the chunks fetched: straight from the object store (Options.Large)
	// and through the daemon.
	DirectChunks int64
	DaemonChunks int64
}

// Stats returns counts so far.
func (s *Source) Stats() Stats {
	return Stats{
		Requests:    s.requests.Load(),
		ChunkHits:   s.chunks.hits.Load(),
		ChunkMisses: s.chunks.misses.Load(),
		ChunkBytes:  s.chunks.lru.bytes(),

		DirectChunks: s.chunks.direct.Load(),
		DaemonChunks: s.chunks.daemon.Load(),
	}
}

// chunkCache fetches chunks, one request per chunk however many readers
// want it at once, and keeps the most recently used ones.
type chunkCache struct {
	s   *Source
	lru *lru[chunk.ID, []byte]

	mu       sync.Mutex
	inflight map[chunk.ID]*fetch

	hits, misses   atomic.Int64
	direct, daemon atomic.Int64

	// largeOff is the time (UnixNano) until which large chunks come
	// through the daemon, after the object store failed.
	largeOff atomic.Int64
}

type fetch struct {
	done chan struct{}
	data []byte
	err  error
}

// Get returns the verified plaintext of ref's chunk. The slice is shared:
// callers must not modify it.
func (c *chunkCache) Get(ctx context.Context, ref chunk.Ref) ([]byte, error) {
	for {
		if data, ok := c.lru.get(ref.ID); ok && len(data) == int(ref.Size) {
			c.hits.Add(1)
			return data, nil
		}
		c.mu.Lock()
		f, waiting := c.inflight[ref.ID]
		if !waiting {
			f = &fetch{done: make(chan struct{})}
			c.inflight[ref.ID] = f
		}
		c.mu.Unlock()
		if !waiting {
			c.misses.Add(1)
			f.data, f.err = c.get(ctx, ref)
			if f.err == nil {
				c.lru.add(ref.ID, f.data, int64(len(f.data)))
			}
			c.mu.Lock()
			delete(c.inflight, ref.ID)
			c.mu.Unlock()
			close(f.done)
			return f.data, f.err
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if f.err == nil && len(f.data) == int(ref.Size) {
			c.hits.Add(1)
			return f.data, nil
		}
		if f.err != nil && !errors.Is(f.err, context.Canceled) && !errors.Is(f.err, context.DeadlineExceeded) {
			return nil, f.err
		}
		// The fetcher gave up (its reader went away): try again.
	}
}

func (c *chunkCache) get(ctx context.Context, ref chunk.Ref) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.s.o.Timeout)
	defer cancel()
	if c.s.o.Large != nil && chunk.IsLarge(ref.Size, c.s.o.SmallLimit) && time.Now().UnixNano() >= c.largeOff.Load() {
		data, err := c.getLarge(ctx, ref)
		if err == nil {
			c.direct.Add(1)
			return data, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("get chunk %s: %w", ref.ID, err)
		}
		until := time.Now().Add(largeBackoff).UnixNano()
		if old := c.largeOff.Load(); old < time.Now().UnixNano() && c.largeOff.CompareAndSwap(old, until) {
			c.s.o.Log.Warn("reading large chunks through the daemon for a minute: the object store failed", "chunk", ref.ID.String(), "err", err)
		}
	}
	c.s.requests.Add(1)
	data, err := c.s.c.Chunk(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("get chunk %s: %w", ref.ID, err)
	}
	c.daemon.Add(1)
	return data, nil
}

// getLarge fetches a chunk's stored form from Options.Large and decodes
// and verifies it.
func (c *chunkCache) getLarge(ctx context.Context, ref chunk.Ref) ([]byte, error) {
	blob, err := c.s.o.Large.Get(ctx, ref.ID)
	if err != nil {
		return nil, err
	}
	return chunk.Decode(ref, blob)
}
