package store

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

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
