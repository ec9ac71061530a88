package tests

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// 'strata mount DIR --server URL': /pfs mounted by a separate process
// through a running daemon's API, over TCP with the token and over the
// unix socket. Read-only, byte-identical, following branches, and gone
// after SIGTERM or unmount.

// mountProc is a 'strata mount' child process.
type mountProc struct {
	t      *testing.T
	dir    string
	cmd    *exec.Cmd
	log    *bytes.Buffer
	exited chan struct{} // closed when the process has exited
}

// startRemoteMount runs 'strata mount dir args...' and waits until dir is
// mounted.
func startRemoteMount(t *testing.T, dir string, env []string, args ...string) *mountProc {
	t.Helper()
	m := &mountProc{t: t, dir: dir, log: &bytes.Buffer{}}
	m.cmd = exec.Command(strataBin, append([]string{"mount", dir}, args...)...)
	m.cmd.Env = append(os.Environ(), env...)
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	m.exited = exited
	go func() { m.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			m.cmd.Process.Kill()
			<-exited
		}
		syscall.Unmount(dir, syscall.MNT_DETACH) // after a kill
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatalf("strata mount exited (%v) before mounting; log:\n%s", m.cmd.ProcessState, m.log)
		default:
		}
		if _, err := os.Stat(dir); err == nil && isMountPoint(t, dir) {
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("strata mount did not mount %s; log:\n%s", dir, m.log)
	return nil
}

// stop sends sig and waits for a clean exit.
func (m *mountProc) stop(sig syscall.Signal) {
	m.t.Helper()
	m.cmd.Process.Signal(sig)
	m.wait()
}

// wait waits for the process to exit on its own, cleanly.
func (m *mountProc) wait() {
	m.t.Helper()
	select {
	case <-m.exited:
	case <-time.After(20 * time.Second):
		m.t.Fatalf("strata mount still running; log:\n%s", m.log)
	}
	if !m.cmd.ProcessState.Success() {
		m.t.Errorf("strata mount: %v; log:\n%s", m.cmd.ProcessState, m.log)
	}
	if isMountPoint(m.t, m.dir) {
		m.t.Errorf("%s still mounted after strata mount exited", m.dir)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("ls %s: %v", dir, err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func TestRemoteMount(t *testing.T) {
	requireFuse(t)
	tmp := t.TempDir()
	data, mnt := filepath.Join(tmp, "data"), filepath.Join(tmp, "pfs")
	addr := "127.0.0.1:" + freePort(t)
	d := startDaemonWith(t, data, "--no-mount", "--no-pipelines", "--listen", addr)
	tok, err := os.ReadFile(filepath.Join(data, "token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))

	// A small file, a file of several chunks, 1,000 small files.
	src := filepath.Join(tmp, "src")
	os.MkdirAll(filepath.Join(src, "many"), 0o755)
	os.WriteFile(filepath.Join(src, "small.txt"), []byte("small\n"), 0o644)
	rng := rand.New(rand.NewPCG(3, 3))
	big := make([]byte, 20<<20)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	os.WriteFile(filepath.Join(src, "big.bin"), big, 0o644)
	for i := range 1000 {
		os.WriteFile(filepath.Join(src, "many", fmt.Sprintf("f%04d", i)), []byte(fmt.Sprintf("file %d\n", i)), 0o644)
	}
	d.ok(nil, "repo", "create", "data")
	d.ok(nil, "put", "-r", "data@main:/", "-f", src, "-m", "first")
	d.ok(nil, "branch", "create", "data@dev", "--head", "data@main")
	var refs []struct{ Chunks int }
	json.Unmarshal([]byte(d.ok(nil, "ls", "data@main:/big.bin", "-o", "json")), &refs)
	if len(refs) != 1 || refs[0].Chunks < 3 {
		t.Fatalf("big.bin should have several chunks: %+v", refs)
	}

	m := startRemoteMount(t, mnt, []string{"STRATA_ADDR=", "STRATA_TOKEN="}, "--server", "http://"+addr, "--token", token)

	// ls /pfs: repos and repo@branch, as the daemon's own mount lists them.
	if got, want := names(t, mnt), []string{"data", "data@dev", "data@main"}; !slices.Equal(got, want) {
		t.Errorf("ls /pfs = %v, want %v", got, want)
	}
	if got := names(t, filepath.Join(mnt, "data@main")); !slices.Equal(got, []string{"big.bin", "many", "small.txt"}) {
		t.Errorf("ls data@main = %v", got)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "data", "small.txt")); err != nil || string(b) != "small\n" {
		t.Errorf("cat small.txt = %q, %v", b, err)
	}

	// The multi-chunk file: byte-identical whole and at offsets.
	bigPath := filepath.Join(mnt, "data@main", "big.bin")
	if fi, err := os.Stat(bigPath); err != nil || fi.Size() != int64(len(big)) {
		t.Fatalf("stat big.bin: %v, %v", fi, err)
	}
	if got, want := fileSum(t, bigPath), fmt.Sprintf("%x", sha256.Sum256(big)); got != want {
		t.Fatalf("sha256 of big.bin through the mount = %s, want %s", got, want)
	}
	f, err := os.Open(filepath.Join(mnt, "data@dev", "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 1, 4095, 1<<20 + 17, 7<<20 + 3, int64(len(big)) - 100, int64(len(big)) - 1} {
		for _, n := range []int{1, 4096, 300_000} {
			buf := make([]byte, n)
			k, err := f.ReadAt(buf, off)
			want := big[off:min(off+int64(n), int64(len(big)))]
			if k != len(want) || !bytes.Equal(buf[:k], want) || err != nil && err != io.EOF {
				t.Errorf("read %d at %d: %d bytes, %v; want %d matching", n, off, k, err, len(want))
			}
		}
	}
	f.Close()

	// 1,000 files, listed and read.
	if got := names(t, filepath.Join(mnt, "data", "many")); len(got) != 1000 {
		t.Errorf("ls many: %d entries, want 1000", len(got))
	}
	sameTree(t, filepath.Join(src, "many"), filepath.Join(mnt, "data", "many"))

	// A new commit shows up under the branch within a few seconds;
	// main^1 and .commits show the history.
	d.ok([]byte("new\n"), "put", "data@main:/new.txt", "-f", "-", "-m", "second")
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(mnt, "data@main", "new.txt"))
		if err == nil && string(b) == "new\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new commit not visible through the mount after 5 s: %q, %v", b, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(mnt, "data@main^1", "new.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data@main^1/new.txt: %v, want not exist", err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "data@dev", "new.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data@dev/new.txt: %v, want not exist (dev did not move)", err)
	}
	var commits []struct{ ID string }
	json.Unmarshal([]byte(d.ok(nil, "commit", "list", "data@main", "-o", "json")), &commits)
	if len(commits) != 2 {
		t.Fatalf("commit list: %+v", commits)
	}
	hist := names(t, filepath.Join(mnt, ".commits", "data"))
	if len(hist) != 2 || !slices.Contains(hist, commits[0].ID) || !slices.Contains(hist, commits[1].ID) {
		t.Errorf(".commits/data = %v, want %s and %s", hist, commits[0].ID, commits[1].ID)
	}
	first := commits[1].ID
	if got := fileSum(t, filepath.Join(mnt, ".commits", "data", first, "big.bin")); got != fmt.Sprintf("%x", sha256.Sum256(big)) {
		t.Errorf("big.bin of the first commit through .commits differs")
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "data@"+first[:8], "small.txt")); err != nil || string(b) != "small\n" {
		t.Errorf("data@%s/small.txt = %q, %v", first[:8], b, err)
	}

	// Read-only, everywhere.
	small := filepath.Join(mnt, "data", "small.txt")
	for what, op := range map[string]func() error{
		"create":   func() error { return os.WriteFile(filepath.Join(mnt, "data@main", "x.txt"), nil, 0o644) },
		"write":    func() error { return os.WriteFile(small, []byte("x"), 0o644) },
		"mkdir":    func() error { return os.Mkdir(filepath.Join(mnt, "data@main", "d"), 0o755) },
		"rm":       func() error { return os.Remove(small) },
		"rename":   func() error { return os.Rename(small, small+".old") },
		"chmod":    func() error { return os.Chmod(small, 0o600) },
		"truncate": func() error { return os.Truncate(small, 0) },
		"mkdir /":  func() error { return os.Mkdir(filepath.Join(mnt, "newrepo"), 0o755) },
	} {
		err := op()
		if !errors.Is(err, syscall.EROFS) || !strings.Contains(err.Error(), "read-only file system") {
			t.Errorf("%s through the remote mount: %v, want EROFS", what, err)
		}
	}
	if out := d.ok(nil, "commit", "list", "data@main"); strings.Contains(out, "open") {
		t.Errorf("a write through the remote mount opened a commit:\n%s", out)
	}

	// A wrong token: a clear error and exit code 8, nothing mounted.
	bad := filepath.Join(tmp, "bad")
	cmd := exec.Command(strataBin, "mount", bad, "--server", "http://"+addr, "--token", "wrong")
	cmd.Env = append(os.Environ(), "STRATA_ADDR=", "STRATA_TOKEN=")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 8 || !strings.Contains(string(out), "token") {
		t.Errorf("mount with a wrong token: %v\n%s\nwant exit 8 naming the token", err, out)
	}
	if _, err := os.Stat(bad); err == nil && isMountPoint(t, bad) {
		t.Errorf("mounted with a wrong token")
	}

	// SIGTERM unmounts cleanly.
	m.stop(syscall.SIGTERM)

	// Through the unix socket from STRATA_ADDR (no token), ended by
	// 'strata unmount'.
	m = startRemoteMount(t, mnt, []string{"STRATA_ADDR=unix://" + filepath.Join(data, "strata.sock"), "STRATA_TOKEN="})
	if got := names(t, mnt); !slices.Equal(got, []string{"data", "data@dev", "data@main"}) {
		t.Errorf("ls /pfs through the socket = %v", got)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "data", "new.txt")); err != nil || string(b) != "new\n" {
		t.Errorf("cat new.txt through the socket = %q, %v", b, err)
	}
	d.ok(nil, "unmount", mnt)
	m.wait()
	d.stop()
}
