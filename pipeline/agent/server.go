package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// killGrace is how long a killed command's process group has between
// SIGTERM and SIGKILL.
const killGrace = 2 * time.Second

// outputGrace bounds how long the agent keeps reading a command's output
// after the command and its process group are gone; a process that left
// the group (setsid) may hold the pipes open forever.
const outputGrace = 2 * time.Second

// Serve listens on socketPath (removing a stale socket first) and runs the
// commands that clients send until ctx is canceled, then kills the running
// commands, answers their clients and returns nil.
//
// As PID 1 it also reaps orphaned processes and stops on SIGTERM or SIGINT.
func Serve(ctx context.Context, socketPath string) error {
	pid1 := os.Getpid() == 1
	if pid1 {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
		defer stop()
	}
	return serve(ctx, socketPath, &server{etc: "/etc", procs: newProcs(pid1)})
}

type server struct {
	etc   string // where passwd and group are read
	procs *procs
	log   *log.Logger
}

func serve(ctx context.Context, socketPath string, s *server) error {
	defer s.procs.stop()
	if s.log == nil {
		s.log = log.New(os.Stderr, "strata-agent: ", log.LstdFlags)
	}
	if err := os.Remove(socketPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("agent: removing stale socket: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(socketPath), 0o755); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	ln, err := net.Listen("unix", socketPath)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	// Only the host's root (and the container's) may drive the agent.
	if err := os.Chmod(socketPath, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("agent: %w", err)
	}

	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			ln.Close()
			wg.Wait()
			return fmt.Errorf("agent: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handle(ctx, conn)
		}()
	}
	wg.Wait()
	return nil
}

// handle serves one connection: one ping or one request.
func (s *server) handle(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	// A client that connects and says nothing must not hold up shutdown.
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	stopWatch := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	typ, payload, err := readFrame(conn, nil)
	if !stopWatch() {
		return // shutting down
	}
	if err != nil {
		if !errors.Is(err, io.EOF) {
			s.log.Printf("reading request: %v", err)
		}
		return
	}
	conn.SetReadDeadline(time.Time{})
	switch typ {
	case framePing:
		writeFrame(conn, framePing, nil)
		return
	case frameRequest:
	default:
		s.log.Printf("unexpected frame type %q", typ)
		return
	}
	var req Request
	if err := json.Unmarshal(payload, &req); err != nil {
		s.log.Printf("decoding request: %v", err)
		return
	}
	payload = nil // let a large stdin be collected once copied to the pipe

	// The client sends nothing after its request, so a read that returns
	// means it closed the connection: cancel the command.
	// A failed write means the same.
	gone := make(chan struct{})
	var once sync.Once
	markGone := func() { once.Do(func() { close(gone) }) }
	go func() {
		var b [1]byte
		conn.Read(b[:])
		markGone()
	}()

	out := &frameWriter{conn: conn, onFail: markGone}
	res := s.run(ctx, req, out, gone)
	select {
	case <-gone:
		return // the client went away; nobody to tell
	default:
	}
	body, _ := json.Marshal(res)
	out.write(frameResult, body)
}

// frameWriter serializes frames from the stdout and stderr pumps onto the
// connection. After a write failure (a vanished client) it calls onFail
// and drops everything.
type frameWriter struct {
	mu     sync.Mutex
	conn   net.Conn
	onFail func()
	buf    []byte
	failed bool
}

func (w *frameWriter) write(typ byte, p []byte) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed {
		return false
	}
	w.buf = appendFrame(w.buf[:0], typ, p)
	if _, err := w.conn.Write(w.buf); err != nil {
		w.failed = true
		w.onFail()
	}
	return !w.failed
}

// run executes req, streaming its output to out. gone is closed when the
// client disconnects.
func (s *server) run(ctx context.Context, req Request, out *frameWriter, gone <-chan struct{}) Result {
	res := Result{ExitCode: -1}
	fail := func(format string, args ...any) Result {
		res.StartError = fmt.Sprintf(format, args...)
		return res
	}
	if len(req.Args) == 0 || req.Args[0] == "" {
		return fail("empty command")
	}
	env := mergeEnv(os.Environ(), req.Env)
	var sys syscall.SysProcAttr
	sys.Setpgid = true // the command and its children form one group we can kill
	if req.User != "" {
		id, err := resolveUser(s.etc, req.User)
		if err != nil {
			return fail("%v", err)
		}
		sys.Credential = id.cred
		if id.home != "" && !hasKey(req.Env, "HOME") {
			env = mergeEnv(env, []string{"HOME=" + id.home})
		}
	}
	if req.Dir != "" {
		if fi, err := os.Stat(req.Dir); err != nil {
			return fail("working directory: %v", err)
		} else if !fi.IsDir() {
			return fail("working directory %s: not a directory", req.Dir)
		}
	}
	path, err := lookPath(req.Args[0], getEnv(env, "PATH"), req.Dir)
	if err != nil {
		return fail("%v", err)
	}

	// Pipes: the child's ends are closed here right after the fork, so the
	// read ends see EOF once every process holding them is gone.
	var closers []*os.File
	defer func() {
		for _, f := range closers {
			f.Close()
		}
	}()
	var stdin *os.File
	if req.Stdin == nil {
		stdin, err = os.Open(os.DevNull)
	} else {
		var w *os.File
		stdin, w, err = os.Pipe()
		if err == nil {
			closers = append(closers, w)
			go func(data []byte) {
				w.Write(data) // EPIPE when the command does not read it all
				w.Close()
			}(req.Stdin)
		}
	}
	if err != nil {
		return fail("stdin: %v", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		stdin.Close()
		return fail("pipe: %v", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		stdin.Close()
		outR.Close()
		outW.Close()
		return fail("pipe: %v", err)
	}
	closers = append(closers, outR, errR)

	attr := &syscall.ProcAttr{
		Dir:   req.Dir,
		Env:   env,
		Files: []uintptr{stdin.Fd(), outW.Fd(), errW.Fd()},
		Sys:   &sys,
	}
	start := time.Now()
	pid, exited, err := s.procs.start(path, req.Args, attr)
	stdin.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		return fail("exec %s: %v", path, err)
	}

	var pumps sync.WaitGroup
	pumps.Add(2)
	go pump(&pumps, outR, frameStdout, out)
	go pump(&pumps, errR, frameStderr, out)

	var timeout <-chan time.Time
	if req.Timeout > 0 {
		t := time.NewTimer(req.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	var ws syscall.WaitStatus
	select {
	case ws = <-exited:
	case <-timeout:
		res.TimedOut = true
		ws = killGroup(pid, exited)
	case <-gone:
		res.Canceled = true
		ws = killGroup(pid, exited)
	case <-ctx.Done():
		res.Canceled = true
		ws = killGroup(pid, exited)
	}
	res.Duration = time.Since(start)
	// Whatever the command left behind in its group dies with it. (The
	// group id cannot be reused while any member remains.)
	syscall.Kill(-pid, syscall.SIGKILL)

	pumpsDone := make(chan struct{})
	go func() { pumps.Wait(); close(pumpsDone) }()
	select {
	case <-pumpsDone:
	case <-time.After(outputGrace):
		// A process outside the group keeps the pipes open: stop reading.
		outR.Close()
		errR.Close()
		<-pumpsDone
	}

	switch {
	case ws.Exited():
		res.ExitCode = ws.ExitStatus()
	case ws.Signaled():
		res.Signal = int(ws.Signal())
	}
	return res
}

// killGroup sends SIGTERM to the process group, then SIGKILL after
// killGrace if the leader has not exited, and returns its exit status.
func killGroup(pid int, exited <-chan syscall.WaitStatus) syscall.WaitStatus {
	syscall.Kill(-pid, syscall.SIGTERM)
	t := time.NewTimer(killGrace)
	defer t.Stop()
	select {
	case ws := <-exited:
		return ws
	case <-t.C:
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	return <-exited
}

// pump copies a pipe to framed writes until EOF. After a write failure it
// keeps draining, so that the command never blocks on a full pipe.
func pump(wg *sync.WaitGroup, r *os.File, typ byte, out *frameWriter) {
	defer wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			out.write(typ, buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// mergeEnv returns base with the entries of over added, an entry of over
// replacing the base entry with the same key.
func mergeEnv(base, over []string) []string {
	out := make([]string, 0, len(base)+len(over))
	index := make(map[string]int, len(base)+len(over))
	for _, list := range [][]string{base, over} {
		for _, kv := range list {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := index[k]; ok {
				out[i] = kv
				continue
			}
			index[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

func hasKey(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

func getEnv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, _ := strings.Cut(env[i], "="); k == key {
			return v
		}
	}
	return ""
}

// lookPath resolves file like a shell would, but with the command's PATH
// and working directory rather than the agent's.
func lookPath(file, path, dir string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil // execve reports a missing file
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		cand := filepath.Join(d, file)
		check := cand
		if !filepath.IsAbs(check) && dir != "" {
			check = filepath.Join(dir, check)
		}
		if fi, err := os.Stat(check); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			if !filepath.IsAbs(cand) && !strings.Contains(cand, "/") {
				cand = "./" + cand
			}
			return cand, nil
		}
	}
	return "", fmt.Errorf("executable %q not found in $PATH (%s)", file, path)
}
