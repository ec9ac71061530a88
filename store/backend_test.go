package store

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/chunk/s3/s3test"
)

// A data dir from before backends were recorded keeps its chunks in
// DATA/chunks: it refuses an S3 store rather than look for them there.
func TestBackendUnrecordedIsDir(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// As an older strata left it: no "chunk-backend" config record.
	if err := s.Meta.Pebble().Delete([]byte("mchunk-backend"), nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(dir, Options{Chunks: "s3://bkt/prefix?endpoint=127.0.0.1:1&insecure=1"})
	if !errors.Is(err, fs.ErrInvalid) || !strings.Contains(err.Error(), "large chunks are in dir (DATA/chunks)") {
		t.Fatalf("opening an unrecorded data dir with an S3 store: %v", err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var rec backendRecord
	if err := s.Meta.GetConfig("chunk-backend", &rec); err != nil || rec.Type != "dir" {
		t.Errorf("record after reopening: %+v, %v; want dir", rec, err)
	}
	s.Close()
}

func TestBackendRecorded(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(dir, Options{Chunks: "s3://bkt/prefix?endpoint=127.0.0.1:1&insecure=1"})
	if !errors.Is(err, fs.ErrInvalid) || !strings.Contains(err.Error(), "large chunks are in dir (DATA/chunks), not s3://bkt/prefix") {
		t.Fatalf("opening a dir data dir with an S3 store: %v", err)
	}
	if _, err := Open(dir, Options{Chunks: "ftp://x"}); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("unknown store scheme: %v", err)
	}
	s, err = Open(dir, Options{Chunks: "dir"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func TestLocation(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Location(); got.Type != "dir" || got.SmallLimit != chunk.DefaultSmallLimit || got.Bucket != "" {
		t.Errorf("Location of a dir store = %+v, want type dir with the small limit", got)
	}

	srv := s3test.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	s3s, err := Open(t.TempDir(), Options{Chunks: "s3://" + s3test.Bucket + "/loc/x", S3Endpoint: "http://" + srv.Endpoint, S3Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer s3s.Close()
	want := Location{SmallLimit: chunk.DefaultSmallLimit, Type: "s3", URL: "s3://" + s3test.Bucket + "/loc/x",
		Bucket: s3test.Bucket, Prefix: "loc/x", Endpoint: srv.Endpoint, Region: "us-east-1", Insecure: true}
	if got := s3s.Location(); got != want {
		t.Errorf("Location of an S3 store = %+v, want %+v", got, want)
	}
}

// A first start whose S3 store fails to open leaves the data dir new: the
// next start may still choose S3 (or the dir).
func TestBackendFailedFirstOpen(t *testing.T) {
	srv := s3test.Start(t)
	dir := t.TempDir()
	url := "s3://" + s3test.Bucket + "/first?endpoint=" + srv.Endpoint + "&insecure=1"
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	if _, err := Open(dir, Options{Chunks: url}); err == nil {
		t.Fatal("opening with a wrong secret succeeded")
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	s, err := Open(dir, Options{Chunks: url})
	if err != nil {
		t.Fatalf("second start with the right secret: %v", err)
	}
	if loc := s.Location(); loc.Type != "s3" {
		t.Errorf("store location %+v, want s3", loc)
	}
	s.Close()
}
