package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/chunk/s3"
	"github.com/strata-data/strata/meta"
)

// backendRecord is the "chunk-backend" config record: which backend holds
// the data dir's large chunks. Credentials and endpoints are not recorded
// (they may change); the bucket and prefix are.
type backendRecord struct {
	Type string `json:"type"`          // "dir" or "s3"
	URL  string `json:"url,omitempty"` // s3://BUCKET/PREFIX for "s3"
}

func (r backendRecord) String() string {
	if r.Type == "s3" {
		return r.URL
	}
	return "dir (DATA/chunks)"
}

// DefaultS3CacheBytes is the default size of the local cache of chunks
// read from S3.
const DefaultS3CacheBytes = 4 << 30

// openLarge opens the backend for large chunks that o asks for, after
// checking it against the one the data dir records (recording it for a
// new data dir).
func openLarge(dir string, db *meta.DB, o Options) (chunk.Backend, error) {
	want := backendRecord{Type: "dir"}
	var cfg s3.Config
	if o.Chunks != "" && o.Chunks != "dir" {
		if !strings.HasPrefix(o.Chunks, "s3://") {
			return nil, fmt.Errorf("chunk store %q: want dir or s3://BUCKET/PREFIX: %w", o.Chunks, meta.ErrInvalid)
		}
		var err error
		if cfg, err = s3.ParseURL(o.Chunks); err != nil {
			return nil, fmt.Errorf("%w: %w", err, meta.ErrInvalid)
		}
		if o.S3Endpoint != "" {
			if err := cfg.SetEndpoint(o.S3Endpoint); err != nil {
				return nil, err
			}
		}
		if o.S3Region != "" {
			cfg.Region = o.S3Region
		}
		want = backendRecord{Type: "s3", URL: cfg.URL()}
	}
	var have backendRecord
	record := false
	switch err := db.GetConfig("chunk-backend", &have); {
	case errors.Is(err, fs.ErrNotExist):
		record = true // once the backend opens, so a typo is not recorded
	case err != nil:
		return nil, fmt.Errorf("read chunk backend config: %w", err)
	case have != want:
		return nil, fmt.Errorf("its large chunks are in %s, not %s; start with --store %s: %w",
			have, want, storeFlag(have), meta.ErrInvalid)
	}
	b, err := openBackend(dir, want, cfg, o.S3CacheBytes)
	if err != nil {
		return nil, err
	}
	if record {
		if err := db.SetConfig("chunk-backend", want); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func openBackend(dir string, want backendRecord, cfg s3.Config, cacheBytes int64) (chunk.Backend, error) {
	if want.Type == "dir" {
		return chunk.NewDir(filepath.Join(dir, "chunks"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := s3.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	size := cacheBytes
	if size == 0 {
		size = DefaultS3CacheBytes
	}
	if size < 0 {
		return b, nil
	}
	return s3.NewCached(b, filepath.Join(dir, "cache"), size)
}

func storeFlag(r backendRecord) string {
	if r.Type == "s3" {
		return r.URL
	}
	return "dir"
}
