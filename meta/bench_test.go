package meta

import (
	"fmt"
	"testing"
	"time"

	"github.com/strata-data/strata/chunk"
)

// BenchmarkMillionFiles builds a repo of 1,000,000 files (1,000 directories
// of 1,000) plus one directory of 100,000, then measures what the store
// promises: a one-file commit's time and new metadata bytes, and listing
// the 100,000-entry directory.
func BenchmarkMillionFiles(b *testing.B) {
	db := openTest(b)
	db.CreateRepo("big", "", "")
	ref := func(i int) Entry {
		id := chunk.Sum([]byte(fmt.Sprint(i)))
		return Entry{Type: TypeFile, Size: int64(1000 + i%5000), Chunks: []chunk.Ref{{ID: id, Size: uint32(1000 + i%5000)}}}
	}
	start := time.Now()
	var cs []Change
	flush := func() {
		if _, err := db.Write("big", "main", cs, CommitOptions{}); err != nil {
			b.Fatal(err)
		}
		cs = cs[:0]
	}
	for d := 0; d < 1000; d++ {
		for f := 0; f < 1000; f++ {
			cs = append(cs, Change{Op: OpPut, Path: fmt.Sprintf("/dir%03d/file%04d.dat", d, f), Entry: ref(d*1000 + f)})
		}
		if len(cs) >= 100_000 {
			flush()
		}
	}
	for f := 0; f < 100_000; f++ {
		cs = append(cs, Change{Op: OpPut, Path: fmt.Sprintf("/wide/item%06d", f), Entry: ref(f)})
	}
	flush()
	b.Logf("built 1,100,000 files in %v", time.Since(start))

	b.Run("one-file-commit", func(b *testing.B) {
		var bytes int
		for i := 0; i < b.N; i++ {
			res, err := db.Write("big", "main", []Change{{Op: OpPut, Path: fmt.Sprintf("/dir%03d/file%04d.dat", i%1000, i%1000), Entry: ref(-i - 1)}}, CommitOptions{})
			if err != nil {
				b.Fatal(err)
			}
			bytes += res.NodeBytes
		}
		b.ReportMetric(float64(bytes)/float64(b.N), "meta-bytes/commit")
	})
	b.Run("ls-100k", func(b *testing.B) {
		c, err := db.Resolve("big", "main")
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < b.N; i++ {
			db.nodes = newNodeCache(65536) // cold node cache: read from Pebble
			e, err := db.Lookup(c.Root, "/wide")
			if err != nil {
				b.Fatal(err)
			}
			es, err := db.ReadDir(e.Tree)
			if err != nil || len(es) != 100_000 {
				b.Fatalf("ReadDir: %d entries, %v", len(es), err)
			}
		}
	})
	b.Run("diff-one-change", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			a, _ := db.Resolve("big", "main^1")
			c, _ := db.Resolve("big", "main")
			n := 0
			if err := db.DiffTrees(a.Root, c.Root, func(Diff) error { n++; return nil }); err != nil || n != 1 {
				b.Fatalf("diff found %d changes, %v", n, err)
			}
		}
	})
}
