package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/meta"
)

// The content-addressed routes: tree nodes, chunk lists and chunks, named
// by their hashes. What a hash names never changes, so the responses may be
// cached forever. A remote mount ('strata mount DIR --server URL') reads a
// commit through them: the commit routes give it the root hash, these give
// it the directories, a file's chunk refs and the chunks' bytes.

// TreeEntry is a meta.Entry on the wire: one name in a directory.
type TreeEntry struct {
	Name string `json:"name"`
	Type string `json:"type"` // "file" or "dir"
	Mode uint32 `json:"mode"`
	// Size is a file's length, or the total of every file below a
	// directory; Files counts the files below a directory.
	Size  int64 `json:"size"`
	Files int64 `json:"files,omitempty"`
	// A file's chunks: inline (small files), or in the chunk list List
	// names (GET /v1/lists/{hash}).
	Chunks []ChunkRef `json:"chunks,omitempty"`
	List   *meta.Hash `json:"list,omitempty"`
	// Tree is a directory's node (GET /v1/trees/{hash}).
	Tree *meta.Hash `json:"tree,omitempty"`
}

// ChunkRef is a chunk.Ref on the wire: the chunk's SHA-256 in hex and its
// length.
type ChunkRef struct {
	ID   string `json:"id"`
	Size uint32 `json:"size"`
}

// WireEntry converts an entry for the wire.
func WireEntry(e *meta.Entry) TreeEntry {
	t := TreeEntry{Name: e.Name, Type: e.Type.String(), Mode: e.Mode, Size: e.Size, Files: e.Files, Chunks: wireRefs(e.Chunks)}
	if !e.List.IsZero() {
		h := e.List
		t.List = &h
	}
	if e.Type == meta.TypeDir {
		h := e.Tree
		t.Tree = &h
	}
	return t
}

// Entry converts a wire entry back.
func (t *TreeEntry) Entry() (meta.Entry, error) {
	e := meta.Entry{Name: t.Name, Mode: t.Mode, Size: t.Size, Files: t.Files}
	switch t.Type {
	case "file":
		e.Type = meta.TypeFile
	case "dir":
		e.Type = meta.TypeDir
		if t.Tree == nil {
			return e, fmt.Errorf("entry %q: a directory without a tree: %w", t.Name, meta.ErrInvalid)
		}
		e.Tree = *t.Tree
	default:
		return e, fmt.Errorf("entry %q: unknown type %q: %w", t.Name, t.Type, meta.ErrInvalid)
	}
	if t.List != nil {
		e.List = *t.List
	}
	refs, err := parseRefs(t.Chunks)
	if err != nil {
		return e, fmt.Errorf("entry %q: %w", t.Name, err)
	}
	e.Chunks = refs
	return e, nil
}

func wireRefs(refs []chunk.Ref) []ChunkRef {
	if len(refs) == 0 {
		return nil
	}
	out := make([]ChunkRef, len(refs))
	for i, r := range refs {
		out[i] = ChunkRef{ID: r.ID.String(), Size: r.Size}
	}
	return out
}

func parseRefs(in []ChunkRef) ([]chunk.Ref, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]chunk.Ref, len(in))
	for i, r := range in {
		id, err := chunk.ParseID(r.ID)
		if err != nil {
			return nil, fmt.Errorf("%v: %w", err, meta.ErrInvalid)
		}
		out[i] = chunk.Ref{ID: id, Size: r.Size}
	}
	return out, nil
}

func pathHash(r *http.Request, name string) (meta.Hash, error) {
	var h meta.Hash
	s := r.PathValue(name)
	if len(s) != 64 {
		return h, fmt.Errorf("hash %q: want 64 hex digits: %w", s, meta.ErrInvalid)
	}
	if err := h.UnmarshalText([]byte(s)); err != nil {
		return h, fmt.Errorf("hash %q: %v: %w", s, err, meta.ErrInvalid)
	}
	return h, nil
}

// immutable marks a response that never changes for its URL.
func immutable(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
}

// Storage says where the daemon keeps chunks (GET /v1/storage), so that a
// remote reader with its own credentials can fetch large chunks from the
// object store rather than through the daemon. It never carries
// credentials. Chunks shorter than SmallLimit live in the daemon's
// metadata database and are only reachable through GET /v1/chunks.
type Storage struct {
	SmallLimit int    `json:"small_limit"`
	Type       string `json:"type"` // where large chunks live: "dir" or "s3"
	// For "s3": the bucket, the key prefix (objects are PREFIX/xx/ID, in
	// the stored form chunk.Decode reads), and the endpoint (host:port)
	// and region the daemon reaches it at; insecure: plain HTTP.
	URL      string `json:"url,omitempty"`
	Bucket   string `json:"bucket,omitempty"`
	Prefix   string `json:"prefix,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
	Region   string `json:"region,omitempty"`
	Insecure bool   `json:"insecure,omitempty"`
}

func (s *Server) treeRoutes() {
	s.handle("GET /v1/storage", func(w http.ResponseWriter, r *http.Request) error {
		l := s.st.Location()
		return writeJSON(w, Storage{SmallLimit: l.SmallLimit, Type: l.Type, URL: l.URL, Bucket: l.Bucket,
			Prefix: l.Prefix, Endpoint: l.Endpoint, Region: l.Region, Insecure: l.Insecure})
	})
	// The entries of a directory node, sorted by name.
	s.handle("GET /v1/trees/{hash}", func(w http.ResponseWriter, r *http.Request) error {
		h, err := pathHash(r, "hash")
		if err != nil {
			return err
		}
		out := []TreeEntry{}
		if h != meta.EmptyTree { // the empty tree need not be stored
			es, err := s.st.Meta.ReadDir(h)
			if err != nil {
				return fmt.Errorf("tree %s: %w", h, err)
			}
			out = make([]TreeEntry, len(es))
			for i := range es {
				out[i] = WireEntry(&es[i])
			}
		}
		immutable(w)
		return writeJSON(w, out)
	})
	// One entry at a path below a directory node; path=/ is the directory
	// itself, with its total size and file count.
	s.handle("GET /v1/trees/{hash}/entry", func(w http.ResponseWriter, r *http.Request) error {
		h, err := pathHash(r, "hash")
		if err != nil {
			return err
		}
		p, err := meta.CleanPath(r.URL.Query().Get("path"))
		if err != nil {
			return err
		}
		var e *meta.Entry
		if h == meta.EmptyTree {
			if p != "/" {
				return fmt.Errorf("tree %s:%s: %w", h, p, meta.ErrNotExist)
			}
			e = &meta.Entry{Type: meta.TypeDir, Mode: 0o755, Tree: h}
		} else if e, err = s.st.Meta.Lookup(h, p); err != nil {
			return fmt.Errorf("tree %s:%w", h, err)
		}
		immutable(w)
		return writeJSON(w, WireEntry(e))
	})
	// The chunk refs of a large file, from its entry's list.
	s.handle("GET /v1/lists/{hash}", func(w http.ResponseWriter, r *http.Request) error {
		h, err := pathHash(r, "hash")
		if err != nil {
			return err
		}
		refs, err := s.st.Meta.Refs(&meta.Entry{Type: meta.TypeFile, List: h})
		if err != nil {
			return fmt.Errorf("chunk list %s: %w", h, err)
		}
		out := wireRefs(refs)
		if out == nil {
			out = []ChunkRef{}
		}
		immutable(w)
		return writeJSON(w, out)
	})
	// A chunk's plaintext, verified by the daemon as it reads it. size (the
	// ref's) is required: it says where the chunk is stored.
	s.handle("GET /v1/chunks/{id}", func(w http.ResponseWriter, r *http.Request) error {
		id, err := chunk.ParseID(r.PathValue("id"))
		if err != nil {
			return fmt.Errorf("%v: %w", err, meta.ErrInvalid)
		}
		size, err := strconv.ParseUint(r.URL.Query().Get("size"), 10, 32)
		if err != nil {
			return fmt.Errorf("chunk %s: size %q: want the chunk's length in bytes: %w", id, r.URL.Query().Get("size"), meta.ErrInvalid)
		}
		data, err := s.st.Chunks.Get(r.Context(), chunk.Ref{ID: id, Size: uint32(size)})
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Header().Set("ETag", `"`+id.String()+`"`)
		immutable(w)
		if r.Method != http.MethodHead {
			w.Write(data)
		}
		return nil
	})
}
