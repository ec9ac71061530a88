package meta

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/strata-data/strata/chunk"
)

func openTest(t testing.TB) *DB {
	t.Helper()
	db, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func fileEntry(content string) Entry {
	return Entry{Type: TypeFile, Size: int64(len(content)), Chunks: []chunk.Ref{{ID: chunk.Sum([]byte(content)), Size: uint32(len(content))}}}
}

// model is the reference: path -> content, for files only.
type model map[string]string

func (m model) listing() []string {
	var out []string
	for p, c := range m {
		out = append(out, p+"="+c)
	}
	sort.Strings(out)
	return out
}

func treeListing(t *testing.T, db *DB, root Hash) []string {
	t.Helper()
	var out []string
	err := db.Walk(root, "/", func(p string, e *Entry) error {
		if e.Type == TypeFile {
			out = append(out, fmt.Sprintf("%s=%s", p, e.Chunks[0].ID.String()[:8]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func modelListing(m model) []string {
	var out []string
	for p, c := range m {
		out = append(out, fmt.Sprintf("%s=%s", p, chunk.Sum([]byte(c)).String()[:8]))
	}
	sort.Strings(out)
	return out
}

// TestTreeMatchesModel applies random puts and deletes in batches to both a
// tree and a map, across directory sizes that force HAMT splits and
// collapses, and checks every listing, lookup and stat agrees.
func TestTreeMatchesModel(t *testing.T) {
	db := openTest(t)
	if _, err := db.CreateRepo("r", "", ""); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	m := model{}
	dirs := []string{"/a", "/a/b", "/c", "/big"}
	for round := 0; round < 40; round++ {
		var cs []Change
		for i := 0; i < 1+rng.IntN(120); i++ {
			dir := dirs[rng.IntN(len(dirs))]
			p := fmt.Sprintf("%s/f%d", dir, rng.IntN(400))
			if rng.IntN(3) == 0 {
				if _, ok := m[p]; ok {
					cs = append(cs, Change{Op: OpDelete, Path: p})
					delete(m, p)
				}
				continue
			}
			c := fmt.Sprintf("v%d", rng.IntN(1000))
			cs = append(cs, Change{Op: OpPut, Path: p, Entry: fileEntry(c)})
			m[p] = c
		}
		if len(cs) == 0 {
			continue
		}
		res, err := db.Write("r", "main", cs, CommitOptions{})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		got, want := treeListing(t, db, res.Commit.Root), modelListing(m)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("round %d: tree has %d files, model %d\n got %v\nwant %v", round, len(got), len(want), got[:min(5, len(got))], want[:min(5, len(want))])
		}
		if res.Commit.Files != int64(len(m)) {
			t.Fatalf("round %d: commit counts %d files, want %d", round, res.Commit.Files, len(m))
		}
		// Canonical: rebuilding the same set from scratch gives the same root.
		var all []Change
		for p, c := range m {
			all = append(all, Change{Op: OpPut, Path: p, Entry: fileEntry(c)})
		}
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		fresh, err := db.Write("r", "scratch", all, CommitOptions{})
		if errors.Is(err, ErrNotExist) {
			if _, err := db.SetBranch("r", "scratch", ""); err != nil {
				t.Fatal(err)
			}
			fresh, err = db.Write("r", "scratch", all, CommitOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
		// Empty directories left by deletes differ from a fresh build; compare
		// only when none are left.
		if !hasEmptyDir(t, db, res.Commit.Root) && fresh.Commit.Root != res.Commit.Root {
			t.Fatalf("round %d: same files, different roots %s vs %s", round, fresh.Commit.Root, res.Commit.Root)
		}
		if _, err := db.DeleteCommit("r", "scratch"); err != nil {
			t.Fatal(err)
		}
	}
}

func hasEmptyDir(t *testing.T, db *DB, root Hash) bool {
	found := false
	db.Walk(root, "/", func(p string, e *Entry) error {
		if e.Type == TypeDir && e.Files == 0 {
			found = true
		}
		return nil
	})
	return found
}

func TestDiffAndBigDirectory(t *testing.T) {
	db := openTest(t)
	db.CreateRepo("r", "", "")
	var cs []Change
	for i := 0; i < 5000; i++ {
		cs = append(cs, Change{Op: OpPut, Path: fmt.Sprintf("/d/f%05d", i), Entry: fileEntry(fmt.Sprint(i))})
	}
	first, err := db.Write("r", "main", cs, CommitOptions{Message: "many"})
	if err != nil {
		t.Fatal(err)
	}
	es, err := db.ReadDir(mustLookup(t, db, first.Commit.Root, "/d").Tree)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 5000 || es[0].Name != "f00000" || es[4999].Name != "f04999" {
		t.Fatalf("ReadDir: %d entries, first %q", len(es), es[0].Name)
	}
	second, err := db.Write("r", "main", []Change{
		{Op: OpPut, Path: "/d/f00007", Entry: fileEntry("changed")},
		{Op: OpDelete, Path: "/d/f04000"},
		{Op: OpPut, Path: "/e/new", Entry: fileEntry("new")},
	}, CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if second.NodeBytes > 20000 {
		t.Errorf("one small change wrote %d bytes of tree nodes; want a few KB", second.NodeBytes)
	}
	var got []string
	err = db.DiffTrees(first.Commit.Root, second.Commit.Root, func(d Diff) error {
		kind := "M"
		if d.Old == nil {
			kind = "A"
		} else if d.New == nil {
			kind = "D"
		}
		got = append(got, kind+" "+d.Path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "M /d/f00007,D /d/f04000,A /e"
	if strings.Join(got, ",") != want {
		t.Fatalf("diff = %v, want %s", got, want)
	}
}

func mustLookup(t *testing.T, db *DB, root Hash, p string) *Entry {
	t.Helper()
	e, err := db.Lookup(root, p)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestCommitsBranchesAndRefs(t *testing.T) {
	db := openTest(t)
	if _, err := db.CreateRepo("imgs", "pictures", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateRepo("imgs", "", ""); !errors.Is(err, ErrExist) {
		t.Fatalf("second create: %v, want ErrExist", err)
	}
	var ids []string
	for i := 0; i < 3; i++ {
		res, err := db.Write("imgs", "main", []Change{{Op: OpPut, Path: fmt.Sprintf("/f%d", i), Entry: fileEntry("x")}}, CommitOptions{Message: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		if !res.OneOff || res.Commit.State != StateFinished {
			t.Fatalf("write without open commit: oneoff=%v state=%s", res.OneOff, res.Commit.State)
		}
		ids = append(ids, res.Commit.ID)
	}
	for ref, want := range map[string]string{"main": ids[2], "main^": ids[1], "main^2": ids[0], "main~1^1": ids[0], ids[1][:6]: ids[1], ids[2] + "^1": ids[1]} {
		c, err := db.Resolve("imgs", ref)
		if err != nil || c.ID != want {
			t.Errorf("Resolve(%q) = %v, %v; want %s", ref, c, err, want)
		}
	}
	for _, ref := range []string{"main^3", "nobranch", "beef"} {
		if _, err := db.Resolve("imgs", ref); !errors.Is(err, ErrNotExist) {
			t.Errorf("Resolve(%q) = %v, want ErrNotExist", ref, err)
		}
	}
	if _, err := db.Resolve("nope", "main"); !errors.Is(err, ErrNotExist) {
		t.Errorf("missing repo: %v", err)
	}
	// Open commit: later writes join it; a second start conflicts.
	open, err := db.StartCommit("imgs", "main", CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.StartCommit("imgs", "main", CommitOptions{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second start: %v, want ErrConflict", err)
	}
	res, err := db.Write("imgs", "main", []Change{{Op: OpPut, Path: "/g", Entry: fileEntry("g")}}, CommitOptions{})
	if err != nil || res.OneOff || res.Commit.ID != open.ID {
		t.Fatalf("write into open commit: %+v %v", res, err)
	}
	if _, err := db.SetBranch("imgs", "main", "main^1"); !errors.Is(err, ErrConflict) {
		t.Fatalf("moving a branch with an open commit: %v", err)
	}
	fin, err := db.FinishCommit("imgs", "main", "")
	if err != nil || fin.Files != 4 {
		t.Fatalf("finish: %+v %v", fin, err)
	}
	if _, err := db.FinishCommit("imgs", "main", ""); !errors.Is(err, ErrConflict) {
		t.Fatalf("finish twice: %v", err)
	}
	if _, err := db.Apply("imgs", fin.ID, []Change{{Op: OpDelete, Path: "/g"}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("apply to finished: %v", err)
	}
	// Revert by moving the branch back.
	br, err := db.SetBranch("imgs", "main", "main^2")
	if err != nil || br.Head != ids[1] {
		t.Fatalf("revert: %+v %v", br, err)
	}
	cs, err := db.Commits("imgs", "main", 0)
	if err != nil || len(cs) != 2 {
		t.Fatalf("history after revert: %d %v", len(cs), err)
	}
	all, _ := db.Commits("imgs", "", 0)
	if len(all) != 4 || all[0].ID != fin.ID {
		t.Fatalf("all commits newest first: %d", len(all))
	}
	if err := db.DeleteRepo("imgs", false); !errors.Is(err, ErrConflict) {
		t.Fatalf("delete without force: %v", err)
	}
	if err := db.DeleteRepo("imgs", true); err != nil {
		t.Fatal(err)
	}
	if rs, _ := db.Repos(); len(rs) != 0 {
		t.Fatalf("repos after delete: %d", len(rs))
	}
}

func TestBadInput(t *testing.T) {
	db := openTest(t)
	for _, name := range []string{"", "-x", ".x", "a/b", "a b", strings.Repeat("x", 64), "a\x00b"} {
		if _, err := db.CreateRepo(name, "", ""); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateRepo(%q) = %v, want ErrInvalid", name, err)
		}
	}
	db.CreateRepo("r", "", "")
	for _, p := range []string{"/a/../b", "/a//b", "/./a", "/a\x00", "/" + strings.Repeat("n", 256), "/\xff"} {
		if _, err := db.Write("r", "main", []Change{{Op: OpPut, Path: p, Entry: fileEntry("x")}}, CommitOptions{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("put %q = %v, want ErrInvalid", p, err)
		}
	}
	if _, err := db.Write("r", "main", []Change{{Op: OpPut, Path: "/f", Entry: fileEntry("x")}}, CommitOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Write("r", "main", []Change{{Op: OpPut, Path: "/f/g", Entry: fileEntry("x")}}, CommitOptions{}); !errors.Is(err, ErrNotDir) {
		t.Errorf("put under a file: %v", err)
	}
	if _, err := db.Write("r", "main", []Change{{Op: OpPut, Path: "/d/g", Entry: fileEntry("x")}}, CommitOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Write("r", "main", []Change{{Op: OpPut, Path: "/d", Entry: fileEntry("x")}}, CommitOptions{}); !errors.Is(err, ErrIsDir) {
		t.Errorf("file over a directory: %v", err)
	}
	if cs, _ := db.Commits("r", "main", 0); len(cs) != 2 {
		t.Errorf("failed writes made commits: %d commits, want 2", len(cs))
	}
}

func TestReopenKeepsState(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.CreateRepo("r", "", "")
	res, err := db.Write("r", "main", []Change{{Op: OpPut, Path: "/a/b", Entry: fileEntry("hello")}}, CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, err := db.Resolve("r", "main")
	if err != nil || c.ID != res.Commit.ID {
		t.Fatalf("after reopen: %v %v", c, err)
	}
	if e := mustLookup(t, db, c.Root, "/a/b"); e.Size != 5 {
		t.Fatalf("entry size %d", e.Size)
	}
}

func TestReadersSkipOpenCommits(t *testing.T) {
	db := openTest(t)
	db.CreateRepo("r", "", "")
	if _, err := db.StartCommit("r", "main", CommitOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ResolveFinished("r", "main"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("branch whose only commit is open: %v, want ErrNotExist", err)
	}
	first, _ := db.FinishCommit("r", "main", "")
	open, _ := db.StartCommit("r", "main", CommitOptions{})
	for ref, want := range map[string]string{"main": first.ID, open.ID: open.ID} {
		if c, err := db.ResolveFinished("r", ref); err != nil || c.ID != want {
			t.Errorf("ResolveFinished(%q) = %v, %v; want %s", ref, c, err, want)
		}
	}
	if c, _ := db.Resolve("r", "main"); c.ID != open.ID {
		t.Errorf("Resolve(main) = %s, want the open commit %s", c.ID, open.ID)
	}
}
