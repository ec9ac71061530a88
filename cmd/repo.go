package cmd

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/meta"
)

func repoCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "repo", Short: "Create, list, inspect and delete repos"}
	var desc string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a repo (with an empty main branch)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			if _, err := cl.CreateRepo(c.Context(), args[0], desc); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "created repo %s\n", args[0])
			return nil
		},
	}
	create.Flags().StringVarP(&desc, "description", "d", "", "what the repo holds")

	var listOut output
	list := &cobra.Command{
		Use:   "list",
		Short: "List repos",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := listOut.check(); err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			rs, err := cl.Repos(c.Context())
			if err != nil {
				return err
			}
			return listOut.print(os.Stdout, rs, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "NAME\tCREATED\tSIZE (main)\tFILES\tBRANCHES\tDESCRIPTION")
				for _, r := range rs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", r.Name, ago(r.Created), humanBytes(r.Size), r.Files, strings.Join(r.Branches, ","), r.Description)
				}
			})
		},
	}
	listOut.flag(list)

	var inspOut output
	inspect := &cobra.Command{
		Use:   "inspect NAME",
		Short: "Show a repo",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := inspOut.check(); err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			r, err := cl.Repo(c.Context(), args[0])
			if err != nil {
				return err
			}
			return inspOut.print(os.Stdout, r, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "Name:\t%s\n", r.Name)
				fmt.Fprintf(tw, "Description:\t%s\n", r.Description)
				fmt.Fprintf(tw, "Created:\t%s\n", r.Created.Local().Format(time.RFC3339))
				fmt.Fprintf(tw, "Branches:\t%s\n", strings.Join(r.Branches, ", "))
				fmt.Fprintf(tw, "Head of main:\t%s\n", r.Head)
				fmt.Fprintf(tw, "Size of main:\t%s in %d files\n", humanBytes(r.Size), r.Files)
				fmt.Fprintf(tw, "Commits:\t%d\n", r.Commits)
			})
		},
	}
	inspOut.flag(inspect)

	var force bool
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a repo (--force if it has commits)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			if err := cl.DeleteRepo(c.Context(), args[0], force); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "deleted repo %s (run 'strata gc' to reclaim space)\n", args[0])
			return nil
		},
	}
	del.Flags().BoolVarP(&force, "force", "f", false, "delete even if the repo has commits")
	c.AddCommand(create, list, inspect, del)
	return c
}

func ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Local().Format("2006-01-02")
}

func branchCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "branch", Short: "Create, move, list and delete branches"}
	var head string
	create := &cobra.Command{
		Use:   "create REPO@BRANCH [--head REF]",
		Short: "Create a branch or move it (moving it back is a revert)",
		Long: `Create a branch, or point an existing one at another commit.
--head takes a commit ID, a branch or an ancestor (main^1), in the same repo
(REPO@ may be given). Moving a branch to an earlier commit reverts it:
  strata branch create images@main --head images@main^1`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r, err := parseRef(args[0])
			if err != nil {
				return err
			}
			h := head
			if i := strings.IndexByte(h, '@'); i >= 0 {
				if h[:i] != r.repo {
					return usagef("--head %s is in another repo than %s", head, r.repo)
				}
				h = h[i+1:]
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			br, err := cl.SetBranch(c.Context(), r.repo, r.ref, h)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "branch %s@%s -> %s\n", r.repo, br.Name, orNone(br.Head))
			return nil
		},
	}
	create.Flags().StringVar(&head, "head", "", "commit the branch points at (default: none, an empty branch)")

	var listOut output
	list := &cobra.Command{
		Use:   "list REPO",
		Short: "List a repo's branches",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := listOut.check(); err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			bs, err := cl.Branches(c.Context(), args[0])
			if err != nil {
				return err
			}
			return listOut.print(os.Stdout, bs, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "BRANCH\tHEAD")
				for _, b := range bs {
					fmt.Fprintf(tw, "%s\t%s\n", b.Name, orNone(b.Head))
				}
			})
		},
	}
	listOut.flag(list)
	del := &cobra.Command{
		Use:   "delete REPO@BRANCH",
		Short: "Delete a branch (its commits stay reachable by ID)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r, cl, err := g.refClient(args[0])
			if err != nil {
				return err
			}
			return cl.DeleteBranch(c.Context(), r.repo, r.ref)
		},
	}
	c.AddCommand(create, list, del)
	return c
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func commitCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "commit", Short: "Start, finish, list, inspect, wait for and delete commits"}
	var msg string
	start := &cobra.Command{
		Use:   "start REPO@BRANCH",
		Short: "Open a commit that later puts and rms join",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r, cl, err := g.refClient(args[0])
			if err != nil {
				return err
			}
			cm, err := cl.StartCommit(c.Context(), r.repo, r.ref, msg)
			if err != nil {
				return err
			}
			fmt.Println(cm.ID)
			return nil
		},
	}
	start.Flags().StringVarP(&msg, "message", "m", "", "commit message")
	var failure string
	finish := &cobra.Command{
		Use:   "finish REPO@REF",
		Short: "Seal an open commit",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r, cl, err := g.refClient(args[0])
			if err != nil {
				return err
			}
			cm, err := cl.FinishCommit(c.Context(), r.repo, r.ref, failure)
			if err != nil {
				return err
			}
			fmt.Println(cm.ID)
			return nil
		},
	}
	finish.Flags().StringVar(&failure, "fail", "", "finish the commit as failed, with this reason")
	var listOut output
	var limit int
	list := &cobra.Command{
		Use:   "list REPO[@BRANCH]",
		Short: "List commits, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := listOut.check(); err != nil {
				return err
			}
			r, err := parseRef(args[0])
			if err != nil {
				return err
			}
			branch := ""
			if strings.Contains(args[0], "@") {
				branch = r.ref
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			cs, err := cl.Commits(c.Context(), r.repo, branch, limit)
			if err != nil {
				return err
			}
			return listOut.print(os.Stdout, cs, func(tw *tabwriter.Writer) { commitTable(tw, cs) })
		},
	}
	listOut.flag(list)
	list.Flags().IntVarP(&limit, "limit", "n", 0, "show at most this many (0: all)")
	var inspOut output
	inspect := &cobra.Command{
		Use:   "inspect REPO@REF",
		Short: "Show a commit",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := inspOut.check(); err != nil {
				return err
			}
			r, cl, err := g.refClient(args[0])
			if err != nil {
				return err
			}
			cm, err := cl.Commit(c.Context(), r.repo, r.ref)
			if err != nil {
				return err
			}
			return inspOut.print(os.Stdout, cm, func(tw *tabwriter.Writer) { commitDetail(tw, cm) })
		},
	}
	inspOut.flag(inspect)
	var timeout time.Duration
	var waitOut output
	wait := &cobra.Command{
		Use:   "wait REPO@REF",
		Short: "Wait until a commit is finished",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := waitOut.check(); err != nil {
				return err
			}
			r, cl, err := g.refClient(args[0])
			if err != nil {
				return err
			}
			cm, err := cl.WaitCommit(c.Context(), r.repo, r.ref, timeout)
			if err != nil {
				return err
			}
			return waitOut.print(os.Stdout, cm, func(tw *tabwriter.Writer) { commitDetail(tw, cm) })
		},
	}
	wait.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (0: wait forever)")
	waitOut.flag(wait)
	del := &cobra.Command{
		Use:   "delete REPO@REF",
		Short: "Delete the head commit of a branch (an open commit is aborted)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r, cl, err := g.refClient(args[0])
			if err != nil {
				return err
			}
			cm, err := cl.DeleteCommit(c.Context(), r.repo, r.ref)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "deleted commit %s@%s\n", r.repo, cm.ID)
			return nil
		},
	}
	c.AddCommand(start, finish, list, inspect, wait, del)
	return c
}

func commitTable(tw *tabwriter.Writer, cs []meta.Commit) {
	fmt.Fprintln(tw, "COMMIT\tBRANCH\tSTATE\tSTARTED\tSIZE\tFILES\tMESSAGE")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", c.ID, c.Branch, c.State, ago(c.Started), humanBytes(c.Size), c.Files, firstLine(c.Message))
	}
}

func commitDetail(tw *tabwriter.Writer, c *meta.Commit) {
	fmt.Fprintf(tw, "Commit:\t%s@%s\n", c.Repo, c.ID)
	fmt.Fprintf(tw, "Branch:\t%s\n", c.Branch)
	fmt.Fprintf(tw, "Parent:\t%s\n", orNone(c.Parent))
	fmt.Fprintf(tw, "State:\t%s\n", c.State)
	if c.Error != "" {
		fmt.Fprintf(tw, "Error:\t%s\n", c.Error)
	}
	fmt.Fprintf(tw, "Origin:\t%s %s\n", c.Origin.Kind, c.Origin.Name)
	fmt.Fprintf(tw, "Started:\t%s\n", c.Started.Local().Format(time.RFC3339))
	if c.Finished != nil {
		fmt.Fprintf(tw, "Finished:\t%s\n", c.Finished.Local().Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "Size:\t%s in %d files\n", humanBytes(c.Size), c.Files)
	fmt.Fprintf(tw, "Message:\t%s\n", c.Message)
	if c.Spec != "" {
		fmt.Fprintf(tw, "Spec:\t%s\n", c.Spec)
	}
	for _, p := range c.Provenance {
		fmt.Fprintf(tw, "Provenance:\t%s\n", p)
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

var _ = api.Version
