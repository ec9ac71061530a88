package view_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/fstest"

	"github.com/strata-data/strata/fs/view"
	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func put(t *testing.T, st *store.Store, repo, branch, p string, data []byte) *meta.Commit {
	t.Helper()
	res, err := st.PutFile(context.Background(), repo, branch, p, bytes.NewReader(data), store.PutOptions{})
	if err != nil {
		t.Fatalf("put %s@%s:%s: %v", repo, branch, p, err)
	}
	return res.Commit
}

// fixture: repo "data" with three commits on main and a branch "dev" at
// the second; repo "empty" with no commits.
type fixture struct {
	st         *store.Store
	v          *view.FS
	c1, c2, c3 *meta.Commit
	big        []byte
}

func newFixture(t *testing.T) *fixture { return newFixtureSize(t, 3<<20+12345) }

// newFixtureSize makes the fixture with a big file of n bytes.
func newFixtureSize(t *testing.T, n int) *fixture {
	t.Helper()
	st := openStore(t)
	f := &fixture{st: st, v: view.New(st, view.Options{Idle: -1})}
	for _, r := range []string{"data", "empty"} {
		if _, err := st.Meta.CreateRepo(r, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	f.big = randBytes(1, n)
	f.c1 = put(t, st, "data", "main", "/a.txt", []byte("hello\n"))
	f.c2 = put(t, st, "data", "main", "/dir/sub/big.bin", f.big)
	if _, err := st.Meta.SetBranch("data", "dev", f.c2.ID); err != nil {
		t.Fatal(err)
	}
	f.c3 = put(t, st, "data", "main", "/a.txt", []byte("hello again\n"))
	return f
}

func TestFSTest(t *testing.T) {
	// fstest reads every file many ways; a small "big" file keeps it quick.
	f := newFixtureSize(t, 100<<10)
	if err := fstest.TestFS(f.v, "data", "data@main", "data@dev", "empty", "empty@main",
		"data/a.txt", "data/dir/sub/big.bin", "data@dev/a.txt"); err != nil {
		t.Fatal(err)
	}
	// Names that resolve but are not listed.
	for _, top := range []string{"data@" + f.c1.ID[:6], "data@" + f.c2.ID, "data@main^1", "data@main~2", "data@" + f.c3.ID + "^1"} {
		sub, err := fs.Sub(f.v, top)
		if err != nil {
			t.Fatal(err)
		}
		if err := fstest.TestFS(sub, "a.txt"); err != nil {
			t.Errorf("%s: %v", top, err)
		}
	}
	hist, err := fs.Sub(f.v, view.HistoryDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(hist, "data", "empty", "data/"+f.c1.ID+"/a.txt", "data/"+f.c2.ID+"/dir/sub/big.bin"); err != nil {
		t.Fatal(err)
	}
}

func TestContent(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		path string
		want []byte
	}{
		{"data/a.txt", []byte("hello again\n")},
		{"data@main^1/a.txt", []byte("hello\n")},
		{"data@dev/a.txt", []byte("hello\n")},
		{"data@" + f.c1.ID[:8] + "/a.txt", []byte("hello\n")},
		{view.HistoryDir + "/data/" + f.c3.ID + "/a.txt", []byte("hello again\n")},
		{"data/dir/sub/big.bin", f.big},
	} {
		got, err := fs.ReadFile(f.v, tc.path)
		if err != nil {
			t.Errorf("read %s: %v", tc.path, err)
			continue
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s: got %d bytes, want %d", tc.path, len(got), len(tc.want))
		}
	}
	// ReadAt across chunk boundaries.
	file, err := f.v.Open("data/dir/sub/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	ra := file.(io.ReaderAt)
	for _, off := range []int64{0, 511 << 10, 1 << 20, 2<<20 - 7, int64(len(f.big)) - 100} {
		buf := make([]byte, 1<<20)
		n, err := ra.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			t.Fatalf("ReadAt(%d): %v", off, err)
		}
		if !bytes.Equal(buf[:n], f.big[off:min(off+int64(len(buf)), int64(len(f.big)))]) {
			t.Errorf("ReadAt(%d): wrong bytes", off)
		}
	}
}

func TestResolve(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name     string
		kind     view.Kind
		commit   string // "" for no commit
		writable bool
		err      error
	}{
		{name: "data", kind: view.Branch, commit: f.c3.ID, writable: true},
		{name: "data@main", kind: view.Branch, commit: f.c3.ID, writable: true},
		{name: "data@dev", kind: view.Branch, commit: f.c2.ID, writable: true},
		{name: "empty", kind: view.Branch, writable: true},
		{name: "data@main^1", kind: view.Ancestor, commit: f.c2.ID},
		{name: "data@main^", kind: view.Ancestor, commit: f.c2.ID},
		{name: "data@main~2", kind: view.Ancestor, commit: f.c1.ID},
		{name: "data@main^1^1", kind: view.Ancestor, commit: f.c1.ID},
		{name: "data@dev^1", kind: view.Ancestor, commit: f.c1.ID},
		{name: "data@" + f.c2.ID, kind: view.Commit, commit: f.c2.ID},
		{name: "data@" + f.c2.ID[:4], kind: view.Commit, commit: f.c2.ID},
		{name: "data@" + f.c3.ID + "^2", kind: view.Commit, commit: f.c1.ID},
		{name: "data@main^3", err: fs.ErrNotExist},
		{name: "data@nope", err: fs.ErrNotExist},
		{name: "data@abc", err: fs.ErrNotExist}, // too short for a prefix
		{name: "nope", err: fs.ErrNotExist},
		{name: "nope@main", err: fs.ErrNotExist},
		{name: "data@", err: fs.ErrNotExist},
		{name: "@main", err: fs.ErrNotExist},
		{name: "data@main^x", err: fs.ErrInvalid},
		{name: "empty@main^1", err: fs.ErrNotExist},
	} {
		r, err := f.v.Resolve(tc.name)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("Resolve(%q): err %v, want %v", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Resolve(%q): %v", tc.name, err)
			continue
		}
		got := ""
		if r.Commit != nil {
			got = r.Commit.ID
		}
		if r.Kind != tc.kind || got != tc.commit || r.Writable() != tc.writable {
			t.Errorf("Resolve(%q) = %s %s writable=%v, want %s %s writable=%v", tc.name, r.Kind, got, r.Writable(), tc.kind, tc.commit, tc.writable)
		}
		if r.Pinned() != (tc.kind != view.Branch) {
			t.Errorf("Resolve(%q).Pinned() = %v", tc.name, r.Pinned())
		}
	}
}

func TestAmbiguousPrefix(t *testing.T) {
	st := openStore(t)
	v := view.New(st, view.Options{Idle: -1})
	if _, err := st.Meta.CreateRepo("r", "", ""); err != nil {
		t.Fatal(err)
	}
	// Make commits until two share a 4-digit prefix (a birthday collision
	// among 65536 prefixes: a few hundred commits).
	seen := map[string]string{}
	var prefix string
	for i := 0; prefix == "" && i < 5000; i++ {
		res, err := st.Meta.Write("r", "main", []meta.Change{{Op: meta.OpMkdir, Path: "/d"}}, meta.CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p := res.Commit.ID[:4]
		if _, ok := seen[p]; ok {
			prefix = p
		}
		seen[p] = res.Commit.ID
	}
	if prefix == "" {
		t.Fatal("no prefix collision in 5000 commits")
	}
	_, err := v.Resolve("r@" + prefix)
	if !errors.Is(err, meta.ErrAmbiguous) {
		t.Fatalf("Resolve(r@%s): %v, want ErrAmbiguous", prefix, err)
	}
	if _, err := fs.Stat(v, "r@"+prefix+"/d"); !errors.Is(err, meta.ErrAmbiguous) {
		t.Fatalf("Stat: %v, want ErrAmbiguous", err)
	}
	if _, err := v.Resolve("r@" + seen[prefix]); err != nil {
		t.Fatalf("full ID: %v", err)
	}
}

func TestHistoryNewestFirst(t *testing.T) {
	f := newFixture(t)
	d, err := f.v.Open(view.HistoryDir + "/data")
	if err != nil {
		t.Fatal(err)
	}
	list, err := d.(fs.ReadDirFile).ReadDir(-1)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range list {
		got = append(got, e.Name())
	}
	want := []string{f.c3.ID, f.c2.ID, f.c1.ID}
	if !slices.Equal(got, want) {
		t.Fatalf("history = %v, want %v", got, want)
	}
	info, err := list[0].Info()
	if err != nil {
		t.Fatal(err)
	}
	if !info.ModTime().Equal(*f.c3.Finished) {
		t.Errorf("mtime %v, want the finish time %v", info.ModTime(), *f.c3.Finished)
	}
	// A branch name is not a commit here.
	if _, err := fs.Stat(f.v, view.HistoryDir+"/data/main"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("history/main: %v, want ErrNotExist", err)
	}
	// Open commits are not listed, and the branch view shows them.
	c, err := f.st.Meta.StartCommit("data", "main", meta.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if es, _ := fs.ReadDir(f.v, view.HistoryDir+"/data"); len(es) != 3 {
		t.Errorf("history lists %d commits with one open, want 3", len(es))
	}
	r, err := f.v.Resolve("data")
	if err != nil || r.Commit.ID != c.ID {
		t.Errorf("branch view shows %v, %v; want the open commit %s", r, err, c.ID)
	}
	r, err = f.v.Resolve("data@main^1")
	if err != nil || r.Commit.ID != f.c2.ID {
		t.Errorf("main^1 with an open head = %v, %v; want %s", r, err, f.c2.ID)
	}
}

func TestPipelineBranchReadOnly(t *testing.T) {
	st := openStore(t)
	v := view.New(st, view.Options{Idle: -1})
	if _, err := st.Meta.CreateRepo("out", "", "pipe"); err != nil {
		t.Fatal(err)
	}
	c1 := put(t, st, "out", "main", "/x", []byte("1"))
	if _, err := st.Meta.StartCommit("out", "main", meta.CommitOptions{}); err != nil {
		t.Fatal(err)
	}
	r, err := v.Resolve("out")
	if err != nil {
		t.Fatal(err)
	}
	if r.Writable() || r.Commit.ID != c1.ID {
		t.Errorf("pipeline branch: writable=%v commit=%s, want read-only at %s", r.Writable(), r.Commit.ID, c1.ID)
	}
	if _, err := v.Writer("out", "main"); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("Writer on a pipeline branch: %v, want ErrPermission", err)
	}
}
