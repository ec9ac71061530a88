package mount

import (
	"context"
	"sort"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/strata-data/strata/fs/view"
	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/store"
)

// Trees is what a trees mount shows: at each name, a tree that its owner
// may switch at any time (a pipeline worker's view of its current datum).
type Trees interface {
	// Tree returns the tree shown at name now; false if name is unknown.
	Tree(name string) (root meta.Hash, ok bool)
	// Names lists the names.
	Names() []string
}

// OutDir is the name that every tree of a trees mount shows as a stable,
// empty, read-only directory, whatever the tree holds: a pipeline worker
// mounts its writable output directory on top of it, and a mount point
// must never be invalidated when the tree switches.
const OutDir = "out"

// MountTrees mounts, at dir, one directory per name of src, each showing
// src's current tree for that name. The directory of a name is a stable
// inode (it can be bind-mounted once), while the entries under it are
// looked up again on every path walk (entry timeout 0), so switching the
// tree switches what is seen without a remount. Below that, trees are
// immutable and cached like finished commits.
func MountTrees(dir string, st *store.Store, src Trees, o Options) (*Server, error) {
	o.defaults()
	s, dir, err := newServer(dir, st, o)
	if err != nil {
		return nil, err
	}
	if err := s.mount(dir, &treesRoot{srv: s, src: src}); err != nil {
		return nil, err
	}
	return s, nil
}

// MountSourceTrees is MountTrees over a view.Source, read-only: how a
// remote worker shows the datums it runs, reading them through the
// daemon's API (package fs/view/remote). It serves until Unmount.
func MountSourceTrees(dir string, src view.Source, trees Trees, o Options) (*Server, error) {
	s, dir, err := newSourceServer(dir, src, o)
	if err != nil {
		return nil, err
	}
	if err := s.mount(dir, &treesRoot{srv: s, src: trees}); err != nil {
		return nil, err
	}
	return s, nil
}

type treesRoot struct {
	fusefs.Inode
	readOnly
	srv *Server
	src Trees
}

func (r *treesRoot) Getattr(ctx context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	r.srv.dirAttr(&out.Attr, 0o755, r.srv.view.Created())
	out.SetTimeout(0)
	return 0
}

func (r *treesRoot) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if _, ok := r.src.Tree(name); !ok {
		return nil, syscall.ENOENT
	}
	c := r.GetChild(name)
	if c == nil {
		c = r.NewPersistentInode(ctx, &slotNode{srv: r.srv, src: r.src, name: name}, fusefs.StableAttr{Mode: syscall.S_IFDIR})
		r.AddChild(name, c, true)
	}
	r.srv.dirAttr(&out.Attr, 0o755, r.srv.view.Created())
	r.srv.timeouts(out, 0, 0)
	return c, 0
}

func (r *treesRoot) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	names := r.src.Names()
	sort.Strings(names)
	list := dots(&r.Inode, len(names))
	for _, n := range names {
		list = append(list, fuse.DirEntry{Name: n, Mode: syscall.S_IFDIR, Ino: nameIno(n)})
	}
	return fusefs.NewListDirStream(list), 0
}

// slotNode is the stable directory of one name.
type slotNode struct {
	fusefs.Inode
	readOnly
	srv  *Server
	src  Trees
	name string
}

var (
	_ fusefs.NodeLookuper  = (*slotNode)(nil)
	_ fusefs.NodeReaddirer = (*slotNode)(nil)
	_ fusefs.NodeGetattrer = (*slotNode)(nil)
)

func (n *slotNode) Getattr(ctx context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.srv.dirAttr(&out.Attr, 0o755, n.srv.view.Created())
	out.SetTimeout(0)
	return 0
}

func (n *slotNode) root() (meta.Hash, syscall.Errno) {
	root, ok := n.src.Tree(n.name)
	if !ok {
		return meta.Hash{}, syscall.ENOENT
	}
	return root, 0
}

// top is the pinned view of one tree.
func (n *slotNode) top(root meta.Hash) *viewTop {
	now := n.srv.view.Created()
	ref := &view.Ref{Name: n.name, Kind: view.Commit,
		Commit: &meta.Commit{Root: root, State: meta.StateFinished, Finished: &now}}
	return &viewTop{srv: n.srv, ref: ref, pinned: true}
}

func (n *slotNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	s := n.srv
	if name == OutDir {
		c := n.GetChild(name)
		if c == nil {
			c = n.NewPersistentInode(ctx, &emptyDir{srv: s}, fusefs.StableAttr{Mode: syscall.S_IFDIR})
			n.AddChild(name, c, true)
		}
		s.dirAttr(&out.Attr, 0o755, s.view.Created())
		s.timeouts(out, time.Hour, time.Hour)
		return c, 0
	}
	root, errno := n.root()
	if errno != 0 {
		return nil, errno
	}
	e, err := s.view.LookupTree(root, "/"+name)
	if err != nil {
		return nil, s.errno("lookup "+n.name+"/"+name, err)
	}
	mtime := s.view.Created()
	var c *fusefs.Inode
	if old := n.GetChild(name); old != nil {
		switch o := old.Operations().(type) {
		case *dirNode:
			if e.IsDir() && o.tree == e.Tree {
				c = old
			}
		case *fileNode:
			if !e.IsDir() && o.sameContent(e) {
				c = old
			}
		}
	}
	if c == nil {
		top := n.top(root)
		if e.IsDir() {
			c = n.NewInode(ctx, &dirNode{top: top, mode: e.Mode, mtime: mtime, tree: e.Tree}, fusefs.StableAttr{Mode: syscall.S_IFDIR})
		} else {
			// A file at the top of a tree: its parent for path purposes
			// is the tree's root.
			parent := &dirNode{top: top, mode: 0o755, mtime: mtime, tree: root}
			c = n.NewInode(ctx, &fileNode{top: top, parent: parent, name: name, entry: *e, mtime: mtime}, fusefs.StableAttr{Mode: syscall.S_IFREG})
		}
	}
	switch o := c.Operations().(type) {
	case *dirNode:
		o.attr(&out.Attr)
	case *fileNode:
		o.attr(&out.Attr)
	}
	// The name is looked up again on every walk: the tree may switch.
	s.timeouts(out, 0, time.Hour)
	return c, 0
}

func (n *slotNode) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	root, errno := n.root()
	if errno != 0 {
		return nil, errno
	}
	es, err := n.srv.view.ReadTree(root)
	if err != nil {
		return nil, n.srv.errno("readdir "+n.name, err)
	}
	list := dots(&n.Inode, len(es)+1)
	hasOut := false
	for _, e := range es {
		mode := uint32(syscall.S_IFREG)
		if e.IsDir() {
			mode = syscall.S_IFDIR
		}
		hasOut = hasOut || e.Name == OutDir
		list = append(list, fuse.DirEntry{Name: e.Name, Mode: mode, Ino: nameIno(e.Name)})
	}
	if !hasOut {
		list = append(list, fuse.DirEntry{Name: OutDir, Mode: syscall.S_IFDIR, Ino: nameIno(OutDir)})
	}
	return fusefs.NewListDirStream(list), 0
}

// emptyDir is the stable OutDir of a slot.
type emptyDir struct {
	fusefs.Inode
	readOnly
	srv *Server
}

func (d *emptyDir) Getattr(ctx context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.srv.dirAttr(&out.Attr, 0o755, d.srv.view.Created())
	out.SetTimeout(time.Hour)
	return 0
}

func (d *emptyDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.ENOENT
}

func (d *emptyDir) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	return fusefs.NewListDirStream(dots(&d.Inode, 0)), 0
}

// MountTree mounts the one tree at root at dir, read-only, with a stable
// empty OutDir on which a writable directory can be mounted (a datum
// preview: what a worker sees for one datum).
func MountTree(dir string, st *store.Store, root meta.Hash, o Options) (*Server, error) {
	o.defaults()
	s, dir, err := newServer(dir, st, o)
	if err != nil {
		return nil, err
	}
	src := fixedTree{root}
	if err := s.mount(dir, &slotNode{srv: s, src: src, name: ""}); err != nil {
		return nil, err
	}
	return s, nil
}

type fixedTree struct{ root meta.Hash }

func (t fixedTree) Tree(string) (meta.Hash, bool) { return t.root, true }
func (t fixedTree) Names() []string               { return []string{""} }
