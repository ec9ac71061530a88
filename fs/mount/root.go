package mount

import (
	"context"
	"hash/fnv"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/strata-data/strata/fs/view"
)

// The directories above the views: the root, HistoryDir and
// HistoryDir/REPO. They are read-only and always current (short timeouts).

// readOnly answers every namespace change with EROFS.
type readOnly struct{}

func (readOnly) Mkdir(context.Context, string, uint32, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (readOnly) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}
func (readOnly) Unlink(context.Context, string) syscall.Errno { return syscall.EROFS }
func (readOnly) Rmdir(context.Context, string) syscall.Errno  { return syscall.EROFS }
func (readOnly) Rename(context.Context, string, fusefs.InodeEmbedder, string, uint32) syscall.Errno {
	return syscall.EROFS
}
func (readOnly) Symlink(context.Context, string, string, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (readOnly) Link(context.Context, fusefs.InodeEmbedder, string, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (readOnly) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (readOnly) Setattr(context.Context, fusefs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

type rootNode struct {
	fusefs.Inode
	readOnly
	srv *Server
}

var (
	_ fusefs.NodeLookuper  = (*rootNode)(nil)
	_ fusefs.NodeReaddirer = (*rootNode)(nil)
	_ fusefs.NodeGetattrer = (*rootNode)(nil)
	_ fusefs.NodeStatfser  = (*rootNode)(nil)
	_ fusefs.NodeUnlinker  = (*rootNode)(nil)
)

func (r *rootNode) Getattr(ctx context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	r.srv.dirAttr(&out.Attr, 0o755, r.srv.view.Created())
	out.SetTimeout(r.srv.o.BranchTimeout)
	return 0
}

// Statfs reports the data directory's file system, so df shows the space
// left for writes. A read-only mount has no space to write: zeros.
func (r *rootNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	store := r.srv.view.Store()
	if store == nil {
		out.Bsize, out.Frsize, out.NameLen = 4096, 4096, 255
		return 0
	}
	var st unix.Statfs_t
	if err := unix.Statfs(store.Dir(), &st); err != nil {
		return r.srv.errno("statfs", err)
	}
	out.Blocks, out.Bfree, out.Bavail = st.Blocks, st.Bfree, st.Bavail
	out.Files, out.Ffree = st.Files, st.Ffree
	out.Bsize, out.Frsize = uint32(st.Bsize), uint32(st.Frsize)
	out.NameLen = 255
	return 0
}

func (r *rootNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	s := r.srv
	if name == view.HistoryDir {
		c := r.GetChild(name)
		if c == nil {
			c = r.NewInode(ctx, &historyNode{srv: s}, fusefs.StableAttr{Mode: syscall.S_IFDIR})
		}
		s.dirAttr(&out.Attr, 0o755, s.view.Created())
		s.timeouts(out, s.o.BranchTimeout, s.o.BranchTimeout)
		return c, 0
	}
	ref, err := s.view.Resolve(name)
	if err != nil {
		return nil, s.errno("lookup "+name, err)
	}
	return s.topInode(ctx, &r.Inode, name, ref, out)
}

func (r *rootNode) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	tops, err := r.srv.view.Tops()
	if err != nil {
		return nil, r.srv.errno("readdir /", err)
	}
	list := dots(&r.Inode, len(tops))
	for _, t := range tops {
		list = append(list, fuse.DirEntry{Name: t.Name, Mode: syscall.S_IFDIR, Ino: nameIno(t.Name)})
	}
	return fusefs.NewListDirStream(list), 0
}

// topInode returns the node of a view's top directory, reusing the one
// the kernel knows while the name still resolves to the same thing.
func (s *Server) topInode(ctx context.Context, parent *fusefs.Inode, name string, ref *view.Ref, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	c := parent.GetChild(name)
	if d, ok := opsOf[*dirNode](c); !ok || d.parent != nil || !sameRef(d.top.ref, ref) {
		top, err := s.newTop(ref)
		if err != nil {
			return nil, s.errno("lookup "+name, err)
		}
		d := &dirNode{top: top, mode: 0o755, mtime: ref.ModTime()}
		if top.pinned {
			d.tree = ref.Root()
		}
		c = parent.NewInode(ctx, d, fusefs.StableAttr{Mode: syscall.S_IFDIR})
	}
	d, _ := opsOf[*dirNode](c)
	d.attr(&out.Attr)
	entry := s.o.CommitTimeout
	if ref.Moves() {
		entry = s.o.BranchTimeout
	}
	s.timeouts(out, entry, d.top.timeout())
	return c, 0
}

// sameRef reports whether a and b show the same thing, so the node of a
// can stand for b.
func sameRef(a, b *view.Ref) bool {
	if a.Kind != b.Kind || a.Repo != b.Repo || a.Branch != b.Branch || a.Pipeline != b.Pipeline {
		return false
	}
	if a.Kind == view.Branch {
		return true
	}
	return a.Commit != nil && b.Commit != nil && a.Commit.ID == b.Commit.ID && a.Pinned() == b.Pinned()
}

// historyNode is HistoryDir: one directory per repo.
type historyNode struct {
	fusefs.Inode
	readOnly
	srv *Server
}

func (h *historyNode) Getattr(ctx context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	h.srv.dirAttr(&out.Attr, 0o755, h.srv.view.Created())
	out.SetTimeout(h.srv.o.BranchTimeout)
	return 0
}

func (h *historyNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	s := h.srv
	r, err := s.view.Repo(name)
	if err != nil {
		return nil, s.errno("lookup "+view.HistoryDir+"/"+name, err)
	}
	c := h.GetChild(name)
	if _, ok := opsOf[*historyRepoNode](c); !ok {
		c = h.NewInode(ctx, &historyRepoNode{srv: s, repo: name, created: r.Created}, fusefs.StableAttr{Mode: syscall.S_IFDIR})
	}
	s.dirAttr(&out.Attr, 0o755, r.Created)
	s.timeouts(out, s.o.BranchTimeout, s.o.BranchTimeout)
	return c, 0
}

func (h *historyNode) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	repos, err := h.srv.view.Repos()
	if err != nil {
		return nil, h.srv.errno("readdir "+view.HistoryDir, err)
	}
	list := dots(&h.Inode, len(repos))
	for _, r := range repos {
		list = append(list, fuse.DirEntry{Name: r.Name, Mode: syscall.S_IFDIR, Ino: nameIno(r.Name)})
	}
	return fusefs.NewListDirStream(list), 0
}

// historyRepoNode is HistoryDir/REPO: the repo's finished commits, newest
// first, each a pinned view named by its ID.
type historyRepoNode struct {
	fusefs.Inode
	readOnly
	srv     *Server
	repo    string
	created time.Time
}

func (h *historyRepoNode) Getattr(ctx context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	h.srv.dirAttr(&out.Attr, 0o755, h.created)
	out.SetTimeout(h.srv.o.BranchTimeout)
	return 0
}

func (h *historyRepoNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	ref, err := h.srv.view.ResolveCommit(h.repo, name)
	if err != nil {
		return nil, h.srv.errno("lookup "+view.HistoryDir+"/"+h.repo+"/"+name, err)
	}
	return h.srv.topInode(ctx, &h.Inode, name, ref, out)
}

func (h *historyRepoNode) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	cs, err := h.srv.view.History(h.repo)
	if err != nil {
		return nil, h.srv.errno("readdir "+view.HistoryDir+"/"+h.repo, err)
	}
	list := dots(&h.Inode, len(cs))
	for _, c := range cs {
		list = append(list, fuse.DirEntry{Name: c.ID, Mode: syscall.S_IFDIR, Ino: nameIno(c.ID)})
	}
	return fusefs.NewListDirStream(list), 0
}

// dots starts a directory listing with "." and "..", with room for n
// more entries.
func dots(n *fusefs.Inode, more int) []fuse.DirEntry {
	parent := uint64(1)
	if _, p := n.Parent(); p != nil {
		parent = p.StableAttr().Ino
	}
	return append(make([]fuse.DirEntry, 0, 2+more),
		fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: n.StableAttr().Ino},
		fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: parent})
}

// opsOf returns the node type T behind an inode, if it is one.
func opsOf[T fusefs.InodeEmbedder](n *fusefs.Inode) (T, bool) {
	var zero T
	if n == nil {
		return zero, false
	}
	t, ok := n.Operations().(T)
	return t, ok
}

// nameIno is the inode number a directory listing gives an entry: a hash
// of its name, never 0 (some tools skip entries with d_ino 0). stat gives
// the inode's own number.
func nameIno(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64() | 1
}

func (s *Server) timeouts(out *fuse.EntryOut, entry, attr time.Duration) {
	out.SetEntryTimeout(entry)
	out.SetAttrTimeout(attr)
}

// dirAttr fills the attributes of a directory. Directories have one link
// (find then does not guess subdirectory counts) and size 4096.
func (s *Server) dirAttr(a *fuse.Attr, mode uint32, mtime time.Time) {
	a.Mode = syscall.S_IFDIR | mode&0o7777
	a.Size, a.Blocks, a.Blksize = 4096, 8, 4096
	a.Nlink = 1
	a.Uid, a.Gid = s.uid, s.gid
	a.SetTimes(&mtime, &mtime, &mtime)
}

// fileAttr fills the attributes of a file. The block size hints 128 KiB
// reads.
func (s *Server) fileAttr(a *fuse.Attr, mode uint32, size int64, mtime time.Time) {
	a.Mode = syscall.S_IFREG | mode&0o7777
	a.Size = uint64(size)
	a.Blocks = uint64(size+511) / 512
	a.Blksize = 128 << 10
	a.Nlink = 1
	a.Uid, a.Gid = s.uid, s.gid
	a.SetTimes(&mtime, &mtime, &mtime)
}
