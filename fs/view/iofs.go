package view

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/meta"
)

// The io/fs face of the tree: paths are slash-separated without a leading
// slash ("images@main/cats/1.jpg"), "." is the root. File.ReadDir lists in
// directory order (HistoryDir/REPO newest first); FS.ReadDir sorts by name
// as io/fs requires.
var (
	_ fs.FS        = (*FS)(nil)
	_ fs.ReadDirFS = (*FS)(nil)
	_ fs.StatFS    = (*FS)(nil)
)

// Open opens a file or directory of the tree. Files implement io.ReaderAt
// and io.Seeker and read only the chunks a read covers.
func (v *FS) Open(name string) (fs.File, error) {
	n, err := v.stat("open", name)
	if err != nil {
		return nil, err
	}
	if !n.info.IsDir() {
		refs, err := v.src.Refs(n.entry)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &file{info: n.info, Reader: v.NewReader(context.Background(), refs)}, nil
	}
	return &dir{info: n.info, path: name, list: func() ([]fs.DirEntry, error) { return v.list(n) }}, nil
}

// Stat returns the FileInfo of name. Its Sys() is the *meta.Entry for
// paths inside a commit, the *meta.Commit for HistoryDir/REPO/ID.
func (v *FS) Stat(name string) (fs.FileInfo, error) {
	n, err := v.stat("stat", name)
	if err != nil {
		return nil, err
	}
	return n.info, nil
}

// ReadDir lists a directory sorted by name.
func (v *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := v.stat("readdir", name)
	if err != nil {
		return nil, err
	}
	if !n.info.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: meta.ErrNotDir}
	}
	list, err := v.list(n)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	slices.SortFunc(list, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return list, nil
}

type nodeKind uint8

const (
	nodeRoot        nodeKind = iota + 1
	nodeHistory              // HistoryDir
	nodeHistoryRepo          // HistoryDir/REPO
	nodeEntry                // a path inside what a Ref shows
)

// node is a resolved path.
type node struct {
	kind  nodeKind
	info  fileInfo
	repo  string      // nodeHistoryRepo
	ref   *Ref        // nodeEntry
	entry *meta.Entry // nodeEntry
}

func (v *FS) stat(op, name string) (*node, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	n, err := v.resolvePath(name)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return n, nil
}

func (v *FS) resolvePath(name string) (*node, error) {
	if name == "." {
		return &node{kind: nodeRoot, info: dirInfo(".", v.created, nil)}, nil
	}
	parts := strings.Split(name, "/")
	var ref *Ref
	var rest []string
	if parts[0] == HistoryDir {
		switch len(parts) {
		case 1:
			return &node{kind: nodeHistory, info: dirInfo(HistoryDir, v.created, nil)}, nil
		case 2:
			r, err := v.src.Repo(parts[1])
			if err != nil {
				return nil, err
			}
			return &node{kind: nodeHistoryRepo, repo: r.Name, info: dirInfo(r.Name, r.Created, r)}, nil
		}
		var err error
		if ref, err = v.ResolveCommit(parts[1], parts[2]); err != nil {
			return nil, err
		}
		rest = parts[3:]
	} else {
		var err error
		if ref, err = v.Resolve(parts[0]); err != nil {
			return nil, err
		}
		rest = parts[1:]
	}
	e, err := v.Lookup(ref, "/"+strings.Join(rest, "/"))
	if err != nil {
		return nil, err
	}
	return &node{kind: nodeEntry, ref: ref, entry: e, info: entryInfo(path.Base(name), e, ref.ModTime())}, nil
}

// list returns the entries of a directory node in directory order.
func (v *FS) list(n *node) ([]fs.DirEntry, error) {
	var out []fs.DirEntry
	switch n.kind {
	case nodeRoot:
		tops, err := v.Tops()
		if err != nil {
			return nil, err
		}
		for _, t := range tops {
			out = append(out, fs.FileInfoToDirEntry(dirInfo(t.Name, t.ModTime(), nil)))
		}
	case nodeHistory:
		repos, err := v.Repos()
		if err != nil {
			return nil, err
		}
		for _, r := range repos {
			out = append(out, fs.FileInfoToDirEntry(dirInfo(r.Name, r.Created, r)))
		}
	case nodeHistoryRepo:
		cs, err := v.History(n.repo)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			out = append(out, fs.FileInfoToDirEntry(dirInfo(c.ID, commitTime(c), c)))
		}
	case nodeEntry:
		es, err := v.ReadTree(n.entry.Tree)
		if err != nil {
			return nil, err
		}
		mt := n.ref.ModTime()
		for i := range es {
			out = append(out, fs.FileInfoToDirEntry(entryInfo(es[i].Name, &es[i], mt)))
		}
	}
	return out, nil
}

// fileInfo describes an entry of the tree.
type fileInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
	sys   any
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) Mode() fs.FileMode  { return i.mode }
func (i fileInfo) ModTime() time.Time { return i.mtime }
func (i fileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i fileInfo) Sys() any           { return i.sys }

func dirInfo(name string, mtime time.Time, sys any) fileInfo {
	return fileInfo{name: name, mode: fs.ModeDir | 0o755, mtime: mtime, sys: sys}
}

// entryInfo describes a metadata entry. A directory's size is 0 here; its
// Entry (Sys) has the total size and file count below it.
func entryInfo(name string, e *meta.Entry, mtime time.Time) fileInfo {
	if e.IsDir() {
		i := dirInfo(name, mtime, e)
		i.mode = fs.ModeDir | fs.FileMode(e.Mode&0o777)
		return i
	}
	return fileInfo{name: name, size: e.Size, mode: fs.FileMode(e.Mode & 0o777), mtime: mtime, sys: e}
}

// file is an open file; reads fetch only the chunks they cover.
type file struct {
	info fileInfo
	*chunk.Reader
}

func (f *file) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *file) Close() error               { return nil }

// dir is an open directory; its entries are read on the first ReadDir.
type dir struct {
	info    fileInfo
	path    string
	list    func() ([]fs.DirEntry, error)
	entries []fs.DirEntry
	loaded  bool
	off     int
}

func (d *dir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dir) Close() error               { return nil }

func (d *dir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.path, Err: meta.ErrIsDir}
}

// ReadDir returns the next n entries (all with n <= 0), in directory
// order.
func (d *dir) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.loaded {
		es, err := d.list()
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: d.path, Err: err}
		}
		d.entries, d.loaded = es, true
	}
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return slices.Clone(rest), nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.off += n
	return slices.Clone(rest[:n]), nil
}

func (r *Ref) String() string {
	if r.Commit == nil {
		return fmt.Sprintf("%s (%s, no commits)", r.Name, r.Kind)
	}
	return fmt.Sprintf("%s (%s %s@%s)", r.Name, r.Kind, r.Repo, r.Commit.ID)
}
