package meta

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/strata-data/strata/chunk"
)

// Hash names a tree node: the SHA-256 of its encoding.
type Hash [32]byte

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h names no node.
func (h Hash) IsZero() bool { return h == Hash{} }

// MarshalText encodes h as hex (JSON friendly).
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes hex.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*h = Hash{}
		return nil
	}
	if len(b) != 64 {
		return fmt.Errorf("hash %q: want 64 hex digits: %w", b, ErrInvalid)
	}
	_, err := hex.Decode(h[:], b)
	return err
}

// EntryType says what an Entry is.
type EntryType uint8

const (
	TypeFile EntryType = 1
	TypeDir  EntryType = 2
)

func (t EntryType) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "dir"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Entry is one name in a directory.
type Entry struct {
	Name string
	Type EntryType
	// Mode holds the permission bits (0644, 0755).
	Mode uint32
	// Size is the file's length, or for a directory the total of every file
	// below it.
	Size int64
	// Files counts the files below a directory (0 for a file).
	Files int64
	// Chunks are a file's chunk refs when it has at most inlineRefs of them.
	Chunks []chunk.Ref
	// List names a chunk-list node holding a large file's refs.
	List Hash
	// Tree names a directory's root node.
	Tree Hash
}

// IsDir reports whether e is a directory.
func (e *Entry) IsDir() bool { return e.Type == TypeDir }

const (
	kindLeaf  = 1
	kindInner = 2
	kindList  = 3

	// maxLeaf is the most entries a leaf holds before it splits.
	maxLeaf = 128
	// fanBits is the number of name-hash bits consumed per inner level.
	fanBits = 4
	fanout  = 1 << fanBits
	// maxDepth bounds the trie; 64 bits of name hash give 16 levels.
	maxDepth = 64 / fanBits
	// inlineRefs is the most chunk refs a file entry keeps inline.
	inlineRefs = 32
)

// node is a decoded tree node: a leaf (sorted entries), an inner node
// (children by name-hash nibble) or a chunk list.
type node struct {
	kind     uint8
	entries  []Entry    // leaf
	children []childRef // inner, fanout slots; zero hash = empty
	refs     []chunk.Ref
}

// childRef summarizes a subtree so a parent can count and size it without
// loading it.
type childRef struct {
	hash  Hash
	count int64 // entries in the subtree
	size  int64 // bytes below
	files int64 // files below
}

func nameHash(name string) uint64 {
	s := sha256.Sum256([]byte(name))
	return binary.BigEndian.Uint64(s[:8])
}

func nibble(h uint64, depth int) int {
	return int(h >> (64 - fanBits*(depth+1)) & (fanout - 1))
}

// stats of a leaf's entries.
func leafStats(es []Entry) (size, files int64) {
	for i := range es {
		size += es[i].Size
		if es[i].Type == TypeDir {
			files += es[i].Files
		} else {
			files++
		}
	}
	return size, files
}

func (n *node) encode() []byte {
	b := make([]byte, 0, 64)
	b = append(b, n.kind)
	switch n.kind {
	case kindLeaf:
		b = binary.AppendUvarint(b, uint64(len(n.entries)))
		for i := range n.entries {
			b = appendEntry(b, &n.entries[i])
		}
	case kindInner:
		var bitmap uint16
		for i, c := range n.children {
			if !c.hash.IsZero() {
				bitmap |= 1 << i
			}
		}
		b = binary.BigEndian.AppendUint16(b, bitmap)
		for _, c := range n.children {
			if c.hash.IsZero() {
				continue
			}
			b = append(b, c.hash[:]...)
			b = binary.AppendUvarint(b, uint64(c.count))
			b = binary.AppendUvarint(b, uint64(c.size))
			b = binary.AppendUvarint(b, uint64(c.files))
		}
	case kindList:
		b = appendRefs(b, n.refs)
	}
	return b
}

func appendRefs(b []byte, refs []chunk.Ref) []byte {
	b = binary.AppendUvarint(b, uint64(len(refs)))
	for _, r := range refs {
		b = append(b, r.ID[:]...)
		b = binary.AppendUvarint(b, uint64(r.Size))
	}
	return b
}

func appendEntry(b []byte, e *Entry) []byte {
	b = binary.AppendUvarint(b, uint64(len(e.Name)))
	b = append(b, e.Name...)
	b = append(b, byte(e.Type))
	b = binary.AppendUvarint(b, uint64(e.Mode))
	b = binary.AppendUvarint(b, uint64(e.Size))
	switch e.Type {
	case TypeDir:
		b = binary.AppendUvarint(b, uint64(e.Files))
		b = append(b, e.Tree[:]...)
	default:
		if !e.List.IsZero() {
			b = append(b, 1)
			b = append(b, e.List[:]...)
		} else {
			b = append(b, 0)
			b = appendRefs(b, e.Chunks)
		}
	}
	return b
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = fmt.Errorf("truncated")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte1() byte {
	v := d.bytes(1)
	if v == nil {
		return 0
	}
	return v[0]
}

func (d *decoder) hash() (h Hash) {
	copy(h[:], d.bytes(len(h)))
	return h
}

func (d *decoder) refs() []chunk.Ref {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = fmt.Errorf("bad ref count")
		return nil
	}
	refs := make([]chunk.Ref, n)
	for i := range refs {
		copy(refs[i].ID[:], d.bytes(chunk.IDSize))
		refs[i].Size = uint32(d.uvarint())
	}
	return refs
}

func decodeNode(b []byte) (*node, error) {
	d := &decoder{b: b}
	n := &node{kind: d.byte1()}
	switch n.kind {
	case kindLeaf:
		cnt := d.uvarint()
		if cnt > uint64(len(b)) {
			return nil, fmt.Errorf("decode node: bad entry count")
		}
		n.entries = make([]Entry, cnt)
		for i := range n.entries {
			e := &n.entries[i]
			e.Name = string(d.bytes(int(d.uvarint())))
			e.Type = EntryType(d.byte1())
			e.Mode = uint32(d.uvarint())
			e.Size = int64(d.uvarint())
			if e.Type == TypeDir {
				e.Files = int64(d.uvarint())
				e.Tree = d.hash()
			} else if d.byte1() == 1 {
				e.List = d.hash()
			} else {
				e.Chunks = d.refs()
			}
		}
	case kindInner:
		bm := d.bytes(2)
		if bm == nil {
			return nil, fmt.Errorf("decode node: truncated bitmap")
		}
		bitmap := binary.BigEndian.Uint16(bm)
		n.children = make([]childRef, fanout)
		for i := range n.children {
			if bitmap&(1<<i) == 0 {
				continue
			}
			c := &n.children[i]
			c.hash = d.hash()
			c.count = int64(d.uvarint())
			c.size = int64(d.uvarint())
			c.files = int64(d.uvarint())
		}
	case kindList:
		n.refs = d.refs()
	default:
		return nil, fmt.Errorf("decode node: unknown kind %d", n.kind)
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode node: %w", d.err)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("decode node: %d trailing bytes", len(d.b))
	}
	return n, nil
}
