package store

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/meta"
)

// Store is an open data directory. It is safe for concurrent use.
type Store struct {
	Meta   *meta.DB
	Chunks *chunk.Store
	dir    string
	loc    Location

	// writes is held shared by every write from its first chunk to its
	// metadata commit, and exclusively by gc, so gc in this process never
	// deletes a chunk that a running write has stored but not yet
	// committed, whatever the grace period.
	writes sync.RWMutex
}

// Options tune Open.
type Options struct {
	Meta meta.Options
	// Chunks says where large chunks live: "" or "dir" for DATA/chunks,
	// or s3://BUCKET/PREFIX (see chunk/s3.ParseURL). Small chunks always
	// stay in the metadata database. A data dir records its backend when
	// it is created and refuses to open with another.
	Chunks string
	// S3 overrides for an s3:// Chunks URL ("" keeps the URL's or the
	// environment's value).
	S3Endpoint string
	S3Region   string
	// S3CacheBytes bounds the local cache (DATA/cache) of chunks read from
	// S3. 0: 4 GiB; < 0: no cache.
	S3CacheBytes int64
}

// Open opens or initializes the data directory dir.
func Open(dir string, o Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	db, err := meta.Open(filepath.Join(dir, "meta"), o.Meta)
	if err != nil {
		return nil, err
	}
	if err := checkFormat(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	var cfg chunk.Config
	// A new data dir (no chunk config yet) may choose its chunk backend.
	// Its chunk config is written only once the backend has opened and
	// been recorded, so a first start that fails (a wrong secret, an
	// unreachable bucket) leaves it new, free to choose again.
	fresh := false
	switch err := db.GetConfig("chunk", &cfg); {
	case errors.Is(err, fs.ErrNotExist):
		fresh = true
		if cfg, err = chunk.NewConfig(); err != nil {
			db.Close()
			return nil, err
		}
	case err != nil:
		db.Close()
		return nil, fmt.Errorf("read chunk config: %w", err)
	}
	large, loc, err := openLarge(dir, db, o, fresh)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	if fresh {
		if err := db.SetConfig("chunk", cfg); err != nil {
			db.Close()
			return nil, err
		}
	}
	cs, err := chunk.NewStore(cfg, db.Chunks(), large)
	if err != nil {
		db.Close()
		return nil, err
	}
	loc.SmallLimit = cfg.SmallLimit
	return &Store{Meta: db, Chunks: cs, dir: dir, loc: loc}, nil
}

// Format is the version of the data directory's layout. A daemon refuses
// a directory of another format rather than misread it.
const Format = 2

func checkFormat(db *meta.DB) error {
	var f int
	switch err := db.GetConfig("format", &f); {
	case err == nil && f == Format:
		return nil
	case err == nil:
		return fmt.Errorf("format %d, this strata reads format %d: %w", f, Format, meta.ErrInvalid)
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	var cfg chunk.Config
	if db.GetConfig("chunk", &cfg) == nil {
		return fmt.Errorf("written by an earlier development version (no format record); move it aside and start afresh: %w", meta.ErrInvalid)
	}
	return db.SetConfig("format", Format)
}

// Close closes the metadata database.
func (s *Store) Close() error { return s.Meta.Close() }

// Location says where the chunks live.
func (s *Store) Location() Location { return s.loc }

// Dir is the data directory.
func (s *Store) Dir() string { return s.dir }

// PutOptions describe a write.
type PutOptions struct {
	Append bool
	Mode   uint32
	Commit meta.CommitOptions
}

// ingestFile chunks r into a file entry. With appendTo set, the new bytes
// continue that file.
func (s *Store) ingestFile(ctx context.Context, r io.Reader, appendTo []chunk.Ref) (*chunk.Writer, error) {
	var w *chunk.Writer
	if appendTo != nil {
		var err error
		if w, err = s.Chunks.NewAppendWriter(ctx, appendTo); err != nil {
			return nil, err
		}
	} else {
		w = s.Chunks.NewWriter(ctx)
	}
	if _, err := w.ReadFrom(r); err != nil {
		w.Abort()
		return nil, err
	}
	return w, nil
}

func fileChange(p string, w *chunk.Writer, mode uint32) meta.Change {
	return meta.Change{Op: meta.OpPut, Path: p, Entry: meta.Entry{Type: meta.TypeFile, Mode: mode, Size: w.Size(), Chunks: w.Refs()}}
}

// PutFile writes one file to a branch (into its open commit, or as a
// one-off commit) from r.
func (s *Store) PutFile(ctx context.Context, repo, branch, p string, r io.Reader, o PutOptions) (*meta.WriteResult, error) {
	p, err := meta.CleanPath(p)
	if err != nil {
		return nil, err
	}
	if p == "/" {
		return nil, fmt.Errorf("put: a file needs a path, not the root: %w", meta.ErrInvalid)
	}
	if _, err := s.Meta.Branch(repo, branch); err != nil {
		return nil, err
	}
	var prior []chunk.Ref
	if o.Append {
		if c, err := s.Meta.Resolve(repo, branch); err == nil {
			if e, err := s.Meta.Lookup(c.Root, p); err == nil && e.Type == meta.TypeFile {
				if prior, err = s.Meta.Refs(e); err != nil {
					return nil, err
				}
				if prior == nil {
					prior = []chunk.Ref{}
				}
				if o.Mode == 0 {
					o.Mode = e.Mode
				}
			}
		}
	}
	s.writes.RLock()
	defer s.writes.RUnlock()
	w, err := s.ingestFile(ctx, r, prior)
	if err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return s.write(ctx, repo, branch, []meta.Change{fileChange(p, w, o.Mode)}, o.Commit)
}

// write makes chunks durable, then commits the changes.
func (s *Store) write(ctx context.Context, repo, branch string, cs []meta.Change, o meta.CommitOptions) (*meta.WriteResult, error) {
	if err := s.Chunks.Sync(ctx); err != nil {
		return nil, err
	}
	return s.Meta.Write(repo, branch, cs, o)
}

// Delete removes a path (recursively) from a branch.
func (s *Store) Delete(ctx context.Context, repo, branch, p string, o meta.CommitOptions) (*meta.WriteResult, error) {
	p, err := meta.CleanPath(p)
	if err != nil {
		return nil, err
	}
	c, err := s.Meta.Resolve(repo, branch)
	if err != nil {
		return nil, err
	}
	if p == "/" {
		es, err := s.Meta.ReadDir(c.Root)
		if err != nil {
			return nil, err
		}
		var cs []meta.Change
		for _, e := range es {
			cs = append(cs, meta.Change{Op: meta.OpDelete, Path: "/" + e.Name})
		}
		return s.write(ctx, repo, branch, cs, o)
	}
	if _, err := s.Meta.Lookup(c.Root, p); err != nil {
		return nil, err
	}
	return s.write(ctx, repo, branch, []meta.Change{{Op: meta.OpDelete, Path: p}}, o)
}

// PutTar writes every regular file and directory of a tar stream under
// dir on a branch, as one atomic change. Files are ingested concurrently;
// progress, if set, is called with the bytes read so far.
func (s *Store) PutTar(ctx context.Context, repo, branch, dir string, r io.Reader, o PutOptions, progress func(files int, bytes int64)) (*meta.WriteResult, error) {
	dir, err := meta.CleanPath(dir)
	if err != nil {
		return nil, err
	}
	if _, err := s.Meta.Branch(repo, branch); err != nil {
		return nil, err
	}
	s.writes.RLock()
	defer s.writes.RUnlock()
	changes, _, err := s.readTar(ctx, repo, dir, r, progress)
	if err != nil {
		return nil, err
	}
	return s.write(ctx, repo, branch, changes, o.Commit)
}

// IngestTar stores every regular file and directory of a tar stream as a
// new tree, without committing it, like IngestDir (the same caveat about
// gc applies), and returns the tree's root and its file count. Links and
// devices are skipped, as by PutTar; unchanged-since records are refused.
func (s *Store) IngestTar(ctx context.Context, r io.Reader) (meta.Hash, int, error) {
	s.writes.RLock()
	defer s.writes.RUnlock()
	changes, files, err := s.readTar(ctx, "", "/", r, nil)
	if err != nil {
		return meta.Hash{}, 0, err
	}
	sort.SliceStable(changes, func(i, j int) bool { return changes[i].Path < changes[j].Path })
	if err := s.Chunks.Sync(ctx); err != nil {
		return meta.Hash{}, 0, err
	}
	root, err := s.Meta.BuildTree(changes)
	return root, files, err
}

// readTar stores the files of a tar stream under dir and returns their
// changes; s.writes must be held. repo is where unchanged-since records
// refer to ("" refuses them).
func (s *Store) readTar(ctx context.Context, repo, dir string, r io.Reader, progress func(files int, bytes int64)) ([]meta.Change, int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tr := tar.NewReader(r)
	var (
		mu      sync.Mutex
		changes []meta.Change
		first   error
		wg      sync.WaitGroup
		sem     = make(chan struct{}, 32)
		files   int
		total   int64
		roots   = map[string]meta.Hash{}
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
			cancel()
		}
		mu.Unlock()
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fail(fmt.Errorf("read tar stream: %v: %w", err, meta.ErrInvalid))
			break
		}
		name := strings.TrimPrefix(filepath.ToSlash(h.Name), "./")
		if name == "" || name == "." {
			continue // the archive's own root
		}
		p, err := meta.CleanPath(joinTar(dir, name))
		if err != nil {
			fail(fmt.Errorf("tar entry %q: %w", h.Name, err))
			break
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if p != "/" {
				mu.Lock()
				changes = append(changes, meta.Change{Op: meta.OpMkdir, Path: p})
				mu.Unlock()
			}
			continue
		case tar.TypeReg:
		default:
			continue // links, devices: not stored
		}
		mode := uint32(0o644)
		if h.Mode&0o111 != 0 {
			mode = 0o755
		}
		if from := h.PAXRecords[PAXUnchangedSince]; from != "" {
			if repo == "" {
				fail(fmt.Errorf("tar entry %q: an unchanged-since record needs a repo: %w", h.Name, meta.ErrInvalid))
				break
			}
			// The client vouches that this file has not changed since it
			// put it in commit from: reuse that entry, send no bytes.
			size, _ := strconv.ParseInt(h.PAXRecords[PAXSize], 10, 64)
			e, err := s.unchangedEntry(repo, from, p, size, roots)
			if err != nil {
				fail(err)
				break
			}
			e.Mode = mode
			files++
			total += size
			mu.Lock()
			changes = append(changes, meta.Change{Op: meta.OpPut, Path: p, Entry: *e})
			mu.Unlock()
			continue
		}
		w, err := s.ingestFile(ctx, tr, nil)
		if err != nil {
			fail(fmt.Errorf("%s: %w", p, err))
			break
		}
		files++
		total += h.Size
		if progress != nil {
			progress(files, total)
		}
		mu.Lock()
		i := len(changes)
		changes = append(changes, meta.Change{})
		mu.Unlock()
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := w.Close(); err != nil {
				fail(fmt.Errorf("%s: %w", p, err))
				return
			}
			mu.Lock()
			changes[i] = fileChange(p, w, mode)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, 0, first
	}
	return changes, files, nil
}

// PAXUnchangedSince is the tar PAX record with which a client says a file
// is unchanged since it put it in the named commit (of the same repo, at
// the same path): the entry is reused and the tar entry carries no bytes.
// If that commit or path is gone the put fails with ErrStale and the
// client sends the file again.
const PAXUnchangedSince = "STRATA.unchanged-since"

// PAXSize carries the file's size in an unchanged-since entry (whose tar
// size is 0).
const PAXSize = "STRATA.size"

// ErrStale: a write refers to state that no longer exists.
var ErrStale = errors.New("stale reference")

func (s *Store) unchangedEntry(repo, commit, p string, size int64, roots map[string]meta.Hash) (*meta.Entry, error) {
	root, ok := roots[commit]
	var err error
	if !ok {
		var c *meta.Commit
		if c, err = s.Meta.Commit(repo, commit); err == nil {
			if c.State == meta.StateOpen {
				// An open commit may have changed since the client put
				// the file; only finished commits vouch for content.
				err = fmt.Errorf("commit %s is still open", commit)
			} else {
				root = c.Root
				roots[commit] = root
			}
		}
	}
	if err == nil {
		var e *meta.Entry
		if e, err = s.Meta.Lookup(root, p); err == nil && e.Type == meta.TypeFile && e.Size == size {
			return e, nil
		}
	}
	return nil, fmt.Errorf("%s: not found as a %d-byte file in commit %s (%v): %w", p, size, commit, err, ErrStale)
}

func joinTar(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// File is an open file of a commit.
type File struct {
	Commit *meta.Commit
	Path   string
	Entry  *meta.Entry
	*chunk.Reader
}

// Stat resolves repo@ref:path.
func (s *Store) Stat(repo, ref, p string) (*meta.Commit, *meta.Entry, string, error) {
	p, err := meta.CleanPath(p)
	if err != nil {
		return nil, nil, "", err
	}
	c, err := s.Meta.ResolveFinished(repo, ref)
	if err != nil {
		return nil, nil, "", err
	}
	e, err := s.Meta.Lookup(c.Root, p)
	if err != nil {
		return nil, nil, "", fmt.Errorf("%s@%s:%w", repo, ref, err)
	}
	return c, e, p, nil
}

// Open opens a file of repo@ref for reading.
func (s *Store) Open(ctx context.Context, repo, ref, p string) (*File, error) {
	c, e, p, err := s.Stat(repo, ref, p)
	if err != nil {
		return nil, err
	}
	if e.Type == meta.TypeDir {
		return nil, fmt.Errorf("%s@%s:%s: %w", repo, ref, p, meta.ErrIsDir)
	}
	refs, err := s.Meta.Refs(e)
	if err != nil {
		return nil, err
	}
	return &File{Commit: c, Path: p, Entry: e, Reader: s.Chunks.NewReader(ctx, refs)}, nil
}

// WriteTar streams the files below p of repo@ref as a tar archive, with
// paths relative to p. Small files are read ahead by several goroutines
// (their chunks come from different places on disk), and written in walk
// order.
func (s *Store) WriteTar(ctx context.Context, repo, ref, p string, w io.Writer) error {
	c, _, p, err := s.Stat(repo, ref, p)
	if err != nil {
		return err
	}
	mtime := c.Started
	if c.Finished != nil {
		mtime = *c.Finished
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type item struct {
		name string
		e    meta.Entry
		data []byte
		err  error
		done chan struct{}
	}
	// queue's capacity bounds the read-ahead: at most that many small
	// files (each at most readAheadFile bytes) are held at once.
	queue := make(chan *item, 64)
	work := make(chan *item, 64)
	walkErr := make(chan error, 1)
	go func() {
		defer close(queue)
		defer close(work)
		walkErr <- s.Meta.Walk(c.Root, p, func(fp string, fe *meta.Entry) error {
			it := &item{name: relPath(p, fp, fe), e: *fe, done: make(chan struct{})}
			small := fe.Type == meta.TypeFile && fe.Size <= readAheadFile
			select {
			case queue <- it:
			case <-ctx.Done():
				return ctx.Err()
			}
			if small {
				work <- it
			} else {
				close(it.done)
			}
			return nil
		})
	}()
	var wg sync.WaitGroup
	for range readAheadProcs {
		wg.Go(func() {
			for it := range work {
				it.data, it.err = s.readSmall(ctx, &it.e)
				close(it.done)
			}
		})
	}
	defer wg.Wait()
	defer cancel()
	tw := tar.NewWriter(w)
	for it := range queue {
		<-it.done
		if it.err != nil {
			return it.err
		}
		if it.e.Type == meta.TypeDir {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: it.name + "/", Mode: int64(it.e.Mode), ModTime: mtime}); err != nil {
				return err
			}
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: it.name, Mode: int64(it.e.Mode), Size: it.e.Size, ModTime: mtime}); err != nil {
			return err
		}
		if it.data != nil {
			if _, err := tw.Write(it.data); err != nil {
				return err
			}
			continue
		}
		refs, err := s.Meta.Refs(&it.e)
		if err != nil {
			return err
		}
		if _, err := s.Chunks.NewReader(ctx, refs).WriteTo(tw); err != nil {
			return err
		}
	}
	if err := <-walkErr; err != nil {
		return err
	}
	return tw.Close()
}

const (
	readAheadFile  = 4 << 20
	readAheadProcs = 6
)

// readSmall reads a whole (small) file into memory.
func (s *Store) readSmall(ctx context.Context, e *meta.Entry) ([]byte, error) {
	refs, err := s.Meta.Refs(e)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, e.Size)
	for _, r := range refs {
		b, err := s.Chunks.Get(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

func relPath(base, p string, e *meta.Entry) string {
	if base == p {
		return e.Name
	}
	if base == "/" {
		return p[1:]
	}
	return p[len(base)+1:]
}

// Fault is one problem fsck found.
type Fault struct {
	Where string `json:"where"`
	Error string `json:"error"`
}

// Fsck re-hashes every stored chunk and checks that every commit's tree
// nodes exist and every chunk they reference is present. It calls fn for
// each fault and returns the number of commits and chunks checked.
func (s *Store) Fsck(ctx context.Context, fn func(Fault)) (commits, chunks int, err error) {
	present := make(map[chunk.ID]bool)
	err = s.Chunks.Verify(ctx, func(id chunk.ID, err error) {
		chunks++
		if err != nil {
			fn(Fault{Where: "chunk " + id.String(), Error: err.Error()})
			return
		}
		present[id] = true
	})
	if err != nil {
		return 0, chunks, err
	}
	seen := make(map[meta.Hash]bool)
	visit := func(h meta.Hash) bool {
		if seen[h] {
			return false
		}
		seen[h] = true
		return true
	}
	err = s.Meta.AllCommits(func(c *meta.Commit) error {
		commits++
		return s.Meta.Reachable(c.Root, visit, func(p string, r chunk.Ref) {
			if !present[r.ID] {
				fn(Fault{Where: fmt.Sprintf("%s@%s:%s", c.Repo, c.ID, p), Error: fmt.Sprintf("chunk %s is missing or corrupt", r.ID)})
			}
		}, func(where string, err error) {
			fn(Fault{Where: fmt.Sprintf("%s@%s:%s", c.Repo, c.ID, where), Error: err.Error()})
		})
	})
	return commits, chunks, err
}

// GCResult reports what gc removed.
type GCResult struct {
	Chunks int   `json:"chunks"`
	Bytes  int64 `json:"bytes"`
	Nodes  int   `json:"nodes"`
}

// DefaultGrace is how old an unreferenced chunk must be before gc deletes
// it, so a put that is still running never loses a chunk it just wrote.
const DefaultGrace = time.Hour

// GC deletes chunks and tree nodes that no commit (open or finished) or
// pin references. Chunks younger than grace are kept, and so are trees
// built (meta.DB.BuildTree) less than grace ago, with their chunks.
func (s *Store) GC(ctx context.Context, grace time.Duration) (*GCResult, error) {
	s.writes.Lock()
	defer s.writes.Unlock()
	live := make(map[chunk.ID]struct{})
	// Trees built within the grace period (a datum's output or view on
	// its way to a pin, a job's merged output on its way to a commit) are
	// kept with their chunks, as young chunks are.
	nodes, err := s.Meta.SweepNodes(time.Now().Add(-grace), func(root meta.Hash, visit func(meta.Hash) bool) error {
		return s.Meta.Reachable(root, visit, func(_ string, r chunk.Ref) { live[r.ID] = struct{}{} }, nil)
	})
	if err != nil {
		return nil, err
	}
	n, b, err := s.Chunks.Sweep(ctx, func(id chunk.ID) bool { _, ok := live[id]; return ok }, grace)
	if err != nil {
		return nil, err
	}
	return &GCResult{Chunks: n, Bytes: b, Nodes: nodes}, nil
}
