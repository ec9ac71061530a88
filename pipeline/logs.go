package pipeline

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/meta"
)

// Logs writes the logs of a job's datums (the pipeline's newest job by
// default), each datum's log whole, in datum order. With Follow it keeps
// writing what is appended until the job has finished and every log is
// drained, or ctx ends.
func (c *Controller) Logs(ctx context.Context, q api.LogQuery, w io.Writer) error {
	if q.Pipeline == "" && q.Job != "" {
		j, err := c.job(q.Job)
		if err != nil {
			return err
		}
		q.Pipeline = j.Pipeline
	}
	p, err := c.pipeline(q.Pipeline)
	if err != nil {
		return err
	}
	jobID := q.Job
	if jobID == "" {
		jobID = p.LastJob
		if jobID == "" {
			return fmt.Errorf("pipeline %s has no jobs yet: %w", p.Name, meta.ErrNotExist)
		}
	}
	j, err := c.job(jobID)
	if err != nil {
		return err
	}
	if j.Pipeline != p.Name {
		return fmt.Errorf("job %s belongs to pipeline %s, not %s: %w", j.ID, j.Pipeline, p.Name, meta.ErrInvalid)
	}
	dir := filepath.Join(c.o.Dir, "logs", p.Name, j.ID)
	offsets := map[string]int64{}
	for {
		done := false
		if q.Follow {
			cur, err := c.job(j.ID)
			done = err != nil || finished(cur.State)
		}
		names, err := logFiles(dir, q.Datum)
		if err != nil {
			return err
		}
		for _, n := range names {
			off, err := copyFrom(filepath.Join(dir, n), offsets[n], w)
			if err != nil {
				return err
			}
			offsets[n] = off
		}
		if f, ok := w.(interface{ Flush() }); ok {
			f.Flush()
		}
		if !q.Follow || done {
			if !q.Follow && len(names) == 0 && q.Datum != "" {
				return fmt.Errorf("no logs for datum %s of job %s: %w", q.Datum, j.ID, meta.ErrNotExist)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func logFiles(dir, datum string) ([]string, error) {
	es, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range es {
		n := e.Name()
		if !strings.HasSuffix(n, ".log") || datum != "" && !strings.HasPrefix(n, datum) {
			continue
		}
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

func copyFrom(path string, off int64, w io.Writer) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return off, err
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return off, err
	}
	n, err := io.Copy(w, f)
	return off + n, err
}

// untar unpacks a root directory's tar into dir: regular files, dirs,
// symlinks and hard links; names that leave dir are errors.
func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean("/" + h.Name)
		if name == "/" {
			continue
		}
		p := filepath.Join(dir, name)
		mode := os.FileMode(h.Mode) & os.ModePerm
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, mode|0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			os.Chmod(p, mode) // umask
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		case tar.TypeLink:
			target := filepath.Join(dir, filepath.Clean("/"+h.Linkname))
			if err := os.Link(target, p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unsupported tar entry type %q", h.Name, h.Typeflag)
		}
	}
}
