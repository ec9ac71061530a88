package meta

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/strata-data/strata/chunk"
)

// ChunkBackend keeps small chunks in the metadata database, so a million
// tiny files do not become a million files on disk. Each chunk has two
// keys: its bytes, and a small record of its last write time (for gc's
// grace period) and size, kept apart so the dedup check (Stat) and Touch
// never read or rewrite the chunk itself.
//
// Puts are written without a WAL sync: they become durable with the next
// synced metadata batch, which always follows before a commit references
// them (Pebble's log is sequential). Sync forces it explicitly.
type ChunkBackend struct {
	db *DB
}

var (
	_ chunk.Backend = (*ChunkBackend)(nil)
	_ chunk.Toucher = (*ChunkBackend)(nil)
	_ chunk.Syncer  = (*ChunkBackend)(nil)
	_ chunk.Local   = (*ChunkBackend)(nil)
)

// Local reports true: the database is on this machine's disk.
func (c *ChunkBackend) Local() bool { return true }

// Chunks returns the small-chunk backend stored in db.
func (db *DB) Chunks() *ChunkBackend { return &ChunkBackend{db: db} }

func chunkKey(fam byte, id chunk.ID) []byte { return append([]byte{fam}, id[:]...) }

// infoRecord encodes the write time (now) and stored size.
func infoRecord(size int64) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
	return binary.AppendUvarint(b, uint64(size))
}

func (c *ChunkBackend) Put(_ context.Context, id chunk.ID, data []byte) error {
	b := c.db.pdb.NewBatch()
	b.Set(chunkKey(famChunk, id), data, nil)
	b.Set(chunkKey(famCTime, id), infoRecord(int64(len(data))), nil)
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("put chunk %s: %w", id, err)
	}
	return nil
}

func (c *ChunkBackend) Get(_ context.Context, id chunk.ID) ([]byte, error) {
	v, err := c.db.get(chunkKey(famChunk, id))
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", id, err)
	}
	return v, nil
}

func (c *ChunkBackend) Stat(_ context.Context, id chunk.ID) (chunk.Info, error) {
	v, closer, err := c.db.pdb.Get(chunkKey(famCTime, id))
	if errors.Is(err, pebble.ErrNotFound) {
		return chunk.Info{}, fmt.Errorf("chunk %s: %w", id, ErrNotExist)
	}
	if err != nil {
		return chunk.Info{}, err
	}
	defer closer.Close()
	size, n := binary.Uvarint(v[min(8, len(v)):])
	if len(v) < 8 || n <= 0 {
		return chunk.Info{}, fmt.Errorf("chunk %s: bad info record: %w", id, chunk.ErrCorrupt)
	}
	return chunk.Info{Size: int64(size), ModTime: time.Unix(0, int64(binary.BigEndian.Uint64(v)))}, nil
}

func (c *ChunkBackend) Touch(ctx context.Context, id chunk.ID) error {
	info, err := c.Stat(ctx, id)
	if err != nil {
		return err
	}
	return c.db.pdb.Set(chunkKey(famCTime, id), infoRecord(info.Size), pebble.NoSync)
}

func (c *ChunkBackend) Delete(_ context.Context, id chunk.ID) error {
	b := c.db.pdb.NewBatch()
	b.Delete(chunkKey(famChunk, id), nil)
	b.Delete(chunkKey(famCTime, id), nil)
	return b.Commit(pebble.NoSync)
}

func (c *ChunkBackend) List(ctx context.Context, fn func(chunk.ID, chunk.Info) error) error {
	// Walk the small info records, not the chunks themselves.
	return c.db.scan([]byte{famCTime}, false, func(k, _ []byte) (bool, error) {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		var id chunk.ID
		if len(k) != 1+len(id) {
			return true, nil
		}
		copy(id[:], k[1:])
		info, err := c.Stat(ctx, id)
		if err != nil {
			return false, err
		}
		return true, fn(id, info)
	})
}

// Sync makes every earlier Put durable.
func (c *ChunkBackend) Sync(context.Context) error {
	return c.db.pdb.LogData(nil, pebble.Sync)
}
