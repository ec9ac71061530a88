package meta

import (
	"errors"
	"testing"
	"time"

	"github.com/strata-data/strata/chunk"
)

func TestRecordsAndPins(t *testing.T) {
	db := openTest(t)
	rb := db.NewRecordBatch()
	for _, k := range []string{"a/1", "a/2", "b/1"} {
		if err := rb.Put("job", k, map[string]string{"k": k}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rb.Commit(true); err != nil {
		t.Fatal(err)
	}
	var got []string
	db.ScanRecords("job", "a/", true, func(k string, _ []byte) (bool, error) { got = append(got, k); return true, nil })
	if len(got) != 2 || got[0] != "a/2" || got[1] != "a/1" {
		t.Fatalf("reverse scan of a/: %v", got)
	}
	var v map[string]string
	if err := db.GetRecord("job", "b/1", &v); err != nil || v["k"] != "b/1" {
		t.Fatalf("get: %v %v", v, err)
	}
	rb = db.NewRecordBatch()
	rb.DeletePrefix("job", "a/")
	rb.Commit(false)
	if err := db.GetRecord("job", "a/1", &v); !errors.Is(err, ErrNotExist) {
		t.Fatalf("deleted record: %v", err)
	}

	// A built tree survives node gc only while pinned.
	root, err := db.BuildTree([]Change{{Op: OpPut, Path: "/x/y", Entry: fileEntry("y")}})
	if err != nil {
		t.Fatal(err)
	}
	rb = db.NewRecordBatch()
	rb.Pin("p/1", root)
	rb.Commit(true)
	mark := func(r Hash, visit func(Hash) bool) error {
		return db.Reachable(r, visit, func(string, chunk.Ref) {}, func(string, error) {})
	}
	if _, err := db.SweepNodes(time.Now(), mark); err != nil {
		t.Fatal(err)
	}
	if e, err := db.Lookup(root, "/x/y"); err != nil || e.Size != 1 {
		t.Fatalf("pinned tree after sweep: %v %v", e, err)
	}
	rb = db.NewRecordBatch()
	rb.UnpinPrefix("p/")
	rb.Commit(true)
	// Unpinned, it survives a sweep that keeps trees built since before
	// it was built (its owner may be about to pin it), not a later one.
	if n, err := db.SweepNodes(time.Now().Add(-time.Hour), mark); err != nil || n != 0 {
		t.Fatalf("sweep keeping recent trees removed %d nodes: %v", n, err)
	}
	db.nodes = newNodeCache(16) // forget cached nodes
	if e, err := db.Lookup(root, "/x/y"); err != nil || e.Size != 1 {
		t.Fatalf("recently built tree after sweep: %v %v", e, err)
	}
	db.nodes = newNodeCache(16)
	if n, err := db.SweepNodes(time.Now(), mark); err != nil || n == 0 {
		t.Fatalf("sweep after unpin removed %d nodes: %v", n, err)
	}
	if _, err := db.Lookup(root, "/x/y"); err == nil {
		t.Fatal("unpinned tree still readable after sweep")
	}
}

func TestFinishCommitInBatch(t *testing.T) {
	db := openTest(t)
	if _, err := db.CreateRepo("out", "", "p"); err != nil {
		t.Fatal(err)
	}
	c, err := db.StartCommit("out", DefaultBranch, CommitOptions{Spec: "p@1", Provenance: []CommitRef{{Repo: "in", ID: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	root, err := db.BuildTree([]Change{{Op: OpPut, Path: "/a", Entry: fileEntry("abc")}})
	if err != nil {
		t.Fatal(err)
	}
	rb := db.NewRecordBatch()
	rb.Put("job", "p/1", "done")
	rb.FinishCommit("out", c.ID, &root, "")
	fc, err := rb.Commit(false)
	if err != nil {
		t.Fatal(err)
	}
	if fc.State != StateFinished || fc.Root != root || fc.Size != 3 || fc.Files != 1 || fc.Spec != "p@1" {
		t.Fatalf("finished commit: %+v", fc)
	}
	// A second finish in a batch is a conflict and writes nothing.
	rb = db.NewRecordBatch()
	rb.Put("job", "p/2", "x")
	rb.FinishCommit("out", c.ID, nil, "boom")
	if _, err := rb.Commit(true); !errors.Is(err, ErrConflict) {
		t.Fatalf("double finish: %v", err)
	}
	var s string
	if err := db.GetRecord("job", "p/2", &s); !errors.Is(err, ErrNotExist) {
		t.Fatalf("record of a failed batch was written: %v", err)
	}
}
