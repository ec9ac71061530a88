package agent

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startAgent runs an agent on a temp socket for the duration of the test.
func startAgent(t *testing.T, reap bool) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, sock, &server{etc: "/etc", procs: newProcs(reap)}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := Ping(context.Background(), sock); err == nil {
			return sock
		} else if time.Now().After(deadline) {
			t.Fatalf("agent never answered: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type output struct{ stdout, stderr bytes.Buffer }

func run(t *testing.T, sock string, req Request) (Result, *output) {
	t.Helper()
	var o output
	res, err := Run(context.Background(), sock, req, &o.stdout, &o.stderr)
	if err != nil {
		t.Fatalf("Run(%q): %v", req.Args, err)
	}
	return res, &o
}

func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

// waitDead waits until pid is gone (or a zombie nobody reaped yet).
func waitDead(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		// The state follows the parenthesized command name.
		if i := bytes.LastIndexByte(b, ')'); i > 0 && len(b) > i+2 && b[i+2] == 'Z' {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive: %s", pid, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAgent(t *testing.T) {
	for _, reap := range []bool{false, true} {
		t.Run("reap="+strconv.FormatBool(reap), func(t *testing.T) {
			testAgent(t, startAgent(t, reap))
		})
	}
}

func testAgent(t *testing.T, sock string) {
	t.Run("ExitCodes", func(t *testing.T) {
		for _, code := range []int{0, 1, 3, 255} {
			res, _ := run(t, sock, Request{Args: sh("exit " + strconv.Itoa(code))})
			if res.ExitCode != code || res.Signal != 0 || res.StartError != "" {
				t.Errorf("exit %d: got %+v", code, res)
			}
			if (res.Err() == nil) != (code == 0) {
				t.Errorf("exit %d: Err() = %v", code, res.Err())
			}
		}
		res, _ := run(t, sock, Request{Args: sh("kill -KILL $$")})
		if res.Signal != int(syscall.SIGKILL) || res.ExitCode != -1 {
			t.Errorf("self-kill: got %+v", res)
		}
		var ee *ExitError
		if !errors.As(res.Err(), &ee) || !strings.Contains(ee.Error(), "SIGKILL") {
			t.Errorf("self-kill: Err() = %v", res.Err())
		}
	})
	t.Run("StdoutStderr", func(t *testing.T) {
		res, o := run(t, sock, Request{Args: sh("echo out1; echo err1 >&2; echo out2; echo err2 >&2")})
		if res.Err() != nil {
			t.Fatal(res.Err())
		}
		if got := o.stdout.String(); got != "out1\nout2\n" {
			t.Errorf("stdout = %q", got)
		}
		if got := o.stderr.String(); got != "err1\nerr2\n" {
			t.Errorf("stderr = %q", got)
		}
	})
	t.Run("LargeOutput", func(t *testing.T) {
		res, o := run(t, sock, Request{Args: sh("head -c 3000000 /dev/zero")})
		if res.Err() != nil || o.stdout.Len() != 3000000 {
			t.Errorf("got %v, %d bytes", res, o.stdout.Len())
		}
	})
	t.Run("Stdin", func(t *testing.T) {
		in := bytes.Repeat([]byte("datum\n"), 50000) // larger than a pipe buffer
		res, o := run(t, sock, Request{Args: []string{"cat"}, Stdin: in})
		if res.Err() != nil || !bytes.Equal(o.stdout.Bytes(), in) {
			t.Errorf("cat: %v, %d bytes back of %d", res, o.stdout.Len(), len(in))
		}
		res, o = run(t, sock, Request{Args: sh("wc -c")})
		if res.Err() != nil || strings.TrimSpace(o.stdout.String()) != "0" {
			t.Errorf("no stdin: %v %q", res, o.stdout.String())
		}
		// A command that does not read its stdin must not hang.
		res, _ = run(t, sock, Request{Args: sh("exit 0"), Stdin: in})
		if res.Err() != nil {
			t.Error(res.Err())
		}
	})
	t.Run("Env", func(t *testing.T) {
		t.Setenv("STRATA_AGENT_INHERITED", "base")
		res, o := run(t, sock, Request{
			Args: sh(`echo "$FOO|$STRATA_AGENT_INHERITED|$EMPTY."`),
			Env:  []string{"FOO=bar baz", "STRATA_AGENT_INHERITED=over", "EMPTY="},
		})
		if res.Err() != nil || o.stdout.String() != "bar baz|over|.\n" {
			t.Errorf("got %v %q", res, o.stdout.String())
		}
		// PATH of the request is the one used to find the executable.
		bin := t.TempDir()
		if err := os.WriteFile(filepath.Join(bin, "hello-strata"), []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		res, o = run(t, sock, Request{Args: []string{"hello-strata"}, Env: []string{"PATH=" + bin + ":/usr/bin:/bin"}})
		if res.Err() != nil || o.stdout.String() != "hi\n" {
			t.Errorf("PATH lookup: %v %q", res, o.stdout.String())
		}
	})
	t.Run("Dir", func(t *testing.T) {
		dir := t.TempDir()
		res, o := run(t, sock, Request{Args: []string{"pwd"}, Dir: dir})
		if res.Err() != nil || strings.TrimSpace(o.stdout.String()) != dir {
			t.Errorf("got %v %q, want %q", res, o.stdout.String(), dir)
		}
		res, _ = run(t, sock, Request{Args: []string{"pwd"}, Dir: filepath.Join(dir, "missing")})
		if !strings.Contains(res.StartError, "working directory") {
			t.Errorf("missing dir: %+v", res)
		}
	})
	t.Run("StartErrors", func(t *testing.T) {
		res, _ := run(t, sock, Request{Args: []string{"no-such-command-strata"}})
		if !strings.Contains(res.StartError, "not found") || res.Err() == nil {
			t.Errorf("missing command: %+v", res)
		}
		res, _ = run(t, sock, Request{Args: []string{"/no/such/binary"}})
		if !strings.Contains(res.StartError, "no such file") {
			t.Errorf("missing path: %+v", res)
		}
		res, _ = run(t, sock, Request{})
		if res.StartError == "" {
			t.Errorf("empty argv: %+v", res)
		}
		res, _ = run(t, sock, Request{Args: []string{"id"}, User: "no-such-user-strata"})
		if !strings.Contains(res.StartError, "not found") {
			t.Errorf("unknown user: %+v", res)
		}
	})
	t.Run("User", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to switch users")
		}
		res, o := run(t, sock, Request{Args: sh("id -u; id -g; id -G"), User: "65534:65533"})
		if res.Err() != nil || o.stdout.String() != "65534\n65533\n65533\n" {
			t.Errorf("got %v %q", res, o.stdout.String())
		}
		res, o = run(t, sock, Request{Args: sh(`id -u; echo "$HOME"`), User: "nobody"})
		if res.Err() != nil || !strings.HasPrefix(o.stdout.String(), "65534\n/") {
			t.Errorf("nobody: %v %q", res, o.stdout.String())
		}
	})
	t.Run("TimeoutKillsGroup", func(t *testing.T) {
		start := time.Now()
		res, o := run(t, sock, Request{Args: sh("sleep 30 & echo $!; sleep 30"), Timeout: 300 * time.Millisecond})
		if !res.TimedOut || res.Err() == nil {
			t.Errorf("got %+v", res)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(o.stdout.String()))
		if err != nil {
			t.Fatalf("child pid: %q", o.stdout.String())
		}
		waitDead(t, pid)
	})
	t.Run("TimeoutEscalatesToKill", func(t *testing.T) {
		start := time.Now()
		res, _ := run(t, sock, Request{Args: sh(`trap "" TERM; echo ready; while :; do sleep 0.05; done`), Timeout: 200 * time.Millisecond})
		d := time.Since(start)
		if !res.TimedOut || res.Signal != int(syscall.SIGKILL) {
			t.Errorf("got %+v", res)
		}
		if d < killGrace || d > killGrace+3*time.Second {
			t.Errorf("took %v, want about %v", d, killGrace+200*time.Millisecond)
		}
	})
	t.Run("LeftoversKilled", func(t *testing.T) {
		start := time.Now()
		res, o := run(t, sock, Request{Args: sh("sleep 30 & echo $!")})
		if res.Err() != nil {
			t.Fatal(res.Err())
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("a background child held the run for %v", d)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(o.stdout.String()))
		waitDead(t, pid)
	})
	t.Run("Cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		pr, pw := newLineWatcher()
		errc := make(chan error, 1)
		go func() {
			_, err := Run(ctx, sock, Request{Args: sh("sleep 30 & echo $!; sleep 30")}, pw, nil)
			errc <- err
		}()
		line := <-pr
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("Run after cancel: %v", err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(line))
		waitDead(t, pid)
	})
	t.Run("Parallel", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var out bytes.Buffer
				res, err := Run(context.Background(), sock, Request{Args: sh("sleep 0.1; echo " + strconv.Itoa(i))}, &out, nil)
				if err != nil || res.Err() != nil || out.String() != strconv.Itoa(i)+"\n" {
					t.Errorf("run %d: %v %v %q", i, err, res, out.String())
				}
			}()
		}
		wg.Wait()
	})
}

// newLineWatcher returns a writer that sends its first line on the channel.
func newLineWatcher() (<-chan string, *lineWriter) {
	ch := make(chan string, 1)
	return ch, &lineWriter{ch: ch}
}

type lineWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	ch   chan string
	sent bool
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if s := w.buf.String(); !w.sent && strings.Contains(s, "\n") {
		w.sent = true
		w.ch <- s[:strings.IndexByte(s, '\n')]
	}
	return len(p), nil
}

// TestReapOrphans makes the test process a child subreaper, so that the
// orphans of a command are re-parented to it as they would be to the agent
// running as PID 1, and checks that the reaper collects them.
func TestReapOrphans(t *testing.T) {
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, 36 /* PR_SET_CHILD_SUBREAPER */, 1, 0); e != 0 {
		t.Skipf("PR_SET_CHILD_SUBREAPER: %v", e)
	}
	defer syscall.RawSyscall(syscall.SYS_PRCTL, 36, 0, 0)
	sock := startAgent(t, true)
	// The inner shell double-forks; sleep's parent exits at once.
	res, o := run(t, sock, Request{Args: sh("(sleep 0.2 & echo $!) ; sleep 0.4")})
	if res.Err() != nil {
		t.Fatal(res.Err())
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(o.stdout.String()))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
			break // reaped
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			t.Fatalf("orphan %d never reaped: %s", pid, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestResolveUser(t *testing.T) {
	etc := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("passwd", "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n# comment\nbob:x:1001:100::/home/bob:/bin/sh\n")
	write("group", "root:x:0:\nusers:x:100:alice\nalice:x:1000:\ndocker:x:999:alice,bob\n")
	for _, tc := range []struct {
		spec     string
		uid, gid uint32
		groups   []uint32
		home     string
		err      string
	}{
		{spec: "alice", uid: 1000, gid: 1000, groups: []uint32{100, 999}, home: "/home/alice"},
		{spec: "bob", uid: 1001, gid: 100, groups: []uint32{999}, home: "/home/bob"},
		{spec: "1000", uid: 1000, gid: 1000, groups: []uint32{100, 999}, home: "/home/alice"},
		{spec: "4242", uid: 4242, gid: 0, groups: []uint32{}},
		{spec: "alice:docker", uid: 1000, gid: 999, groups: []uint32{}, home: "/home/alice"},
		{spec: "4242:77", uid: 4242, gid: 77, groups: []uint32{}},
		{spec: "carol", err: "not found"},
		{spec: "alice:nogroup", err: "not found"},
		{spec: ":1", err: "invalid"},
		{spec: "1:", err: "invalid"},
	} {
		id, err := resolveUser(etc, tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err = %v, want %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.spec, err)
			continue
		}
		c := id.cred
		if c.Uid != tc.uid || c.Gid != tc.gid || !equalU32(c.Groups, tc.groups) || id.home != tc.home {
			t.Errorf("%q: got %d:%d %v %q, want %d:%d %v %q", tc.spec, c.Uid, c.Gid, c.Groups, id.home, tc.uid, tc.gid, tc.groups, tc.home)
		}
	}
}

func equalU32(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMergeEnv(t *testing.T) {
	got := strings.Join(mergeEnv([]string{"A=1", "B=2", "C=3"}, []string{"B=x", "D=4", "A="}), " ")
	if want := "A= B=x C=3 D=4"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func BenchmarkRun(b *testing.B) {
	sock := filepath.Join(b.TempDir(), "agent.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go serve(ctx, sock, &server{etc: "/etc", procs: newProcs(false)})
	for Ping(ctx, sock) != nil {
		time.Sleep(5 * time.Millisecond)
	}
	b.ResetTimer()
	for b.Loop() {
		res, err := Run(ctx, sock, Request{Args: []string{"/bin/true"}}, nil, nil)
		if err != nil || res.Err() != nil {
			b.Fatal(err, res)
		}
	}
}

// TestShutdown cancels Serve with a command running and an idle
// connection open: Serve returns, and the command's client is told.
func TestShutdown(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, sock, &server{etc: "/etc", procs: newProcs(false)}) }()
	for Ping(context.Background(), sock) != nil {
		time.Sleep(5 * time.Millisecond)
	}
	idle, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	type outcome struct {
		res Result
		err error
	}
	ran := make(chan outcome, 1)
	started, w := newLineWatcher()
	go func() {
		res, err := Run(context.Background(), sock, Request{Args: sh("echo up; sleep 30")}, w, nil)
		ran <- outcome{res, err}
	}()
	<-started
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	o := <-ran
	if o.err != nil || !o.res.Canceled {
		t.Errorf("running command at shutdown: %+v, %v", o.res, o.err)
	}
}
