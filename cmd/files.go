package cmd

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/meta"
)

type putOptions struct {
	file      string
	recursive bool
	appendTo  bool
	message   string
	noCache   bool
	out       output
}

func putCmd(g *globals) *cobra.Command {
	o := &putOptions{}
	c := &cobra.Command{
		Use:   "put REPO@BRANCH:/PATH -f FILE|DIR|-",
		Short: "Write a file, a directory (-r) or stdin (-f -) to a branch",
		Long: `Write data to a branch. If the branch has an open commit (strata commit
start) the write joins it; otherwise it becomes its own commit, visible all
at once or not at all. Existing files are overwritten unless --append.

  strata put images@main:/cat.png -f cat.png
  strata put images@main:/ -f cat.png            (lands at /cat.png)
  strata put -r images@main:/photos -f ./photos  (one commit for the tree)
  curl -s URL | strata put logs@main:/today.log -f - --append`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return runPut(c.Context(), g, o, args[0]) },
	}
	c.Flags().StringVarP(&o.file, "file", "f", "", "local file, directory (with -r) or - for stdin")
	c.Flags().BoolVarP(&o.recursive, "recursive", "r", false, "put a directory tree")
	c.Flags().BoolVarP(&o.appendTo, "append", "a", false, "append to the file instead of overwriting it")
	c.Flags().StringVarP(&o.message, "message", "m", "", "commit message")
	c.Flags().BoolVar(&o.noCache, "no-cache", false, "with -r: read and send every file, even those unchanged since the last put of this directory")
	o.out.flag(c)
	return c
}

func runPut(ctx context.Context, g *globals, o *putOptions, target string) error {
	if err := o.out.check(); err != nil {
		return err
	}
	if o.file == "" {
		return usagef("put needs -f FILE, -f DIR with -r, or -f - for stdin")
	}
	r, err := parseRef(target)
	if err != nil {
		return err
	}
	cl, err := g.client()
	if err != nil {
		return err
	}
	show := o.out.format == "table"
	var res *meta.WriteResult
	switch {
	case o.file == "-":
		if !r.hasPath || r.path == "/" {
			return usagef("put from stdin needs a file path: %s:/NAME", r.repo+"@"+r.ref)
		}
		res, err = cl.PutFile(ctx, r.repo, r.ref, r.path, os.Stdin, o.appendTo, 0, o.message)
	default:
		fi, serr := os.Stat(o.file)
		if serr != nil {
			return fmt.Errorf("put: %w", serr)
		}
		if fi.IsDir() {
			if !o.recursive {
				return usagef("%s is a directory; use -r to put it recursively", o.file)
			}
			if o.appendTo {
				return usagef("--append works on single files, not with -r")
			}
			res, err = putDir(ctx, cl, r, o, show)
			break
		}
		p := r.path
		if !r.hasPath || strings.HasSuffix(p, "/") {
			p = path.Join(p, filepath.Base(o.file))
		}
		f, oerr := os.Open(o.file)
		if oerr != nil {
			return fmt.Errorf("put: %w", oerr)
		}
		defer f.Close()
		bar := newProgress(show && fi.Size() > 64<<20, filepath.Base(o.file), fi.Size())
		res, err = cl.PutFile(ctx, r.repo, r.ref, p, bar.reader(f), o.appendTo, uint32(fi.Mode().Perm()), o.message)
		bar.done(err == nil)
	}
	if err != nil {
		return err
	}
	return o.out.print(os.Stdout, res, func(tw *tabwriter.Writer) {
		how := "joined open commit"
		if res.OneOff {
			how = "committed"
		}
		fmt.Fprintf(os.Stderr, "%s %s@%s (%s, %d files)\n", how, r.repo, res.Commit.ID, humanBytes(res.Commit.Size), res.Commit.Files)
	})
}

// putDir uploads a directory tree; the daemon commits it as one change.
func putDir(ctx context.Context, cl *api.Client, r ref, o *putOptions, show bool) (*meta.WriteResult, error) {
	var total int64
	if show {
		filepath.WalkDir(o.file, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					total += fi.Size()
				}
			}
			return nil
		})
	}
	bar := newProgress(show, filepath.Base(o.file), total)
	opts := api.PutDirOptions{Message: o.message, Progress: bar.set}
	if !o.noCache {
		if dir, err := os.UserCacheDir(); err == nil {
			opts.CacheDir = filepath.Join(dir, "strata", "put")
		}
	}
	res, err := cl.PutDir(ctx, r.repo, r.ref, r.path, o.file, opts)
	bar.done(err == nil)
	return res, err
}

func getCmd(g *globals) *cobra.Command {
	var out string
	var recursive bool
	c := &cobra.Command{
		Use:   "get REPO@REF:/PATH [-o FILE|DIR]",
		Short: "Copy a file (or a directory with -r) out of a commit",
		Long: `Copy a file out of a commit to -o FILE (or stdout), or with -r a whole
directory to -o DIR (default: the current directory).`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r, cl, err := g.refClient(args[0])
			if err != nil {
				return err
			}
			fi, err := cl.Stat(c.Context(), r.repo, r.ref, r.path)
			if err != nil {
				return err
			}
			if fi.Type == "dir" {
				if !recursive {
					return usagef("%s is a directory; use -r to get it recursively", r)
				}
				if out == "" {
					out = "."
				}
				return getDir(c.Context(), cl, r, out, fi.Size)
			}
			return getFile(c.Context(), cl, r, out, fi.Size)
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "destination file or directory (file default: stdout)")
	c.Flags().BoolVarP(&recursive, "recursive", "r", false, "get a directory tree")
	return c
}

func getFile(ctx context.Context, cl *api.Client, r ref, out string, size int64) error {
	rc, err := cl.OpenFile(ctx, r.repo, r.ref, r.path, 0, -1)
	if err != nil {
		return err
	}
	defer rc.Close()
	var w io.Writer = os.Stdout
	var f *os.File
	if out != "" && out != "-" {
		if fi, err := os.Stat(out); err == nil && fi.IsDir() {
			out = filepath.Join(out, path.Base(r.path))
		}
		if f, err = os.Create(out); err != nil {
			return err
		}
		w = f
	}
	bar := newProgress(f != nil && size > 64<<20, path.Base(r.path), size)
	n, err := io.Copy(bar.writer(w), rc)
	bar.done(err == nil)
	if err == nil && n != size {
		err = fmt.Errorf("%s: got %d bytes, want %d", r, n, size)
	}
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

func getDir(ctx context.Context, cl *api.Client, r ref, out string, size int64) error {
	bar := newProgress(true, path.Base(r.path), size)
	err := cl.GetDir(ctx, r.repo, r.ref, r.path, out, bar.set)
	bar.done(err == nil)
	return err
}

func lsCmd(g *globals) *cobra.Command {
	var out output
	c := &cobra.Command{
		Use:   "ls REPO@REF[:/PATH]",
		Short: "List a directory of a commit",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			r, cl, err := g.refClient(args[0])
			if err != nil {
				return err
			}
			fs, err := cl.List(c.Context(), r.repo, r.ref, r.path)
			if err != nil {
				return err
			}
			return out.print(os.Stdout, fs, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "NAME\tTYPE\tSIZE")
				for _, f := range fs {
					name := path.Base(f.Path)
					if f.Type == "dir" {
						name += "/"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", name, f.Type, humanBytes(f.Size))
				}
			})
		},
	}
	out.flag(c)
	return c
}

func catCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "cat REPO@REF:/PATH",
		Short: "Write a file of a commit to stdout",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r, err := parseRef(args[0])
			if err != nil {
				return err
			}
			if !r.hasPath {
				return usagef("cat needs a file: %s:/PATH", args[0])
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			rc, err := cl.OpenFile(c.Context(), r.repo, r.ref, r.path, 0, -1)
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(os.Stdout, rc)
			return err
		},
	}
}

func rmCmd(g *globals) *cobra.Command {
	var recursive bool
	var msg string
	c := &cobra.Command{
		Use:   "rm REPO@BRANCH:/PATH",
		Short: "Remove a file (or a directory with -r) from a branch",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r, err := parseRef(args[0])
			if err != nil {
				return err
			}
			if !r.hasPath {
				return usagef("rm needs a path: %s:/PATH", args[0])
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			fi, err := cl.Stat(c.Context(), r.repo, r.ref, r.path)
			if err != nil {
				return err
			}
			if fi.Type == "dir" && !recursive {
				return usagef("%s is a directory; use -r to remove it and everything below", r)
			}
			res, err := cl.Delete(c.Context(), r.repo, r.ref, r.path, msg)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "removed %s in %s@%s\n", r.path, r.repo, res.Commit.ID)
			return nil
		},
	}
	c.Flags().BoolVarP(&recursive, "recursive", "r", false, "remove a directory and everything below it")
	c.Flags().StringVarP(&msg, "message", "m", "", "commit message")
	return c
}

func diffCmd(g *globals) *cobra.Command {
	var out output
	c := &cobra.Command{
		Use:   "diff REPO@REF [REPO@REF]",
		Short: "Show what changed: in a commit (vs its parent) or between two",
		Long: `With one ref, show what its commit changed relative to its parent. With
two, show the changes from the first to the second. Lines start with
+ (added), - (removed) or M (modified).`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			to, err := parseRef(args[len(args)-1])
			if err != nil {
				return err
			}
			from := ""
			if len(args) == 2 {
				f, err := parseRef(args[0])
				if err != nil {
					return err
				}
				if f.repo != to.repo {
					return usagef("diff compares commits of one repo; got %s and %s", f.repo, to.repo)
				}
				from = f.ref
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			ds, err := cl.Diff(c.Context(), to.repo, from, to.ref)
			if err != nil {
				return err
			}
			return out.print(os.Stdout, ds, func(tw *tabwriter.Writer) {
				for _, d := range ds {
					mark, fi := "M", d.New
					switch d.Op {
					case "added":
						mark = "+"
					case "removed":
						mark, fi = "-", d.Old
					}
					suffix := ""
					if fi.Type == "dir" {
						suffix = "/"
					}
					fmt.Fprintf(tw, "%s\t%s%s\t%s\n", mark, d.Path, suffix, humanBytes(fi.Size))
				}
			})
		},
	}
	out.flag(c)
	return c
}

func logCmd(g *globals) *cobra.Command {
	var out output
	var limit int
	c := &cobra.Command{
		Use:   "log REPO@REF",
		Short: "Show the history leading to a commit, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			r, cl, err := g.refClient(args[0])
			if err != nil {
				return err
			}
			var cs []meta.Commit
			cm, err := cl.Commit(c.Context(), r.repo, r.ref)
			for err == nil {
				cs = append(cs, *cm)
				if cm.Parent == "" || (limit > 0 && len(cs) >= limit) {
					break
				}
				cm, err = cl.Commit(c.Context(), r.repo, cm.Parent)
			}
			if err != nil {
				return err
			}
			return out.print(os.Stdout, cs, func(tw *tabwriter.Writer) { commitTable(tw, cs) })
		},
	}
	out.flag(c)
	c.Flags().IntVarP(&limit, "limit", "n", 0, "show at most this many (0: all)")
	return c
}
