package meta

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/strata-data/strata/chunk"
)

// ChunkBackend keeps small chunks in the metadata database, so a million
// tiny files do not become a million files on disk. Each value is an 8-byte
// write time (for gc's grace period) followed by the stored chunk.
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
)

// Chunks returns the small-chunk backend stored in db.
func (db *DB) Chunks() *ChunkBackend { return &ChunkBackend{db: db} }

func chunkKey(id chunk.ID) []byte { return append([]byte{famChunk}, id[:]...) }

func (c *ChunkBackend) Put(_ context.Context, id chunk.ID, data []byte) error {
	v := make([]byte, 8+len(data))
	binary.BigEndian.PutUint64(v, uint64(time.Now().UnixNano()))
	copy(v[8:], data)
	if err := c.db.pdb.Set(chunkKey(id), v, pebble.NoSync); err != nil {
		return fmt.Errorf("put chunk %s: %w", id, err)
	}
	return nil
}

func (c *ChunkBackend) Get(_ context.Context, id chunk.ID) ([]byte, error) {
	v, err := c.db.get(chunkKey(id))
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", id, err)
	}
	if len(v) < 8 {
		return nil, fmt.Errorf("chunk %s: short record: %w", id, chunk.ErrCorrupt)
	}
	return v[8:], nil
}

func (c *ChunkBackend) Stat(_ context.Context, id chunk.ID) (chunk.Info, error) {
	v, closer, err := c.db.pdb.Get(chunkKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return chunk.Info{}, fmt.Errorf("chunk %s: %w", id, ErrNotExist)
	}
	if err != nil {
		return chunk.Info{}, err
	}
	defer closer.Close()
	return info(v), nil
}

func info(v []byte) chunk.Info {
	if len(v) < 8 {
		return chunk.Info{}
	}
	return chunk.Info{Size: int64(len(v) - 8), ModTime: time.Unix(0, int64(binary.BigEndian.Uint64(v)))}
}

func (c *ChunkBackend) Touch(ctx context.Context, id chunk.ID) error {
	data, err := c.Get(ctx, id)
	if err != nil {
		return err
	}
	return c.Put(ctx, id, data)
}

func (c *ChunkBackend) Delete(_ context.Context, id chunk.ID) error {
	return c.db.pdb.Delete(chunkKey(id), pebble.NoSync)
}

func (c *ChunkBackend) List(ctx context.Context, fn func(chunk.ID, chunk.Info) error) error {
	return c.db.scan([]byte{famChunk}, false, func(k, v []byte) (bool, error) {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		var id chunk.ID
		if len(k) != 1+len(id) {
			return true, nil
		}
		copy(id[:], k[1:])
		return true, fn(id, info(bytes.Clone(v)))
	})
}

// Sync makes every earlier Put durable.
func (c *ChunkBackend) Sync(context.Context) error {
	return c.db.pdb.LogData(nil, pebble.Sync)
}
