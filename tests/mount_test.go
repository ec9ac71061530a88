package tests

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The daemon's /pfs mount, end to end through the strata binary: wiring,
// writes through the mount committed and read back with the CLI, SIGTERM
// unmounting and finishing, a SIGKILL's stale mount cleaned up on the next
// start, and a clear error when the mount cannot be made.

func requireFuse(t *testing.T) {
	t.Helper()
	_, err := os.Stat("/dev/fuse")
	if err == nil && os.Geteuid() != 0 {
		_, err = exec.LookPath("fusermount3")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("FUSE is required in CI (apt-get install -y fuse3): %v", err)
		}
		t.Skipf("no FUSE here: %v", err)
	}
}

// startMountDaemon runs 'strata up' with /pfs mounted at mnt.
func startMountDaemon(t *testing.T, data, mnt string, extra ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, data: data, log: &bytes.Buffer{}}
	args := append([]string{"up", "--data", data, "--mount", mnt, "--no-pipelines"}, extra...)
	d.cmd = exec.Command(strataBin, args...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			d.cmd.Wait()
		}
		syscall.Unmount(mnt, syscall.MNT_DETACH) // after a kill
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, code := d.run(nil, "status"); code == 0 {
			return d
		}
		if d.cmd.ProcessState != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("daemon did not come up; log:\n%s", d.log)
	return nil
}

func isMountPoint(t *testing.T, dir string) bool {
	t.Helper()
	var a, b syscall.Stat_t
	if err := syscall.Stat(dir, &a); err != nil {
		return errors.Is(err, syscall.ENOTCONN)
	}
	if err := syscall.Stat(filepath.Dir(dir), &b); err != nil {
		t.Fatal(err)
	}
	return a.Dev != b.Dev
}

func TestDaemonMount(t *testing.T) {
	requireFuse(t)
	tmp := t.TempDir()
	data, mnt := filepath.Join(tmp, "data"), filepath.Join(tmp, "pfs")
	d := startMountDaemon(t, data, mnt, "--mount-idle", "-1s")

	var st struct{ Mount string }
	json.Unmarshal([]byte(d.ok(nil, "status", "-o", "json")), &st)
	if st.Mount != mnt {
		t.Errorf("status reports mount %q, want %q", st.Mount, mnt)
	}
	d.ok(nil, "repo", "create", "data")

	// Write a tree through the mount, finish, read it back two ways.
	src := filepath.Join(tmp, "src")
	makeTree(t, src, 3, 60, 3<<20)
	if out, err := exec.Command("cp", "-r", src, filepath.Join(mnt, "data@main", "tree")).CombinedOutput(); err != nil {
		t.Fatalf("cp into the mount: %v\n%s", err, out)
	}
	if !strings.Contains(d.ok(nil, "commit", "list", "data@main"), "open") {
		t.Errorf("writes through the mount did not open a commit")
	}
	d.ok(nil, "commit", "finish", "data@main")
	var commits []struct{ ID, State string }
	json.Unmarshal([]byte(d.ok(nil, "commit", "list", "data@main", "-o", "json")), &commits)
	if len(commits) != 1 || commits[0].State != "finished" {
		t.Fatalf("commits after finish: %+v", commits)
	}
	id := commits[0].ID
	d.ok(nil, "get", "-r", "data@"+id+":/tree", "-o", filepath.Join(tmp, "out"))
	sameTree(t, src, filepath.Join(tmp, "out"))
	sameTree(t, src, filepath.Join(mnt, "data@"+id[:8], "tree"))

	// SIGTERM unmounts and finishes the open commit of later writes.
	if err := os.WriteFile(filepath.Join(mnt, "data", "late.txt"), []byte("late\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.stop()
	if isMountPoint(t, mnt) {
		t.Fatalf("%s still mounted after SIGTERM", mnt)
	}
	d = startDaemon(t, data) // --no-mount
	json.Unmarshal([]byte(d.ok(nil, "commit", "list", "data@main", "-o", "json")), &commits)
	if len(commits) != 2 || commits[0].State != "finished" {
		t.Errorf("after SIGTERM: commits %+v, want the late write's commit finished", commits)
	}
	if got := d.ok(nil, "cat", "data@main:/late.txt"); got != "late\n" {
		t.Errorf("late.txt = %q", got)
	}
	d.stop()

	// A killed daemon leaves a dead mount; the next start cleans it up.
	// A file fsynced through the mount before the kill is in the open
	// commit after the restart, which can then be finished.
	d = startMountDaemon(t, data, mnt, "--mount-idle", "-1s")
	f, err := os.Create(filepath.Join(mnt, "data", "synced.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("synced\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	d.kill()
	if _, err := os.ReadDir(mnt); !errors.Is(err, syscall.ENOTCONN) {
		t.Logf("ls of the dead mount: %v (want ENOTCONN)", err)
	}
	d = startMountDaemon(t, data, mnt)
	es, err := os.ReadDir(mnt)
	if err != nil || len(es) != 2 {
		t.Errorf("ls after restart over a stale mount: %v, %v", es, err)
	}
	d.ok(nil, "commit", "finish", "data@main")
	if got := d.ok(nil, "cat", "data@main:/synced.txt"); got != "synced\n" {
		t.Errorf("file fsynced before a kill -9: %q after the restart", got)
	}
	d.stop()
}

func TestDaemonMountFailure(t *testing.T) {
	requireFuse(t)
	tmp := t.TempDir()
	notDir := filepath.Join(tmp, "file")
	os.WriteFile(notDir, nil, 0o644)
	cmd := exec.Command(strataBin, "up", "--data", filepath.Join(tmp, "data"), "--mount", notDir, "--no-pipelines")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("strata up with a file as mount point succeeded")
	}
	if !strings.Contains(string(out), "--no-mount") {
		t.Errorf("mount failure does not say how to run without it:\n%s", out)
	}
}
