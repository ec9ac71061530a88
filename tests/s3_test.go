package tests

import (
	"bytes"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-data/strata/chunk/s3/s3test"
)

// s3Objects counts the chunk objects under prefix in the versitygw posix
// directory.
func s3Objects(t *testing.T, srv *s3test.Server, prefix string) int {
	t.Helper()
	n := 0
	root := filepath.Join(srv.Root, s3test.Bucket, prefix)
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && len(d.Name()) == 64 {
			n++
		}
		return nil
	})
	return n
}

// TestS3Store runs a daemon whose large chunks live in S3 (VersityGW):
// a multi-chunk file round-trips, fsck is clean, gc removes chunks from
// the bucket, and the data dir refuses to open without its bucket.
func TestS3Store(t *testing.T) {
	srv := s3test.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	url := "s3://" + s3test.Bucket + "/e2e"
	d := startDaemonWith(t, data, "--no-mount", "--no-pipelines", "--store", url, "--s3-endpoint", "http://"+srv.Endpoint, "--s3-cache-gb", "0.01")

	big := make([]byte, 20<<20)
	rand.NewChaCha8([32]byte{1, 2}).Read(big)
	src := filepath.Join(tmp, "big.bin")
	if err := os.WriteFile(src, big, 0o644); err != nil {
		t.Fatal(err)
	}
	d.ok(nil, "repo", "create", "data")
	d.ok(nil, "put", "data@main:/big.bin", "-f", src)
	if n := s3Objects(t, srv, "e2e"); n < 2 {
		t.Fatalf("%d chunk objects in S3 after putting 20 MiB, want several", n)
	}
	if _, err := os.Stat(filepath.Join(data, "chunks")); err == nil {
		entries, _ := filepath.Glob(filepath.Join(data, "chunks", "*", "*"))
		if len(entries) > 0 {
			t.Errorf("%d chunks in DATA/chunks with an S3 store", len(entries))
		}
	}
	out := filepath.Join(tmp, "out.bin")
	d.ok(nil, "get", "data@main:/big.bin", "-o", out)
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("get: %d bytes, %v; want the 20 MiB put", len(got), err)
	}
	// With the cache emptied, reads come from S3.
	os.RemoveAll(filepath.Join(data, "cache"))
	if got := d.ok(nil, "cat", "data@main:/big.bin"); got != string(big) {
		t.Fatalf("cat after dropping the cache: %d bytes, want %d", len(got), len(big))
	}
	if out := d.ok(nil, "fsck"); !strings.Contains(out, " 0 faults") {
		t.Fatalf("fsck: %s", out)
	}
	d.ok(nil, "repo", "delete", "data", "--force")
	if out := d.ok(nil, "gc", "--grace", "0s"); !strings.Contains(out, "removed") {
		t.Fatalf("gc: %s", out)
	}
	if n := s3Objects(t, srv, "e2e"); n != 0 {
		t.Errorf("%d chunk objects in S3 after deleting the repo and gc, want 0", n)
	}
	if out := d.ok(nil, "fsck"); !strings.Contains(out, " 0 faults") {
		t.Fatalf("fsck after gc: %s", out)
	}
	d.stop()

	// The data dir records its backend and refuses another.
	for _, flags := range [][]string{nil, {"--store", "s3://" + s3test.Bucket + "/other", "--s3-endpoint", "http://" + srv.Endpoint}} {
		cmd := exec.Command(strataBin, append([]string{"up", "--data", data, "--no-mount", "--no-pipelines"}, flags...)...)
		b, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(b), "large chunks are in "+url) {
			t.Errorf("up %v on an S3 data dir: %v\n%s\nwant a refusal naming %s", flags, err, b, url)
		}
	}
}

// TestS3WrongCredentials: the daemon refuses to start and says why.
func TestS3WrongCredentials(t *testing.T) {
	srv := s3test.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	cmd := exec.Command(strataBin, "up", "--data", filepath.Join(t.TempDir(), "data"), "--no-mount", "--no-pipelines",
		"--store", "s3://"+s3test.Bucket+"/x", "--s3-endpoint", "http://"+srv.Endpoint)
	b, err := cmd.CombinedOutput()
	want := "S3 rejected the credentials for bucket " + s3test.Bucket + " at " + srv.Endpoint
	if err == nil || !strings.Contains(string(b), want) {
		t.Errorf("up with a wrong secret: %v\n%s\nwant %q", err, b, want)
	}
}
