package api

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/store"
)

// PutDirOptions tune PutDir.
type PutDirOptions struct {
	Message string
	// CacheDir keeps, per (daemon, repo, branch, target, local dir), the
	// stat stamps of the files last put; files whose size, mtime, ctime and
	// inode are unchanged are not read or sent again. Empty: no cache.
	CacheDir string
	// Progress, if set, is called with the bytes of file content handled so
	// far (sent or found unchanged).
	Progress func(bytes int64)
}

// stamp identifies a version of a local file cheaply.
type stamp struct {
	Size, MTime, CTime int64
	Ino                uint64
}

type putCache struct {
	Commit string
	Files  map[string]stamp
}

type localEntry struct {
	rel   string
	dir   bool
	mode  fs.FileMode
	stamp stamp
}

// PutDir writes the tree below local to repo@branch:dst as one change,
// streaming it as a tar archive. Small files are read ahead by several
// goroutines so a cold disk's latency overlaps with the upload.
func (c *Client) PutDir(ctx context.Context, repo, branch, dst, local string, o PutDirOptions) (*meta.WriteResult, error) {
	entries, err := walkLocal(local)
	if err != nil {
		return nil, err
	}
	var cache *putCache
	cachePath := ""
	if o.CacheDir != "" {
		abs, _ := filepath.Abs(local)
		sum := sha256.Sum256([]byte(c.addr + "\x00" + repo + "\x00" + branch + "\x00" + dst + "\x00" + abs))
		cachePath = filepath.Join(o.CacheDir, hex.EncodeToString(sum[:16]))
		cache = loadPutCache(cachePath)
	}
	res, err := c.putEntries(ctx, repo, branch, dst, local, entries, cache, o)
	if errors.Is(err, store.ErrStale) && cache != nil {
		// The commit the cache refers to is gone: send everything.
		res, err = c.putEntries(ctx, repo, branch, dst, local, entries, nil, o)
	}
	if err == nil && cachePath != "" {
		savePutCache(cachePath, res.Commit.ID, entries)
	}
	return res, err
}

func walkLocal(root string) ([]localEntry, error) {
	var out []localEntry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			out = append(out, localEntry{rel: rel, dir: true})
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			e := localEntry{rel: rel, mode: fi.Mode().Perm(), stamp: stamp{Size: fi.Size(), MTime: fi.ModTime().UnixNano()}}
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				e.stamp.CTime = st.Ctim.Nano()
				e.stamp.Ino = st.Ino
			}
			out = append(out, e)
		}
		return nil // symlinks, sockets, devices are not stored
	})
	return out, err
}

func loadPutCache(path string) *putCache {
	pc := &putCache{Files: map[string]stamp{}}
	f, err := os.Open(path)
	if err != nil {
		return pc
	}
	defer f.Close()
	if gob.NewDecoder(bufio.NewReader(f)).Decode(pc) != nil {
		return &putCache{Files: map[string]stamp{}}
	}
	return pc
}

func savePutCache(path, commit string, entries []localEntry) {
	pc := putCache{Commit: commit, Files: make(map[string]stamp, len(entries))}
	for _, e := range entries {
		if !e.dir {
			pc.Files[e.rel] = e.stamp
		}
	}
	if os.MkdirAll(filepath.Dir(path), 0o700) != nil {
		return
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return
	}
	bw := bufio.NewWriter(f)
	err = gob.NewEncoder(bw).Encode(&pc)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil && cerr == nil {
		os.Rename(tmp, path)
	} else {
		os.Remove(tmp)
	}
}

// readAhead bounds the bytes of small files read ahead of the upload.
const (
	readAhead      = 64 << 20
	readAheadFile  = 4 << 20
	readAheadProcs = 4
)

type pending struct {
	e    *localEntry
	data []byte
	err  error
	done chan struct{}
}

func (c *Client) putEntries(reqCtx context.Context, repo, branch, dst, local string, entries []localEntry, cache *putCache, o PutDirOptions) (*meta.WriteResult, error) {
	// ctx stops the readers once the tar stream is written or failed;
	// the request itself runs on reqCtx until the daemon answers.
	ctx, cancel := context.WithCancel(reqCtx)
	defer cancel()
	queue := make(chan *pending, 1024)
	work := make(chan *pending, 1024)
	budget := newByteBudget(readAhead)
	go func() {
		defer close(queue)
		defer close(work)
		for i := range entries {
			e := &entries[i]
			p := &pending{e: e, done: make(chan struct{})}
			small := !e.dir && e.stamp.Size <= readAheadFile && !unchanged(cache, e)
			if small && !budget.take(ctx, e.stamp.Size) {
				return
			}
			select {
			case queue <- p:
			case <-ctx.Done():
				return
			}
			if small {
				work <- p
			} else {
				close(p.done)
			}
		}
	}()
	var wg sync.WaitGroup
	for range readAheadProcs {
		wg.Go(func() {
			for p := range work {
				p.data, p.err = os.ReadFile(filepath.Join(local, filepath.FromSlash(p.e.rel)))
				close(p.done)
			}
		})
	}
	pr, pw := io.Pipe()
	go func() {
		err := writeEntries(ctx, pw, local, queue, cache, budget, o.Progress)
		pw.CloseWithError(err)
		cancel()
		budget.give(0)    // wake a producer waiting for budget
		for range queue { // let the producer finish
		}
		wg.Wait()
	}()
	res, err := c.PutTar(reqCtx, repo, branch, dst, pr, o.Message)
	pr.CloseWithError(errors.New("upload stopped"))
	return res, err
}

func unchanged(cache *putCache, e *localEntry) bool {
	if cache == nil || cache.Commit == "" || e.dir {
		return false
	}
	s, ok := cache.Files[e.rel]
	return ok && s == e.stamp
}

func writeEntries(ctx context.Context, w io.Writer, local string, queue <-chan *pending, cache *putCache, budget *byteBudget, progress func(int64)) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	tw := tar.NewWriter(bw)
	var done int64
	report := func(n int64) {
		done += n
		if progress != nil {
			progress(done)
		}
	}
	for p := range queue {
		select {
		case <-p.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		e := p.e
		switch {
		case e.dir:
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: e.rel + "/", Mode: 0o755}); err != nil {
				return err
			}
		case unchanged(cache, e):
			h := &tar.Header{Typeflag: tar.TypeReg, Name: e.rel, Mode: int64(e.mode), Format: tar.FormatPAX,
				PAXRecords: map[string]string{store.PAXUnchangedSince: cache.Commit, store.PAXSize: strconv.FormatInt(e.stamp.Size, 10)}}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			report(e.stamp.Size)
		case p.data != nil || p.err != nil:
			if p.err != nil {
				return p.err
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.rel, Mode: int64(e.mode), Size: int64(len(p.data))}); err != nil {
				return err
			}
			if _, err := tw.Write(p.data); err != nil {
				return err
			}
			budget.give(e.stamp.Size)
			report(int64(len(p.data)))
		default:
			if err := streamFile(tw, filepath.Join(local, filepath.FromSlash(e.rel)), e, report); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

func streamFile(tw *tar.Writer, path string, e *localEntry, report func(int64)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.rel, Mode: int64(e.mode), Size: e.stamp.Size}); err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	var n int64
	for n < e.stamp.Size {
		m, err := f.Read(buf[:min(int64(len(buf)), e.stamp.Size-n)])
		if m > 0 {
			if _, werr := tw.Write(buf[:m]); werr != nil {
				return werr
			}
			n += int64(m)
			report(int64(m))
		}
		if err == io.EOF {
			return fmt.Errorf("%s shrank while being read (%d of %d bytes); put it again", path, n, e.stamp.Size)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// byteBudget is a counting semaphore over bytes.
type byteBudget struct {
	mu   sync.Mutex
	cond *sync.Cond
	free int64
}

func newByteBudget(n int64) *byteBudget {
	b := &byteBudget{free: n}
	b.cond = sync.NewCond(&b.mu)
	return b
}

func (b *byteBudget) take(ctx context.Context, n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.free < n && ctx.Err() == nil {
		b.cond.Wait()
	}
	b.free -= n
	return ctx.Err() == nil
}

func (b *byteBudget) give(n int64) {
	b.mu.Lock()
	b.free += n
	b.mu.Unlock()
	b.cond.Broadcast()
}
