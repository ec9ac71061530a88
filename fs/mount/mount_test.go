package mount_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-data/strata/fs/mount"
	"github.com/strata-data/strata/fs/view"
	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/store"
)

// These tests mount a real FUSE file system. Each runs serially (no
// t.Parallel) under a watchdog: a hung request panics with every
// goroutine's stack instead of hanging the test binary.

// requireFuse skips without /dev/fuse, except in CI where it fails.
func requireFuse(t *testing.T) {
	t.Helper()
	_, err := os.Stat("/dev/fuse")
	if err == nil && os.Geteuid() != 0 {
		_, err = exec.LookPath("fusermount3")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("FUSE is required in CI (apt-get install -y fuse3): %v", err)
		}
		t.Skipf("no FUSE here: %v", err)
	}
}

// watchdog panics (printing every goroutine) if the test runs past d.
func watchdog(t *testing.T, d time.Duration) {
	t.Helper()
	name := t.Name()
	timer := time.AfterFunc(d, func() {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		panic(fmt.Sprintf("%s: still running after %v; goroutines:\n%s", name, d, buf))
	})
	t.Cleanup(func() { timer.Stop() })
}

type env struct {
	t   *testing.T
	st  *store.Store
	srv *mount.Server
	dir string
}

func newEnv(t *testing.T, o mount.Options) *env {
	t.Helper()
	requireFuse(t)
	watchdog(t, 3*time.Minute)
	base := t.TempDir()
	st, err := store.Open(filepath.Join(base, "data"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, dir: filepath.Join(base, "pfs")}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	if e.srv, err = mount.Mount(e.dir, st, o); err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		st.Close()
	})
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (e *env) path(p string) string { return filepath.Join(e.dir, p) }

func (e *env) repo(name, pipeline string) {
	e.t.Helper()
	if _, err := e.st.Meta.CreateRepo(name, "", pipeline); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) put(repo, branch, p string, data []byte) *meta.Commit {
	e.t.Helper()
	res, err := e.st.PutFile(context.Background(), repo, branch, p, bytes.NewReader(data), store.PutOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Commit
}

// finish finishes the branch's open commit, as 'strata commit finish'
// does through the API.
func (e *env) finish(repo, branch string) *meta.Commit {
	e.t.Helper()
	c, err := e.st.Meta.FinishCommit(repo, branch, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, ^seed))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func readDirNames(t *testing.T, dir string, sorted bool) []string {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	es, err := f.ReadDir(-1) // directory order
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	if sorted {
		slices.Sort(names)
	}
	return names
}

func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", what, err, want)
	}
}

func TestBrowse(t *testing.T) {
	e := newEnv(t, mount.Options{})
	e.repo("data", "")
	e.repo("empty", "")
	c1 := e.put("data", "main", "/a.txt", []byte("one\n"))
	c2 := e.put("data", "main", "/dir/b.txt", []byte("two\n"))
	if _, err := e.st.Meta.SetBranch("data", "dev", c1.ID); err != nil {
		t.Fatal(err)
	}
	c3 := e.put("data", "main", "/a.txt", []byte("three\n"))

	if got, want := readDirNames(t, e.dir, true), []string{"data", "data@dev", "data@main", "empty", "empty@main"}; !slices.Equal(got, want) {
		t.Errorf("ls /pfs = %v, want %v", got, want)
	}
	if got, want := readDirNames(t, e.path("data@main"), true), []string{"a.txt", "dir"}; !slices.Equal(got, want) {
		t.Errorf("ls data@main = %v, want %v", got, want)
	}
	if got := readDirNames(t, e.path("empty"), true); len(got) != 0 {
		t.Errorf("ls empty = %v, want nothing", got)
	}
	for p, want := range map[string]string{
		"data/a.txt":                                  "three\n",
		"data@main/dir/b.txt":                         "two\n",
		"data@dev/a.txt":                              "one\n",
		"data@" + c1.ID[:6] + "/a.txt":                "one\n",
		"data@" + c2.ID + "/a.txt":                    "one\n",
		"data@main^1/dir/b.txt":                       "two\n",
		"data@main^2/a.txt":                           "one\n",
		"data@main~1/a.txt":                           "one\n",
		view.HistoryDir + "/data/" + c3.ID + "/a.txt": "three\n",
	} {
		got, err := os.ReadFile(e.path(p))
		if err != nil || string(got) != want {
			t.Errorf("cat %s = %q, %v; want %q", p, got, err, want)
		}
	}
	// History: newest first in directory order, mtime the finish time.
	if got, want := readDirNames(t, e.path(view.HistoryDir+"/data"), false), []string{c3.ID, c2.ID, c1.ID}; !slices.Equal(got, want) {
		t.Errorf("ls %s/data = %v, want %v", view.HistoryDir, got, want)
	}
	fi, err := os.Stat(e.path(view.HistoryDir + "/data/" + c2.ID + "/dir/b.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(*c2.Finished) || fi.Size() != 4 || fi.Mode().Perm() != 0o644 {
		t.Errorf("stat in a commit: mtime %v size %d mode %v; want %v 4 0644", fi.ModTime(), fi.Size(), fi.Mode(), *c2.Finished)
	}
	for _, p := range []string{"nope", "data@nope", "data@main^9", "data/missing", "data@" + c1.ID[:6] + "/missing", view.HistoryDir + "/nope", view.HistoryDir + "/data/main"} {
		_, err := os.Stat(e.path(p))
		wantErrno(t, "stat "+p, err, syscall.ENOENT)
	}
	_, err = os.Stat(e.path("data@main^x"))
	wantErrno(t, "stat data@main^x", err, syscall.EINVAL)

	// A branch view follows the branch within a second.
	if _, err := os.ReadFile(e.path("data/new.txt")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("new.txt before it exists: %v", err)
	}
	e.put("data", "main", "/new.txt", []byte("new\n"))
	deadline := time.Now().Add(3 * time.Second)
	for {
		got, err := os.ReadFile(e.path("data/new.txt"))
		if err == nil && string(got) == "new\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("branch view does not show a new commit after 3s: %q, %v", got, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// a.txt changed content: a fresh read shows it, old node or not.
	e.put("data", "main", "/a.txt", []byte("four\n"))
	time.Sleep(1100 * time.Millisecond)
	if got, _ := os.ReadFile(e.path("data/a.txt")); string(got) != "four\n" {
		t.Errorf("data/a.txt after a new commit = %q, want four", got)
	}
}

func TestAmbiguousPrefix(t *testing.T) {
	e := newEnv(t, mount.Options{})
	e.repo("r", "")
	seen := map[string]bool{}
	prefix := ""
	for i := 0; prefix == "" && i < 5000; i++ {
		res, err := e.st.Meta.Write("r", "main", []meta.Change{{Op: meta.OpMkdir, Path: "/d"}}, meta.CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p := res.Commit.ID[:4]; seen[p] {
			prefix = p
		} else {
			seen[p] = true
		}
	}
	_, err := os.Stat(e.path("r@" + prefix))
	wantErrno(t, "stat r@"+prefix+" (ambiguous)", err, syscall.EINVAL)
}

// bigFixture puts a file of more than 20 MiB of random bytes, so it has
// many chunks (about 1.5 MiB each).
func bigFixture(e *env) ([]byte, *meta.Commit) {
	e.repo("data", "")
	big := randBytes(42, 24<<20+4321)
	c := e.put("data", "main", "/big.bin", big)
	return big, c
}

func TestReadOffsets(t *testing.T) {
	e := newEnv(t, mount.Options{})
	big, c := bigFixture(e)
	refs := fileRefs(t, e, c, "/big.bin")
	if len(refs) < 8 {
		t.Fatalf("fixture has %d chunks, want many", len(refs))
	}
	// Offsets around every chunk boundary.
	var offs []int64
	var end int64
	for _, r := range refs {
		end += int64(r.Size)
		offs = append(offs, end-1, end-4096, end-1, end+4095)
	}
	offs = append(offs, 0, 1, int64(len(big))-1, int64(len(big))-10)
	for _, p := range []string{"data/big.bin", "data@" + c.ID + "/big.bin"} {
		f, err := os.Open(e.path(p))
		if err != nil {
			t.Fatal(err)
		}
		for _, size := range []int{1, 100, 4096, 200 << 10, 3 << 20} {
			buf := make([]byte, size)
			for _, off := range offs {
				if off < 0 || off >= int64(len(big)) {
					continue
				}
				n, err := f.ReadAt(buf, off)
				want := big[off:min(off+int64(size), int64(len(big)))]
				if (err != nil && err != io.EOF) || !bytes.Equal(buf[:n], want) {
					t.Fatalf("%s: pread(%d, %d) = %d bytes, %v; mismatch", p, size, off, n, err)
				}
			}
		}
		// Sequential, through kernel read-ahead, from the start and
		// after a seek into the middle of a chunk.
		got, err := io.ReadAll(f)
		if err != nil || !bytes.Equal(got, big) {
			t.Fatalf("%s: sequential read: %d bytes, %v", p, len(got), err)
		}
		mid := int64(len(big)/2 + 12345)
		if _, err := f.Seek(mid, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		got, err = io.ReadAll(f)
		if err != nil || !bytes.Equal(got, big[mid:]) {
			t.Fatalf("%s: read after seek: %d bytes, %v", p, len(got), err)
		}
		f.Close()
	}
}

// TestReplyBeforeDone: a read answered from a chunk the Reader holds
// releases the chunk only after the kernel has the reply. The mount
// turns splicing off, and go-fuse then releases a result as soon as it
// has its bytes unless the result is vectored; a released buffer can
// be refilled with another chunk before the reply is written. With
// Done poisoning the reply's bytes, every early release shows.
func TestReplyBeforeDone(t *testing.T) {
	e := newEnv(t, mount.Options{})
	mount.PoisonDone(t)
	big, _ := bigFixture(e)
	f, err := os.Open(e.path("data/big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for _, off := range []int64{0, 100000, 5 << 20, int64(len(big)) - 5000} {
		n, err := f.ReadAt(buf, off)
		want := big[off:min(off+int64(len(buf)), int64(len(big)))]
		if (err != nil && err != io.EOF) || !bytes.Equal(buf[:n], want) {
			t.Fatalf("pread(%d, %d) = %d bytes, %v; mismatch", len(buf), off, n, err)
		}
	}
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("sequential read: %d bytes, %v", len(got), err)
	}
}

// TestFilesAhead: files read in name order have the chunks of the small
// files after them fetched ahead, and read back intact; files read in
// another order, or from the page cache, do not.
func TestFilesAhead(t *testing.T) {
	e := newEnv(t, mount.Options{})
	e.repo("data", "")
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	files := map[string][]byte{}
	var names []string
	for i := range 150 {
		name := fmt.Sprintf("f%03d", i)
		size := 3000 + 10*i
		if i == 70 {
			size = 3 << 20 // large: left to its own read-ahead
		}
		b := randBytes(uint64(1000+i), size)
		files[name], names = b, append(names, name)
		if err := tw.WriteHeader(&tar.Header{Name: "many/" + name, Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := e.st.PutTar(context.Background(), "data", "main", "/", &tb, store.PutOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	read := func(view string, order []string) {
		t.Helper()
		for _, n := range order {
			got, err := os.ReadFile(e.path(view + "/many/" + n))
			if err != nil || !bytes.Equal(got, files[n]) {
				t.Fatalf("%s/many/%s: %d bytes, %v; want %d", view, n, len(got), err, len(files[n]))
			}
		}
	}
	rev := slices.Clone(names)
	slices.Reverse(rev)
	read("data@"+res.Commit.ID, rev)
	if f, h := mount.AheadStats(e.srv); f != 0 || h != 0 {
		t.Fatalf("read in reverse: %d chunks fetched ahead, %d taken; want none", f, h)
	}
	// Another view: new inodes, nothing in the page cache. The first
	// files are read before the run is seen; the large one is not
	// fetched ahead.
	read("data", names)
	f, h := mount.AheadStats(e.srv)
	if want := int64(len(names) - 4); h != want || f != want {
		t.Errorf("read in order: %d chunks fetched ahead, %d taken; want %d of each", f, h, want)
	}
	// Again: the page cache answers, no read reaches the mount.
	read("data", names)
	if f2, h2 := mount.AheadStats(e.srv); f2 != f || h2 != h {
		t.Errorf("read again from the page cache: %d chunks fetched ahead, %d taken; want %d, %d", f2, h2, f, h)
	}
}

func fileRefs(t *testing.T, e *env, c *meta.Commit, p string) []chunkRef {
	t.Helper()
	ent, err := e.st.Meta.Lookup(c.Root, p)
	if err != nil {
		t.Fatal(err)
	}
	refs, err := e.st.Meta.Refs(ent)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]chunkRef, len(refs))
	for i, r := range refs {
		out[i] = chunkRef{Size: r.Size}
	}
	return out
}

type chunkRef struct{ Size uint32 }

func TestConcurrentReaders(t *testing.T) {
	e := newEnv(t, mount.Options{})
	big, c := bigFixture(e)
	small := map[string][]byte{}
	for i := range 20 {
		p := fmt.Sprintf("/small/%02d", i)
		small[p] = randBytes(uint64(i), 1000*i+1)
		e.put("data", "main", p, small[p])
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 8 {
		wg.Go(func() {
			p := e.path("data@" + c.ID + "/big.bin")
			if g%2 == 1 {
				p = e.path("data/big.bin")
			}
			f, err := os.Open(p)
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			r := rand.New(rand.NewPCG(uint64(g), 7))
			buf := make([]byte, 1<<20)
			for range 40 {
				off := r.Int64N(int64(len(big)))
				n := 1 + r.IntN(len(buf))
				got, err := f.ReadAt(buf[:n], off)
				if (err != nil && err != io.EOF) || !bytes.Equal(buf[:got], big[off:min(off+int64(n), int64(len(big)))]) {
					errs <- fmt.Errorf("reader %d: pread(%d, %d): %d, %v", g, n, off, got, err)
					return
				}
			}
			for sp, want := range small {
				got, err := os.ReadFile(e.path("data" + sp))
				if err != nil || !bytes.Equal(got, want) {
					errs <- fmt.Errorf("reader %d: %s: %v", g, sp, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestWriteCommitRead(t *testing.T) {
	e := newEnv(t, mount.Options{Idle: -1})
	e.repo("data", "")
	base := e.put("data", "main", "/keep.txt", []byte("kept\n"))
	files := map[string][]byte{
		"/hello.txt":         []byte("hello\n"),
		"/empty":             nil,
		"/nested/deep/x.bin": randBytes(1, 100000),
		"/nested/big.bin":    randBytes(2, 25<<20+17), // streamed
		"/nested/random.bin": nil,                     // written out of order below
		"/appended.txt":      []byte("first\nsecond\n"),
		"/truncated.txt":     []byte("short"),
		"/keep.txt":          []byte("kept\n"),
	}
	for p, data := range files {
		if p == "/nested/random.bin" || p == "/appended.txt" || p == "/truncated.txt" || p == "/keep.txt" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(e.path("data@main"+p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(e.path("data@main"+p), data, 0o644); err != nil {
			t.Fatalf("write %s: %v", p, err)
		}
	}
	// Out of order: the draft falls back to a temp file.
	rnd := randBytes(3, 3<<20)
	f, err := os.OpenFile(e.path("data@main/nested/random.bin"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	half := len(rnd) / 2
	if _, err := f.WriteAt(rnd[half:], int64(half)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(rnd[:half], 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil { // applies and syncs
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	files["/nested/random.bin"] = rnd
	// Append, then truncate another file.
	os.WriteFile(e.path("data@main/appended.txt"), []byte("first\n"), 0o644)
	af, err := os.OpenFile(e.path("data@main/appended.txt"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	af.WriteString("second\n")
	if err := af.Close(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(e.path("data@main/truncated.txt"), []byte("short and long"), 0o644)
	if err := os.Truncate(e.path("data@main/truncated.txt"), 5); err != nil {
		t.Fatal(err)
	}
	// A file written while open is visible to readers before close.
	open, err := os.Create(e.path("data@main/open.txt"))
	if err != nil {
		t.Fatal(err)
	}
	open.WriteString("in progress")
	if got, err := os.ReadFile(e.path("data/open.txt")); err != nil || string(got) != "in progress" {
		t.Errorf("reader of a file being written: %q, %v", got, err)
	}
	if fi, err := os.Stat(e.path("data@main/open.txt")); err != nil || fi.Size() != 11 {
		t.Errorf("stat of a file being written: %v, %v", fi, err)
	}
	open.Close()
	files["/open.txt"] = []byte("in progress")

	// Readers of the branch see everything before the commit is finished.
	for p, want := range files {
		got, err := os.ReadFile(e.path("data" + p))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("before finish: %s: %d bytes, %v; want %d", p, len(got), err, len(want))
		}
	}
	// All of it went into one open commit on top of the base.
	br, _ := e.st.Meta.Branch("data", "main")
	open1, _ := e.st.Meta.Commit("data", br.Head)
	if open1.State != meta.StateOpen || open1.Parent != base.ID {
		t.Fatalf("writes went to %s commit %s (parent %s), want one open commit on %s", open1.State, open1.ID, open1.Parent, base.ID)
	}
	c := e.finish("data", "main")

	// The new commit's view is byte-identical, through the mount and the
	// store.
	for p, want := range files {
		got, err := os.ReadFile(e.path("data@" + c.ID + p))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("commit view: %s: %d bytes, %v; want %d", p, len(got), err, len(want))
		}
		sf, err := e.st.Open(context.Background(), "data", c.ID, p)
		if err != nil {
			t.Errorf("store: %s: %v", p, err)
			continue
		}
		var buf bytes.Buffer
		sf.WriteTo(&buf)
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("store: %s: %d bytes, want %d", p, buf.Len(), len(want))
		}
	}
	fi, err := os.Stat(e.path("data@" + c.ID + "/nested/random.bin"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode of a file created 0600: %v, %v", fi.Mode(), err)
	}
	// A write after the finish starts a new commit.
	os.WriteFile(e.path("data/later.txt"), []byte("later"), 0o644)
	br, _ = e.st.Meta.Branch("data", "main")
	if br.Head == c.ID {
		t.Errorf("write after finish did not start a new commit")
	}
}

func TestRenameAndRemove(t *testing.T) {
	e := newEnv(t, mount.Options{Idle: -1})
	e.repo("data", "")
	e.put("data", "main", "/a/x.txt", []byte("x"))
	e.put("data", "main", "/a/sub/y.txt", []byte("y"))
	e.put("data", "main", "/b/keep.txt", []byte("k"))
	m := e.path("data")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// A file across directories, a directory into another, a file being
	// written, and over an existing file.
	must(os.Rename(m+"/a/x.txt", m+"/b/x2.txt"))
	must(os.Mkdir(m+"/c", 0o755))
	must(os.Rename(m+"/a", m+"/c/a"))
	w, err := os.Create(m + "/c/a/new.txt")
	must(err)
	w.WriteString("new")
	must(os.Rename(m+"/c/a/new.txt", m+"/b/moved.txt"))
	must(w.Close()) // applied where the rename put it
	os.WriteFile(m+"/b/over.txt", []byte("old"), 0o644)
	os.WriteFile(m+"/b/src.txt", []byte("src"), 0o644)
	must(os.Rename(m+"/b/src.txt", m+"/b/over.txt"))
	// Removes.
	os.WriteFile(m+"/b/gone.txt", []byte("gone"), 0o644)
	must(os.Remove(m + "/b/gone.txt"))
	must(os.Mkdir(m+"/d", 0o755))
	wantErrno(t, "rmdir non-empty", os.Remove(m+"/c"), syscall.ENOTEMPTY)
	must(os.Remove(m + "/d"))
	wantErrno(t, "rename dir over file", os.Rename(m+"/c", m+"/b/keep.txt"), syscall.ENOTDIR)
	wantErrno(t, "unlink missing", os.Remove(m+"/nope"), syscall.ENOENT)
	wantErrno(t, "mkdir existing", os.Mkdir(m+"/b", 0o755), syscall.EEXIST)

	c := e.finish("data", "main")
	var got []string
	err = e.st.Meta.Walk(c.Root, "/", func(p string, ent *meta.Entry) error {
		if ent.IsDir() {
			got = append(got, p+"/")
		} else {
			got = append(got, p)
		}
		return nil
	})
	must(err)
	want := []string{"/b/", "/b/keep.txt", "/b/moved.txt", "/b/over.txt", "/b/x2.txt", "/c/", "/c/a/", "/c/a/sub/", "/c/a/sub/y.txt"}
	if !slices.Equal(got, want) {
		t.Errorf("tree after renames:\n got %v\nwant %v", got, want)
	}
	for p, want := range map[string]string{"/b/over.txt": "src", "/b/moved.txt": "new", "/c/a/sub/y.txt": "y", "/b/x2.txt": "x"} {
		if got, err := os.ReadFile(e.path("data@" + c.ID + p)); string(got) != want {
			t.Errorf("%s = %q, %v; want %q", p, got, err, want)
		}
	}
}

func TestIdleFinish(t *testing.T) {
	idle := 300 * time.Millisecond
	e := newEnv(t, mount.Options{Idle: idle})
	e.repo("data", "")
	// Writing for longer than the idle period keeps the commit open.
	f, err := os.Create(e.path("data/slow.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		f.WriteString("tick\n")
		time.Sleep(idle / 2)
	}
	time.Sleep(2 * idle)
	br, _ := e.st.Meta.Branch("data", "main")
	if br.Head != "" {
		c, _ := e.st.Meta.Commit("data", br.Head)
		if c.State != meta.StateOpen {
			t.Errorf("commit %s finished while a file was open for writing", c.ID)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		br, _ := e.st.Meta.Branch("data", "main")
		c, err := e.st.Meta.Commit("data", br.Head)
		if err != nil {
			t.Fatal(err)
		}
		if c.State == meta.StateFinished {
			got, err := os.ReadFile(e.path("data@" + c.ID + "/slow.txt"))
			if err != nil || string(got) != strings.Repeat("tick\n", 4) {
				t.Errorf("idle-finished commit has %q, %v", got, err)
			}
			break
		}
		if time.Since(start) > 10*idle {
			t.Fatalf("commit still open %v after the last write (idle %v)", time.Since(start), idle)
		}
		time.Sleep(idle / 10)
	}
}

func TestReadOnlyAndUnsupported(t *testing.T) {
	e := newEnv(t, mount.Options{Idle: -1})
	e.repo("data", "")
	e.repo("out", "pipe")
	c := e.put("data", "main", "/a.txt", []byte("a"))
	e.put("data", "main", "/d/b.txt", []byte("b"))
	e.put("out", "main", "/o.txt", []byte("o"))
	for _, v := range []string{"data@" + c.ID, "data@main^1", view.HistoryDir + "/data/" + c.ID, "out", "out@main"} {
		d := e.path(v)
		f := d + "/a.txt"
		if strings.HasPrefix(v, "out") {
			f = d + "/o.txt"
		}
		_, err := os.Create(d + "/new.txt")
		wantErrno(t, v+": create", err, syscall.EROFS)
		_, err = os.OpenFile(f, os.O_WRONLY, 0)
		wantErrno(t, v+": open for writing", err, syscall.EROFS)
		wantErrno(t, v+": mkdir", os.Mkdir(d+"/x", 0o755), syscall.EROFS)
		wantErrno(t, v+": unlink", os.Remove(f), syscall.EROFS)
		wantErrno(t, v+": rename", os.Rename(f, d+"/z.txt"), syscall.EROFS)
		wantErrno(t, v+": truncate", os.Truncate(f, 0), syscall.EROFS)
		wantErrno(t, v+": chmod", os.Chmod(f, 0o600), syscall.EROFS)
	}
	wantErrno(t, "mkdir in root", os.Mkdir(e.path("newrepo"), 0o755), syscall.EROFS)
	wantErrno(t, "rm in root", os.Remove(e.path("data")), syscall.EROFS)
	// Unsupported on a writable branch: a proper errno, never a hang.
	m := e.path("data")
	wantErrno(t, "link", os.Link(m+"/a.txt", m+"/hard"), syscall.EPERM)
	wantErrno(t, "symlink", os.Symlink("a.txt", m+"/sym"), syscall.EPERM)
	wantErrno(t, "mknod", unix.Mknod(m+"/fifo", unix.S_IFIFO|0o644, 0), syscall.EPERM)
	wantErrno(t, "setxattr", unix.Setxattr(m+"/a.txt", "user.x", []byte("1"), 0), syscall.ENOTSUP)
	_, err := unix.Getxattr(m+"/a.txt", "user.x", make([]byte, 10))
	wantErrno(t, "getxattr", err, syscall.ENOTSUP)
	_, err = unix.Listxattr(m+"/a.txt", make([]byte, 10))
	wantErrno(t, "listxattr", err, syscall.ENOTSUP)
	wantErrno(t, "rename across views", os.Rename(m+"/a.txt", e.path("data@"+c.ID+"/a2.txt")), syscall.EXDEV)
	wantErrno(t, "chown", os.Chown(m+"/a.txt", 12345, 12345), syscall.EPERM)
	if err := os.Chmod(m+"/a.txt", 0o755); err != nil {
		t.Errorf("chmod: %v", err)
	}
	if err := os.Chtimes(m+"/a.txt", time.Now(), time.Now()); err != nil {
		t.Errorf("touch: %v", err)
	}
	c2 := e.finish("data", "main")
	if ent, err := e.st.Meta.Lookup(c2.Root, "/a.txt"); err != nil || ent.Mode != 0o755 {
		t.Errorf("chmod not committed: %v, %v", ent, err)
	}
}

func TestUnmountWithOpenFile(t *testing.T) {
	e := newEnv(t, mount.Options{Idle: -1, UnmountGrace: 500 * time.Millisecond})
	e.repo("data", "")
	e.put("data", "main", "/r.txt", []byte("read me"))
	w, err := os.Create(e.path("data/w.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString("written, never closed"); err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(e.path("data/r.txt"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.srv.Unmount() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("unmount: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("unmount with open files hangs")
	}
	e.srv.Wait()
	// The open descriptors fail cleanly; nothing hangs.
	if _, err := w.WriteString("more"); err == nil {
		t.Error("write after unmount succeeded")
	}
	if _, err := r.Read(make([]byte, 10)); err == nil {
		t.Error("read after unmount succeeded")
	}
	w.Close()
	r.Close()
	// What was written is committed, and the commit is finished.
	br, _ := e.st.Meta.Branch("data", "main")
	c, _ := e.st.Meta.Commit("data", br.Head)
	if c.State != meta.StateFinished {
		t.Errorf("unmount left commit %s %s", c.ID, c.State)
	}
	f, err := e.st.Open(context.Background(), "data", c.ID, "/w.txt")
	if err != nil {
		t.Fatalf("bytes written before unmount are lost: %v", err)
	}
	var buf bytes.Buffer
	f.WriteTo(&buf)
	if buf.String() != "written, never closed" {
		t.Errorf("w.txt = %q", buf.String())
	}
	// The mount point is free again.
	if _, err := os.ReadDir(e.dir); err != nil {
		t.Errorf("mount point after unmount: %v", err)
	}
}

func TestStaleMount(t *testing.T) {
	requireFuse(t)
	watchdog(t, time.Minute)
	base := t.TempDir()
	st, err := store.Open(filepath.Join(base, "data"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Meta.CreateRepo("data", "", ""); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "pfs")
	// A child process mounts and is killed: its mount is left dead.
	if os.Getenv("STRATA_MOUNT_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestStaleMountChild$")
		cmd.Env = append(os.Environ(), "STRATA_MOUNT_CHILD="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, _ := out.Read(buf) // "mounted"
		if !strings.Contains(string(buf[:n]), "mounted") {
			cmd.Process.Kill()
			cmd.Wait()
			t.Skipf("child did not mount: %q", buf[:n])
		}
		cmd.Process.Kill()
		cmd.Wait()
	}
	_, err = os.ReadDir(dir)
	wantErrno(t, "ls of the dead mount", err, syscall.ENOTCONN)
	srv, err := mount.Mount(dir, st, mount.Options{})
	if err != nil {
		t.Fatalf("mount over a stale mount: %v", err)
	}
	defer srv.Unmount()
	if got := readDirNames(t, dir, true); !slices.Equal(got, []string{"data", "data@main"}) {
		t.Errorf("ls after remount = %v", got)
	}
}

// TestStaleMountChild is the child of TestStaleMount: it mounts and
// waits to be killed.
func TestStaleMountChild(t *testing.T) {
	dir := os.Getenv("STRATA_MOUNT_CHILD")
	if dir == "" {
		t.Skip("run by TestStaleMount")
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "data"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mount.Mount(dir, st, mount.Options{}); err != nil {
		t.Fatal(err)
	}
	fmt.Println("mounted")
	time.Sleep(time.Minute)
}

func TestConcurrentWriters(t *testing.T) {
	e := newEnv(t, mount.Options{Idle: -1})
	e.repo("data", "")
	m := e.path("data@main")
	want := map[string][]byte{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	stop := make(chan struct{})
	// Readers list and stat while files come and go.
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			filepath.WalkDir(e.path("data"), func(string, fs.DirEntry, error) error { return nil })
		}
	})
	var writers sync.WaitGroup
	for g := range 6 {
		writers.Go(func() {
			dir := fmt.Sprintf("%s/g%d", m, g)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Error(err)
				return
			}
			for i := range 20 {
				data := randBytes(uint64(g*100+i), 1000+g*i*97)
				shared := fmt.Sprintf("/shared-%d-%d", g, i)
				own := fmt.Sprintf("/g%d/f%02d", g, i)
				for _, p := range []string{own, shared} {
					if err := os.WriteFile(m+p, data, 0o644); err != nil {
						t.Error(err)
						return
					}
				}
				if i%5 == 4 { // move one away and back under another name
					if err := os.Rename(m+own, m+own+".moved"); err != nil {
						t.Error(err)
						return
					}
					own += ".moved"
				}
				mu.Lock()
				want[own], want[shared] = data, data
				mu.Unlock()
			}
		})
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	c := e.finish("data", "main")
	if c.Files != int64(len(want)) {
		t.Errorf("commit has %d files, want %d", c.Files, len(want))
	}
	for p, data := range want {
		got, err := os.ReadFile(e.path("data@" + c.ID + p))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %d bytes, %v; want %d", p, len(got), err, len(data))
		}
	}
}
