package cmd

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/store"
)

func fsckCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "fsck",
		Short: "Re-hash every chunk and check every reference of every commit",
		Long: `Re-read and re-hash every stored chunk, and check that every tree node and
chunk referenced by every commit (open ones too) exists and is intact.
Exits 7 and lists the faults if it finds any.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			sum, err := cl.Fsck(c.Context(), func(f store.Fault) {
				fmt.Printf("FAULT %s: %s\n", f.Where, f.Error)
			})
			if err != nil {
				return err
			}
			fmt.Printf("checked %d commits and %d chunks: %d faults\n", sum.Commits, sum.Chunks, sum.Faults)
			if sum.Faults > 0 {
				return errFaults
			}
			return nil
		},
	}
}

func gcCmd(g *globals) *cobra.Command {
	var grace time.Duration
	c := &cobra.Command{
		Use:   "gc",
		Short: "Delete chunks and tree nodes that no commit references",
		Long: `Delete chunks and metadata nodes that no commit (open or finished)
references. Chunks written within the grace period are kept, so a put that
is still running never loses a chunk it just stored.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			res, err := cl.GC(c.Context(), grace)
			if err != nil {
				return err
			}
			fmt.Printf("removed %d chunks (%s) and %d tree nodes\n", res.Chunks, humanBytes(res.Bytes), res.Nodes)
			return nil
		},
	}
	c.Flags().DurationVar(&grace, "grace", store.DefaultGrace, "keep unreferenced chunks younger than this")
	return c
}

func versionCmd(g *globals) *cobra.Command {
	var out output
	c := &cobra.Command{
		Use:   "version",
		Short: "Print the client's and the daemon's versions",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			v := map[string]string{"client": api.Version}
			if cl, err := g.client(); err == nil {
				if sv, err := cl.Version(c.Context()); err == nil {
					v["daemon"] = sv
				}
			}
			return out.print(os.Stdout, v, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "client\t%s\n", v["client"])
				if d, ok := v["daemon"]; ok {
					fmt.Fprintf(tw, "daemon\t%s\n", d)
				} else {
					fmt.Fprintf(tw, "daemon\tnot reachable\n")
				}
			})
		},
	}
	out.flag(c)
	return c
}
