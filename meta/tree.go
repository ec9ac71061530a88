package meta

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/strata-data/strata/chunk"
)

// EmptyTree is the hash of the empty directory.
var EmptyTree = hashNode(&node{kind: kindLeaf})

func hashNode(n *node) Hash { return Hash(sha256.Sum256(n.encode())) }

// putNode adds n to b and returns its hash.
func (db *DB) putNode(b *pebble.Batch, n *node) Hash {
	enc := n.encode()
	h := Hash(sha256.Sum256(enc))
	b.Set(append([]byte{famNode}, h[:]...), enc, nil)
	return h
}

// node loads a node, from the cache when possible.
func (db *DB) node(h Hash) (*node, error) {
	if n := db.nodes.get(h); n != nil {
		return n, nil
	}
	buf, err := db.get(append([]byte{famNode}, h[:]...))
	if err != nil {
		return nil, fmt.Errorf("tree node %s: %w", h, err)
	}
	n, err := decodeNode(buf)
	if err != nil {
		return nil, fmt.Errorf("tree node %s: %w", h, err)
	}
	db.nodes.add(h, n)
	return n, nil
}

// Refs returns the chunk refs of a file entry.
func (db *DB) Refs(e *Entry) ([]chunk.Ref, error) {
	if e.List.IsZero() {
		return e.Chunks, nil
	}
	n, err := db.node(e.List)
	if err != nil {
		return nil, err
	}
	return n.refs, nil
}

// ContentHash identifies a file's bytes: equal content, equal hash.
func (db *DB) ContentHash(e *Entry) (Hash, error) {
	if e.Type == TypeDir {
		return e.Tree, nil
	}
	if !e.List.IsZero() {
		return e.List, nil
	}
	return hashNode(&node{kind: kindList, refs: e.Chunks}), nil
}

// lookupName finds name in the directory rooted at h.
func (db *DB) lookupName(h Hash, name string) (*Entry, error) { return lookupIn(db.node, h, name) }

// lookupIn finds name in the HAMT rooted at h, loading nodes with get.
func lookupIn(get func(Hash) (*node, error), h Hash, name string) (*Entry, error) {
	nh := nameHash(name)
	for depth := 0; ; depth++ {
		n, err := get(h)
		if err != nil {
			return nil, err
		}
		if n.kind == kindLeaf {
			i, ok := slices.BinarySearchFunc(n.entries, name, func(e Entry, s string) int { return strings.Compare(e.Name, s) })
			if !ok {
				return nil, ErrNotExist
			}
			e := n.entries[i]
			return &e, nil
		}
		c := n.children[nibble(nh, depth)]
		if c.hash.IsZero() {
			return nil, ErrNotExist
		}
		h = c.hash
	}
}

// Lookup returns the entry at path p (clean, see CleanPath) in the tree
// rooted at root. The root itself is returned as a directory entry named "".
func (db *DB) Lookup(root Hash, p string) (*Entry, error) {
	e := &Entry{Type: TypeDir, Mode: 0o755, Tree: root}
	for _, name := range splitPath(p) {
		if e.Type != TypeDir {
			return nil, fmt.Errorf("%s: %w", p, ErrNotDir)
		}
		next, err := db.lookupName(e.Tree, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		e = next
	}
	if p == "/" {
		n, err := db.node(root)
		if err != nil {
			return nil, err
		}
		e.Size, e.Files = nodeStats(n)
	}
	return e, nil
}

func nodeStats(n *node) (size, files int64) {
	if n.kind == kindLeaf {
		return leafStats(n.entries)
	}
	for _, c := range n.children {
		size += c.size
		files += c.files
	}
	return size, files
}

// collect appends every entry of the subtree rooted at h (unsorted).
func (db *DB) collect(h Hash, out []Entry) ([]Entry, error) { return collectIn(db.node, h, out) }

func collectIn(get func(Hash) (*node, error), h Hash, out []Entry) ([]Entry, error) {
	n, err := get(h)
	if err != nil {
		return nil, err
	}
	if n.kind == kindLeaf {
		return append(out, n.entries...), nil
	}
	for _, c := range n.children {
		if !c.hash.IsZero() {
			if out, err = collectIn(get, c.hash, out); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// ReadDir returns the entries of the directory at tree hash h, sorted by
// name.
func (db *DB) ReadDir(h Hash) ([]Entry, error) {
	es, err := db.collect(h, nil)
	if err != nil {
		return nil, err
	}
	sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
	return es, nil
}

// Walk calls fn for every entry below the directory at path p, depth first
// in name order, with each entry's full path. Returning SkipDir from fn for
// a directory skips its contents.
func (db *DB) Walk(root Hash, p string, fn func(path string, e *Entry) error) error {
	e, err := db.Lookup(root, p)
	if err != nil {
		return err
	}
	if e.Type != TypeDir {
		return fn(p, e)
	}
	return db.walk(e.Tree, p, fn)
}

// SkipDir tells Walk not to descend into a directory.
var SkipDir = fmt.Errorf("skip this directory")

func (db *DB) walk(h Hash, dir string, fn func(string, *Entry) error) error {
	es, err := db.ReadDir(h)
	if err != nil {
		return err
	}
	for i := range es {
		e := &es[i]
		p := joinPath(dir, e.Name)
		if err := fn(p, e); err == SkipDir {
			continue
		} else if err != nil {
			return err
		}
		if e.Type == TypeDir {
			if err := db.walk(e.Tree, p, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// --- editing ---

// Op is the kind of a Change.
type Op uint8

const (
	// OpPut sets the entry at Path (a file, or a directory subtree by Tree),
	// creating parent directories. It replaces a file; replacing a
	// directory with a file is ErrIsDir.
	OpPut Op = iota + 1
	// OpDelete removes Path and everything below it.
	OpDelete
	// OpMkdir makes Path a directory if it is not one already.
	OpMkdir
)

// Change is one edit of a tree. Changes apply in order.
type Change struct {
	Op    Op
	Path  string // clean path, not "/"
	Entry Entry  // for OpPut: everything but Name
}

// editTrie gathers changes by path so each directory is rewritten once.
type editTrie struct {
	put      *Entry
	del      bool // start from nothing (what was here is removed)
	mkdir    bool
	children map[string]*editTrie
}

func (t *editTrie) child(name string) *editTrie {
	if t.children == nil {
		t.children = make(map[string]*editTrie)
	}
	c := t.children[name]
	if c == nil {
		c = &editTrie{}
		t.children[name] = c
	}
	return c
}

// treeWriter applies edits, staging new nodes in a batch.
type treeWriter struct {
	db    *DB
	b     *pebble.Batch
	nodes map[Hash]*node // nodes staged in b, readable before commit
	bytes int            // encoded bytes staged
}

func (w *treeWriter) get(h Hash) (*node, error) {
	if n := w.nodes[h]; n != nil {
		return n, nil
	}
	return w.db.node(h)
}

func (w *treeWriter) put(n *node) Hash {
	enc := n.encode()
	h := Hash(sha256.Sum256(enc))
	if _, ok := w.nodes[h]; !ok {
		w.nodes[h] = n
		w.bytes += len(enc) + 33
		w.b.Set(append([]byte{famNode}, h[:]...), enc, nil)
	}
	return h
}

// listEntry moves a large file's refs out of line.
func (w *treeWriter) normalize(e *Entry) {
	if e.Type == TypeFile && len(e.Chunks) > inlineRefs {
		e.List = w.put(&node{kind: kindList, refs: e.Chunks})
		e.Chunks = nil
	}
}

// applyChanges returns the new root after applying cs to root.
func (w *treeWriter) applyChanges(root Hash, cs []Change) (Hash, error) {
	top := &editTrie{}
	for _, c := range cs {
		p, err := CleanPath(c.Path)
		if err != nil {
			return Hash{}, err
		}
		if p == "/" {
			return Hash{}, fmt.Errorf("cannot replace the root directory: %w", ErrInvalid)
		}
		t := top
		for _, name := range splitPath(p) {
			t = t.child(name)
		}
		switch c.Op {
		case OpPut:
			e := c.Entry
			e.Name = ""
			if e.Type == 0 {
				e.Type = TypeFile
			}
			if e.Mode == 0 {
				e.Mode = 0o644
				if e.Type == TypeDir {
					e.Mode = 0o755
				}
			}
			t.put, t.children, t.mkdir = &e, nil, false
		case OpDelete:
			*t = editTrie{del: true}
		case OpMkdir:
			if t.put == nil {
				t.mkdir = true
			}
		default:
			return Hash{}, fmt.Errorf("unknown change op %d: %w", c.Op, ErrInvalid)
		}
	}
	return w.applyDir(root, "", top)
}

type dirMut struct {
	name string
	e    *Entry // nil deletes
}

// applyDir rewrites the directory at h with the edits in t.
func (w *treeWriter) applyDir(h Hash, dir string, t *editTrie) (Hash, error) {
	names := make([]string, 0, len(t.children))
	for name := range t.children {
		names = append(names, name)
	}
	sort.Strings(names)
	muts := make([]dirMut, 0, len(names))
	for _, name := range names {
		c := t.children[name]
		p := dir + "/" + name
		var old *Entry
		if !c.del {
			e, err := w.lookupName(h, name)
			if err != nil && err != ErrNotExist {
				return Hash{}, err
			}
			old = e
		}
		switch {
		case c.put != nil:
			if old != nil && old.Type == TypeDir && c.put.Type != TypeDir {
				return Hash{}, fmt.Errorf("%s: %w", p, ErrIsDir)
			}
			e := *c.put
			e.Name = name
			w.normalize(&e)
			muts = append(muts, dirMut{name, &e})
		case len(c.children) > 0 || c.mkdir:
			sub := EmptyTree
			mode := uint32(0o755)
			if old != nil {
				if old.Type != TypeDir {
					return Hash{}, fmt.Errorf("%s: %w", p, ErrNotDir)
				}
				sub, mode = old.Tree, old.Mode
			}
			nh, err := w.applyDir(sub, p, c)
			if err != nil {
				return Hash{}, err
			}
			n, err := w.get(nh)
			if err != nil {
				return Hash{}, err
			}
			size, files := nodeStats(n)
			muts = append(muts, dirMut{name, &Entry{Name: name, Type: TypeDir, Mode: mode, Size: size, Files: files, Tree: nh}})
		case c.del:
			muts = append(muts, dirMut{name: name})
		}
	}
	ref, err := w.editNode(h, 0, muts)
	if err != nil {
		return Hash{}, err
	}
	if ref.hash.IsZero() {
		return w.put(&node{kind: kindLeaf}), nil
	}
	return ref.hash, nil
}

func (w *treeWriter) lookupName(h Hash, name string) (*Entry, error) { return lookupIn(w.get, h, name) }

// editNode applies sorted-by-name mutations to the HAMT node h at depth and
// returns the new subtree's summary (zero hash when it became empty).
func (w *treeWriter) editNode(h Hash, depth int, muts []dirMut) (childRef, error) {
	var n *node
	if h.IsZero() {
		n = &node{kind: kindLeaf}
	} else {
		var err error
		if n, err = w.get(h); err != nil {
			return childRef{}, err
		}
	}
	if len(muts) == 0 {
		return w.summarize(h, n)
	}
	if n.kind == kindLeaf {
		es := mergeEntries(n.entries, muts)
		return w.build(es, depth)
	}
	groups := make([][]dirMut, fanout)
	for _, m := range muts {
		i := nibble(nameHash(m.name), depth)
		groups[i] = append(groups[i], m)
	}
	children := slices.Clone(n.children)
	var count int64
	for i := range children {
		if len(groups[i]) > 0 {
			c, err := w.editNode(children[i].hash, depth+1, groups[i])
			if err != nil {
				return childRef{}, err
			}
			children[i] = c
		}
		count += children[i].count
	}
	if count <= maxLeaf {
		// Collapse: a subtree this small is canonically one leaf.
		var es []Entry
		for _, c := range children {
			if !c.hash.IsZero() {
				var err error
				if es, err = w.collect(c.hash, es); err != nil {
					return childRef{}, err
				}
			}
		}
		sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
		return w.build(es, depth)
	}
	nn := &node{kind: kindInner, children: children}
	return w.summarize(w.put(nn), nn)
}

func (w *treeWriter) collect(h Hash, out []Entry) ([]Entry, error) { return collectIn(w.get, h, out) }

func (w *treeWriter) summarize(h Hash, n *node) (childRef, error) {
	c := childRef{hash: h}
	c.size, c.files = nodeStats(n)
	if n.kind == kindLeaf {
		c.count = int64(len(n.entries))
	} else {
		for _, ch := range n.children {
			c.count += ch.count
		}
	}
	return c, nil
}

// build writes sorted entries as a canonical subtree at depth.
func (w *treeWriter) build(es []Entry, depth int) (childRef, error) {
	if len(es) == 0 {
		return childRef{}, nil
	}
	if len(es) <= maxLeaf || depth >= maxDepth {
		n := &node{kind: kindLeaf, entries: es}
		return w.summarize(w.put(n), n)
	}
	parts := make([][]Entry, fanout)
	for _, e := range es {
		i := nibble(nameHash(e.Name), depth)
		parts[i] = append(parts[i], e)
	}
	n := &node{kind: kindInner, children: make([]childRef, fanout)}
	for i, p := range parts {
		c, err := w.build(p, depth+1)
		if err != nil {
			return childRef{}, err
		}
		n.children[i] = c
	}
	return w.summarize(w.put(n), n)
}

// mergeEntries applies sorted mutations to sorted entries.
func mergeEntries(es []Entry, muts []dirMut) []Entry {
	out := make([]Entry, 0, len(es)+len(muts))
	i := 0
	for _, m := range muts {
		for i < len(es) && es[i].Name < m.name {
			out = append(out, es[i])
			i++
		}
		if i < len(es) && es[i].Name == m.name {
			i++
		}
		if m.e != nil {
			out = append(out, *m.e)
		}
	}
	return append(out, es[i:]...)
}

// --- diff ---

// Diff is one difference between two trees. Old is nil for an added path,
// New is nil for a removed one.
type Diff struct {
	Path string
	Old  *Entry
	New  *Entry
}

// DiffTrees calls fn for every path that differs between the trees rooted
// at a and b, skipping equal subtrees, so its cost follows the number of
// changes. A directory that appears or disappears as a whole is reported
// once, not file by file.
func (db *DB) DiffTrees(a, b Hash, fn func(Diff) error) error {
	return db.diffDir(a, b, "/", fn)
}

func (db *DB) diffDir(a, b Hash, dir string, fn func(Diff) error) error {
	if a == b {
		return nil
	}
	return db.diffNode(a, b, 0, dir, fn)
}

func (db *DB) diffNode(a, b Hash, depth int, dir string, fn func(Diff) error) error {
	if a == b {
		return nil
	}
	var na, nb *node
	var err error
	if !a.IsZero() {
		if na, err = db.node(a); err != nil {
			return err
		}
	}
	if !b.IsZero() {
		if nb, err = db.node(b); err != nil {
			return err
		}
	}
	if na != nil && nb != nil && na.kind == kindInner && nb.kind == kindInner {
		for i := 0; i < fanout; i++ {
			if err := db.diffNode(na.children[i].hash, nb.children[i].hash, depth+1, dir, fn); err != nil {
				return err
			}
		}
		return nil
	}
	var ea, eb []Entry
	if !a.IsZero() {
		if ea, err = db.ReadDir(a); err != nil {
			return err
		}
	}
	if !b.IsZero() {
		if eb, err = db.ReadDir(b); err != nil {
			return err
		}
	}
	i, j := 0, 0
	for i < len(ea) || j < len(eb) {
		switch {
		case j == len(eb) || i < len(ea) && ea[i].Name < eb[j].Name:
			if err := fn(Diff{Path: joinPath(dir, ea[i].Name), Old: &ea[i]}); err != nil {
				return err
			}
			i++
		case i == len(ea) || eb[j].Name < ea[i].Name:
			if err := fn(Diff{Path: joinPath(dir, eb[j].Name), New: &eb[j]}); err != nil {
				return err
			}
			j++
		default:
			x, y := &ea[i], &eb[j]
			p := joinPath(dir, x.Name)
			i++
			j++
			if x.Type == TypeDir && y.Type == TypeDir {
				if err := db.diffDir(x.Tree, y.Tree, p, fn); err != nil {
					return err
				}
				continue
			}
			if !sameEntry(x, y) {
				if err := fn(Diff{Path: p, Old: x, New: y}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func sameEntry(x, y *Entry) bool {
	return x.Type == y.Type && x.Mode == y.Mode && x.Size == y.Size && x.List == y.List && slices.Equal(x.Chunks, y.Chunks)
}
