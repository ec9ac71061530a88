package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/chunk/s3/s3test"
	"github.com/strata-data/strata/meta"
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

// TestS3RemoteMount: 'strata mount --server' against a daemon whose large
// chunks are in S3 reads them from the bucket itself when it has
// credentials (its own count, printed at exit, shows no large chunk
// through the daemon), and through the daemon without credentials or with
// rejected ones, byte-identical every way.
func TestS3RemoteMount(t *testing.T) {
	requireFuse(t)
	srv := s3test.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	tmp := t.TempDir()
	data, mnt := filepath.Join(tmp, "data"), filepath.Join(tmp, "pfs")
	addr := "127.0.0.1:" + freePort(t)
	d := startDaemonWith(t, data, "--no-mount", "--no-pipelines", "--listen", addr,
		"--store", "s3://"+s3test.Bucket+"/remote", "--s3-endpoint", "http://"+srv.Endpoint)
	tok, err := os.ReadFile(filepath.Join(data, "token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))

	big := make([]byte, 20<<20)
	rand.NewChaCha8([32]byte{3}).Read(big)
	src := filepath.Join(tmp, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "big.bin"), big, 0o644)
	os.WriteFile(filepath.Join(src, "small.txt"), []byte("small\n"), 0o644)
	d.ok(nil, "repo", "create", "data")
	d.ok(nil, "put", "-r", "data@main:/", "-f", src)
	var refs []struct{ Chunks int }
	json.Unmarshal([]byte(d.ok(nil, "ls", "data@main:/big.bin", "-o", "json")), &refs)
	if len(refs) != 1 || refs[0].Chunks < 3 {
		t.Fatalf("big.bin should have several chunks: %+v", refs)
	}
	nchunks := refs[0].Chunks
	// Chunks of SmallLimit and more are in S3. The file's last chunk may be
	// shorter (cut points depend on the store's random polynomial), and
	// then lives in the daemon's database like small.txt.
	large := largeChunks(t, "http://"+addr, token, "data", "main", "/big.bin")
	wantSum := fmt.Sprintf("%x", sha256.Sum256(big))

	for _, c := range []struct {
		name        string
		env         []string
		says        string
		direct, via int // chunks from S3 and through the daemon
	}{
		{"credentials", nil, "reading large chunks from s3://" + s3test.Bucket + "/remote at " + srv.Endpoint, large, nchunks - large + 1},
		{"no credentials", []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="}, "no AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", 0, nchunks + 1},
		{"rejected", []string{"AWS_SECRET_ACCESS_KEY=wrong"}, "S3 rejected the credentials", 0, nchunks + 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := append([]string{"STRATA_ADDR=", "STRATA_TOKEN="}, c.env...)
			m := startRemoteMount(t, mnt, env, "--server", "http://"+addr, "--token", token)
			if got := fileSum(t, filepath.Join(mnt, "data@main", "big.bin")); got != wantSum {
				t.Errorf("sha256 of big.bin through the mount = %s, want %s", got, wantSum)
			}
			if b, err := os.ReadFile(filepath.Join(mnt, "data", "small.txt")); err != nil || string(b) != "small\n" {
				t.Errorf("cat small.txt = %q, %v", b, err)
			}
			m.stop(syscall.SIGTERM)
			log := m.log.String()
			if strings.Count(log, "reading ") != 1 || !strings.Contains(log, c.says) {
				t.Errorf("mount log does not say once %q:\n%s", c.says, log)
			}
			want := fmt.Sprintf("chunks_from_object_store=%d chunks_through_daemon=%d", c.direct, c.via)
			if !strings.Contains(log, want) {
				t.Errorf("mount log does not count %q:\n%s", want, log)
			}
		})
	}
	d.stop()

	// Without a daemon, mount --data serves the data dir itself, given
	// the store it was made with.
	m := startRemoteMount(t, mnt, []string{"STRATA_ADDR=", "STRATA_TOKEN="}, "--data", data,
		"--store", "s3://"+s3test.Bucket+"/remote", "--s3-endpoint", "http://"+srv.Endpoint)
	if got := fileSum(t, filepath.Join(mnt, "data@main", "big.bin")); got != wantSum {
		t.Errorf("sha256 of big.bin through mount --data = %s, want %s", got, wantSum)
	}
	m.stop(syscall.SIGTERM)
}

// TestS3DownMidPut: a put while the S3 server is down fails with an error
// naming the server, records no commit, and succeeds once it is back.
func TestS3DownMidPut(t *testing.T) {
	srv := s3test.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	d := startDaemonWith(t, data, "--no-mount", "--no-pipelines",
		"--store", "s3://"+s3test.Bucket+"/down", "--s3-endpoint", "http://"+srv.Endpoint)
	d.ok(nil, "repo", "create", "data")
	big := make([]byte, 8<<20)
	rand.NewChaCha8([32]byte{4}).Read(big)
	src := filepath.Join(tmp, "big.bin")
	os.WriteFile(src, big, 0o644)

	srv.Stop()
	start := time.Now()
	out, code := d.run(nil, "put", "data@main:/big.bin", "-f", src, "-m", "while down")
	if code == 0 || !strings.Contains(out, srv.Endpoint) || !strings.Contains(out, "s3 ") {
		t.Fatalf("put with S3 down: exit %d\n%s\nwant a failure naming the S3 server", code, out)
	}
	t.Logf("put with S3 down failed after %v: %s", time.Since(start).Round(time.Second), strings.TrimSpace(out))
	if got := d.ok(nil, "commit", "list", "data@main", "-o", "json"); strings.Contains(got, `"id"`) {
		t.Fatalf("a commit after the failed put:\n%s", got)
	}

	srv.Restart()
	d.ok(nil, "put", "data@main:/big.bin", "-f", src, "-m", "after restart")
	var commits []struct{ ID string }
	json.Unmarshal([]byte(d.ok(nil, "commit", "list", "data@main", "-o", "json")), &commits)
	if len(commits) != 1 {
		t.Fatalf("commits after the retried put: %+v, want 1", commits)
	}
	if got := d.ok(nil, "cat", "data@main:/big.bin"); got != string(big) {
		t.Fatalf("cat after the retried put: %d bytes, want %d", len(got), len(big))
	}
	d.stop()
}

// largeChunks counts the chunks of the file at p in repo@branch that are
// kept in the large backend.
func largeChunks(t *testing.T, addr, token, repo, branch, p string) int {
	t.Helper()
	ctx := context.Background()
	cl, err := api.NewClient(addr, token)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cl.Commit(ctx, repo, branch)
	if err != nil {
		t.Fatal(err)
	}
	e, err := cl.LookupTree(ctx, c.Root, p)
	if err != nil {
		t.Fatal(err)
	}
	refs := e.Chunks
	if e.List != (meta.Hash{}) {
		if refs, err = cl.ChunkList(ctx, e.List); err != nil {
			t.Fatal(err)
		}
	}
	st, err := cl.Storage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range refs {
		if chunk.IsLarge(r.Size, st.SmallLimit) {
			n++
		}
	}
	return n
}
