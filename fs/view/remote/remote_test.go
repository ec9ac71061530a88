package remote_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/fs/view"
	"github.com/strata-data/strata/fs/view/remote"
	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/store"
)

type env struct {
	st     *store.Store
	local  *view.FS
	remote *view.FS
	src    *remote.Source
	chunks *atomic.Int64 // chunk requests the daemon answered
	big    []byte
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b[:n]
}

func newEnv(t *testing.T, o remote.Options) *env {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := api.NewServer(st, slog.New(slog.NewTextHandler(io.Discard, nil)), func() api.Status { return api.Status{} })
	var chunks atomic.Int64
	h := srv.Handler("tok")
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.URL.Path) > len("/v1/chunks/") && r.URL.Path[:len("/v1/chunks/")] == "/v1/chunks/" {
			chunks.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	cl, err := api.NewClient(hs.URL, "tok")
	if err != nil {
		t.Fatal(err)
	}
	src := remote.New(cl, o)
	e := &env{st: st, local: view.New(st, view.Options{Idle: -1}), remote: view.NewReadOnly(src, view.Options{}), src: src, chunks: &chunks}
	for _, r := range []string{"data", "empty"} {
		if _, err := st.Meta.CreateRepo(r, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	e.big = randBytes(1, 12<<20)
	e.put(t, "/a.txt", []byte("hello\n"))
	e.put(t, "/dir/sub/big.bin", e.big)
	for i := range 50 {
		e.put(t, fmt.Sprintf("/many/%03d", i), []byte(fmt.Sprint(i)))
	}
	return e
}

func (e *env) put(t *testing.T, p string, data []byte) *meta.Commit {
	t.Helper()
	res, err := e.st.PutFile(context.Background(), "data", "main", p, bytes.NewReader(data), store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Commit
}

// walk lists every path below root with its mode, size and (for files)
// content.
func walk(t *testing.T, fsys fs.FS, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mtime := info.ModTime().UTC()
		if p == "." || p == view.HistoryDir {
			mtime = time.Time{} // when the FS was made
		}
		s := fmt.Sprintf("%v %d %v", info.Mode(), info.Size(), mtime)
		if info.Mode().IsRegular() {
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			s += fmt.Sprintf(" %x", b[:min(len(b), 64)])
		}
		out[p] = s
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}

// TestSameTree: a read-only tree over the API shows what the tree over the
// store shows.
func TestSameTree(t *testing.T) {
	e := newEnv(t, remote.Options{})
	c2 := e.put(t, "/a.txt", []byte("hello again\n"))
	if _, err := e.st.Meta.SetBranch("data", "dev", c2.Parent); err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{".", "data", "data@dev", "data@main^1", "data@" + c2.ID[:8], view.HistoryDir, view.HistoryDir + "/data/" + c2.ID} {
		want, got := walk(t, e.local, root), walk(t, e.remote, root)
		for p, w := range want {
			if got[p] != w {
				t.Errorf("%s through the API: %q, want %q", p, got[p], w)
			}
		}
		for p, g := range got {
			if _, ok := want[p]; !ok {
				t.Errorf("%s through the API: %q, not in the local tree", p, g)
			}
		}
	}
	b, err := fs.ReadFile(e.remote, "data/dir/sub/big.bin")
	if err != nil || !bytes.Equal(b, e.big) {
		t.Fatalf("big.bin through the API: %d bytes, %v", len(b), err)
	}
	for _, name := range []string{"nope", "data@nope", "nope@main", "data/nope", "data@main^99"} {
		if _, err := fs.Stat(e.remote, name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stat %s: %v, want not exist", name, err)
		}
	}
	if _, err := fs.Stat(e.remote, "data/a.txt/x"); !errors.Is(err, meta.ErrNotDir) {
		t.Errorf("stat through a file: %v", err)
	}
}

// TestReadOnly: a tree over the API takes no writes.
func TestReadOnly(t *testing.T) {
	e := newEnv(t, remote.Options{})
	ref, err := e.remote.Resolve("data@main")
	if err != nil {
		t.Fatal(err)
	}
	if ref.Writable() || !e.remote.ReadOnly() || e.remote.Store() != nil {
		t.Errorf("remote ref writable %v, tree read-only %v", ref.Writable(), e.remote.ReadOnly())
	}
	if _, err := e.remote.Writer("data", "main"); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("Writer: %v, want ErrPermission", err)
	}
	d := e.remote.NewDraft(nil)
	if _, err := d.WriteAt([]byte("x"), 0); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("draft write: %v, want ErrPermission", err)
	}
}

// TestBranchFollows: a new commit shows up once the TTL has passed.
func TestBranchFollows(t *testing.T) {
	e := newEnv(t, remote.Options{TTL: 50 * time.Millisecond})
	ref, _ := e.remote.Resolve("data@main")
	e.put(t, "/new.txt", []byte("new\n"))
	time.Sleep(60 * time.Millisecond)
	c, err := e.remote.Current(ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.remote.LookupTree(c.Root, "/new.txt"); err != nil {
		t.Errorf("new commit not seen: %v", err)
	}
}

// TestChunkCache: a chunk is fetched once while it stays in the cache, and
// the cache stays within its bound.
func TestChunkCache(t *testing.T) {
	e := newEnv(t, remote.Options{ChunkCache: 4 << 20})
	read := func() {
		b, err := fs.ReadFile(e.remote, "data/dir/sub/big.bin")
		if err != nil || !bytes.Equal(b, e.big) {
			t.Fatalf("read: %d bytes, %v", len(b), err)
		}
	}
	read()
	first := e.chunks.Load()
	if first < 2 {
		t.Fatalf("12 MiB in %d chunk requests; want several chunks", first)
	}
	if st := e.src.Stats(); st.ChunkBytes > 4<<20 {
		t.Errorf("cache holds %d bytes, bound 4 MiB", st.ChunkBytes)
	}
	// Small files: cached, so a second read asks for nothing.
	for range 2 {
		if _, err := fs.ReadFile(e.remote, "data/many/007"); err != nil {
			t.Fatal(err)
		}
	}
	before := e.chunks.Load()
	fs.ReadFile(e.remote, "data/many/007")
	if e.chunks.Load() != before {
		t.Errorf("a cached chunk was fetched again")
	}

	big := newEnv(t, remote.Options{})
	for range 2 {
		b, err := fs.ReadFile(big.remote, "data/dir/sub/big.bin")
		if err != nil || !bytes.Equal(b, big.big) {
			t.Fatal(err)
		}
	}
	if n, st := big.chunks.Load(), big.src.Stats(); n != st.ChunkMisses || st.ChunkHits == 0 {
		t.Errorf("with room for the file: %d chunk requests, stats %+v; want the second read from the cache", n, st)
	}
}

// objectStore stands in for the daemon's S3 bucket: it serves the stored
// form of chunks from the data dir's chunk directory.
type objectStore struct {
	dir   chunk.Backend
	gets  atomic.Int64
	fail  atomic.Bool
	flip  atomic.Bool // damage what it returns
	mu    sync.Mutex
	small []chunk.ID // asked for a chunk below the small limit
}

func (o *objectStore) Get(ctx context.Context, id chunk.ID) ([]byte, error) {
	o.gets.Add(1)
	if o.fail.Load() {
		return nil, errors.New("S3 refused")
	}
	b, err := o.dir.Get(ctx, id)
	if err != nil {
		o.mu.Lock()
		o.small = append(o.small, id)
		o.mu.Unlock()
		return nil, err
	}
	if o.flip.Load() {
		b[len(b)/2] ^= 1
	}
	return b, nil
}

// TestLargeDirect: with Options.Large, large chunks come from the object
// store and only small ones through the daemon; when the object store
// fails or returns damaged bytes, reads still succeed through the daemon,
// and the switch is logged once.
func TestLargeDirect(t *testing.T) {
	obj := &objectStore{}
	var logBuf syncBuffer
	e := newEnv(t, remote.Options{Large: obj, SmallLimit: chunk.DefaultSmallLimit, ChunkCache: -1,
		Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
	dir, err := chunk.NewDir(filepath.Join(e.st.Dir(), "chunks"))
	if err != nil {
		t.Fatal(err)
	}
	obj.dir = dir

	// The file's last chunk may be shorter than SmallLimit (cut points
	// follow the store's random polynomial); then it lives with the small
	// chunks and comes through the daemon.
	_, ent, _, err := e.st.Stat("data", "main", "/dir/sub/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	refs, err := e.st.Meta.Refs(ent)
	if err != nil {
		t.Fatal(err)
	}
	var small int64
	for _, r := range refs {
		if !chunk.IsLarge(r.Size, chunk.DefaultSmallLimit) {
			small++
		}
	}
	b, err := fs.ReadFile(e.remote, "data/dir/sub/big.bin")
	if err != nil || !bytes.Equal(b, e.big) {
		t.Fatalf("read big.bin: %d bytes, %v", len(b), err)
	}
	st := e.src.Stats()
	if n := e.chunks.Load(); n != small || st.DirectChunks < 2 || st.DaemonChunks != small {
		t.Errorf("12 MiB: %d chunk requests to the daemon, stats %+v; want every chunk from the object store but %d small ones", n, st, small)
	}
	if b, err := fs.ReadFile(e.remote, "data/a.txt"); err != nil || string(b) != "hello\n" {
		t.Fatalf("read a.txt: %q, %v", b, err)
	}
	if n := e.chunks.Load(); n != small+1 || len(obj.small) != 0 {
		t.Errorf("a small file: %d chunk requests to the daemon, object store asked for %d small chunks; want %d and 0", n, len(obj.small), small+1)
	}
	if logBuf.String() != "" {
		t.Errorf("logged while the object store worked: %s", logBuf.String())
	}

	obj.flip.Store(true)
	gets := obj.gets.Load()
	b, err = fs.ReadFile(e.remote, "data/dir/sub/big.bin")
	if err != nil || !bytes.Equal(b, e.big) {
		t.Fatalf("read big.bin with damaged objects: %d bytes, %v", len(b), err)
	}
	// Reads in flight when the first one failed may still try the object
	// store; later ones go to the daemon for a minute.
	if more := obj.gets.Load() - gets; more >= st.DirectChunks {
		t.Errorf("after a damaged object, %d more object store reads of %d chunks; want the rest through the daemon", more, st.DirectChunks)
	}
	if st := e.src.Stats(); st.DaemonChunks < 2 {
		t.Errorf("stats %+v: want the chunks through the daemon", st)
	}
	if n := strings.Count(logBuf.String(), "through the daemon"); n != 1 {
		t.Errorf("%d log lines about the switch, want 1:\n%s", n, logBuf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
