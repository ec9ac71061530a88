package runtime

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// daemon is a private containerd, supervised: restarted when it dies, and
// killed with us (Pdeathsig).
type daemon struct {
	bin     string
	config  string
	address string
	logPath string
	pidPath string
	log     *slog.Logger

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the current process has exited
	exitErr  error
	started  time.Time
	stopping bool
	stopCh   chan struct{} // closed by stop
	done     chan struct{} // closed when the supervisor returns
}

// maxSocketPath keeps the gRPC socket comfortably below the 108-byte limit
// of sun_path (containerd also derives a ".ttrpc" socket from it).
const maxSocketPath = 100

// Plugins the private daemon does not need. CRI is the slow one to load;
// "opt" would create /opt/containerd. (The legacy io.containerd.runtime.v1.linux
// must stay: the 1.6 tasks service does not load without it.)
var disabledPlugins = []string{
	"io.containerd.grpc.v1.cri",
	"io.containerd.internal.v1.opt",
	"io.containerd.internal.v1.tracing",
	"io.containerd.tracing.processor.v1.otlp",
	"io.containerd.snapshotter.v1.aufs",
	"io.containerd.snapshotter.v1.btrfs",
	"io.containerd.snapshotter.v1.devmapper",
	"io.containerd.snapshotter.v1.zfs",
}

func startDaemon(ctx context.Context, dir string, log *slog.Logger) (*daemon, error) {
	bin, err := exec.LookPath("containerd")
	if err != nil {
		return nil, errors.New("runtime: containerd is not installed (on Debian/Ubuntu: apt-get install containerd runc)")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return nil, errors.New("runtime: runc is not installed (on Debian/Ubuntu: apt-get install containerd runc)")
	}
	d := &daemon{
		bin:     bin,
		config:  filepath.Join(dir, "config.toml"),
		logPath: filepath.Join(dir, "containerd.log"),
		pidPath: filepath.Join(dir, "containerd.pid"),
		log:     log,
		stopCh:  make(chan struct{}),
		done:    make(chan struct{}),
	}
	d.address = filepath.Join(dir, "containerd.sock")
	if len(d.address) > maxSocketPath {
		sum := sha256.Sum256([]byte(dir))
		runDir := "/run/strata-" + hex.EncodeToString(sum[:6])
		if err := os.MkdirAll(runDir, 0o700); err != nil {
			return nil, fmt.Errorf("runtime: socket directory: %w", err)
		}
		d.address = filepath.Join(runDir, "containerd.sock")
	}
	if err := os.WriteFile(d.config, []byte(daemonConfig(dir, d.address)), 0o644); err != nil {
		return nil, fmt.Errorf("runtime: writing containerd config: %w", err)
	}
	d.killStale()
	d.mu.Lock()
	err = d.spawn()
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	go d.supervise()
	return d, nil
}

func daemonConfig(dir, address string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by strata for its private containerd; rewritten on every start.\n")
	fmt.Fprintf(&b, "version = 2\n")
	fmt.Fprintf(&b, "root = %s\n", strconv.Quote(filepath.Join(dir, "root")))
	fmt.Fprintf(&b, "state = %s\n", strconv.Quote(filepath.Join(dir, "state")))
	fmt.Fprintf(&b, "disabled_plugins = [")
	for i, p := range disabledPlugins {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(p))
	}
	fmt.Fprintf(&b, "]\n\n[grpc]\n  address = %s\n", strconv.Quote(address))
	fmt.Fprintf(&b, "\n[ttrpc]\n  address = %s\n", strconv.Quote(address+".ttrpc"))
	// No debug or metrics listeners.
	fmt.Fprintf(&b, "\n[debug]\n  address = \"\"\n  level = \"info\"\n\n[metrics]\n  address = \"\"\n")
	return b.String()
}

// killStale stops a containerd that a previous run of ours left behind on
// the same config (it survives only if Pdeathsig did not fire).
func (d *daemon) killStale() {
	b, err := os.ReadFile(d.pidPath)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !bytes.Contains(cmdline, []byte(d.config)) {
		return
	}
	d.log.Warn("stopping a containerd left over by a previous run", "pid", pid)
	syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// spawn starts containerd; d.mu must be held. The process is started from a goroutine locked
// to its OS thread for the process's whole life: Pdeathsig fires when the
// *thread* that forked the child exits, not the process.
func (d *daemon) spawn() error {
	logf, err := os.OpenFile(d.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("runtime: containerd log: %w", err)
	}
	fmt.Fprintf(logf, "---- strata: starting %s --config %s at %s\n", d.bin, d.config, time.Now().Format(time.RFC3339))
	cmd := exec.Command(d.bin, "--config", d.config)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Pdeathsig: syscall.SIGKILL,
		Setpgid:   true, // a ^C at the terminal is for us, not for it
	}
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		goruntime.LockOSThread()
		defer goruntime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		err := cmd.Wait()
		logf.Close()
		d.mu.Lock()
		if d.cmd == cmd {
			d.exitErr = err
		}
		d.mu.Unlock()
		close(exited)
	}()
	if err := <-started; err != nil {
		logf.Close()
		return fmt.Errorf("runtime: starting containerd: %w", err)
	}
	os.WriteFile(d.pidPath, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	d.cmd, d.exited, d.exitErr, d.started = cmd, exited, nil, time.Now()
	return nil
}

// exitedEarly reports, while waiting for the first start, whether the
// daemon already died.
func (d *daemon) exitedEarly() error {
	d.mu.Lock()
	exited, exitErr := d.exited, d.exitErr
	d.mu.Unlock()
	select {
	case <-exited:
		return fmt.Errorf("containerd exited at startup (%v); see %s:\n%s", exitErr, d.logPath, tail(d.logPath, 15))
	default:
		return nil
	}
}

// supervise restarts containerd when it dies, with a growing delay.
func (d *daemon) supervise() {
	defer close(d.done)
	delay := 500 * time.Millisecond
	for {
		d.mu.Lock()
		exited := d.exited
		d.mu.Unlock()
		<-exited
		d.mu.Lock()
		stopping, exitErr, ran := d.stopping, d.exitErr, time.Since(d.started)
		d.mu.Unlock()
		if stopping {
			return
		}
		if ran > time.Minute {
			delay = 500 * time.Millisecond // it was healthy for a while
		}
		d.log.Error("containerd died; restarting", "err", exitErr, "delay", delay, "log", d.logPath)
		select {
		case <-time.After(delay):
		case <-d.stopCh:
			return
		}
		d.mu.Lock()
		if d.stopping {
			d.mu.Unlock()
			return
		}
		if err := d.spawn(); err != nil {
			d.log.Error("restarting containerd failed", "err", err)
		}
		d.mu.Unlock()
		delay = min(2*delay, 30*time.Second)
	}
}

// stop terminates containerd (SIGTERM, then SIGKILL after 10 s) and ends
// supervision. The shims of running containers survive it by design; the
// runtime deletes its workers before.
func (d *daemon) stop() error {
	d.mu.Lock()
	if d.stopping {
		d.mu.Unlock()
		<-d.done
		return nil
	}
	d.stopping = true
	close(d.stopCh)
	cmd, exited := d.cmd, d.exited
	d.mu.Unlock()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
	<-d.done
	os.Remove(d.pidPath)
	return nil
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
