package datum

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/pipeline/spec"
)

func openDB(t testing.TB) *meta.DB {
	t.Helper()
	db, err := meta.Open(t.TempDir(), meta.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// fileEntry makes a file entry whose chunk need not exist: listing datums
// reads only metadata.
func fileEntry(content string) meta.Entry {
	return meta.Entry{Type: meta.TypeFile, Mode: 0o644, Size: int64(len(content)), Chunks: []chunk.Ref{{ID: chunk.Sum([]byte(content)), Size: uint32(len(content))}}}
}

// write puts files (path -> content; "" content with a "-" prefix on the
// path deletes it) into repo's main branch, creating the repo if needed.
func write(t testing.TB, db *meta.DB, repo string, files map[string]string) *meta.Commit {
	t.Helper()
	if _, err := db.Repo(repo); errors.Is(err, meta.ErrNotExist) {
		if _, err := db.CreateRepo(repo, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	var cs []meta.Change
	for _, p := range sortedKeys(files) {
		if rest, ok := strings.CutPrefix(p, "-"); ok {
			cs = append(cs, meta.Change{Op: meta.OpDelete, Path: rest})
			continue
		}
		cs = append(cs, meta.Change{Op: meta.OpPut, Path: p, Entry: fileEntry(files[p])})
	}
	res, err := db.Write(repo, "main", cs, meta.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Commit
}

// emptyCommit makes a finished commit with nothing in it.
func emptyCommit(t testing.TB, db *meta.DB, repo string) *meta.Commit {
	t.Helper()
	if _, err := db.CreateRepo(repo, "", ""); err != nil {
		t.Fatal(err)
	}
	c, err := db.StartCommit(repo, "main", meta.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c, err = db.FinishCommit(repo, c.ID, ""); err != nil {
		t.Fatal(err)
	}
	return c
}

func files(paths ...string) map[string]string {
	m := map[string]string{}
	for _, p := range paths {
		m[p] = "content of " + p
	}
	return m
}

func pfs(repo, glob string) spec.Input {
	return spec.Input{PFS: &spec.PFSInput{Repo: repo, Name: repo, Branch: "main", Glob: glob}}
}

func list(t *testing.T, db *meta.DB, in spec.Input, commits Inputs) []*Datum {
	t.Helper()
	ds, err := List(context.Background(), db, &in, commits)
	if err != nil {
		t.Fatal(err)
	}
	checkDatums(t, ds)
	return ds
}

// checkDatums checks the invariants of a List result.
func checkDatums(t *testing.T, ds []*Datum) {
	t.Helper()
	for i, d := range ds {
		if i > 0 && ds[i-1].ID >= d.ID {
			t.Fatalf("datums not sorted by unique ID: %s then %s", ds[i-1].ID, d.ID)
		}
		if len(d.ID) != 32 {
			t.Fatalf("ID %q is not 32 hex digits", d.ID)
		}
		if !slices.IsSortedFunc(d.Files, compareFiles) {
			t.Fatalf("files of %s not sorted", d.ID)
		}
		if got := datumID(d.Files); got != d.ID {
			t.Fatalf("ID %s, want %s", d.ID, got)
		}
	}
}

// shape renders datums as sorted strings of "input:path" lists.
func shape(ds []*Datum) []string {
	var out []string
	for _, d := range ds {
		var parts []string
		for _, f := range d.Files {
			parts = append(parts, f.Input+":"+f.Path)
		}
		out = append(out, strings.Join(parts, " "))
	}
	slices.Sort(out)
	return out
}

func matchPaths(t *testing.T, db *meta.DB, c *meta.Commit, glob string) []string {
	t.Helper()
	var out []string
	err := Match(db, c, glob, func(p string, e *meta.Entry, groups []string) error {
		out = append(out, p)
		return nil
	})
	if err != nil {
		t.Fatalf("Match(%q): %v", glob, err)
	}
	return out
}

var tree = files("/a.csv", "/b.txt", "/d1/x.csv", "/d1/y.txt", "/d1/sub/z.csv", "/d2/w.csv")

func TestGlobForms(t *testing.T) {
	db := openDB(t)
	c := write(t, db, "data", tree)
	for _, tc := range []struct {
		glob string
		want []string
	}{
		{"/", []string{"/"}},
		{"/*", []string{"/a.csv", "/b.txt", "/d1", "/d2"}},
		{"/*/*", []string{"/d1/sub", "/d1/x.csv", "/d1/y.txt", "/d2/w.csv"}},
		{"/*/*/*", []string{"/d1/sub/z.csv"}},
		{"/**", []string{"/a.csv", "/b.txt", "/d1", "/d1/sub", "/d1/sub/z.csv", "/d1/x.csv", "/d1/y.txt", "/d2", "/d2/w.csv"}},
		{"/*.csv", []string{"/a.csv"}},
		{"/d1/*", []string{"/d1/sub", "/d1/x.csv", "/d1/y.txt"}},
		{"/d1", []string{"/d1"}},
		{"/d1/", []string{"/d1"}},
		{"*.txt", []string{"/b.txt"}},
		{"/**/*.csv", []string{"/a.csv", "/d1/sub/z.csv", "/d1/x.csv", "/d2/w.csv"}},
		{"/d1/**", []string{"/d1", "/d1/sub", "/d1/sub/z.csv", "/d1/x.csv", "/d1/y.txt"}},
		{"/**/sub/**", []string{"/d1/sub", "/d1/sub/z.csv"}},
		{"/d?/[wx].csv", []string{"/d1/x.csv", "/d2/w.csv"}},
		{"/d[^1]/*", []string{"/d2/w.csv"}},
		{"/d[1-2]/[!x]*", []string{"/d1/x.csv"}}, // '!' is no negation in path.Match
		{"/\\d1/\\x.csv", []string{"/d1/x.csv"}},
		{"/nope/*", nil},
		{"/a.csv/*", nil},
		{"/*.CSV", nil},
	} {
		if got := matchPaths(t, db, c, tc.glob); !slices.Equal(got, tc.want) {
			t.Errorf("glob %q matched %q, want %q", tc.glob, got, tc.want)
		}
	}
	// The root entry carries the commit's root and totals.
	Match(db, c, "/", func(p string, e *meta.Entry, _ []string) error {
		if e.Tree != c.Root || e.Size != c.Size || e.Files != c.Files || !e.IsDir() {
			t.Errorf("root entry %+v, commit %+v", e, c)
		}
		return nil
	})
}

func TestBadGlobs(t *testing.T) {
	for _, g := range []string{"", "/[", "/a[", "/(a", "/a)", "/[]a]", "/[a-]", "/[-a]", "/[z-a]", "/\\", "/a//b", "/()/b", "/[^]"} {
		if _, err := compileGlob(g); err == nil {
			t.Errorf("glob %q compiled", g)
		}
	}
	db := openDB(t)
	c := write(t, db, "r", files("/a"))
	if err := Match(db, c, "/[", func(string, *meta.Entry, []string) error { return nil }); err == nil {
		t.Error("Match of a bad glob succeeded")
	}
}

// TestComponentsAgreeWithPathMatch checks the translation of path.Match's
// syntax to regexps against path.Match itself.
func TestComponentsAgreeWithPathMatch(t *testing.T) {
	patterns := []string{
		"*", "a*", "*.csv", "?", "a?c", "??", "[abc]", "[^abc]", "[a-c]x", `[\]]`, `[\-]`, `\*`, `\[a`, "[!a]",
		"*a*b*", "[a-]", "[-a]", "[]", "a[", "[^]", "[é-ü]x", `\\`, "a\\b", "[a-c-e]", "[^a-z]*", "*[", ".*", "a.c",
		"+", "a|b", "$", "^a", "{a}", "[[]", `[\\-\]]`, "x[^-]",
	}
	names := []string{"a", "abc", "a.csv", ".csv", "b", "]", "*", "[a", "!", "x", "é", "éx", "ñx", "a-b", "ab-", "aXbY",
		"aab", "ac", "axc", "a\nc", "-", "\\", "+", "a|b", "$", "^a", "{a}", "[", "x-", "xy", "ab"}
	for _, p := range patterns {
		_, perr := path.Match(p, "a")
		g, err := compileGlob("/" + p)
		if (perr != nil) != (err != nil) {
			t.Errorf("pattern %q: path.Match error %v, compile error %v", p, perr, err)
			continue
		}
		if err != nil {
			continue
		}
		if len(g.comps) != 1 {
			t.Fatalf("pattern %q: %d components", p, len(g.comps))
		}
		for _, n := range names {
			want, _ := path.Match(p, n)
			if got := g.comps[0].matches(n); got != want {
				t.Errorf("pattern %q name %q: got %v, path.Match says %v", p, n, got, want)
			}
			// The capturing regexp for the whole path agrees too.
			if got := g.full.MatchString("/" + n); got != want {
				t.Errorf("pattern %q name %q: full regexp %v, path.Match says %v", p, n, got, want)
			}
		}
	}
}

func TestCaptureGroups(t *testing.T) {
	db := openDB(t)
	c := write(t, db, "r", files("/x-y.csv", "/a-b-c.csv", "/plain.csv", "/dir/p-q.csv", "/dir/deep/r-s.csv", "/(1).txt", "/b7.dat"))
	type m struct {
		path   string
		groups []string
	}
	for _, tc := range []struct {
		glob string
		want []m
	}{
		{"/(*)-(*).csv", []m{{"/a-b-c.csv", []string{"a-b", "c"}}, {"/x-y.csv", []string{"x", "y"}}}},
		{"/(*)/(*)-*.csv", []m{{"/dir/p-q.csv", []string{"dir", "p"}}}},
		{"/(**)/*-(?).csv", []m{{"/a-b-c.csv", []string{"", "c"}}, {"/dir/deep/r-s.csv", []string{"dir/deep", "s"}}, {"/dir/p-q.csv", []string{"dir", "q"}}, {"/x-y.csv", []string{"", "y"}}}},
		{"/(d*/p)-*.csv", []m{{"/dir/p-q.csv", []string{"dir/p"}}}},
		{`/\((*)\).txt`, []m{{"/(1).txt", []string{"1"}}}},
		{"/([a-c])([0-9]).dat", []m{{"/b7.dat", []string{"b", "7"}}}},
		{"/((*)-(*)).csv", []m{{"/a-b-c.csv", []string{"a-b-c", "a-b", "c"}}, {"/x-y.csv", []string{"x-y", "x", "y"}}}},
		{"/*-*.csv", []m{{"/a-b-c.csv", nil}, {"/x-y.csv", nil}}},
	} {
		var got []m
		err := Match(db, c, tc.glob, func(p string, e *meta.Entry, groups []string) error {
			got = append(got, m{p, slices.Clone(groups)})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) || len(got) != len(tc.want) {
			t.Errorf("glob %q: got %q, want %q", tc.glob, got, tc.want)
		}
	}
}

func TestPFSDatums(t *testing.T) {
	db := openDB(t)
	c := write(t, db, "images", tree)
	ds := list(t, db, pfs("images", "/*"), Inputs{"images": c})
	want := []string{"images:/a.csv", "images:/b.txt", "images:/d1", "images:/d2"}
	if got := shape(ds); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for _, d := range ds {
		f := d.Files[0]
		if f.Repo != "images" || f.Commit != c.ID {
			t.Errorf("file %+v", f)
		}
		e, err := db.Lookup(c.Root, f.Path)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := db.ContentHash(e)
		if f.Hash != h || f.Entry.Type != e.Type {
			t.Errorf("%s: hash %v entry %+v, want %v %+v", f.Path, f.Hash, f.Entry, h, e)
		}
	}
	// The whole repo as one datum.
	ds = list(t, db, pfs("images", "/"), Inputs{"images": c})
	if len(ds) != 1 || ds[0].Files[0].Path != "/" || ds[0].Files[0].Hash != c.Root || ds[0].Files[0].Entry.Files != c.Files {
		t.Fatalf("root datum %+v", ds)
	}
	// A named input reads the commit under its name.
	in := pfs("images", "/*.csv")
	in.PFS.Name = "pics"
	ds = list(t, db, in, Inputs{"pics": c})
	if got := shape(ds); !slices.Equal(got, []string{"pics:/a.csv"}) {
		t.Fatalf("got %q", got)
	}
}

func TestCross(t *testing.T) {
	db := openDB(t)
	a := write(t, db, "a", files("/1", "/2", "/3"))
	b := write(t, db, "b", files("/x", "/y", "/z", "/w"))
	ds := list(t, db, spec.Input{Cross: []spec.Input{pfs("a", "/*"), pfs("b", "/*")}}, Inputs{"a": a, "b": b})
	if len(ds) != 12 {
		t.Fatalf("%d datums, want 12: %q", len(ds), shape(ds))
	}
	seen := map[string]bool{}
	for _, d := range ds {
		if len(d.Files) != 2 || d.Files[0].Input != "a" || d.Files[1].Input != "b" {
			t.Fatalf("datum %q", shape([]*Datum{d}))
		}
		seen[d.Files[0].Path+d.Files[1].Path] = true
	}
	if len(seen) != 12 {
		t.Fatalf("%d distinct pairs", len(seen))
	}
	// Three-way, with a root datum.
	c := write(t, db, "c", files("/only"))
	ds = list(t, db, spec.Input{Cross: []spec.Input{pfs("a", "/*"), pfs("b", "/*"), pfs("c", "/")}}, Inputs{"a": a, "b": b, "c": c})
	if len(ds) != 12 || len(ds[0].Files) != 3 {
		t.Fatalf("3-way cross: %q", shape(ds))
	}
	// With an empty side, nothing.
	e := emptyCommit(t, db, "e")
	ds = list(t, db, spec.Input{Cross: []spec.Input{pfs("a", "/*"), pfs("e", "/*")}}, Inputs{"a": a, "e": e})
	if len(ds) != 0 {
		t.Fatalf("cross with empty: %q", shape(ds))
	}
	ds = list(t, db, spec.Input{Cross: []spec.Input{pfs("a", "/*"), pfs("b", "/nothing-*")}}, Inputs{"a": a, "b": b})
	if len(ds) != 0 {
		t.Fatalf("cross with no matches: %q", shape(ds))
	}
}

func TestUnion(t *testing.T) {
	db := openDB(t)
	a := write(t, db, "a", files("/1", "/2", "/3"))
	b := write(t, db, "b", files("/x", "/y"))
	e := emptyCommit(t, db, "e")
	ds := list(t, db, spec.Input{Union: []spec.Input{pfs("a", "/*"), pfs("b", "/*"), pfs("e", "/")}}, Inputs{"a": a, "b": b, "e": e})
	want := []string{"a:/1", "a:/2", "a:/3", "b:/x", "b:/y"}
	if got := shape(ds); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	// Equal datums appear once.
	ds = list(t, db, spec.Input{Union: []spec.Input{pfs("a", "/*"), pfs("a", "/[12]")}}, Inputs{"a": a})
	if got := shape(ds); !slices.Equal(got, want[:3]) {
		t.Fatalf("got %q", got)
	}
	// A union inside a cross.
	ds = list(t, db, spec.Input{Cross: []spec.Input{{Union: []spec.Input{pfs("a", "/1"), pfs("b", "/x")}}, pfs("e", "/")}}, Inputs{"a": a, "b": b, "e": e})
	if len(ds) != 0 {
		t.Fatalf("cross of union with empty: %q", shape(ds))
	}
	c := write(t, db, "c", files("/k"))
	ds = list(t, db, spec.Input{Cross: []spec.Input{{Union: []spec.Input{pfs("a", "/1"), pfs("b", "/x")}}, pfs("c", "/")}}, Inputs{"a": a, "b": b, "c": c})
	if got := shape(ds); !slices.Equal(got, []string{"a:/1 c:/", "b:/x c:/"}) {
		t.Fatalf("got %q", got)
	}
}

func joinInput(repo, glob, on string, outer bool) spec.Input {
	in := pfs(repo, glob)
	in.PFS.JoinOn = on
	in.PFS.OuterJoin = outer
	return in
}

func TestJoin(t *testing.T) {
	db := openDB(t)
	l := write(t, db, "left", files("/1.csv", "/2.csv", "/3.csv", "/5-a.csv", "/5-b.csv"))
	r := write(t, db, "right", files("/1.txt", "/2.txt", "/4.txt", "/5.txt", "/dir/6.txt"))
	m := write(t, db, "mid", files("/k1", "/k2", "/k4", "/k7"))
	commits := Inputs{"left": l, "right": r, "mid": m}
	run := func(ins ...spec.Input) []string {
		return shape(list(t, db, spec.Input{Join: ins}, commits))
	}
	for _, tc := range []struct {
		name string
		ins  []spec.Input
		want []string
	}{
		{"inner", []spec.Input{joinInput("left", "/(*).csv", "$1", false), joinInput("right", "/(*).txt", "$1", false)},
			[]string{"left:/1.csv right:/1.txt", "left:/2.csv right:/2.txt"}},
		{"several per key", []spec.Input{joinInput("left", "/(*)-*.csv", "$1", false), joinInput("right", "/(*).txt", "${1}", false)},
			[]string{"left:/5-a.csv right:/5.txt", "left:/5-b.csv right:/5.txt"}},
		{"left outer", []spec.Input{joinInput("left", "/(*).csv", "$1", true), joinInput("right", "/(*).txt", "$1", false)},
			[]string{"left:/1.csv right:/1.txt", "left:/2.csv right:/2.txt", "left:/3.csv", "left:/5-a.csv", "left:/5-b.csv"}},
		{"right outer", []spec.Input{joinInput("left", "/(*).csv", "$1", false), joinInput("right", "/(*).txt", "$1", true)},
			[]string{"left:/1.csv right:/1.txt", "left:/2.csv right:/2.txt", "right:/4.txt", "right:/5.txt"}},
		{"full outer", []spec.Input{joinInput("left", "/(*).csv", "$1", true), joinInput("right", "/(*).txt", "$1", true)},
			[]string{"left:/1.csv right:/1.txt", "left:/2.csv right:/2.txt", "left:/3.csv", "left:/5-a.csv", "left:/5-b.csv", "right:/4.txt", "right:/5.txt"}},
		{"three-way inner", []spec.Input{joinInput("left", "/(*).csv", "$1", false), joinInput("right", "/(*).txt", "$1", false), joinInput("mid", "/k(*)", "$1", false)},
			[]string{"left:/1.csv mid:/k1 right:/1.txt", "left:/2.csv mid:/k2 right:/2.txt"}},
		{"three-way, mid outer", []spec.Input{joinInput("left", "/(*).csv", "$1", false), joinInput("right", "/(*).txt", "$1", false), joinInput("mid", "/k(*)", "$1", true)},
			[]string{"left:/1.csv mid:/k1 right:/1.txt", "left:/2.csv mid:/k2 right:/2.txt", "mid:/k4 right:/4.txt", "mid:/k7"}},
		{"keys from deeper globs", []spec.Input{joinInput("right", "/**/(*).txt", "$1", false), joinInput("mid", "/k(*)", "x$1", false)},
			nil},
		{"literal key text", []spec.Input{joinInput("right", "/**/(*).txt", "x$1", false), joinInput("mid", "/k(*)", "x$1", false)},
			[]string{"mid:/k1 right:/1.txt", "mid:/k2 right:/2.txt", "mid:/k4 right:/4.txt"}},
	} {
		if got := run(tc.ins...); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	// Join with an empty side.
	e := emptyCommit(t, db, "e")
	commits["e"] = e
	if got := run(joinInput("left", "/(*).csv", "$1", false), joinInput("e", "/(*)", "$1", false)); len(got) != 0 {
		t.Errorf("join with empty: %q", got)
	}
	if got := run(joinInput("left", "/(*).csv", "$1", true), joinInput("e", "/(*)", "$1", false)); len(got) != 5 {
		t.Errorf("outer join with empty: %q", got)
	}
}

func TestGroup(t *testing.T) {
	db := openDB(t)
	a := write(t, db, "a", files("/1-a.csv", "/1-b.csv", "/2-a.csv", "/3-c.csv"))
	b := write(t, db, "b", files("/1.txt", "/4.txt"))
	group := func(repo, glob, by string) spec.Input {
		in := pfs(repo, glob)
		in.PFS.GroupBy = by
		return in
	}
	ds := list(t, db, spec.Input{Group: []spec.Input{group("a", "/(*)-*.csv", "$1"), group("b", "/(*).txt", "$1")}}, Inputs{"a": a, "b": b})
	want := []string{"a:/1-a.csv a:/1-b.csv b:/1.txt", "a:/2-a.csv", "a:/3-c.csv", "b:/4.txt"}
	if got := shape(ds); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	// Group by the second wildcard of one input.
	ds = list(t, db, spec.Input{Group: []spec.Input{group("a", "/*-(*).csv", "$1")}}, Inputs{"a": a})
	want = []string{"a:/1-a.csv a:/2-a.csv", "a:/1-b.csv", "a:/3-c.csv"}
	if got := shape(ds); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	// A constant key gathers everything.
	ds = list(t, db, spec.Input{Group: []spec.Input{group("a", "/*", "all")}}, Inputs{"a": a})
	if len(ds) != 1 || len(ds[0].Files) != 4 {
		t.Fatalf("got %q", shape(ds))
	}
	// A group crossed with another input.
	ds = list(t, db, spec.Input{Cross: []spec.Input{{Group: []spec.Input{group("a", "/(*)-*.csv", "$1")}}, pfs("b", "/*")}}, Inputs{"a": a, "b": b})
	if len(ds) != 6 {
		t.Fatalf("group x pfs: %q", shape(ds))
	}
}

func TestCron(t *testing.T) {
	db := openDB(t)
	c := write(t, db, "pipe_tick", files("/2026-01-01T00:00:00Z"))
	ds := list(t, db, spec.Input{Cron: &spec.CronInput{Name: "tick", Spec: "@every 1m"}}, Inputs{"tick": c})
	if len(ds) != 1 {
		t.Fatalf("%d datums", len(ds))
	}
	f := ds[0].Files[0]
	if f.Input != "tick" || f.Repo != "pipe_tick" || f.Path != "/" || f.Commit != c.ID {
		t.Fatalf("file %+v", f)
	}
}

func TestErrors(t *testing.T) {
	db := openDB(t)
	a := write(t, db, "a", files("/1-x"))
	for _, tc := range []struct {
		name string
		in   spec.Input
		want string
	}{
		{"missing commit", spec.Input{Cross: []spec.Input{pfs("a", "/*"), pfs("images", "/*")}}, `"images"`},
		{"missing cron commit", spec.Input{Cron: &spec.CronInput{Name: "tick"}}, `"tick"`},
		{"bad glob", pfs("a", "/(*"), "glob"},
		{"empty input", spec.Input{}, "empty input"},
		{"two kinds", spec.Input{PFS: pfs("a", "/").PFS, Cron: &spec.CronInput{Name: "t"}}, "more than one"},
		{"join without join_on", spec.Input{Join: []spec.Input{joinInput("a", "/(*)", "$1", false), pfs("a", "/*")}}, "join_on"},
		{"join of a cross", spec.Input{Join: []spec.Input{joinInput("a", "/(*)", "$1", false), {Cross: []spec.Input{pfs("a", "/")}}}}, "pfs"},
		{"group without group_by", spec.Input{Group: []spec.Input{pfs("a", "/*")}}, "group_by"},
		{"group beyond groups", spec.Input{Group: []spec.Input{func() spec.Input { in := pfs("a", "/(*)-(*)"); in.PFS.GroupBy = "$3"; return in }()}}, "$3"},
		{"bad template", spec.Input{Join: []spec.Input{joinInput("a", "/(*)", "$x", false)}}, "group number"},
		{"unterminated template", spec.Input{Join: []spec.Input{joinInput("a", "/(*)", "${1", false)}}, "unterminated"},
	} {
		_, err := List(context.Background(), db, &tc.in, Inputs{"a": a})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	in := pfs("a", "/*")
	if _, err := List(ctx, db, &in, Inputs{"a": a}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestTemplates(t *testing.T) {
	for _, tc := range []struct{ tmpl, want string }{
		{"$1", "a"}, {"$2-$1", "b-a"}, {"${1}x", "ax"}, {"$$1", "$1"}, {"k", "k"}, {"$0", "/a-b"}, {"$1$2", "ab"},
	} {
		tm, err := parseTemplate(tc.tmpl, 2)
		if err != nil {
			t.Fatalf("%q: %v", tc.tmpl, err)
		}
		if got := tm.expand("/a-b", []string{"a", "b"}); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.tmpl, got, tc.want)
		}
	}
	for _, bad := range []string{"$", "$3", "${x}", "$-1", "${+1}", "${1"} {
		if _, err := parseTemplate(bad, 2); err == nil {
			t.Errorf("template %q parsed", bad)
		}
	}
}

func TestEmptyInputs(t *testing.T) {
	db := openDB(t)
	e := emptyCommit(t, db, "e")
	for _, g := range []string{"/", "/*", "/**"} {
		if ds := list(t, db, pfs("e", g), Inputs{"e": e}); len(ds) != 0 {
			t.Errorf("glob %q over an empty commit: %q", g, shape(ds))
		}
	}
	// A commit whose files were all deleted is empty too.
	write(t, db, "d", files("/x"))
	d := write(t, db, "d", map[string]string{"-/x": ""})
	if ds := list(t, db, pfs("d", "/"), Inputs{"d": d}); len(ds) != 0 {
		t.Errorf("emptied commit: %q", shape(ds))
	}
}

func byPath(t *testing.T, ds []*Datum) map[string]*Datum {
	t.Helper()
	m := map[string]*Datum{}
	for _, d := range ds {
		m[d.Files[0].Path] = d
	}
	return m
}

func TestStableIDsAndHashes(t *testing.T) {
	db := openDB(t)
	c1 := write(t, db, "r", files("/a", "/b", "/c", "/dir/x", "/dir/y"))
	c2 := write(t, db, "r", map[string]string{"/b": "new content", "/d": "added", "/dir/y": "changed"})
	in := pfs("r", "/*")
	d1 := byPath(t, list(t, db, in, Inputs{"r": c1}))
	d2 := byPath(t, list(t, db, in, Inputs{"r": c2}))
	if len(d1) != 4 || len(d2) != 5 {
		t.Fatalf("%d and %d datums", len(d1), len(d2))
	}
	for _, p := range []string{"/a", "/b", "/c", "/dir"} {
		if d1[p].ID != d2[p].ID {
			t.Errorf("%s: ID %s then %s", p, d1[p].ID, d2[p].ID)
		}
	}
	for p, changed := range map[string]bool{"/a": false, "/c": false, "/b": true, "/dir": true} {
		h1, h2 := d1[p].Hash("v1"), d2[p].Hash("v1")
		if (h1 != h2) != changed {
			t.Errorf("%s: hash %s then %s, changed=%v", p, h1, h2, changed)
		}
		if d1[p].Hash("v1") == d1[p].Hash("v2") {
			t.Errorf("%s: salt does not change the hash", p)
		}
		if d1[p].Hash("v1") != d1[p].Hash("v1") {
			t.Errorf("%s: hash not deterministic", p)
		}
	}
	// IDs depend on the input name and the path, nothing else.
	other := write(t, db, "other", files("/a"))
	in2 := pfs("other", "/*")
	in2.PFS.Name = "r"
	if d := list(t, db, in2, Inputs{"r": other}); d[0].ID != d1["/a"].ID {
		t.Errorf("same (input, path) in another repo: ID %s, want %s", d[0].ID, d1["/a"].ID)
	}
	// A cross datum's hash follows either side.
	o := write(t, db, "o", files("/m"))
	cross := spec.Input{Cross: []spec.Input{pfs("r", "/a"), pfs("o", "/*")}}
	x1 := list(t, db, cross, Inputs{"r": c1, "o": o})
	x2 := list(t, db, cross, Inputs{"r": c2, "o": o})
	o2 := write(t, db, "o", map[string]string{"/m": "other"})
	x3 := list(t, db, cross, Inputs{"r": c2, "o": o2})
	if x1[0].ID != x3[0].ID || x1[0].Hash("") != x2[0].Hash("") || x2[0].Hash("") == x3[0].Hash("") {
		t.Errorf("cross hashes: %s %s %s", x1[0].Hash(""), x2[0].Hash(""), x3[0].Hash(""))
	}
}

// countingReader counts the directory reads and lookups of a match.
type countingReader struct {
	db              *meta.DB
	readDir, lookup int
}

func (c *countingReader) ReadDir(h meta.Hash) ([]meta.Entry, error) {
	c.readDir++
	return c.db.ReadDir(h)
}

func (c *countingReader) Lookup(root meta.Hash, p string) (*meta.Entry, error) {
	c.lookup++
	return c.db.Lookup(root, p)
}

func TestMatchReadsOnlyWhatItNeeds(t *testing.T) {
	db := openDB(t)
	fs := map[string]string{}
	for i := range 100 {
		fs[fmt.Sprintf("/f%03d", i)] = fmt.Sprint(i)
	}
	for d := range 10 {
		for s := range 5 {
			for f := range 3 {
				fs[fmt.Sprintf("/d%d/s%d/f%d", d, s, f)] = fmt.Sprint(d, s, f)
			}
		}
	}
	c := write(t, db, "r", fs)
	const dirs = 1 + 10 + 10*5
	for _, tc := range []struct {
		glob             string
		matches          int
		readDir, lookups int
	}{
		{"/", 1, 0, 0},
		{"/*", 110, 1, 0},
		{"/f0*", 100, 1, 0},
		{"/*/*", 50, 11, 0},
		{"/d3/*", 5, 1, 1},
		{"/d3/s1/*", 3, 1, 2},
		{"/d3/s1/f2", 1, 0, 3},
		{"/d3/nope/*", 0, 0, 2},
		{"/d*/s1", 10, 1, 10},
		{"/**", 100 + 10 + 50 + 150, dirs, 0},
		{"/**/f1", 50, dirs, 0},
		{"/d3/**", 1 + 5 + 15, 6, 1},
	} {
		g, err := compileGlob(tc.glob)
		if err != nil {
			t.Fatal(err)
		}
		r := &countingReader{db: db}
		n := 0
		if err := g.match(r, c, func(string, *meta.Entry, []string) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if n != tc.matches || r.readDir != tc.readDir || r.lookup != tc.lookups {
			t.Errorf("glob %q: %d matches, %d ReadDir, %d Lookup; want %d, %d, %d", tc.glob, n, r.readDir, r.lookup, tc.matches, tc.readDir, tc.lookups)
		}
	}
}

func TestManyTopLevelFiles(t *testing.T) {
	db := openDB(t)
	c := bigCommit(t, db, 10_000)
	in := pfs("big", "/*")
	ds := list(t, db, in, Inputs{"big": c})
	if len(ds) != 10_000 {
		t.Fatalf("%d datums", len(ds))
	}
}

func bigCommit(t testing.TB, db *meta.DB, n int) *meta.Commit {
	fs := make(map[string]string, n)
	for i := range n {
		fs[fmt.Sprintf("/file%05d.dat", i)] = fmt.Sprint(i)
	}
	return write(t, db, "big", fs)
}

func BenchmarkList10kTopLevel(b *testing.B) {
	db := openDB(b)
	c := bigCommit(b, db, 10_000)
	in := pfs("big", "/*")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		ds, err := List(ctx, db, &in, Inputs{"big": c})
		if err != nil || len(ds) != 10_000 {
			b.Fatal(len(ds), err)
		}
	}
}

// BenchmarkReadDir10k is the floor under the two above: meta's ReadDir
// of the 10,000-entry root.
func BenchmarkReadDir10k(b *testing.B) {
	db := openDB(b)
	c := bigCommit(b, db, 10_000)
	for b.Loop() {
		if es, err := db.ReadDir(c.Root); err != nil || len(es) != 10_000 {
			b.Fatal(len(es), err)
		}
	}
}

func BenchmarkMatch10kTopLevel(b *testing.B) {
	db := openDB(b)
	c := bigCommit(b, db, 10_000)
	for b.Loop() {
		n := 0
		if err := Match(db, c, "/*.dat", func(string, *meta.Entry, []string) error { n++; return nil }); err != nil || n != 10_000 {
			b.Fatal(n, err)
		}
	}
}

func TestViewChanges(t *testing.T) {
	db := openDB(t)
	img := write(t, db, "images", files("/b1/x.png", "/b1/y.png", "/b2/z.png"))
	cfg := write(t, db, "config", files("/c.yaml"))
	ds := list(t, db, spec.Input{Cross: []spec.Input{pfs("images", "/*/x.png"), pfs("config", "/")}}, Inputs{"images": img, "config": cfg})
	if len(ds) != 1 {
		t.Fatalf("%q", shape(ds))
	}
	cs, err := viewChanges(ds[0])
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cs {
		got = append(got, fmt.Sprint(c.Op, " ", c.Path))
	}
	want := []string{fmt.Sprint(meta.OpPut, " /config"), fmt.Sprint(meta.OpPut, " /images/b1/x.png"), fmt.Sprint(meta.OpMkdir, " /out")}
	if !slices.Equal(got, want) {
		t.Fatalf("changes %q, want %q", got, want)
	}
	if cs[0].Entry.Tree != cfg.Root || !cs[0].Entry.IsDir() {
		t.Errorf("root put %+v", cs[0].Entry)
	}
	if _, err := viewChanges(&Datum{Files: []File{{Input: "out", Path: "/"}}}); err == nil {
		t.Error("input named out accepted")
	}
	if _, err := viewChanges(&Datum{Files: []File{{Input: "..", Path: "/"}}}); err == nil {
		t.Error("input named .. accepted")
	}
}

func TestView(t *testing.T) {
	db := openDB(t)
	img := write(t, db, "images", files("/b1/x.png", "/b1/y.png", "/b2/z.png"))
	cfg := write(t, db, "config", files("/c.yaml", "/sub/d.yaml"))
	ds := list(t, db, spec.Input{Cross: []spec.Input{pfs("images", "/*/x.png"), pfs("config", "/")}}, Inputs{"images": img, "config": cfg})
	root, err := View(db, ds[0])
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := db.Walk(root, "/", func(p string, e *meta.Entry) error {
		got = append(got, fmt.Sprint(p, " ", e.Type))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/config " + meta.TypeDir.String(), "/config/c.yaml " + meta.TypeFile.String(), "/config/sub " + meta.TypeDir.String(), "/config/sub/d.yaml " + meta.TypeFile.String(),
		"/images " + meta.TypeDir.String(), "/images/b1 " + meta.TypeDir.String(), "/images/b1/x.png " + meta.TypeFile.String(),
		"/out " + meta.TypeDir.String(),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("view:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	e, err := db.Lookup(root, "/config")
	if err != nil || e.Tree != cfg.Root {
		t.Fatalf("/config %+v %v, want tree %v", e, err, cfg.Root)
	}
	x, err := db.Lookup(root, "/images/b1/x.png")
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := db.ContentHash(x); h != ds[0].Files[1].Hash {
		t.Errorf("x.png content hash %v, want %v", h, ds[0].Files[1].Hash)
	}
	out, err := db.Lookup(root, "/out")
	if err != nil || out.Tree != meta.EmptyTree {
		t.Fatalf("/out %+v %v", out, err)
	}
}
