package chunk

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// Dir is a Backend in a local directory: the blob of chunk abcd... is the
// file root/ab/abcd... (the full hex ID). A Put writes a temporary file in
// the same directory and renames it into place, so readers never see a
// partial blob; it does not fsync, which would cost more than the rest of
// ingest. Sync makes every earlier Put durable at once.
//
// Get reads a chunk fetched ahead of a sequential reader (a Reader's
// read-ahead) with O_DIRECT where the file system allows it: from the
// disk straight into its buffer, costing no copy and no page cache. A
// sequential read takes each chunk once, and through the mount the kernel
// caches it as the mounted file's pages, so a cached chunk file would
// hold the same bytes twice. Other reads (random access, the first chunks
// of a read) go through the page cache, so chunks read again come from
// memory. For a Reader in Reuse mode, the O_DIRECT read goes into a
// reused staging buffer of huge pages (see readDirect), leased to the
// Reader until it lets the chunk go.
type Dir struct {
	root     string
	buffered atomic.Bool // the file system refused O_DIRECT
}

// errNoDirect says the file system refuses O_DIRECT; errShortDirect that
// one read came back short, so the file is read again buffered.
var (
	errNoDirect    = errors.New("no O_DIRECT")
	errShortDirect = errors.New("short O_DIRECT read")
)

var (
	_ Backend = (*Dir)(nil)
	_ Toucher = (*Dir)(nil)
	_ Syncer  = (*Dir)(nil)
	_ Local   = (*Dir)(nil)
)

// tmpPrefix starts the names of files being written. Such files left by a
// crash are removed by List once they are older than tmpMaxAge.
const (
	tmpPrefix = ".tmp-"
	tmpMaxAge = time.Hour
)

// NewDir returns the Dir rooted at root, creating root and its 256 fan-out
// directories if needed.
func NewDir(root string) (*Dir, error) {
	for i := range 256 {
		if err := os.MkdirAll(filepath.Join(root, fmt.Sprintf("%02x", i)), 0o755); err != nil {
			return nil, fmt.Errorf("chunk dir: %w", err)
		}
	}
	return &Dir{root: root}, nil
}

// Path returns the file that holds the blob of id.
func (d *Dir) Path(id ID) string {
	s := id.String()
	return filepath.Join(d.root, s[:2], s)
}

func (d *Dir) Put(ctx context.Context, id ID, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path := d.Path(id)
	f, err := os.CreateTemp(filepath.Dir(path), tmpPrefix+"*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

func (d *Dir) Get(ctx context.Context, id ID) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path := d.Path(id)
	if isSequential(ctx) && !d.buffered.Load() {
		b, err := readDirect(path, leaseOf(ctx))
		switch err {
		case errNoDirect:
			d.buffered.Store(true) // the file system's answer: do not ask again
		case errShortDirect:
		default:
			return b, err
		}
	}
	return os.ReadFile(path)
}

// Local reports true: a Dir is on this machine's disk.
func (d *Dir) Local() bool { return true }

func (d *Dir) Stat(ctx context.Context, id ID) (Info, error) {
	fi, err := os.Stat(d.Path(id))
	if err != nil {
		return Info{}, err
	}
	return Info{Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func (d *Dir) Touch(ctx context.Context, id ID) error {
	now := time.Now()
	return os.Chtimes(d.Path(id), now, now)
}

func (d *Dir) Delete(ctx context.Context, id ID) error {
	if err := os.Remove(d.Path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (d *Dir) List(ctx context.Context, fn func(ID, Info) error) error {
	for i := range 256 {
		if err := ctx.Err(); err != nil {
			return err
		}
		dir := filepath.Join(d.root, fmt.Sprintf("%02x", i))
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted since ReadDir
			} else if err != nil {
				return err
			}
			if strings.HasPrefix(e.Name(), tmpPrefix) {
				if time.Since(fi.ModTime()) > tmpMaxAge {
					os.Remove(filepath.Join(dir, e.Name()))
				}
				continue
			}
			id, err := ParseID(e.Name())
			if err != nil || !fi.Mode().IsRegular() {
				continue // not ours
			}
			if err := fn(id, Info{Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Sync makes every Put that returned before it durable, with one syncfs(2)
// of the file system holding root instead of an fsync per blob.
func (d *Dir) Sync(ctx context.Context) error {
	f, err := os.Open(d.root)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syncfs(f); err != nil {
		return &fs.PathError{Op: "syncfs", Path: d.root, Err: err}
	}
	return nil
}
