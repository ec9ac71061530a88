package cmd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/daemon"
	"github.com/strata-data/strata/fs/mount"
	"github.com/strata-data/strata/fs/view/remote"
	"github.com/strata-data/strata/store"
)

type mountOptions struct {
	data       string
	idle       time.Duration
	cacheMB    int64
	s3Endpoint string
	s3Region   string
	store      string
}

func mountCmd(g *globals) *cobra.Command {
	o := &mountOptions{}
	c := &cobra.Command{
		Use:   "mount DIR [--server URL [--token TOKEN]] [--data DATA]",
		Short: "Mount the /pfs view of every repo and commit at DIR (foreground)",
		Long: `Mount the /pfs view (every repo, branch and commit; see docs/mount.md) at
DIR and serve it until interrupted (Ctrl-C, SIGTERM) or unmounted
('strata unmount DIR').

Through a running daemon, from another process or another machine:
  strata mount /mnt/pfs --server unix:///var/lib/strata/strata.sock
  strata mount /mnt/pfs --server http://host:7070 --token TOKEN
--server defaults to $STRATA_ADDR and --token to $STRATA_TOKEN (the
daemon's DATA/token; 'strata status' on its host prints it). Without
either, a daemon running on --data (default: the default data directory) is
used through its socket. Such a mount is read-only (writes fail with
"Read-only file system"); it fetches only the chunks that reads touch and
keeps the most recent ones in memory (--cache-mb). Branch views follow
their branches within about a second, as on the daemon's own /pfs.

When the daemon keeps its large chunks in S3 and AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY are set, the mount reads those chunks from the
bucket itself (at the daemon's endpoint, or --s3-endpoint), and only
metadata and small chunks through the daemon. Without credentials, or if
S3 refuses them, every chunk comes through the daemon. One line on stderr
says which.

Without a daemon, 'strata mount DIR --data DATA' serves the data directory
itself, writable, like the daemon's /pfs ('strata up --mount DIR'); a data
directory whose chunks are in S3 needs the same --store (and --s3-endpoint,
--s3-region) as 'strata up'.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			addr := g.server
			if addr == "" && !c.Flags().Changed("data") {
				addr = os.Getenv("STRATA_ADDR")
			}
			if addr == "" {
				data, err := filepath.Abs(o.data)
				if err != nil {
					return err
				}
				if pid, _ := daemon.ReadPID(data); pid != 0 {
					addr = "unix://" + api.SocketPath(data)
				}
			}
			if addr != "" {
				return runRemoteMount(c.Context(), g, o, addr, args[0])
			}
			return runMount(c.Context(), o, args[0])
		},
	}
	c.Flags().StringVar(&o.data, "data", api.DefaultDataDir(), "data directory (when no daemon runs on it, it is served directly)")
	c.Flags().DurationVar(&o.idle, "idle", 30*time.Second, "without a daemon: finish a branch's open commit after this long without writes (negative: never)")
	c.Flags().Int64Var(&o.cacheMB, "cache-mb", remote.DefaultChunkCache>>20, "through a daemon: MiB of chunks kept in memory")
	c.Flags().StringVar(&o.s3Endpoint, "s3-endpoint", "", "with chunks in S3: reach the bucket at this `URL` (default: the daemon's endpoint, or AWS_ENDPOINT_URL)")
	c.Flags().StringVar(&o.s3Region, "s3-region", "", "with chunks in S3: the bucket's region (default: the daemon's, or AWS_REGION)")
	c.Flags().StringVar(&o.store, "store", "", "without a daemon: where the data directory's large chunks are, as for 'strata up --store' (s3://BUCKET/PREFIX)")
	return c
}

func runMount(ctx context.Context, o *mountOptions, dir string) error {
	data, err := filepath.Abs(o.data)
	if err != nil {
		return err
	}
	serverProcs()
	st, err := store.Open(data, store.Options{Chunks: o.store, S3Endpoint: o.s3Endpoint, S3Region: o.s3Region})
	if err != nil {
		return err
	}
	defer st.Close()
	return mount.Run(ctx, st, dir, mount.Options{Idle: o.idle})
}

// runRemoteMount mounts, read-only, what the daemon at addr serves.
func runRemoteMount(ctx context.Context, g *globals, o *mountOptions, addr, dir string) error {
	cl, err := api.NewClient(addr, g.token)
	if err != nil {
		return usageError{err}
	}
	// Fail now, with the daemon's reason, rather than with EIO on every
	// access: no daemon there (exit 6) or a wrong token (exit 8).
	if _, err := cl.Repos(ctx); err != nil {
		return fmt.Errorf("mount %s through %s: %w", dir, addr, err)
	}
	cache := o.cacheMB << 20
	if o.cacheMB <= 0 {
		cache = -1
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ro := remote.Options{ChunkCache: cache, Log: log}
	log.Info(remote.UseObjectStore(ctx, cl, &ro, remote.ObjectStoreOptions{Endpoint: o.s3Endpoint, Region: o.s3Region}))
	src := remote.New(cl, ro)
	err = mount.RunSource(ctx, src, dir, mount.Options{})
	s := src.Stats()
	log.Info("unmounted", "chunks_from_object_store", s.DirectChunks, "chunks_through_daemon", s.DaemonChunks, "chunk_cache_hits", s.ChunkHits)
	return err
}

func unmountCmd(g *globals) *cobra.Command {
	var lazy bool
	c := &cobra.Command{
		Use:   "unmount DIR",
		Short: "Unmount a /pfs mount (like fusermount3 -u DIR)",
		Long: `Unmount the /pfs mount at DIR. With files still open there it fails
unless --lazy, which detaches the mount now and lets the kernel end it when
the last file is closed. The daemon that served it finishes the open commits
of writes through it; a 'strata mount' serving it exits.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return mount.Unmount(args[0], lazy) },
	}
	c.Flags().BoolVar(&lazy, "lazy", false, "detach even while files are open")
	return c
}
