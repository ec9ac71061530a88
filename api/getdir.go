package api

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
)

// GetDir copies the tree below p of repo@ref into the local directory dir.
// Small files are written by several goroutines while the archive streams
// in; progress, if set, gets the bytes of content received so far.
func (c *Client) GetDir(ctx context.Context, repo, ref, p, dir string, progress func(int64)) error {
	rc, err := c.GetTar(ctx, repo, ref, p)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	type job struct {
		dst  string
		mode fs.FileMode
		data []byte
	}
	jobs := make(chan job, 32)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	for range readAheadProcs {
		wg.Go(func() {
			for j := range jobs {
				if err := os.WriteFile(j.dst, j.data, j.mode); err != nil {
					fail(err)
				}
			}
		})
	}
	err = extract(rc, dir, func(dst string, mode fs.FileMode, data []byte) { jobs <- job{dst, mode, data} }, progress)
	close(jobs)
	wg.Wait()
	if err != nil {
		return err
	}
	return first
}

// extract unpacks a tar stream below dir, handing files up to
// readAheadFile bytes to write and writing larger ones itself.
func extract(r io.Reader, dir string, write func(string, fs.FileMode, []byte), progress func(int64)) error {
	tr := tar.NewReader(r)
	buf := make([]byte, 1<<20)
	var done int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading from the daemon: %w", err)
		}
		name := path.Clean("/" + h.Name)
		if name == "/" || name != "/"+strings.TrimSuffix(h.Name, "/") {
			return fmt.Errorf("refusing unsafe path %q in archive", h.Name)
		}
		dst := filepath.Join(dir, filepath.FromSlash(name[1:]))
		mode := fs.FileMode(h.Mode) & 0o777
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			if h.Size <= readAheadFile {
				data := make([]byte, h.Size)
				if _, err := io.ReadFull(tr, data); err != nil {
					return fmt.Errorf("reading %s from the daemon: %w", h.Name, err)
				}
				write(dst, mode, data)
			} else if err := writeLarge(dst, mode, tr, buf); err != nil {
				return err
			}
			done += h.Size
			if progress != nil {
				progress(done)
			}
		}
	}
}

func writeLarge(dst string, mode fs.FileMode, r io.Reader, buf []byte) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(f, r, buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
