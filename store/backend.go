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

// Location says where a data dir keeps its chunks, so that a reader on
// another machine can fetch large chunks from the object store itself
// rather than through the daemon. It never holds credentials.
type Location struct {
	// SmallLimit: chunks shorter than this live in the metadata database
	// (reachable only through the daemon); the others in the large backend.
	SmallLimit int
	Type       string // large backend: "dir" (DATA/chunks) or "s3"
	// For "s3": the bucket and key prefix, and the endpoint (host:port)
	// and region the daemon uses; Insecure means plain HTTP.
	URL      string
	Bucket   string
	Prefix   string
	Endpoint string
	Region   string
	Insecure bool
}

// DefaultS3CacheBytes is the default size of the local cache of chunks
// read from S3.
const DefaultS3CacheBytes = 4 << 30

// openLarge opens the backend for large chunks that o asks for, after
// checking it against the one the data dir records (recording it for a
// new data dir). A data dir made before backends were recorded (not
// fresh, no record) has its large chunks in DATA/chunks.
func openLarge(dir string, db *meta.DB, o Options, fresh bool) (chunk.Backend, Location, error) {
	want := backendRecord{Type: "dir"}
	var cfg s3.Config
	if o.Chunks != "" && o.Chunks != "dir" {
		if !strings.HasPrefix(o.Chunks, "s3://") {
			return nil, Location{}, fmt.Errorf("chunk store %q: want dir or s3://BUCKET/PREFIX: %w", o.Chunks, meta.ErrInvalid)
		}
		var err error
		if cfg, err = s3.ParseURL(o.Chunks); err != nil {
			return nil, Location{}, fmt.Errorf("%w: %w", err, meta.ErrInvalid)
		}
		if o.S3Endpoint != "" {
			if err := cfg.SetEndpoint(o.S3Endpoint); err != nil {
				return nil, Location{}, err
			}
		}
		if o.S3Region != "" {
			cfg.Region = o.S3Region
		}
		want = backendRecord{Type: "s3", URL: cfg.URL()}
	}
	have := want // what a new data dir records, once the backend opens
	record := false
	switch err := db.GetConfig("chunk-backend", &have); {
	case errors.Is(err, fs.ErrNotExist) && !fresh:
		have, record = backendRecord{Type: "dir"}, true // made before backends were recorded
	case errors.Is(err, fs.ErrNotExist):
		have, record = want, true // once the backend opens, so a typo is not recorded
	case err != nil:
		return nil, Location{}, fmt.Errorf("read chunk backend config: %w", err)
	}
	if have != want {
		return nil, Location{}, fmt.Errorf("its large chunks are in %s, not %s; start with --store %s: %w",
			have, want, storeFlag(have), meta.ErrInvalid)
	}
	b, loc, err := openBackend(dir, want, cfg, o.S3CacheBytes)
	if err != nil {
		return nil, Location{}, err
	}
	if record {
		if err := db.SetConfig("chunk-backend", want); err != nil {
			return nil, Location{}, err
		}
	}
	return b, loc, nil
}

func openBackend(dir string, want backendRecord, cfg s3.Config, cacheBytes int64) (chunk.Backend, Location, error) {
	if want.Type == "dir" {
		b, err := chunk.NewDir(filepath.Join(dir, "chunks"))
		return b, Location{Type: "dir"}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := s3.New(ctx, cfg)
	if err != nil {
		return nil, Location{}, err
	}
	c := b.Config()
	loc := Location{Type: "s3", URL: c.URL(), Bucket: c.Bucket, Prefix: c.Prefix, Endpoint: c.Endpoint, Region: c.Region, Insecure: c.Insecure}
	size := cacheBytes
	if size == 0 {
		size = DefaultS3CacheBytes
	}
	if size < 0 {
		return b, loc, nil
	}
	cb, err := s3.NewCached(b, filepath.Join(dir, "cache"), size)
	return cb, loc, err
}

func storeFlag(r backendRecord) string {
	if r.Type == "s3" {
		return r.URL
	}
	return "dir"
}
