package view

import (
	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/store"
)

// Source is what the tree reads: repos, branches and commits, tree nodes
// and chunks. StoreSource reads a store in this process (the daemon's own
// /pfs); package fs/view/remote reads a daemon's API (a mount in another
// process or on another machine). Errors wrap the sentinels of package meta
// (fs.ErrNotExist for anything missing). Implementations must be safe for
// concurrent use.
type Source interface {
	Repo(name string) (*meta.Repo, error)
	// Repos lists every repo by name.
	Repos() ([]*meta.Repo, error)
	Branch(repo, name string) (*meta.Branch, error)
	// Branches lists a repo's branches by name.
	Branches(repo string) ([]*meta.Branch, error)
	// Commit returns a commit by full ID.
	Commit(repo, id string) (*meta.Commit, error)
	// ResolveFinished resolves a ref (branch, ID or prefix, ^N) for
	// reading: a branch whose head is open stands for its newest finished
	// commit (see meta.DB.ResolveFinished).
	ResolveFinished(repo, ref string) (*meta.Commit, error)
	// Commits lists a repo's commits newest first (limit <= 0: all).
	Commits(repo, branch string, limit int) ([]*meta.Commit, error)
	// Lookup returns the entry at the clean path p below the directory
	// node root; "/" is root itself.
	Lookup(root meta.Hash, p string) (*meta.Entry, error)
	// ReadDir returns the entries of the directory node h, sorted by name.
	ReadDir(h meta.Hash) ([]meta.Entry, error)
	// Refs returns a file entry's chunk refs (metadata only).
	Refs(e *meta.Entry) ([]chunk.Ref, error)
	// ContentHash identifies a file's content: entries with equal content
	// have equal hashes.
	ContentHash(e *meta.Entry) (meta.Hash, error)
	// Chunks fetches whole chunks, verified against their IDs; files are
	// read through chunk.NewReaderFrom over it.
	Chunks() chunk.Getter
}

// StoreSource is the Source of a store in this process: its metadata and
// chunk store, called directly.
func StoreSource(st *store.Store) Source { return storeSource{st.Meta, st.Chunks} }

type storeSource struct {
	db     *meta.DB
	chunks *chunk.Store
}

func (s storeSource) Repo(name string) (*meta.Repo, error)           { return s.db.Repo(name) }
func (s storeSource) Repos() ([]*meta.Repo, error)                   { return s.db.Repos() }
func (s storeSource) Branch(repo, name string) (*meta.Branch, error) { return s.db.Branch(repo, name) }
func (s storeSource) Branches(repo string) ([]*meta.Branch, error)   { return s.db.Branches(repo) }
func (s storeSource) Commit(repo, id string) (*meta.Commit, error)   { return s.db.Commit(repo, id) }
func (s storeSource) ResolveFinished(repo, ref string) (*meta.Commit, error) {
	return s.db.ResolveFinished(repo, ref)
}
func (s storeSource) Commits(repo, branch string, limit int) ([]*meta.Commit, error) {
	return s.db.Commits(repo, branch, limit)
}
func (s storeSource) Lookup(root meta.Hash, p string) (*meta.Entry, error) {
	return s.db.Lookup(root, p)
}
func (s storeSource) ReadDir(h meta.Hash) ([]meta.Entry, error)    { return s.db.ReadDir(h) }
func (s storeSource) Refs(e *meta.Entry) ([]chunk.Ref, error)      { return s.db.Refs(e) }
func (s storeSource) ContentHash(e *meta.Entry) (meta.Hash, error) { return s.db.ContentHash(e) }
func (s storeSource) Chunks() chunk.Getter                         { return s.chunks }
