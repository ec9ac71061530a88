package store

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/strata-data/strata/meta"
)

var ctx = context.Background()

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Meta.CreateRepo("r", "", ""); err != nil {
		t.Fatal(err)
	}
	return s
}

func tarOf(t *testing.T, files map[string]string, names ...string) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		if strings.HasSuffix(n, "/") {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: n, Mode: 0o755})
			continue
		}
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Size: int64(len(files[n])), Mode: 0o644})
		io.WriteString(tw, files[n])
	}
	tw.Close()
	return &buf
}

func read(t *testing.T, s *Store, ref, p string) string {
	t.Helper()
	f, err := s.Open(ctx, "r", ref, p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPutTarNamesAndErrors(t *testing.T) {
	s := open(t)
	files := map[string]string{"./a.txt": "alpha", "./sub/b.txt": "beta"}
	res, err := s.PutTar(ctx, "r", "main", "/in", tarOf(t, files, "./", "./sub/", "./a.txt", "./sub/b.txt"), PutOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit.Files != 2 || read(t, s, "main", "/in/sub/b.txt") != "beta" {
		t.Fatalf("tar with ./ names: %d files", res.Commit.Files)
	}
	bad := tarOf(t, map[string]string{"../x": "x"}, "../x")
	if _, err := s.PutTar(ctx, "r", "main", "/", bad, PutOptions{}, nil); !errors.Is(err, meta.ErrInvalid) {
		t.Fatalf("tar escaping the repo: %v, want ErrInvalid", err)
	}
	if _, err := s.PutTar(ctx, "r", "main", "/", strings.NewReader(strings.Repeat("garbage!", 200)), PutOptions{}, nil); !errors.Is(err, meta.ErrInvalid) {
		t.Fatalf("malformed tar: %v, want ErrInvalid", err)
	}
	if cs, _ := s.Meta.Commits("r", "main", 0); len(cs) != 1 {
		t.Fatalf("failed puts made commits: %d", len(cs))
	}
}

func TestAppendAndReadBack(t *testing.T) {
	s := open(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 200_000) // 3.2 MB: several chunks
	if _, err := s.PutFile(ctx, "r", "main", "/f", bytes.NewReader(big[:1_000_000]), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutFile(ctx, "r", "main", "/f", bytes.NewReader(big[1_000_000:]), PutOptions{Append: true}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, s, "main", "/f"); got != string(big) {
		t.Fatalf("append: got %d bytes, want %d", len(got), len(big))
	}
	if got := read(t, s, "main^1", "/f"); got != string(big[:1_000_000]) {
		t.Fatalf("previous version: %d bytes", len(got))
	}
	// Appending gives the same chunks as writing the whole file at once.
	if _, err := s.PutFile(ctx, "r", "main", "/g", bytes.NewReader(big), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	c, _ := s.Meta.Resolve("r", "main")
	f, _ := s.Meta.Lookup(c.Root, "/f")
	g, _ := s.Meta.Lookup(c.Root, "/g")
	fh, _ := s.Meta.ContentHash(f)
	gh, _ := s.Meta.ContentHash(g)
	if fh != gh {
		t.Fatal("appended file and whole file have different chunks")
	}
}

func TestGCKeepsLiveData(t *testing.T) {
	s := open(t)
	s.PutFile(ctx, "r", "main", "/keep", strings.NewReader(strings.Repeat("k", 300_000)), PutOptions{})
	s.PutFile(ctx, "r", "main", "/drop", strings.NewReader(strings.Repeat("d", 300_000)), PutOptions{})
	if _, err := s.Delete(ctx, "r", "main", "/drop", meta.CommitOptions{}); err != nil {
		t.Fatal(err)
	}
	// Still referenced by main^1: nothing goes.
	if res, err := s.GC(ctx, 0); err != nil || res.Chunks != 0 {
		t.Fatalf("gc with history: %+v %v", res, err)
	}
	// Drop the repo: its chunks become garbage; the grace period keeps them...
	if err := s.Meta.DeleteRepo("r", true); err != nil {
		t.Fatal(err)
	}
	if res, err := s.GC(ctx, time.Hour); err != nil || res.Chunks != 0 {
		t.Fatalf("gc within grace: %+v %v", res, err)
	}
	// ...and without it, both go, and fsck stays clean.
	if res, err := s.GC(ctx, 0); err != nil || res.Chunks != 2 {
		t.Fatalf("gc after delete: %+v %v", res, err)
	}
	var faults []Fault
	if _, _, err := s.Fsck(ctx, func(f Fault) { faults = append(faults, f) }); err != nil || len(faults) != 0 {
		t.Fatalf("fsck: %v %v", faults, err)
	}
}

func TestFormatChecked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Meta.SetConfig("format", Format+1)
	s.Close()
	if _, err := Open(dir, Options{}); !errors.Is(err, meta.ErrInvalid) {
		t.Fatalf("opening a newer format: %v, want ErrInvalid", err)
	}
}

// TestUnchangedSinceOpenCommit: a file vouched unchanged since a commit
// that is still open is refused (stale), since that commit may have moved.
func TestUnchangedSinceOpenCommit(t *testing.T) {
	s := open(t)
	c, err := s.Meta.StartCommit("r", "main", meta.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.PutFile(ctx, "r", "main", "/a", strings.NewReader("alpha"), PutOptions{})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "a", Mode: 0o644, Format: tar.FormatPAX,
		PAXRecords: map[string]string{PAXUnchangedSince: c.ID, PAXSize: "5"}})
	tw.Close()
	if _, err := s.PutTar(ctx, "r", "main", "/", &buf, PutOptions{}, nil); !errors.Is(err, ErrStale) {
		t.Fatalf("unchanged-since an open commit: %v, want ErrStale", err)
	}
}

// A tree IngestTar built and nobody has pinned yet (a datum's output on
// its way to its datum record) survives a gc within the grace period,
// across a reopen, with its chunks; past the grace it is garbage.
func TestGCKeepsFreshlyBuiltTrees(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("b", 300_000) // a large chunk, in DATA/chunks
	root, n, err := s.IngestTar(ctx, tarOf(t, map[string]string{"out/a": "small", "out/b": big}, "out/", "out/a", "out/b"))
	if err != nil || n != 2 {
		t.Fatalf("IngestTar: %d files, %v", n, err)
	}
	res, err := s.GC(ctx, time.Hour)
	if err != nil || res.Nodes != 0 || res.Chunks != 0 {
		t.Fatalf("gc within grace removed %+v, %v; want nothing", res, err)
	}
	s.Close()
	if s, err = Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e, err := s.Meta.Lookup(root, "/out/b")
	if err != nil {
		t.Fatalf("ingested tree after gc and reopen: %v", err)
	}
	refs, err := s.Meta.Refs(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		if _, err := s.Chunks.Get(ctx, r); err != nil {
			t.Fatalf("chunk of the ingested tree after gc: %v", err)
		}
	}
}
