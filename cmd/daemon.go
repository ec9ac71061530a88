package cmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/daemon"
)

type upOptions struct {
	data        string
	listen      string
	mount       string
	noMount     bool
	mountIdle   time.Duration
	noPipelines bool
	containerd  string
	detach      bool
	store       string
	s3Endpoint  string
	s3Region    string
	s3CacheGB   float64
	workerLease time.Duration
}

// s3CacheBytes converts --s3-cache-gb to store.Options.S3CacheBytes
// (where 0 means the default and < 0 no cache).
func s3CacheBytes(gb float64) int64 {
	if gb <= 0 {
		return -1
	}
	return int64(gb * (1 << 30))
}

func upCmd(g *globals) *cobra.Command {
	o := &upOptions{}
	c := &cobra.Command{
		Use:   "up",
		Short: "Run the strata daemon (foreground; -d to run in the background)",
		Long: `Run the strata daemon on a data directory. It serves the API on
DATA/strata.sock (mode 0600) and, with --listen, on TCP behind the bearer
token in DATA/token. With -d it starts in the background, logging to
DATA/strata.log, and returns once the daemon answers. Stop it with
'strata down'.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runUp(c.Context(), o) },
	}
	c.Flags().StringVar(&o.data, "data", api.DefaultDataDir(), "data directory")
	c.Flags().StringVar(&o.listen, "listen", "", "also listen on this TCP address (host:port), token required")
	c.Flags().StringVar(&o.mount, "mount", "/pfs", "where to mount the /pfs view")
	c.Flags().BoolVar(&o.noMount, "no-mount", false, "do not mount /pfs")
	c.Flags().DurationVar(&o.mountIdle, "mount-idle", 30*time.Second, "finish a branch's open commit after this long without writes through the mount (negative: never)")
	c.Flags().BoolVar(&o.noPipelines, "no-pipelines", false, "do not run pipelines")
	c.Flags().StringVar(&o.containerd, "containerd", "", "`ADDRESS` of a running containerd for pipeline workers (default: start a private one under DATA/containerd)")
	c.Flags().BoolVarP(&o.detach, "detach", "d", false, "run in the background")
	c.Flags().StringVar(&o.store, "store", "", "where large chunks live: `s3://BUCKET/PREFIX` (default: DATA/chunks); credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	c.Flags().StringVar(&o.s3Endpoint, "s3-endpoint", "", "S3 endpoint `URL` (http://host:port or https://host; default AWS_ENDPOINT_URL or AWS S3)")
	c.Flags().StringVar(&o.s3Region, "s3-region", "", "S3 region (default AWS_REGION)")
	c.Flags().DurationVar(&o.workerLease, "worker-lease", 10*time.Second, "how long a remote worker ('strata worker') holds a datum without a heartbeat before the datum runs elsewhere")
	c.Flags().Float64Var(&o.s3CacheGB, "s3-cache-gb", 4, "size in GiB of the local cache of chunks read from S3, under DATA/cache (0: no cache)")
	return c
}

// serverProcs lets a serving process (the daemon, a separate mount) run
// more goroutines at once than it has CPUs: eight processors, or Go's
// own default (the CPUs, or the cgroup's CPU limit) if that is more. A
// GOMAXPROCS variable overrides both. Its goroutines spend their time
// blocked in system calls: O_DIRECT reads of chunks, reads of /dev/fuse.
// Go hands the processor of a goroutine blocked in one to another only
// when its monitor thread next looks, which can be up to 10 ms later;
// with two processors, a chunk fetch that is ready to start waits that
// long. With eight, cold sequential reads through /pfs on a 2-CPU
// machine went from 1.1-1.4 to 1.4-1.9 GB/s (docs/mount.md).
func serverProcs() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), 8))
	}
}

func runUp(ctx context.Context, o *upOptions) error {
	data, err := filepath.Abs(o.data)
	if err != nil {
		return err
	}
	if o.detach {
		return detach(ctx, data)
	}
	serverProcs()
	mount := ""
	if !o.noMount {
		if mount, err = filepath.Abs(o.mount); err != nil {
			return err
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	return daemon.Run(ctx, daemon.Options{DataDir: data, Listen: o.listen, Mount: mount, MountIdle: o.mountIdle, NoPipelines: o.noPipelines, Containerd: o.containerd, Store: o.store, S3Endpoint: o.s3Endpoint, S3Region: o.s3Region, S3CacheBytes: s3CacheBytes(o.s3CacheGB), WorkerLease: o.workerLease, Log: log})
}

// detach re-runs 'strata up' without -d in a new session and waits until
// it answers on its socket.
func detach(ctx context.Context, data string) error {
	if pid, _ := daemon.ReadPID(data); pid != 0 {
		return fmt.Errorf("a strata daemon (pid %d) already runs on %s: %w", pid, data, os.ErrExist)
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(daemon.LogFile(data), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{}
	for _, a := range os.Args[1:] {
		if a != "-d" && a != "--detach" {
			args = append(args, a)
		}
	}
	args = append(args, "--data", data)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	cl, err := api.NewClient("unix://"+api.SocketPath(data), "")
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("daemon exited during start (%v); see %s", err, daemon.LogFile(data))
		case <-time.After(50 * time.Millisecond):
		}
		if st, err := cl.Status(ctx); err == nil {
			fmt.Printf("strata daemon running (pid %d), data %s, socket %s, log %s\n", st.PID, st.DataDir, st.Socket, daemon.LogFile(data))
			return nil
		}
	}
	return fmt.Errorf("daemon did not answer within 30s; see %s", daemon.LogFile(data))
}

func downCmd(g *globals) *cobra.Command {
	var data string
	c := &cobra.Command{
		Use:   "down",
		Short: "Stop the strata daemon cleanly",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			pid, err := daemon.ReadPID(data)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			if !c.Flags().Changed("data") {
				// Ask the daemon the client would talk to (--server,
				// STRATA_ADDR), if it is on this host: its pid means nothing
				// elsewhere.
				if cl, err := g.client(); err == nil && strings.HasPrefix(cl.Addr(), "unix://") {
					if st, err := cl.Status(c.Context()); err == nil {
						pid = st.PID
					}
				}
			}
			if pid == 0 {
				fmt.Fprintf(os.Stderr, "no strata daemon runs on %s\n", data)
				return nil
			}
			if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
				return fmt.Errorf("stop pid %d: %w", pid, err)
			}
			for i := 0; i < 600; i++ {
				if syscall.Kill(pid, 0) != nil {
					fmt.Printf("strata daemon (pid %d) stopped\n", pid)
					return nil
				}
				time.Sleep(50 * time.Millisecond)
			}
			return fmt.Errorf("daemon pid %d did not stop within 30s", pid)
		},
	}
	c.Flags().StringVar(&data, "data", api.DefaultDataDir(), "data directory of the daemon to stop")
	return c
}

func statusCmd(g *globals) *cobra.Command {
	var out output
	c := &cobra.Command{
		Use:   "status",
		Short: "Show what the daemon runs and where",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			st, err := cl.Status(c.Context())
			if err != nil {
				return err
			}
			token := ""
			if st.Listen != "" {
				token, _ = daemon.Token(st.DataDir)
			}
			v := struct {
				*api.Status
				Token string `json:"token,omitempty"`
			}{st, token}
			return out.print(os.Stdout, v, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "daemon\trunning, pid %d, version %s, since %s\n", st.PID, st.Version, st.Started.Local().Format(time.RFC3339))
				fmt.Fprintf(tw, "data\t%s\n", st.DataDir)
				fmt.Fprintf(tw, "socket\t%s\n", st.Socket)
				if st.Listen != "" {
					fmt.Fprintf(tw, "listen\t%s\n", st.Listen)
					if token != "" {
						fmt.Fprintf(tw, "token\t%s\n", token)
					}
				}
				mount := st.Mount
				if mount == "" {
					mount = "not mounted"
				}
				fmt.Fprintf(tw, "mount\t%s\n", mount)
				fmt.Fprintf(tw, "repos\t%d\n", st.Repos)
			})
		},
	}
	out.flag(c)
	return c
}
