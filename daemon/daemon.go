// Package daemon runs strata's long-lived process: it owns a data
// directory (one daemon per directory, enforced by a lock on the pid file),
// opens the store, and serves the API on DATA/strata.sock (mode 0600) and,
// when asked, on TCP behind a bearer token kept in DATA/token.
package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/fs/mount"
	"github.com/strata-data/strata/store"
)

// Options configure Run.
type Options struct {
	DataDir     string
	Listen      string        // optional TCP address (host:port)
	Mount       string        // where /pfs is mounted ("" when not mounting)
	MountIdle   time.Duration // finish an open commit after this long without writes through /pfs (0: 30 s; < 0: never)
	NoPipelines bool
	// Containerd is the address of a running containerd for pipeline
	// workers; "" starts a private one under DATA/containerd.
	Containerd string
	// Store is where large chunks live: "" (DATA/chunks) or
	// s3://BUCKET/PREFIX; see store.Options.
	Store        string
	S3Endpoint   string
	S3Region     string
	S3CacheBytes int64 // 0: store.DefaultS3CacheBytes
	// WorkerLease is how long a remote worker holds a datum between
	// heartbeats (0: pipeline.DefaultLease).
	WorkerLease time.Duration
	Log         *slog.Logger
}

// Files under the data dir.
func PIDFile(dataDir string) string   { return filepath.Join(dataDir, "strata.pid") }
func LogFile(dataDir string) string   { return filepath.Join(dataDir, "strata.log") }
func TokenFile(dataDir string) string { return filepath.Join(dataDir, "token") }

// Run serves until ctx is cancelled, then shuts down cleanly.
func Run(ctx context.Context, o Options) error {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	dir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	tuneGC()
	unlock, err := lockPID(dir)
	if err != nil {
		return err
	}
	defer unlock()

	st, err := store.Open(dir, store.Options{Chunks: o.Store, S3Endpoint: o.S3Endpoint, S3Region: o.S3Region, S3CacheBytes: o.S3CacheBytes})
	if err != nil {
		return err
	}
	defer st.Close()

	// /pfs: mounted before the API answers, unmounted (open commits of
	// writes through it finished) before the store closes.
	if o.Mount != "" {
		pfs, err := mount.Mount(o.Mount, st, mount.Options{Idle: o.MountIdle, Log: log})
		if err != nil {
			return fmt.Errorf("%w; start without the mount with 'strata up --no-mount', or mount elsewhere with --mount DIR", err)
		}
		defer func() {
			if err := pfs.Unmount(); err != nil {
				log.Error("unmount /pfs", "dir", o.Mount, "err", err)
			}
		}()
	}

	token, err := ensureToken(dir)
	if err != nil {
		return err
	}
	sock := api.SocketPath(dir)
	os.Remove(sock) // stale from a crash; the pid lock says nobody else owns it
	ul, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", sock, err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		ul.Close()
		return err
	}
	started := time.Now().UTC()
	status := func() api.Status {
		return api.Status{Version: api.Version, PID: os.Getpid(), DataDir: dir, Started: started,
			Socket: "unix://" + sock, Listen: tcpAddr(o.Listen), Mount: o.Mount, Pipeline: !o.NoPipelines}
	}
	srv := api.NewServer(st, log, status)
	if !o.NoPipelines {
		ctl, stop, err := startPipelines(ctx, dir, st, o, log)
		if err != nil {
			ul.Close()
			return fmt.Errorf("pipelines: %w; start without them with 'strata up --no-pipelines'", err)
		}
		defer stop()
		srv.SetPipelines(ctl)
	}
	servers := []*http.Server{{Handler: srv.Handler(""), ReadHeaderTimeout: 10 * time.Second}}
	listeners := []net.Listener{ul}
	if o.Listen != "" {
		tl, err := net.Listen("tcp", o.Listen)
		if err != nil {
			ul.Close()
			return fmt.Errorf("listen on %s: %w", o.Listen, err)
		}
		servers = append(servers, &http.Server{Handler: srv.Handler(token), ReadHeaderTimeout: 10 * time.Second})
		listeners = append(listeners, tl)
	}
	errc := make(chan error, len(servers))
	for i, hs := range servers {
		go func() { errc <- hs.Serve(listeners[i]) }()
	}
	if addr := os.Getenv("STRATA_PPROF"); addr != "" {
		// Profiling for operators: go tool pprof http://ADDR/debug/pprof/profile
		go func() {
			if err := http.ListenAndServe(addr, nil); err != nil {
				log.Error("STRATA_PPROF listener failed", "addr", addr, "err", err)
			}
		}()
	}
	log.Info("strata daemon ready", "data", dir, "socket", sock, "listen", o.Listen, "pid", os.Getpid())

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	log.Info("strata daemon stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, hs := range servers {
		hs.Shutdown(sctx)
	}
	os.Remove(sock)
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

func tcpAddr(a string) string {
	if a == "" {
		return ""
	}
	return "http://" + a
}

// tuneGC trades memory for CPU: reads and ingest allocate a chunk buffer
// per chunk, and the default GOGC=100 spends a fifth of a core collecting
// them. A soft memory limit keeps the daemon's heap well under 1 GiB. An
// operator's GOGC or GOMEMLIMIT wins.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(640 << 20)
	}
}

// lockPID takes an exclusive lock on the pid file, so two daemons never
// share a data dir, and writes our pid into it.
func lockPID(dir string) (func(), error) {
	path := PIDFile(dir)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		pid, _ := ReadPID(dir)
		return nil, fmt.Errorf("another strata daemon (pid %d) is using %s; stop it with 'strata down': %w", pid, dir, os.ErrExist)
	}
	f.Truncate(0)
	f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	return func() {
		os.Remove(path)
		f.Close()
	}, nil
}

// ReadPID returns the pid recorded for a data dir's daemon, if its lock is
// held (0 when no daemon runs there).
func ReadPID(dir string) (int, error) {
	buf, err := os.ReadFile(PIDFile(dir))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(buf)))
	if err != nil {
		return 0, fmt.Errorf("pid file %s: %w", PIDFile(dir), err)
	}
	// The pid counts only while its daemon holds the lock; after a crash
	// the file is stale and the pid may belong to someone else.
	f, err := os.Open(PIDFile(dir))
	if err != nil {
		return 0, nil
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return 0, nil
	}
	return pid, nil
}

// ensureToken returns the data dir's TCP bearer token, creating it once.
func ensureToken(dir string) (string, error) {
	path := TokenFile(dir)
	if buf, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(buf)), nil
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b[:])
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", err
	}
	return tok, nil
}

// Token reads the data dir's bearer token.
func Token(dir string) (string, error) {
	buf, err := os.ReadFile(TokenFile(dir))
	return strings.TrimSpace(string(buf)), err
}
