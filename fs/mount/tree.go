package mount

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/strata-data/strata/fs/view"
	"github.com/strata-data/strata/meta"
)

// viewTop is what the nodes of one view share: the ref its top-level name
// resolved to, and for a writable branch the branch.
type viewTop struct {
	srv    *Server
	ref    *view.Ref
	pinned bool    // a finished commit: nothing below changes
	br     *branch // nil unless writable
}

func (s *Server) newTop(ref *view.Ref) (*viewTop, error) {
	t := &viewTop{srv: s, ref: ref, pinned: ref.Pinned()}
	if ref.Writable() {
		b, err := s.branch(ref.Repo, ref.Branch)
		if err != nil {
			return nil, err
		}
		t.br = b
	}
	return t, nil
}

// timeout is how long the kernel may cache entries and attributes.
func (t *viewTop) timeout() time.Duration {
	if t.pinned {
		return t.srv.o.CommitTimeout
	}
	return t.srv.o.BranchTimeout
}

// current returns the tree the view shows now and its mtime.
func (t *viewTop) current() (meta.Hash, time.Time, error) {
	if t.pinned {
		return t.ref.Root(), t.ref.ModTime(), nil
	}
	c, err := t.srv.view.Current(t.ref)
	if err != nil {
		return meta.Hash{}, time.Time{}, err
	}
	r := view.Ref{Commit: c}
	return r.Root(), r.ModTime(), nil
}

// rlock and lock take the branch's namespace lock (see branch); they do
// nothing for read-only views, whose nodes never move.
func (t *viewTop) rlock() func() {
	if t.br == nil {
		return func() {}
	}
	t.br.mu.RLock()
	return t.br.mu.RUnlock
}

func (t *viewTop) lock() func() {
	if t.br == nil {
		return func() {}
	}
	t.br.mu.Lock()
	return t.br.mu.Unlock
}

func (t *viewTop) name(p string) string { return t.ref.Name + ":" + p }

// dirNode is a directory of a view; the view's top directory has no
// parent.
type dirNode struct {
	fusefs.Inode
	top    *viewTop
	parent *dirNode  // guarded by top.br.mu
	name   string    // guarded by top.br.mu
	tree   meta.Hash // pinned views: the directory's tree

	mu    sync.Mutex
	mode  uint32
	mtime time.Time

	ahead dirAhead
}

var (
	_ fusefs.NodeLookuper       = (*dirNode)(nil)
	_ fusefs.NodeOpendirHandler = (*dirNode)(nil)
	_ fusefs.NodeGetattrer      = (*dirNode)(nil)
	_ fusefs.NodeSetattrer      = (*dirNode)(nil)
	_ fusefs.NodeMkdirer        = (*dirNode)(nil)
	_ fusefs.NodeCreater        = (*dirNode)(nil)
	_ fusefs.NodeUnlinker       = (*dirNode)(nil)
	_ fusefs.NodeRmdirer        = (*dirNode)(nil)
	_ fusefs.NodeRenamer        = (*dirNode)(nil)
	_ fusefs.NodeLinker         = (*dirNode)(nil)
	_ fusefs.NodeSymlinker      = (*dirNode)(nil)
	_ fusefs.NodeMknoder        = (*dirNode)(nil)
	_ fusefs.FileReaddirenter   = (*dirHandle)(nil)
	_ fusefs.FileLookuper       = (*dirHandle)(nil)
	_ fusefs.FileSeekdirer      = (*dirHandle)(nil)
	_ fusefs.FileReleasedirer   = (*dirHandle)(nil)
)

// path is the directory's path in the view. Callers of writable views
// hold the branch lock (rlock or lock).
func (d *dirNode) path() string {
	var parts []string
	for n := d; n.parent != nil; n = n.parent {
		parts = append(parts, n.name)
	}
	if len(parts) == 0 {
		return "/"
	}
	slices.Reverse(parts)
	return "/" + strings.Join(parts, "/")
}

func (d *dirNode) pathOf(name string) string {
	p := d.path()
	if p == "/" {
		return "/" + name
	}
	return p + "/" + name
}

func (d *dirNode) attr(a *fuse.Attr) {
	d.mu.Lock()
	mode, mtime := d.mode, d.mtime
	d.mu.Unlock()
	d.top.srv.dirAttr(a, mode, mtime)
}

func (d *dirNode) fillEntry(out *fuse.EntryOut) {
	d.attr(&out.Attr)
	d.top.srv.timeouts(out, d.top.timeout(), d.top.timeout())
}

func (d *dirNode) Getattr(ctx context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.attr(&out.Attr)
	out.SetTimeout(d.top.timeout())
	return 0
}

// entry returns the current metadata entry of d's child name and the
// mtime of what the view shows.
func (d *dirNode) entry(name string) (*meta.Entry, time.Time, error) {
	if d.top.pinned {
		e, err := d.top.srv.view.LookupTree(d.tree, "/"+name)
		return e, d.top.ref.ModTime(), err
	}
	unlock := d.top.rlock()
	p := d.pathOf(name)
	unlock()
	return d.top.entryAt(p)
}

// self returns d's own current entry (live views).
func (d *dirNode) self() (*meta.Entry, time.Time, error) {
	unlock := d.top.rlock()
	p := d.path()
	unlock()
	return d.top.entryAt(p)
}

// entryAt returns the current entry at path p of a live view, and the
// mtime of what the view shows. It takes no lock.
func (t *viewTop) entryAt(p string) (*meta.Entry, time.Time, error) {
	root, mtime, err := t.current()
	if err != nil {
		return nil, mtime, err
	}
	e, err := t.srv.view.LookupTree(root, p)
	return e, mtime, err
}

// dirtyChild returns the file being written as d's child name, if any:
// it may not be in the metadata yet, and its bytes are newer if it is.
// It may be a node of another view of the branch.
func (d *dirNode) dirtyChild(name string) *fileNode {
	if d.top.br == nil {
		return nil
	}
	if f, ok := opsOf[*fileNode](d.GetChild(name)); ok && f.dirty() {
		return f
	}
	unlock := d.top.rlock()
	defer unlock()
	return d.top.br.dirtyAt(d.pathOf(name))
}

// dirtyChildLocked is dirtyChild for callers that hold the branch lock.
func (d *dirNode) dirtyChildLocked(name string) *fileNode {
	if d.top.br == nil {
		return nil
	}
	if f, ok := opsOf[*fileNode](d.GetChild(name)); ok && f.dirty() {
		return f
	}
	return d.top.br.dirtyAt(d.pathOf(name))
}

func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if f := d.dirtyChild(name); f != nil {
		f.fillEntry(out)
		return &f.Inode, 0
	}
	e, mtime, err := d.entry(name)
	if err != nil {
		return nil, d.top.srv.errno("lookup "+d.top.name(name), err)
	}
	return d.child(ctx, name, e, mtime, out), 0
}

// child returns the node for entry e named name, reusing the one the
// kernel knows while its content is the same.
func (d *dirNode) child(ctx context.Context, name string, e *meta.Entry, mtime time.Time, out *fuse.EntryOut) *fusefs.Inode {
	c := d.GetChild(name)
	var ops fusefs.InodeEmbedder
	if c != nil {
		ops = c.Operations()
	}
	switch n := ops.(type) {
	case *dirNode:
		if e.IsDir() && (!d.top.pinned || n.tree == e.Tree) {
			n.mu.Lock()
			n.mode = e.Mode
			n.mu.Unlock()
			n.fillEntry(out)
			return c
		}
	case *fileNode:
		if !e.IsDir() && n.sameContent(e) {
			n.fillEntry(out)
			return c
		}
	}
	if e.IsDir() {
		n := &dirNode{top: d.top, parent: d, name: name, mode: e.Mode, mtime: mtime}
		if d.top.pinned {
			n.tree = e.Tree
		}
		c = d.NewInode(ctx, n, fusefs.StableAttr{Mode: syscall.S_IFDIR})
		n.fillEntry(out)
		return c
	}
	n := &fileNode{top: d.top, parent: d, name: name, entry: *e, mtime: mtime}
	c = d.NewInode(ctx, n, fusefs.StableAttr{Mode: syscall.S_IFREG})
	n.fillEntry(out)
	return c
}

// OpendirHandle reads the directory's entries once; readdirplus then
// answers from them without a lookup per entry. Pinned directories are
// cached by the kernel.
func (d *dirNode) OpendirHandle(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	v := d.top.srv.view
	h := &dirHandle{d: d}
	var err error
	if d.top.pinned {
		h.mtime = d.top.ref.ModTime()
		h.entries, err = v.ReadTree(d.tree)
	} else {
		var e *meta.Entry
		if e, h.mtime, err = d.self(); err == nil {
			if !e.IsDir() {
				err = meta.ErrNotDir
			} else {
				h.entries, err = v.ReadTree(e.Tree)
			}
		}
	}
	if err != nil {
		return nil, 0, d.top.srv.errno("opendir "+d.top.name(d.path()), err)
	}
	if d.top.br != nil {
		// Files being written that are not in the metadata yet.
		unlock := d.top.rlock()
		names := d.top.br.dirtyIn(d.path())
		unlock()
		for _, name := range names {
			if _, found := slices.BinarySearchFunc(h.entries, name, func(e meta.Entry, n string) int { return strings.Compare(e.Name, n) }); !found {
				h.extra = append(h.extra, name)
			}
		}
		slices.Sort(h.extra)
		h.extra = slices.Compact(h.extra)
	}
	var fl uint32
	if d.top.pinned {
		fl = fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE
	}
	return h, fl, 0
}

// dirHandle lists a directory: ".", "..", the entries, then files being
// written. Offsets are positions in that list.
type dirHandle struct {
	d       *dirNode
	entries []meta.Entry
	extra   []string
	mtime   time.Time
	pos     int
	last    int // position of the entry Readdirent returned last
}

func (h *dirHandle) len() int { return 2 + len(h.entries) + len(h.extra) }

func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if h.pos >= h.len() {
		return nil, 0
	}
	i := h.pos
	h.pos++
	h.last = i
	de := &fuse.DirEntry{Off: uint64(h.pos)}
	switch {
	case i == 0:
		de.Name, de.Mode, de.Ino = ".", syscall.S_IFDIR, h.d.StableAttr().Ino
	case i == 1:
		de.Name, de.Mode, de.Ino = "..", syscall.S_IFDIR, 1
		if _, p := h.d.Parent(); p != nil {
			de.Ino = p.StableAttr().Ino
		}
	case i < 2+len(h.entries):
		e := &h.entries[i-2]
		de.Name, de.Mode, de.Ino = e.Name, syscall.S_IFREG, nameIno(e.Name)
		if e.IsDir() {
			de.Mode = syscall.S_IFDIR
		}
	default:
		name := h.extra[i-2-len(h.entries)]
		de.Name, de.Mode, de.Ino = name, syscall.S_IFREG, nameIno(name)
	}
	return de, 0
}

func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if off > uint64(h.len()) {
		return syscall.EINVAL
	}
	h.pos = int(off)
	return 0
}

// Lookup answers readdirplus for the entry Readdirent returned last.
func (h *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	d := h.d
	if f := d.dirtyChild(name); f != nil {
		f.fillEntry(out)
		return &f.Inode, 0
	}
	if i := h.last - 2; i >= 0 && i < len(h.entries) && h.entries[i].Name == name {
		return d.child(ctx, name, &h.entries[i], h.mtime, out), 0
	}
	return d.Lookup(ctx, name, out)
}

func (h *dirHandle) Releasedir(ctx context.Context, flags uint32) {}

// --- changes (writable branch views only) ---

func (d *dirNode) writable() (*branch, syscall.Errno) {
	if d.top.br == nil {
		return nil, syscall.EROFS
	}
	return d.top.br, 0
}

func validName(name string) error {
	_, err := meta.CleanPath("/" + name)
	return err
}

// apply applies changes through the branch's Writer. Requests are often
// interrupted (Go programs are, by preemption signals), so changes are not
// tied to the request's context.
func (t *viewTop) apply(cs ...meta.Change) error {
	_, err := t.br.w.Apply(context.Background(), cs)
	return err
}

func (d *dirNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if _, en := d.writable(); en != 0 {
		return nil, en
	}
	if err := validName(name); err != nil {
		return nil, d.top.srv.errno("mkdir", err)
	}
	unlock := d.top.rlock()
	defer unlock()
	p := d.pathOf(name)
	if d.dirtyChildLocked(name) != nil {
		return nil, syscall.EEXIST
	}
	if en := d.checkAbsent(p); en != 0 {
		return nil, en
	}
	mode &= 0o7777
	if mode&0o777 == 0 {
		mode |= 0o755
	}
	if err := d.top.apply(meta.Change{Op: meta.OpPut, Path: p, Entry: meta.Entry{Type: meta.TypeDir, Mode: mode & 0o777, Tree: meta.EmptyTree}}); err != nil {
		return nil, d.top.srv.errno("mkdir "+d.top.name(p), err)
	}
	n := &dirNode{top: d.top, parent: d, name: name, mode: mode & 0o777, mtime: time.Now()}
	c := d.NewInode(ctx, n, fusefs.StableAttr{Mode: syscall.S_IFDIR})
	n.fillEntry(out)
	return c, 0
}

// checkAbsent returns 0 if p does not exist and d (its parent) does, as
// a directory. The caller holds the branch lock.
func (d *dirNode) checkAbsent(p string) syscall.Errno {
	root, _, err := d.top.current()
	if err != nil {
		return d.top.srv.errno("lookup "+d.top.name(p), err)
	}
	v := d.top.srv.view
	_, err = v.LookupTree(root, p)
	switch {
	case err == nil:
		return syscall.EEXIST
	case !errors.Is(err, fs.ErrNotExist):
		return d.top.srv.errno("lookup "+d.top.name(p), err)
	}
	if e, err := v.LookupTree(root, d.path()); err != nil || !e.IsDir() {
		return syscall.ENOENT // the directory was removed under us
	}
	return 0
}

func (d *dirNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	if _, en := d.writable(); en != 0 {
		return nil, nil, 0, en
	}
	if err := validName(name); err != nil {
		return nil, nil, 0, d.top.srv.errno("create", err)
	}
	unlock := d.top.rlock()
	defer unlock()
	var f *fileNode
	var c *fusefs.Inode
	p := d.pathOf(name)
	if f = d.dirtyChildLocked(name); f == nil {
		switch e, mtime, err := d.top.entryAt(p); {
		case err == nil && e.IsDir():
			return nil, nil, 0, syscall.EISDIR
		case err == nil:
			c = d.child(ctx, name, e, mtime, out)
			f, _ = opsOf[*fileNode](c)
		case errors.Is(err, fs.ErrNotExist):
			if en := d.checkAbsent(p); en != 0 {
				return nil, nil, 0, en
			}
			if mode&0o777 == 0 {
				mode |= 0o644
			}
			f = &fileNode{top: d.top, parent: d, name: name, mtime: time.Now(),
				entry: meta.Entry{Type: meta.TypeFile, Mode: mode & 0o777}}
			// The inode first: created() publishes f to lookups
			// through the branch's other view.
			c = d.NewInode(ctx, f, fusefs.StableAttr{Mode: syscall.S_IFREG})
			if err := f.created(); err != nil {
				return nil, nil, 0, d.top.srv.errno("create "+d.top.name(p), err)
			}
		default:
			return nil, nil, 0, d.top.srv.errno("create "+d.top.name(p), err)
		}
	} else if flags&syscall.O_EXCL != 0 {
		return nil, nil, 0, syscall.EEXIST
	} else {
		c = &f.Inode
	}
	h, fl, en := f.Open(ctx, flags)
	if en != 0 {
		return nil, nil, 0, en
	}
	f.fillEntry(out)
	return c, h, fl, 0
}

func (d *dirNode) Unlink(ctx context.Context, name string) syscall.Errno {
	if _, en := d.writable(); en != 0 {
		return en
	}
	unlock := d.top.lock()
	defer unlock()
	p := d.pathOf(name)
	f := d.dirtyChildLocked(name)
	own, _ := opsOf[*fileNode](d.GetChild(name))
	root, _, err := d.top.current()
	if err != nil {
		return d.top.srv.errno("unlink "+d.top.name(p), err)
	}
	switch e, err := d.top.srv.view.LookupTree(root, p); {
	case err == nil && e.IsDir():
		return syscall.EISDIR
	case err == nil:
		if err := d.top.apply(meta.Change{Op: meta.OpDelete, Path: p}); err != nil {
			return d.top.srv.errno("unlink "+d.top.name(p), err)
		}
	case errors.Is(err, fs.ErrNotExist) && f != nil:
		// Only written through the mount so far: nothing to delete.
	default:
		return d.top.srv.errno("unlink "+d.top.name(p), err)
	}
	for _, n := range []*fileNode{f, own} {
		if n != nil {
			n.deleted.Store(true) // open handles keep reading it
		}
	}
	return 0
}

func (d *dirNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	if _, en := d.writable(); en != 0 {
		return en
	}
	unlock := d.top.lock()
	defer unlock()
	p := d.pathOf(name)
	root, _, err := d.top.current()
	if err != nil {
		return d.top.srv.errno("rmdir "+d.top.name(p), err)
	}
	v := d.top.srv.view
	e, err := v.LookupTree(root, p)
	if err != nil {
		return d.top.srv.errno("rmdir "+d.top.name(p), err)
	}
	if !e.IsDir() {
		return syscall.ENOTDIR
	}
	if en := d.checkEmpty(name, e); en != 0 {
		return en
	}
	if err := d.top.apply(meta.Change{Op: meta.OpDelete, Path: p}); err != nil {
		return d.top.srv.errno("rmdir "+d.top.name(p), err)
	}
	return 0
}

// checkEmpty returns ENOTEMPTY unless directory e, d's child name, is
// empty, counting files being written in it. The caller holds the branch
// lock.
func (d *dirNode) checkEmpty(name string, e *meta.Entry) syscall.Errno {
	es, err := d.top.srv.view.ReadTree(e.Tree)
	if err != nil {
		return d.top.srv.errno("readdir "+d.top.name(d.pathOf(name)), err)
	}
	if len(es) > 0 || len(d.top.br.dirtyIn(d.pathOf(name))) > 0 {
		return syscall.ENOTEMPTY
	}
	return 0
}

// Rename moves a file or a whole directory (one change, whatever its
// size) within a branch. Across branches or views it is EXDEV, so mv
// copies.
func (d *dirNode) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if _, en := d.writable(); en != 0 {
		return en
	}
	const noReplace = 1 // RENAME_NOREPLACE
	if flags&^noReplace != 0 {
		return syscall.EINVAL // RENAME_EXCHANGE, RENAME_WHITEOUT
	}
	nd, ok := newParent.(*dirNode)
	if !ok || nd.top.br != d.top.br {
		return syscall.EXDEV
	}
	if err := validName(newName); err != nil {
		return d.top.srv.errno("rename", err)
	}
	unlock := d.top.lock()
	defer unlock()
	src, dst := d.pathOf(name), nd.pathOf(newName)
	if src == dst {
		return 0
	}
	if strings.HasPrefix(dst, src+"/") {
		return syscall.EINVAL // into itself
	}
	errno := func(err error) syscall.Errno { return d.top.srv.errno("rename "+d.top.name(src)+" -> "+dst, err) }
	root, _, err := d.top.current()
	if err != nil {
		return errno(err)
	}
	v := d.top.srv.view
	srcNode := d.GetChild(name)
	srcFile := d.dirtyChildLocked(name)
	se, err := v.LookupTree(root, src)
	if err != nil && !(errors.Is(err, fs.ErrNotExist) && srcFile != nil) {
		return errno(err)
	}
	dstFile := nd.dirtyChildLocked(newName)
	de, err := v.LookupTree(root, dst)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return errno(err)
	}
	srcIsDir := se != nil && se.IsDir()
	if de != nil || dstFile != nil {
		switch {
		case flags&noReplace != 0:
			return syscall.EEXIST
		case de != nil && de.IsDir() && !srcIsDir:
			return syscall.EISDIR
		case de != nil && !de.IsDir() && srcIsDir:
			return syscall.ENOTDIR
		case de != nil && de.IsDir():
			if en := nd.checkEmpty(newName, de); en != 0 {
				return en
			}
		}
	}
	if en := nd.checkParent(root); en != 0 {
		return en
	}
	var cs []meta.Change
	if de != nil {
		cs = append(cs, meta.Change{Op: meta.OpDelete, Path: dst})
	}
	if se != nil {
		e := *se
		e.Name = ""
		cs = append(cs, meta.Change{Op: meta.OpPut, Path: dst, Entry: e}, meta.Change{Op: meta.OpDelete, Path: src})
	}
	if len(cs) > 0 {
		if err := d.top.apply(cs...); err != nil {
			return errno(err)
		}
	}
	if dstFile != nil && dstFile != srcFile {
		dstFile.deleted.Store(true) // replaced: its pending bytes must not come back
	}
	// The kernel moves the dentry and go-fuse the inode; the node learns
	// its new place here, under the branch lock, before any later apply.
	var ops fusefs.InodeEmbedder
	if srcNode != nil {
		ops = srcNode.Operations()
	}
	switch n := ops.(type) {
	case *fileNode:
		n.parent, n.name = nd, newName
	case *dirNode:
		n.parent, n.name = nd, newName
	}
	if srcFile != nil {
		// Maybe a node of the branch's other view: it now lives here.
		srcFile.parent, srcFile.name = nd, newName
	}
	return 0
}

// checkParent returns 0 if d still exists as a directory in root.
func (d *dirNode) checkParent(root meta.Hash) syscall.Errno {
	if e, err := d.top.srv.view.LookupTree(root, d.path()); err != nil || !e.IsDir() {
		return syscall.ENOENT
	}
	return 0
}

// Setattr on a directory changes its mode; times are accepted and not
// kept (a commit's time is its entries' mtime).
func (d *dirNode) Setattr(ctx context.Context, _ fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if _, en := d.writable(); en != 0 {
		return en
	}
	if _, ok := in.GetSize(); ok {
		return syscall.EISDIR
	}
	if en := d.top.srv.checkOwner(in); en != 0 {
		return en
	}
	if mode, ok := in.GetMode(); ok {
		// Exclusive: the change rewrites the directory entry with the
		// tree read here, so no file may be applied below it meanwhile.
		unlock := d.top.lock()
		defer unlock()
		if d.parent == nil {
			return syscall.EPERM // the root of a commit is always 0755
		}
		p := d.path()
		e, _, err := d.top.entryAt(p)
		if err != nil {
			return d.top.srv.errno("chmod "+d.top.name(p), err)
		}
		e.Mode, e.Name = mode&0o777, ""
		if err := d.top.apply(meta.Change{Op: meta.OpPut, Path: p, Entry: *e}); err != nil {
			return d.top.srv.errno("chmod "+d.top.name(p), err)
		}
		d.mu.Lock()
		d.mode = mode & 0o777
		d.mu.Unlock()
	}
	d.attr(&out.Attr)
	out.SetTimeout(d.top.timeout())
	return 0
}

// checkOwner refuses to change a file's owner: strata does not keep one.
func (s *Server) checkOwner(in *fuse.SetAttrIn) syscall.Errno {
	if uid, ok := in.GetUID(); ok && uid != s.uid {
		return syscall.EPERM
	}
	if gid, ok := in.GetGID(); ok && gid != s.gid {
		return syscall.EPERM
	}
	return 0
}

// Links, symlinks and device nodes have no place in a commit.
func (d *dirNode) Link(context.Context, fusefs.InodeEmbedder, string, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, d.unsupported()
}

func (d *dirNode) Symlink(context.Context, string, string, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, d.unsupported()
}

func (d *dirNode) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, d.unsupported()
}

func (d *dirNode) unsupported() syscall.Errno {
	if d.top.br == nil {
		return syscall.EROFS
	}
	return syscall.EPERM
}
