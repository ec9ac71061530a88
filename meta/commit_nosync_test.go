package meta

import (
	"errors"
	"testing"
)

// ApplyNoSync applies like Apply; Sync then makes it durable, and it
// survives a reopen.
func TestApplyNoSync(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateRepo("r", "", ""); err != nil {
		t.Fatal(err)
	}
	c, err := db.StartCommit("r", "main", CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/a", "/d/b"} {
		if _, err := db.ApplyNoSync("r", "main", []Change{{Op: OpPut, Path: p, Entry: fileEntry(p)}}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.Commit("r", c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Files != 2 {
		t.Fatalf("files = %d, want 2", got.Files)
	}
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.FinishCommit("r", c.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ApplyNoSync("r", c.ID, []Change{{Op: OpDelete, Path: "/a"}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("apply to a finished commit: %v, want ErrConflict", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err = db.Commit("r", c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Files != 2 || got.State != StateFinished {
		t.Fatalf("after reopen: %d files, %s; want 2, finished", got.Files, got.State)
	}
}
