package store

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/strata-data/strata/meta"
)

// IngestDir stores every file under the local directory dir as a new
// tree, without committing it, and returns the tree's root (see
// meta.DB.BuildTree: a commit or a pin must refer to it before gc's grace
// period ends) and its file count. Chunks are durable when it returns.
// Symlinks and special files are errors that name them: a tree holds
// regular files and directories only.
func (s *Store) IngestDir(ctx context.Context, dir string) (meta.Hash, int, error) {
	type job struct {
		rel  string
		mode fs.FileMode
	}
	var files []job
	var cs []meta.Change
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = "/" + filepath.ToSlash(rel)
		switch t := d.Type(); {
		case t.IsDir():
			cs = append(cs, meta.Change{Op: meta.OpMkdir, Path: rel})
		case t.IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			files = append(files, job{rel: rel, mode: info.Mode()})
		case t&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symlink; outputs hold regular files and directories only: %w", rel, meta.ErrInvalid)
		default:
			return fmt.Errorf("%s is a %s; outputs hold regular files and directories only: %w", rel, t.Type(), meta.ErrInvalid)
		}
		return nil
	})
	if err != nil {
		return meta.Hash{}, 0, err
	}
	s.writes.RLock()
	defer s.writes.RUnlock()
	puts := make([]meta.Change, len(files))
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	workers := min(4, len(files))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f := files[i]
				c, err := s.ingestPath(ctx, filepath.Join(dir, filepath.FromSlash(f.rel)), f.rel, f.mode)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					continue
				}
				puts[i] = c
			}
		}()
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		return meta.Hash{}, 0, first
	}
	cs = append(cs, puts...)
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Path < cs[j].Path })
	if err := s.Chunks.Sync(ctx); err != nil {
		return meta.Hash{}, 0, err
	}
	root, err := s.Meta.BuildTree(cs)
	return root, len(files), err
}

func (s *Store) ingestPath(ctx context.Context, p, rel string, mode fs.FileMode) (meta.Change, error) {
	f, err := os.Open(p)
	if err != nil {
		return meta.Change{}, err
	}
	defer f.Close()
	w, err := s.ingestFile(ctx, f, nil)
	if err != nil {
		return meta.Change{}, fmt.Errorf("%s: %w", rel, err)
	}
	if err := w.Close(); err != nil {
		return meta.Change{}, fmt.Errorf("%s: %w", rel, err)
	}
	m := uint32(0o644)
	if mode&0o111 != 0 {
		m = 0o755
	}
	return fileChange(rel, w, m), nil
}
