package chunk_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/chunk/backendtest"
)

func TestMem(t *testing.T) {
	backendtest.Run(t, func(*testing.T) chunk.Backend { return chunk.NewMem() })
}

func TestDir(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) chunk.Backend {
		return newDir(t)
	})
}

// TestDirTemp checks that List skips files being written and removes those
// a crash left behind.
func TestDirTemp(t *testing.T) {
	d := newDir(t)
	id := chunk.Sum([]byte("x"))
	if err := d.Put(ctx, id, []byte("blob")); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(filepath.Dir(d.Path(id)), ".tmp-fresh")
	stale := filepath.Join(filepath.Dir(d.Path(id)), ".tmp-stale")
	for _, p := range []string{fresh, stale} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	var ids []chunk.ID
	if err := d.List(ctx, func(id chunk.ID, _ chunk.Info) error { ids = append(ids, id); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != id {
		t.Errorf("List = %v, want [%s]", ids, id)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("List removed a fresh temp file: %v", err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("List left a stale temp file: %v", err)
	}
}
