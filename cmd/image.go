package cmd

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/pipeline/agent"
)

func imageCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "image",
		Short: "Import and list the container images pipelines run in",
		Long: `Pipelines run their command in a container image named by the spec's
transform.image. Without a registry, import the image from a tarball or
build it from a local root directory.

  strata image import ./rootfs --name tools:1
  strata image list`,
	}
	var name string
	var impOut output
	imp := &cobra.Command{
		Use:   "import TAR|DIR --name NAME",
		Short: "Import an image from an OCI/docker tarball, or build one from a root directory",
		Long: `Import a container image into the daemon's containerd under --name, which
a spec's transform.image can then name.

TAR is an OCI image-layout tarball or the output of 'docker save' holding
one image. DIR is a root directory
(bin/, etc/, ...) that becomes a one-layer image: the CLI sends it as a tar
made on the fly, with regular files, directories and symlinks (never
followed) and their permission bits; devices, sockets and fifos are
skipped, and every file belongs to root in the image. A progress bar shows
on stderr when it is a terminal (for a TAR only above 64 MiB).

  strata image import ./rootfs --name tools:1
  docker save alpine:3.20 > alpine.tar && strata image import alpine.tar --name alpine:3.20`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := impOut.check(); err != nil {
				return err
			}
			if name == "" {
				return usagef("image import needs --name NAME, the name specs use in transform.image")
			}
			src := args[0]
			fi, err := os.Stat(src)
			if err != nil {
				return fmt.Errorf("image import: %w", err)
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			show := impOut.format == "table"
			var img *api.Image
			if fi.IsDir() {
				img, err = importDir(c, cl, src, name, show)
			} else {
				var f *os.File
				if f, err = os.Open(src); err != nil {
					return fmt.Errorf("image import: %w", err)
				}
				defer f.Close()
				bar := newProgress(show && fi.Size() > 64<<20, filepath.Base(src), fi.Size())
				img, err = cl.ImportImage(c.Context(), name, api.ImageArchive, bar.reader(f))
				bar.done(err == nil)
			}
			if err != nil {
				return err
			}
			return impOut.print(os.Stdout, img, func(*tabwriter.Writer) {
				fmt.Fprintf(os.Stderr, "imported image %s (%s, %s)\n", img.Name, shortDigest(img.Digest), humanBytes(img.Size))
			})
		},
	}
	imp.Flags().StringVar(&name, "name", "", "image name, e.g. tools:1 (required)")
	impOut.flag(imp)

	var listOut output
	list := &cobra.Command{
		Use:   "list",
		Short: "List the images the daemon's containerd holds",
		Long: `List the container images the daemon's containerd holds: name, digest
(shortened), size and when it was created.

  strata image list`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := listOut.check(); err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			is, err := cl.ListImages(c.Context())
			if err != nil {
				return err
			}
			return listOut.print(os.Stdout, is, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "NAME\tDIGEST\tSIZE\tCREATED")
				for _, i := range is {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", i.Name, shortDigest(i.Digest), humanBytes(i.Size), ago(i.Created))
				}
			})
		},
	}
	listOut.flag(list)
	c.AddCommand(imp, list)
	return c
}

// importDir streams a tar of dir, written as it is sent, as a rootfs image.
func importDir(c *cobra.Command, cl *api.Client, dir, name string, show bool) (*api.Image, error) {
	var total int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	pr, pw := io.Pipe()
	var skipped []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(writeTree(pw, dir, func(p string) { skipped = append(skipped, p) }))
	}()
	bar := newProgress(show, filepath.Base(dir), total)
	img, err := cl.ImportImage(c.Context(), name, api.ImageRootfs, bar.reader(pr))
	bar.done(err == nil)
	pr.CloseWithError(fmt.Errorf("upload ended")) // unblock the writer if the upload stopped early
	<-done
	if len(skipped) > 0 {
		fmt.Fprintf(os.Stderr, "skipped %d devices, sockets or fifos (first: %s)\n", len(skipped), skipped[0])
	}
	return img, err
}

// writeTree writes the tree at root to w as a tar: directories, regular
// files and symlinks (not followed), with their permission bits, owned by
// root. Anything else is passed to skip and left out.
func writeTree(w io.Writer, root string, skip func(string)) error {
	root, err := filepath.EvalSymlinks(root) // a symlink given as DIR is followed, none below it
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		name := filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		switch {
		case fi.Mode().IsDir():
			name += "/"
		case fi.Mode().IsRegular():
		case fi.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			skip(name)
			return nil
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		h.Name = name
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
		h.ModTime = h.ModTime.Truncate(time.Second)
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.CopyN(tw, f, fi.Size()); err != nil {
			if err == io.EOF {
				err = fmt.Errorf("it shrank while being read")
			}
			return fmt.Errorf("%s: %w", p, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func shortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok {
		return short(d)
	}
	return algo + ":" + short(hex)
}

// agentCmd is the init process of a pipeline's worker container: the
// daemon bind-mounts this binary into the container and runs
// 'strata __agent SOCKET'.
func agentCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "__agent SOCKET",
		Short:  "Run the worker-container agent (used by the daemon, not by people)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return agent.Serve(c.Context(), args[0])
		},
	}
}
