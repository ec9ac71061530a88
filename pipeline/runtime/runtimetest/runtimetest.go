// Package runtimetest helps tests that run real containers: a busybox root
// directory to build an image from, a static agent binary, and the rule
// that missing prerequisites skip a test locally but fail it in CI.
package runtimetest

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Need fails the test when CI=true and skips it otherwise: for a missing
// prerequisite that CI must have.
func Need(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but %s", msg)
	}
	t.Skip(msg)
}

// RequireContainers checks what real containers need: root, containerd,
// runc, the runc shim and busybox-static.
func RequireContainers(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Need(t, "containers need root")
	}
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			Need(t, "%s is not installed (apt-get install containerd runc)", bin)
		}
	}
	if _, err := os.Stat(busybox); err != nil {
		Need(t, "%s is missing (apt-get install busybox-static)", busybox)
	}
}

const busybox = "/bin/busybox"

// Applets are the busybox commands BusyboxRoot links.
var Applets = []string{"sh", "cat", "ls", "cp", "sleep", "echo", "wc", "mkdir", "ifconfig", "id", "true", "false", "rm", "touch", "ps", "env", "pwd", "head", "kill"}

// BusyboxRoot returns a root directory for ImportDir: /bin/busybox (a
// static build) with Applets linked to it, /etc/passwd and /etc/group
// (root, nobody) and /tmp.
func BusyboxRoot(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(busybox); err != nil {
		Need(t, "%s is missing (apt-get install busybox-static)", busybox)
	}
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin", "etc", "tmp", "root"} {
		must(os.Mkdir(filepath.Join(root, d), 0o755))
	}
	must(os.Chmod(filepath.Join(root, "tmp"), 0o1777))
	must(copyFile(busybox, filepath.Join(root, "bin", "busybox"), 0o755))
	for _, a := range Applets {
		must(os.Symlink("busybox", filepath.Join(root, "bin", a)))
	}
	must(os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte(
		"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "etc", "group"), []byte(
		"root:x:0:\nnogroup:x:65534:\n"), 0o644))
	return root
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

var agentOnce struct {
	sync.Once
	path string
	err  error
}

// Agent returns a static (CGO_ENABLED=0) build of the agent, with the argv
// shape of the strata binary (`agent __agent SOCKET`). It is built once per
// test process into a directory named after the process; directories of
// processes that are gone are removed.
func Agent(t testing.TB) string {
	t.Helper()
	agentOnce.Do(func() { agentOnce.path, agentOnce.err = buildAgent() })
	if agentOnce.err != nil {
		t.Fatalf("building the agent: %v", agentOnce.err)
	}
	return agentOnce.path
}

const agentPkg = "github.com/strata-data/strata/pipeline/agent/internal/agentmain"

func buildAgent() (string, error) {
	base := filepath.Join(os.TempDir(), "strata-agent-test")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	if entries, err := os.ReadDir(base); err == nil {
		for _, e := range entries {
			if pid, err := strconv.Atoi(e.Name()); err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) == syscall.ESRCH {
				os.RemoveAll(filepath.Join(base, e.Name()))
			}
		}
	}
	dir := filepath.Join(base, strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "agent")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(goruntime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goBin, "build", "-o", out, agentPkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", agentPkg, err, strings.TrimSpace(string(b)))
	}
	return out, nil
}
