package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-data/strata/api"
)

func datumCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "datum",
		Short: "List and inspect a job's datums; mount one to try a pipeline's command",
		Long: `A datum is one unit of a job's work: the input files that one run of the
pipeline's command sees under /pfs. Its ID depends only on its input paths,
so the same datum has the same ID in every job.

  strata datum list --job 4f1c2a9b0c11
  strata datum mount -f edges.yaml /tmp/datum`,
	}
	var job string
	var listOut output
	list := &cobra.Command{
		Use:   "list --job ID",
		Short: "List a job's datums and their states",
		Long: `List a job's datums: ID (shortened to 12 characters; commands take a
unique prefix), state (pending, running, success, skipped: reused from an
earlier job, or failed), tries, duration and input files.

  strata datum list --job 4f1c2a9b0c11
  strata datum list --job 4f1c2a9b0c11 -o json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := listOut.check(); err != nil {
				return err
			}
			if job == "" {
				return usagef("datum list needs --job ID (see 'strata job list')")
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			ds, err := cl.ListDatums(c.Context(), job)
			if err != nil {
				return notFoundHint(err, "see 'strata job list'")
			}
			return listOut.print(os.Stdout, ds, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "ID\tSTATE\tTRIES\tDURATION\tINPUTS")
				for _, d := range ds {
					dur := "-"
					if d.Duration > 0 {
						dur = humanDuration(time.Duration(d.Duration * float64(time.Second)))
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", short(d.ID), d.State, d.Tries, dur, datumInputs(d.Inputs))
				}
			})
		},
	}
	list.Flags().StringVarP(&job, "job", "j", "", "the job (ID or unique prefix)")
	listOut.flag(list)

	var inspJob string
	var inspOut output
	inspect := &cobra.Command{
		Use:   "inspect --job ID DATUM",
		Short: "Show a datum: state, error, input files and output files",
		Long: `Show one datum of a job: its state and error, tries, worker, duration,
its input files (input name, repo@commit:path), and the files it wrote.

  strata datum inspect --job 4f1c2a9b0c11 9a1e03c2b7d4`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := inspOut.check(); err != nil {
				return err
			}
			if inspJob == "" {
				return usagef("datum inspect needs --job ID (see 'strata job list')")
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			d, err := cl.InspectDatum(c.Context(), inspJob, args[0])
			if err != nil {
				return notFoundHint(err, "see 'strata datum list --job "+inspJob+"'")
			}
			return inspOut.print(os.Stdout, d, func(tw *tabwriter.Writer) { datumDetail(tw, d) })
		},
	}
	inspect.Flags().StringVarP(&inspJob, "job", "j", "", "the job (ID or unique prefix)")
	inspOut.flag(inspect)

	c.AddCommand(list, inspect, datumMountCmd(g), datumUnmountCmd(g))
	return c
}

func datumInputs(fs []api.DatumFile) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.Input + ":" + f.Path
	}
	return strings.Join(parts, ", ")
}

func datumDetail(tw *tabwriter.Writer, d *api.Datum) {
	fmt.Fprintf(tw, "ID:\t%s\n", d.ID)
	if d.Job != "" {
		fmt.Fprintf(tw, "Job:\t%s\n", d.Job)
	}
	if d.Hash != "" {
		fmt.Fprintf(tw, "Hash:\t%s\n", d.Hash)
	}
	fmt.Fprintf(tw, "State:\t%s\n", d.State)
	if d.Error != "" {
		fmt.Fprintf(tw, "Error:\t%s\n", d.Error)
	}
	if d.ReusedFrom != "" {
		fmt.Fprintf(tw, "Reused from:\tjob %s\n", d.ReusedFrom)
	}
	if d.Tries > 0 {
		fmt.Fprintf(tw, "Tries:\t%d\n", d.Tries)
	}
	if d.Worker != "" {
		fmt.Fprintf(tw, "Worker:\t%s\n", d.Worker)
	}
	if d.Started != nil {
		fmt.Fprintf(tw, "Started:\t%s\n", d.Started.Local().Format(time.RFC3339))
	}
	if d.Duration > 0 {
		fmt.Fprintf(tw, "Duration:\t%s\n", humanDuration(time.Duration(d.Duration*float64(time.Second))))
	}
	for _, f := range d.Inputs {
		fmt.Fprintf(tw, "Input %s:\t%s@%s:%s\n", f.Input, f.Repo, f.Commit, f.Path)
	}
	for _, o := range d.Outputs {
		fmt.Fprintf(tw, "Output:\t%s\n", o)
	}
}

func datumMountCmd(g *globals) *cobra.Command {
	var file string
	var n int
	var out output
	c := &cobra.Command{
		Use:   "mount -f SPEC DIR [--datum N]",
		Short: "Mount what a pipeline's container would see for one datum, until Ctrl-C",
		Long: `Ask the daemon to mount at DIR what a container of the spec's pipeline
would see under /pfs for datum N (0-based, in datum order) of its inputs'
current heads: DIR/INPUT/... holds that datum's input files (read-only) and
DIR/out is the empty output directory. Use it to try a pipeline's command
by hand before creating the pipeline. The spec need not be created; the
file must hold exactly one spec. The command prints the datum's input files
and where they are, then waits; Ctrl-C (or SIGTERM) unmounts DIR. DIR is on
the daemon's machine.

  strata datum mount -f edges.yaml /tmp/datum --datum 3
  # in another shell:
  ls -R /tmp/datum`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			if n < 0 {
				return usagef("--datum %d: want 0 or more", n)
			}
			spec, err := readSpec(file)
			if err != nil {
				return err
			}
			dir, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			if strings.HasPrefix(cl.Addr(), "unix://") {
				// The daemon is on this machine: make the mount point.
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return err
				}
			}
			d, err := cl.MountDatum(c.Context(), spec, dir, n)
			if err != nil {
				return err
			}
			err = out.print(os.Stdout, d, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "datum %d (ID %s) mounted at %s:\n", n, short(d.ID), dir)
				for _, f := range d.Inputs {
					fmt.Fprintf(tw, "  %s\t<- %s@%s:%s\n", filepath.Join(dir, f.Input, f.Path), f.Repo, short(f.Commit), f.Path)
				}
				fmt.Fprintf(tw, "  %s\t(output directory, empty)\n", filepath.Join(dir, "out"))
			})
			if err == nil {
				fmt.Fprintf(os.Stderr, "in the container, %s is /pfs; press Ctrl-C to unmount\n", dir)
				<-c.Context().Done()
			}
			// The command's context has ended: unmount with a fresh one.
			uctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if uerr := cl.UnmountDatum(uctx, dir); uerr != nil {
				return fmt.Errorf("unmount %s: %w (try 'strata datum unmount %s')", dir, uerr, dir)
			}
			fmt.Fprintf(os.Stderr, "unmounted %s\n", dir)
			return err
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "the pipeline's spec file (one spec), or - for stdin")
	c.Flags().IntVar(&n, "datum", 0, "which datum, 0-based in datum order")
	out.flag(c)
	return c
}

func datumUnmountCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "unmount DIR",
		Short: "Unmount a datum mount left behind (normally 'datum mount' does it on Ctrl-C)",
		Long: `Ask the daemon to unmount a datum mount. 'strata datum mount' unmounts on
Ctrl-C or SIGTERM by itself; this is for a mount whose 'datum mount' was
killed.

  strata datum unmount /tmp/datum`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			dir, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			if err := cl.UnmountDatum(c.Context(), dir); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "unmounted %s\n", dir)
			return nil
		},
	}
}

func logsCmd(g *globals) *cobra.Command {
	var q api.LogQuery
	c := &cobra.Command{
		Use:   "logs --pipeline P [--job J] [--datum D] [-f]",
		Short: "Print the output (stdout and stderr) of a pipeline's datums",
		Long: `Print what the command of a pipeline wrote to stdout and stderr, datum by
datum: of the pipeline's newest job, or of --job, and only of one datum
with --datum (ID or unique prefix). With -f it keeps printing what running
datums write until the job has finished or you press Ctrl-C.

  strata logs --pipeline edges
  strata logs --pipeline edges --job 4f1c2a9b0c11 --datum 9a1e03 -f`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if q.Pipeline == "" {
				return usagef("logs needs --pipeline P (see 'strata pipeline list')")
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			err = cl.Logs(c.Context(), q, os.Stdout)
			if q.Follow && errors.Is(err, context.Canceled) {
				return nil // Ctrl-C is how -f ends
			}
			return notFoundHint(err, "see 'strata job list --pipeline "+q.Pipeline+"'")
		},
	}
	c.Flags().StringVarP(&q.Pipeline, "pipeline", "p", "", "the pipeline")
	c.Flags().StringVarP(&q.Job, "job", "j", "", "the job (ID or unique prefix; default: the pipeline's newest)")
	c.Flags().StringVarP(&q.Datum, "datum", "d", "", "only this datum (ID or unique prefix)")
	c.Flags().BoolVarP(&q.Follow, "follow", "f", false, "keep printing until the job has finished (or Ctrl-C)")
	return c
}

func lineageCmd(g *globals) *cobra.Command {
	var out output
	c := &cobra.Command{
		Use:   "lineage REPO@REF:/PATH",
		Short: "Show which pipeline, job and datum made a file, from which inputs",
		Long: `Show where a file of a pipeline's output repo came from: the pipeline (and
spec version), job and datum that wrote it, and that datum's input files
with their commits; for an input that is itself a pipeline's output, the
same again, up to the files of input repos. For a directory (or no
:/PATH, the whole commit) it shows the job and its input commits.

  strata lineage montage@main:/cat.png
  strata lineage montage@main:/cat.png -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			r, cl, err := g.refClient(args[0])
			if err != nil {
				return err
			}
			l, err := cl.Lineage(c.Context(), r.repo, r.ref, r.path)
			if err != nil {
				return err
			}
			if out.format != "table" {
				return out.print(os.Stdout, l, nil)
			}
			printLineage(os.Stdout, l)
			return nil
		},
	}
	out.flag(c)
	return c
}

// printLineage prints a lineage as an indented tree:
//
//	montage@9c1d4e2a7b3f:/cat.png
//	  <- pipeline montage (spec montage@3), job 9c1d4e2a7b3f, datum 0a7c...
//	    <- edges@4f1c2a9b0c11:/cat.png
//	      <- pipeline edges ...
//	        <- images@e1d8af4b9a36:/cat.png
func printLineage(w io.Writer, l *api.Lineage) {
	fmt.Fprintf(w, "%s@%s:%s\n", l.Repo, short(l.Commit), l.Path)
	if l.Pipeline == "" {
		fmt.Fprintf(w, "  (not made by a pipeline: %s is an input repo)\n", l.Repo)
		return
	}
	lineageBody(w, l, "  ")
}

func lineageBody(w io.Writer, l *api.Lineage, indent string) {
	how := "pipeline " + l.Pipeline
	if l.Spec != "" {
		how += " (spec " + l.Spec + ")"
	}
	if l.Job != "" {
		how += ", job " + short(l.Job)
	}
	if l.Datum != "" {
		how += ", datum " + short(l.Datum)
	}
	fmt.Fprintf(w, "%s<- %s\n", indent, how)
	for _, in := range l.Inputs {
		name := ""
		if in.Input != "" && in.Input != in.Repo {
			name = "  (input " + in.Input + ")"
		}
		fmt.Fprintf(w, "%s  <- %s@%s:%s%s\n", indent, in.Repo, short(in.Commit), in.Path, name)
		if up := upstreamOf(l, in); up != nil && up.Pipeline != "" {
			lineageBody(w, up, indent+"    ")
		}
	}
}

// upstreamOf finds the lineage of an input file among l.Upstream.
func upstreamOf(l *api.Lineage, in api.DatumFile) *api.Lineage {
	var match *api.Lineage
	for _, u := range l.Upstream {
		if u.Repo != in.Repo {
			continue
		}
		if u.Commit == in.Commit && path.Clean(u.Path) == path.Clean(in.Path) {
			return u
		}
		if match == nil && (u.Commit == in.Commit || path.Clean(u.Path) == path.Clean(in.Path)) {
			match = u
		}
	}
	return match
}
