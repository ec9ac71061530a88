package tests

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var strataBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strata-e2e-bin")
	if err != nil {
		panic(err)
	}
	strataBin = filepath.Join(dir, "strata")
	build := exec.Command("go", "build", "-o", strataBin, "../cmd/strata")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // workers run it in containers
	out, err := build.CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build strata: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is a strata daemon run as a real child process.
type daemon struct {
	t     *testing.T
	data  string
	cache string // XDG_CACHE_HOME for the CLI (put -r's unchanged-file cache)
	cmd   *exec.Cmd
	log   *bytes.Buffer
}

func startDaemon(t *testing.T, data string) *daemon {
	t.Helper()
	return startDaemonWith(t, data, "--no-mount", "--no-pipelines")
}

// startDaemonWith starts a daemon with these flags after --data.
func startDaemonWith(t *testing.T, data string, flags ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, data: data, cache: filepath.Join(data, "..", "cli-cache"), log: &bytes.Buffer{}}
	d.cmd = exec.Command(strataBin, append([]string{"up", "--data", data}, flags...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			d.cmd.Wait()
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, code := d.run(nil, "status"); code == 0 {
			return d
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("daemon did not come up; log:\n%s", d.log)
	return nil
}

// run runs the CLI against d and returns stdout and the exit code.
func (d *daemon) run(stdin []byte, args ...string) (string, int) {
	cmd := exec.Command(strataBin, args...)
	cmd.Env = append(os.Environ(), "STRATA_ADDR=unix://"+filepath.Join(d.data, "strata.sock"), "XDG_CACHE_HOME="+d.cache)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String() + errb.String(), ee.ExitCode()
	}
	if err != nil {
		d.t.Fatalf("strata %v: %v", args, err)
	}
	return out.String(), 0
}

// ok runs the CLI and fails the test on a non-zero exit.
func (d *daemon) ok(stdin []byte, args ...string) string {
	d.t.Helper()
	out, code := d.run(stdin, args...)
	if code != 0 {
		d.t.Fatalf("strata %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// fails runs the CLI and checks the exit code and that the message says want.
func (d *daemon) fails(code int, want string, args ...string) {
	d.t.Helper()
	out, got := d.run(nil, args...)
	if got != code || !strings.Contains(out, want) {
		d.t.Errorf("strata %s: exit %d, output %q; want exit %d mentioning %q", strings.Join(args, " "), got, out, code, want)
	}
}

func (d *daemon) kill() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	d.cmd.Wait()
}

func (d *daemon) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		d.t.Errorf("daemon exit after SIGTERM: %v\n%s", err, d.log)
	}
}

// makeTree writes n files of random sizes up to max below dir.
func makeTree(t *testing.T, dir string, seed uint64, n, max int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("d%02d", i%17), fmt.Sprintf("f%04d.bin", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		b := make([]byte, rng.IntN(max))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// treeSums maps relative path -> sha256 of every regular file below dir.
func treeSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			sums[rel] = fmt.Sprintf("%x", sha256.Sum256(b))
		}
		return nil
	})
	return sums
}

func sameTree(t *testing.T, a, b string) {
	t.Helper()
	sa, sb := treeSums(t, a), treeSums(t, b)
	if len(sa) != len(sb) {
		t.Fatalf("%s has %d files, %s has %d", a, len(sa), b, len(sb))
	}
	for p, s := range sa {
		if sb[p] != s {
			t.Fatalf("%s differs between %s and %s", p, a, b)
		}
	}
}

func TestCLIRoundTrip(t *testing.T) {
	tmp := t.TempDir()
	d := startDaemon(t, filepath.Join(tmp, "data"))
	src := filepath.Join(tmp, "src")
	makeTree(t, src, 1, 120, 300_000)
	// a file larger than several chunks
	big := make([]byte, 12<<20)
	for i := range big {
		big[i] = byte(i * 7 / 3)
	}
	os.WriteFile(filepath.Join(src, "big.bin"), big, 0o644)

	d.ok(nil, "repo", "create", "data", "-d", "test data")
	d.ok(nil, "put", "-r", "data@main:/", "-f", src, "-m", "first")
	d.ok(nil, "get", "-r", "data@main:/", "-o", filepath.Join(tmp, "out1"))
	sameTree(t, src, filepath.Join(tmp, "out1"))

	// stdin, append, and a one-off commit per put
	d.ok([]byte("hello "), "put", "data@main:/notes/log.txt", "-f", "-")
	d.ok([]byte("world\n"), "put", "data@main:/notes/log.txt", "-f", "-", "--append")
	if got := d.ok(nil, "cat", "data@main:/notes/log.txt"); got != "hello world\n" {
		t.Fatalf("cat after append = %q", got)
	}
	var commits []map[string]any
	json.Unmarshal([]byte(d.ok(nil, "commit", "list", "data@main", "-o", "json")), &commits)
	if len(commits) != 3 {
		t.Fatalf("want 3 commits (put -r, put, put --append), got %d", len(commits))
	}
	first := commits[2]["id"].(string)

	// An open commit collects several writes; a second start is refused.
	d.ok(nil, "commit", "start", "data@main", "-m", "batch")
	d.fails(4, "already has open commit", "commit", "start", "data@main")
	d.ok([]byte("a"), "put", "data@main:/batch/a", "-f", "-")
	d.ok(nil, "rm", "-r", "data@main:/d03")
	// Readers of the branch keep seeing the last finished commit.
	if _, code := d.run(nil, "cat", "data@main:/batch/a"); code != 3 {
		t.Fatalf("open commit visible through the branch: cat exit %d", code)
	}
	d.ok(nil, "ls", "data@main:/d03")
	d.fails(2, "is a directory", "rm", "data@main:/d04")
	d.ok(nil, "commit", "finish", "data@main")
	diff := d.ok(nil, "diff", "data@main")
	if !strings.Contains(diff, "+\t/batch/") && !strings.Contains(diff, "/batch/") || !strings.Contains(diff, "/d03/") {
		t.Fatalf("diff of the batch commit:\n%s", diff)
	}

	// History by ID prefix and ancestors; revert by moving the branch.
	if out := d.ok(nil, "ls", "data@"+first[:8]+":/d03"); !strings.Contains(out, "f0003.bin") {
		t.Fatalf("ls of first commit by prefix:\n%s", out)
	}
	d.ok(nil, "branch", "create", "data@main", "--head", "data@main^3")
	d.ok(nil, "get", "-r", "data@main:/", "-o", filepath.Join(tmp, "out2"))
	sameTree(t, src, filepath.Join(tmp, "out2"))
	d.ok(nil, "branch", "create", "data@exp", "--head", first)
	d.fails(4, "already exists", "branch", "create", "data@exp")
	if out := d.ok(nil, "branch", "list", "data"); !strings.Contains(out, "exp") {
		t.Fatalf("branch list:\n%s", out)
	}

	// Errors: clear message and documented exit code, nothing changed.
	d.fails(3, "does not exist", "cat", "data@main:/nope")
	d.fails(3, "nosuch", "ls", "nosuch@main")
	d.fails(3, "no branch or commit", "ls", "data@ffff0000")
	d.fails(5, "not allowed", "put", "data@main:/a/../b", "-f", filepath.Join(src, "big.bin"))
	d.fails(5, "repo name", "repo", "create", "bad/name")
	d.fails(4, "--force", "repo", "delete", "data")
	d.fails(2, "unknown", "frobnicate")

	if out := d.ok(nil, "fsck"); !strings.Contains(out, "0 faults") {
		t.Fatalf("fsck: %s", out)
	}
	d.ok(nil, "repo", "delete", "data", "--force")
	if out := d.ok(nil, "gc", "--grace", "0s"); !strings.Contains(out, "removed") {
		t.Fatalf("gc: %s", out)
	}
	if out := d.ok(nil, "fsck"); !strings.Contains(out, "0 faults") {
		t.Fatalf("fsck after gc: %s", out)
	}
	d.stop()
}

// TestCrashMidPut kills the daemon with SIGKILL during a large put and
// checks that every finished commit survives intact, fsck is clean, and the
// interrupted write is invisible, while an open commit stays resumable.
func TestCrashMidPut(t *testing.T) {
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	d := startDaemon(t, data)
	small := filepath.Join(tmp, "small")
	makeTree(t, small, 2, 50, 100_000)
	largeDir := filepath.Join(tmp, "large")
	makeTree(t, largeDir, 3, 400, 2_000_000)

	d.ok(nil, "repo", "create", "r")
	d.ok(nil, "put", "-r", "r@main:/", "-f", small)
	head := strings.TrimSpace(d.ok(nil, "commit", "list", "r@main", "-n", "1", "-o", "json"))

	// Open a commit and put one file into it, then crash mid-put of the large tree.
	d.ok(nil, "branch", "create", "r@staging", "--head", "r@main")
	d.ok(nil, "commit", "start", "r@staging")
	d.ok([]byte("kept"), "put", "r@staging:/kept.txt", "-f", "-")

	for _, branch := range []string{"main", "staging"} {
		put := exec.Command(strataBin, "put", "-r", "r@"+branch+":/large", "-f", largeDir)
		put.Env = append(os.Environ(), "STRATA_ADDR=unix://"+filepath.Join(data, "strata.sock"))
		if err := put.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		d.kill()
		if err := put.Wait(); err == nil {
			t.Logf("put to %s finished before the kill; crash point missed", branch)
		}
		d = startDaemon(t, data)
	}

	if got := strings.TrimSpace(d.ok(nil, "commit", "list", "r@main", "-n", "1", "-o", "json")); got != head {
		// The put may have finished before the kill; then it must be whole.
		d.ok(nil, "get", "-r", "r@main:/large", "-o", filepath.Join(tmp, "large-out"))
		sameTree(t, largeDir, filepath.Join(tmp, "large-out"))
	} else if _, code := d.run(nil, "ls", "r@main:/large"); code != 3 {
		t.Fatalf("half-written put visible on main: ls exit %d", code)
	}
	d.ok(nil, "get", "-r", "r@main^0:/", "-o", filepath.Join(tmp, "main-out"))
	os.RemoveAll(filepath.Join(tmp, "main-out", "large"))
	sameTree(t, small, filepath.Join(tmp, "main-out"))

	// The open commit is still open with what was written before the crash.
	var c map[string]any
	json.Unmarshal([]byte(d.ok(nil, "commit", "inspect", "r@staging", "-o", "json")), &c)
	if c["state"] != "open" {
		t.Fatalf("open commit after crash: state %v", c["state"])
	}
	if got := d.ok(nil, "cat", "r@"+c["id"].(string)+":/kept.txt"); got != "kept" {
		t.Fatalf("write in open commit lost: %q", got)
	}
	if _, code := d.run(nil, "cat", "r@staging:/kept.txt"); code != 3 {
		t.Fatalf("reading the branch shows its open commit (cat exit %d)", code)
	}
	d.ok(nil, "commit", "finish", "r@staging")
	if out := d.ok(nil, "fsck"); !strings.Contains(out, " 0 faults") {
		t.Fatalf("fsck after crash: %s", out)
	}
	// A retry after the crash works.
	d.ok(nil, "put", "-r", "r@main:/large", "-f", largeDir)
	d.ok(nil, "get", "-r", "r@main:/large", "-o", filepath.Join(tmp, "retry-out"))
	sameTree(t, largeDir, filepath.Join(tmp, "retry-out"))
	d.stop()
}

// TestRePutSkipsUnchanged checks that a second put -r of a directory sends
// only what changed, yet the commit has every file's current content, and
// that a cache pointing at a deleted commit falls back to a full put.
func TestRePutSkipsUnchanged(t *testing.T) {
	tmp := t.TempDir()
	d := startDaemon(t, filepath.Join(tmp, "data"))
	src := filepath.Join(tmp, "src")
	makeTree(t, src, 4, 200, 50_000)
	d.ok(nil, "repo", "create", "r")
	d.ok(nil, "put", "-r", "r@main:/", "-f", src)

	// Change one file (same size), grow another, add one.
	f1 := filepath.Join(src, "d01", "f0001.bin")
	b, _ := os.ReadFile(f1)
	for i := range b {
		b[i] ^= 0xff
	}
	os.WriteFile(f1, b, 0o644)
	fh, _ := os.OpenFile(filepath.Join(src, "d02", "f0002.bin"), os.O_APPEND|os.O_WRONLY, 0)
	fh.Write([]byte("more"))
	fh.Close()
	os.WriteFile(filepath.Join(src, "new.txt"), []byte("new"), 0o644)

	var res map[string]any
	json.Unmarshal([]byte(d.ok(nil, "put", "-r", "r@main:/", "-f", src, "-o", "json")), &res)
	if nb := res["node_bytes"].(float64); nb <= 0 {
		t.Fatalf("re-put wrote no tree nodes: %v", res)
	}
	diff := d.ok(nil, "diff", "r@main")
	for _, want := range []string{"/d01/f0001.bin", "/d02/f0002.bin", "/new.txt"} {
		if !strings.Contains(diff, want) {
			t.Errorf("diff after re-put lacks %s:\n%s", want, diff)
		}
	}
	if n := strings.Count(strings.TrimSpace(diff), "\n") + 1; n != 3 {
		t.Errorf("diff after re-put has %d lines, want 3:\n%s", n, diff)
	}
	d.ok(nil, "get", "-r", "r@main:/", "-o", filepath.Join(tmp, "out1"))
	sameTree(t, src, filepath.Join(tmp, "out1"))

	// The cache now names the head commit; delete it and put again.
	d.ok(nil, "commit", "delete", "r@main")
	os.WriteFile(filepath.Join(src, "new.txt"), []byte("newer"), 0o644)
	d.ok(nil, "put", "-r", "r@main:/", "-f", src)
	d.ok(nil, "get", "-r", "r@main:/", "-o", filepath.Join(tmp, "out2"))
	sameTree(t, src, filepath.Join(tmp, "out2"))
	d.stop()
}

// TestDiskFull fills a small tmpfs during a put: the put fails with a
// clear error, earlier commits stay intact, and after gc the store works.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root; mounting a tmpfs needs it")
		}
		t.Skip("needs root to mount a tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	d := startDaemon(t, filepath.Join(mnt, "data"))
	d.ok(nil, "repo", "create", "r")
	d.ok([]byte("kept"), "put", "r@main:/a", "-f", "-")
	big := filepath.Join(t.TempDir(), "big")
	b := make([]byte, 96<<20)
	rng := rand.NewChaCha8([32]byte{5})
	rng.Read(b)
	os.WriteFile(big, b, 0o644)
	out, code := d.run(nil, "put", "r@main:/big", "-f", big)
	if code == 0 || !strings.Contains(out, "no space left on device") {
		t.Fatalf("put onto a full disk: exit %d, %q; want a failure that says 'no space left on device'", code, out)
	}
	if got := d.ok(nil, "cat", "r@main:/a"); got != "kept" {
		t.Fatalf("earlier commit after ENOSPC: %q", got)
	}
	if out := d.ok(nil, "fsck"); !strings.Contains(out, " 0 faults") {
		t.Fatalf("fsck after ENOSPC: %s", out)
	}
	d.ok(nil, "gc", "--grace", "0s")
	d.ok([]byte("after"), "put", "r@main:/b", "-f", "-")
	if got := d.ok(nil, "cat", "r@main:/b"); got != "after" {
		t.Fatalf("put after gc: %q", got)
	}
	d.stop()
}
