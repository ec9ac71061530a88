package main

// Running the tools: a generic command runner, the strata daemon lifecycle,
// restic invocations, and page-cache dropping.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
	cut bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
		t.cut = true
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	s := strings.TrimRight(string(t.buf), "\n")
	if t.cut {
		s = "...\n" + s
	}
	return s
}

type cmdResult struct {
	dur    time.Duration
	maxRSS int64 // bytes, from rusage
	stdout string
}

// runCmd runs a command to completion, timing it. On failure the error holds
// the command line, exit status and the tail of its stderr (and stdout).
func runCmd(ctx context.Context, dir string, env []string, name string, args ...string) (cmdResult, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	stdout := &tailBuffer{max: 64 << 10}
	stderr := &tailBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err := cmd.Run()
	res := cmdResult{dur: time.Since(start), stdout: stdout.String()}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			res.maxRSS = ru.Maxrss * 1024
		}
	}
	if err != nil {
		msg := fmt.Sprintf("command failed: %s\n  (dir %s, env %v)\n  error: %v", shellLine(name, args), dir, env, err)
		if s := stderr.String(); s != "" {
			msg += "\n--- stderr ---\n" + s
		}
		if s := stdout.String(); s != "" {
			msg += "\n--- stdout ---\n" + s
		}
		return res, errors.New(msg)
	}
	return res, nil
}

func shellLine(name string, args []string) string {
	parts := []string{name}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$\\") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// ---------------------------------------------------------------------------
// page cache

type cacheDropper struct {
	enabled bool
	warned  bool
}

// drop flushes dirty pages and drops the page cache so the next phase reads
// cold. It is a no-op (with one warning) when not root or not permitted.
func (c *cacheDropper) drop() {
	syscall.Sync()
	if !c.enabled {
		return
	}
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		if !c.warned {
			logf("warning: cannot drop page caches (%v); timings will include warm-cache effects", err)
			c.warned = true
		}
	}
}

// ---------------------------------------------------------------------------
// strata

type strata struct {
	bin     string
	dataDir string
	env     []string
	logPath string
	upArgs  []string // more flags for 'strata up'

	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{}
	waitErr error
}

func newStrata(bin, dataDir, logPath string) *strata {
	return &strata{
		bin:     bin,
		dataDir: dataDir,
		logPath: logPath,
		env:     []string{"STRATA_ADDR=unix://" + dataDir + "/strata.sock"},
	}
}

func (s *strata) run(ctx context.Context, args ...string) (cmdResult, error) {
	return runCmd(ctx, "", s.env, s.bin, args...)
}

// start launches `strata up` in the foreground as a child and waits until
// `strata status` succeeds.
func (s *strata) start(ctx context.Context) error { return s.startWith(ctx, "") }

// startMounted is start with the FUSE mount at mnt; it also waits until
// mnt is mounted.
func (s *strata) startMounted(ctx context.Context, mnt string) error { return s.startWith(ctx, mnt) }

func (s *strata) startWith(ctx context.Context, mnt string) error {
	lf, err := os.Create(s.logPath)
	if err != nil {
		return err
	}
	s.logFile = lf
	args := []string{"up", "--data", s.dataDir, "--no-mount", "--no-pipelines"}
	if mnt != "" {
		args = []string{"up", "--data", s.dataDir, "--mount", mnt, "--no-pipelines"}
	}
	args = append(args, s.upArgs...)
	cmd := exec.Command(s.bin, args...) // lifetime managed by stop, not ctx
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start %s: %w", shellLine(s.bin, args), err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()

	deadline := time.Now().Add(60 * time.Second)
	var lastErr error
	for {
		select {
		case <-s.done:
			return fmt.Errorf("%s exited during startup: %v\n--- daemon log (%s) ---\n%s",
				shellLine(s.bin, args), s.waitErr, s.logPath, fileTail(s.logPath, 8<<10))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := s.run(sctx, "status")
		cancel()
		if err == nil && (mnt == "" || isMountPoint(mnt)) {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("%s is not mounted yet", mnt)
		}
		lastErr = err
		if time.Now().After(deadline) {
			return fmt.Errorf("strata daemon not ready after 60s; last status error:\n%v\n--- daemon log (%s) ---\n%s",
				lastErr, s.logPath, fileTail(s.logPath, 8<<10))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *strata) pid() int { return s.cmd.Process.Pid }

// stop runs `strata down`, falling back to SIGTERM and then SIGKILL.
func (s *strata) stop() error {
	if s.cmd == nil {
		return nil
	}
	defer func() {
		s.logFile.Close()
		s.cmd = nil
	}()
	select {
	case <-s.done:
		return fmt.Errorf("strata daemon had already exited: %v\n--- daemon log ---\n%s", s.waitErr, fileTail(s.logPath, 8<<10))
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	_, downErr := s.run(ctx, "down")
	cancel()
	if downErr != nil {
		logf("warning: strata down failed, sending SIGTERM:\n%v", downErr)
		s.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-s.done:
		return nil
	case <-time.After(30 * time.Second):
	}
	if downErr == nil {
		logf("warning: daemon still running 30s after strata down, sending SIGTERM")
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
			return nil
		case <-time.After(15 * time.Second):
		}
	}
	logf("warning: daemon ignored SIGTERM, killing it")
	s.cmd.Process.Kill()
	<-s.done
	return nil
}

// peakRSS returns VmHWM of the daemon in bytes.
func (s *strata) peakRSS() (int64, error) {
	return procHWM(s.pid())
}

func procHWM(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fields := strings.Fields(v)
			if len(fields) != 2 || fields[1] != "kB" {
				return 0, fmt.Errorf("unexpected VmHWM line %q", line)
			}
			kb, err := strconv.ParseInt(fields[0], 10, 64)
			return kb * 1024, err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

func fileTail(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return strings.TrimRight(string(b), "\n")
}

// ---------------------------------------------------------------------------
// restic

type restic struct {
	bin      string
	repo     string
	passFile string
	env      []string
}

func newRestic(bin, repo, passFile, cacheDir string) *restic {
	return &restic{
		bin:      bin,
		repo:     repo,
		passFile: passFile,
		env:      []string{"RESTIC_CACHE_DIR=" + cacheDir},
	}
}

func (r *restic) run(ctx context.Context, dir string, args ...string) (cmdResult, error) {
	full := append([]string{"-r", r.repo, "--password-file", r.passFile}, args...)
	return runCmd(ctx, dir, r.env, r.bin, full...)
}

func (r *restic) init(ctx context.Context) error {
	_, err := r.run(ctx, "", "init")
	return err
}

// backup backs up dataDir with relative paths (run from inside it) so the
// snapshot root is the data set itself.
func (r *restic) backup(ctx context.Context, dataDir string) (cmdResult, error) {
	return r.run(ctx, dataDir, "backup", "--quiet", ".")
}

func (r *restic) restore(ctx context.Context, target string) (cmdResult, error) {
	return r.run(ctx, "", "restore", "latest", "--target", target)
}

func resticVersion(ctx context.Context, bin string) string {
	res, err := runCmd(ctx, "", nil, bin, "version")
	if err != nil {
		return "restic (version unknown)"
	}
	return strings.TrimSpace(res.stdout)
}
