package cmd

import (
	"context"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/daemon"
	"github.com/strata-data/strata/fs/view/remote"
)

type workerOptions struct {
	name       string
	slots      int
	dir        string
	containerd string
	cacheMB    int64
	s3Endpoint string
	s3Region   string
}

func workerCmd(g *globals) *cobra.Command {
	o := &workerOptions{}
	c := &cobra.Command{
		Use:   "worker --server URL --token TOKEN [--slots N] [--dir DIR]",
		Short: "Run datums of any pipeline for a daemon on another host (foreground)",
		Long: `Run a remote worker: claim datums of any pipeline from the daemon at
--server, run each in a container under this host's containerd (a private
one under DIR/containerd unless --containerd), with the same /pfs a local
worker sees (read through the API, mounted under DIR/pfs), and send back
the datum's logs and /pfs/out. Images are copied from the daemon the first
time a pipeline needs them. When the daemon keeps its large chunks in S3
and AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set here, input chunks
are read straight from the bucket; otherwise through the daemon.

  strata worker --server http://daemon-host:7070 --token TOKEN --slots 4

The daemon must listen on TCP ('strata up --listen ADDR'); --token (or
$STRATA_TOKEN) is its DATA/token. A datum whose worker stops heartbeating
(it died, or lost the network) runs elsewhere after the daemon's
--worker-lease. SIGTERM or Ctrl-C stops claiming, lets running datums
finish for up to a grace period, gives back the rest, and unmounts.
Needs root, FUSE, containerd and runc.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runWorker(c.Context(), g, o) },
	}
	host, _ := os.Hostname()
	c.Flags().StringVar(&o.name, "name", host, "this worker's name in datum records (its slots are NAME-0, NAME-1, ...)")
	c.Flags().IntVar(&o.slots, "slots", 1, "datums run at once")
	c.Flags().StringVar(&o.dir, "dir", daemon.DefaultWorkerDir, "state directory (containerd, views, outputs)")
	c.Flags().StringVar(&o.containerd, "containerd", "", "`ADDRESS` of a running containerd (default: start a private one under DIR/containerd)")
	c.Flags().Int64Var(&o.cacheMB, "cache-mb", remote.DefaultChunkCache>>20, "MiB of input chunks kept in memory")
	c.Flags().StringVar(&o.s3Endpoint, "s3-endpoint", "", "with the daemon's chunks in S3 and AWS_* credentials here: reach the bucket at this `URL` (default: the daemon's endpoint)")
	c.Flags().StringVar(&o.s3Region, "s3-region", "", "with the daemon's chunks in S3: the bucket's region (default: the daemon's)")
	return c
}

func runWorker(ctx context.Context, g *globals, o *workerOptions) error {
	addr := g.server
	if addr == "" {
		addr = os.Getenv("STRATA_ADDR")
	}
	if addr == "" {
		return usagef("strata worker needs the daemon's address: --server http://HOST:PORT (or $STRATA_ADDR)")
	}
	if strings.TrimSpace(o.name) == "" {
		return usagef("strata worker needs a --name (the host name is the default)")
	}
	if o.slots < 1 {
		return usagef("--slots %d: want 1 or more", o.slots)
	}
	cl, err := api.NewClient(addr, g.token)
	if err != nil {
		return usageError{err}
	}
	cache := o.cacheMB << 20
	if o.cacheMB <= 0 {
		cache = -1
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	return daemon.RunWorker(ctx, daemon.WorkerOptions{Client: cl, Name: o.name, Slots: o.slots, Dir: o.dir,
		Containerd: o.containerd, ChunkCache: cache, S3Endpoint: o.s3Endpoint, S3Region: o.s3Region, Log: log})
}
