package chunk_test

import (
	"context"
	"io"
	"io/fs"
	"testing"
	"time"

	"github.com/strata-data/strata/chunk"
)

const benchSize = 256 << 20

// BenchmarkWriter measures ingest of random data into a fresh Dir: chunking,
// hashing, the compression sample and the writes, without Sync.
func BenchmarkWriter(b *testing.B) {
	data := randomBytes(1, benchSize)
	dir, err := chunk.NewDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	s := newStore(b, testConfig("s2"), dir, dir)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		write(b, s, data)
		b.StopTimer()
		// Empty the store, or the next round would only touch chunks.
		if _, _, err := s.Sweep(ctx, func(chunk.ID) bool { return false }, -time.Hour); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkReader measures reading a file back: fetch, verify, copy out.
func BenchmarkReader(b *testing.B) {
	dir, err := chunk.NewDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	s := newStore(b, testConfig("s2"), dir, dir)
	refs := write(b, s, randomBytes(2, benchSize))
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		if n, err := s.NewReader(ctx, refs).WriteTo(io.Discard); err != nil || n != benchSize {
			b.Fatalf("WriteTo = %d, %v", n, err)
		}
	}
}

// BenchmarkWriterNull is BenchmarkWriter without the disk: chunking,
// hashing and the compression sample alone.
func BenchmarkWriterNull(b *testing.B) {
	data := randomBytes(1, benchSize)
	s := newStore(b, testConfig("s2"), nullBackend{}, nullBackend{})
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		write(b, s, data)
	}
}

// nullBackend stores nothing and has nothing.
type nullBackend struct{ *chunk.Mem }

func (nullBackend) Put(context.Context, chunk.ID, []byte) error { return nil }
func (nullBackend) Stat(context.Context, chunk.ID) (chunk.Info, error) {
	return chunk.Info{}, fs.ErrNotExist
}
