package cmd

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/daemon"
	"github.com/strata-data/strata/fs/mount"
	"github.com/strata-data/strata/store"
)

type mountOptions struct {
	data string
	idle time.Duration
}

func mountCmd(g *globals) *cobra.Command {
	o := &mountOptions{}
	c := &cobra.Command{
		Use:   "mount DIR",
		Short: "Serve the /pfs view of a data directory at DIR (foreground)",
		Long: `Mount the /pfs view (every repo, branch and commit; see docs/mount.md) of a
data directory at DIR and serve it until interrupted or unmounted. The
daemon mounts /pfs itself ('strata up --mount DIR'); this command is for a
data directory that no daemon is running on. Mounting from a separate
process through a running daemon (--server) is not built yet.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if c.Flags().Changed("server") {
				return fmt.Errorf("strata mount --server: mounting through a daemon's API is not built yet; run 'strata up --mount DIR' on the daemon's machine")
			}
			return runMount(c.Context(), o, args[0])
		},
	}
	c.Flags().StringVar(&o.data, "data", api.DefaultDataDir(), "data directory")
	c.Flags().DurationVar(&o.idle, "idle", 30*time.Second, "finish a branch's open commit after this long without writes (negative: never)")
	return c
}

func runMount(ctx context.Context, o *mountOptions, dir string) error {
	data, err := filepath.Abs(o.data)
	if err != nil {
		return err
	}
	if pid, _ := daemon.ReadPID(data); pid != 0 {
		return fmt.Errorf("a strata daemon (pid %d) owns %s, and mounting through it is not built yet; restart it with 'strata up --mount %s'", pid, data, dir)
	}
	st, err := store.Open(data, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	return mount.Run(ctx, st, dir, mount.Options{Idle: o.idle})
}

func unmountCmd(g *globals) *cobra.Command {
	var lazy bool
	c := &cobra.Command{
		Use:   "unmount DIR",
		Short: "Unmount a /pfs mount (like fusermount3 -u DIR)",
		Long: `Unmount the /pfs mount at DIR. With files still open there it fails
unless --lazy, which detaches the mount now and lets the kernel end it when
the last file is closed. The daemon that served it finishes the open commits
of writes through it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return mount.Unmount(args[0], lazy) },
	}
	c.Flags().BoolVar(&lazy, "lazy", false, "detach even while files are open")
	return c
}
