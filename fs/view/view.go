package view

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/store"
)

// HistoryDir is the hidden root directory that holds each repo's commits.
const HistoryDir = ".commits"

// DefaultIdle is how long a Writer waits without writes before it finishes
// the open commit it wrote to.
const DefaultIdle = 30 * time.Second

// Options tune New.
type Options struct {
	// Idle is how long a branch may go without writes through this FS
	// before its open commit is finished. 0 means DefaultIdle; a negative
	// value never finishes on idle.
	Idle time.Duration
	// TmpDir holds drafts that cannot be streamed. Default DATA/tmp.
	TmpDir string
	// Origin and Message describe the commits that writes start.
	Origin  meta.Origin
	Message string
	Log     *slog.Logger
}

// FS is the /pfs tree over a Source. It implements fs.FS, fs.ReadDirFS and
// fs.StatFS (see iofs.go) and is safe for concurrent use. An FS made by New
// reads and writes a store in this process; one made by NewReadOnly reads
// any Source and takes no writes.
type FS struct {
	src     Source
	st      *store.Store // nil when read-only
	db      *meta.DB     // writes only; nil when read-only
	o       Options
	created time.Time

	mu      sync.Mutex
	writers map[string]*Writer // by repo@branch
	closed  bool
}

// New returns the tree of st, writable.
func New(st *store.Store, o Options) *FS {
	if o.TmpDir == "" {
		o.TmpDir = filepath.Join(st.Dir(), "tmp")
	}
	v := newFS(StoreSource(st), o)
	v.st, v.db = st, st.Meta
	return v
}

// NewReadOnly returns the tree of src, read-only: every Ref it resolves is
// read-only and Writer fails with an error wrapping fs.ErrPermission. A
// branch view still shows what a writable one would (the branch's open
// commit, if any), so every mount of one daemon shows the same thing.
func NewReadOnly(src Source, o Options) *FS { return newFS(src, o) }

func newFS(src Source, o Options) *FS {
	if o.Idle == 0 {
		o.Idle = DefaultIdle
	}
	if o.Origin.Kind == "" {
		o.Origin = meta.Origin{Kind: "user", Name: "pfs"}
	}
	if o.Message == "" {
		o.Message = "written through /pfs"
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &FS{src: src, o: o, created: time.Now().UTC(), writers: make(map[string]*Writer)}
}

// ReadOnly reports whether the tree takes no writes (see NewReadOnly).
func (v *FS) ReadOnly() bool { return v.st == nil }

// Source is what the tree reads.
func (v *FS) Source() Source { return v.src }

// NewReader returns a reader of the file made of refs; it fetches only the
// chunks a read covers, and the next ones of a sequential read.
func (v *FS) NewReader(ctx context.Context, refs []chunk.Ref) *chunk.Reader {
	if v.st != nil {
		return v.st.Chunks.NewReader(ctx, refs)
	}
	return chunk.NewReaderFrom(ctx, v.src.Chunks(), refs)
}

// Idle is the period after which a Writer finishes its commit (< 0: never).
func (v *FS) Idle() time.Duration { return v.o.Idle }

// Store returns the store the tree shows; nil for a read-only tree.
func (v *FS) Store() *store.Store { return v.st }

// Created is when the FS was made; it is the root directory's mtime.
func (v *FS) Created() time.Time { return v.created }

// Kind says how what a name shows can change.
type Kind uint8

const (
	// Branch follows a branch (REPO, REPO@BRANCH).
	Branch Kind = iota + 1
	// Ancestor is a finished ancestor of a branch (REPO@BRANCH^N): the
	// commit never changes, the name moves with the branch.
	Ancestor
	// Commit is one commit, named by ID or prefix.
	Commit
)

func (k Kind) String() string {
	switch k {
	case Branch:
		return "branch"
	case Ancestor:
		return "ancestor"
	case Commit:
		return "commit"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Ref is what a name resolves to at one moment.
type Ref struct {
	Name   string // the name as looked up
	Kind   Kind
	Repo   string
	Branch string // for Branch and Ancestor refs
	// Commit is what the name shows now; nil for a branch with no commits
	// yet (an empty directory).
	Commit *meta.Commit
	// Pipeline names the pipeline that owns the repo, if any; its branches
	// are read-only.
	Pipeline string
	// ReadOnly: the ref belongs to a read-only tree (see NewReadOnly).
	ReadOnly bool
}

// Writable reports whether writes under the name go into a commit.
func (r *Ref) Writable() bool { return r.Kind == Branch && r.Pipeline == "" && !r.ReadOnly }

// Pinned reports whether what the ref shows can never change: a finished
// commit. (The name may still move, see Moves.)
func (r *Ref) Pinned() bool {
	return r.Kind != Branch && r.Commit != nil && r.Commit.State != meta.StateOpen
}

// Moves reports whether the name can resolve to a different commit later.
func (r *Ref) Moves() bool { return r.Kind != Commit }

// Root is the tree the ref shows.
func (r *Ref) Root() meta.Hash {
	if r.Commit == nil {
		return meta.EmptyTree
	}
	return r.Commit.Root
}

// ModTime is the time of every entry the ref shows: the commit's finish
// time, or for an open commit its start time.
func (r *Ref) ModTime() time.Time { return commitTime(r.Commit) }

func commitTime(c *meta.Commit) time.Time {
	switch {
	case c == nil:
		return time.Unix(0, 0).UTC()
	case c.Finished != nil:
		return *c.Finished
	}
	return c.Started
}

// Resolve resolves a top-level name of /pfs (not HistoryDir).
func (v *FS) Resolve(name string) (*Ref, error) {
	repo, ref, hasAt := strings.Cut(name, "@")
	if repo == "" || hasAt && ref == "" || strings.ContainsAny(name, "/\x00") {
		return nil, fmt.Errorf("%q is not REPO, REPO@BRANCH or REPO@COMMIT: %w", name, fs.ErrNotExist)
	}
	r, err := v.src.Repo(repo)
	if err != nil {
		return nil, err
	}
	if !hasAt {
		ref = meta.DefaultBranch
	}
	base, _, _ := strings.Cut(strings.ReplaceAll(ref, "~", "^"), "^")
	out := &Ref{Name: name, Repo: repo, Pipeline: r.Pipeline, ReadOnly: v.ReadOnly()}
	switch _, err := v.src.Branch(repo, base); {
	case err == nil && base == ref:
		out.Kind, out.Branch = Branch, base
		out.Commit, err = v.current(repo, base, r.Pipeline != "")
		if err != nil {
			return nil, err
		}
		return out, nil
	case err == nil:
		out.Kind, out.Branch = Ancestor, base
	case errors.Is(err, fs.ErrNotExist):
		out.Kind = Commit
	default:
		return nil, err
	}
	if out.Commit, err = v.src.ResolveFinished(repo, ref); err != nil {
		return nil, err
	}
	return out, nil
}

// Current returns what r shows now: for a Branch ref the branch's current
// commit, for an open commit its latest state, otherwise r.Commit.
func (v *FS) Current(r *Ref) (*meta.Commit, error) {
	switch {
	case r.Kind == Branch:
		return v.current(r.Repo, r.Branch, r.Pipeline != "")
	case r.Commit != nil && r.Commit.State == meta.StateOpen:
		return v.src.Commit(r.Repo, r.Commit.ID)
	}
	return r.Commit, nil
}

// current is the commit a branch view shows: the open head of a writable
// branch (readers see the writes), else the newest finished commit.
func (v *FS) current(repo, branch string, readOnly bool) (*meta.Commit, error) {
	br, err := v.src.Branch(repo, branch)
	if err != nil {
		return nil, err
	}
	if br.Head == "" {
		return nil, nil
	}
	c, err := v.src.Commit(repo, br.Head)
	if err != nil {
		return nil, err
	}
	if c.State == meta.StateOpen && readOnly {
		c, err = v.src.ResolveFinished(repo, branch)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil // only an open commit so far
		}
	}
	return c, err
}

// Tops lists the root: every repo (as REPO, its default branch) and every
// REPO@BRANCH, sorted by name.
func (v *FS) Tops() ([]*Ref, error) {
	repos, err := v.src.Repos()
	if err != nil {
		return nil, err
	}
	var out []*Ref
	for _, r := range repos {
		brs, err := v.src.Branches(r.Name)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted while we listed
		} else if err != nil {
			return nil, err
		}
		for _, br := range brs {
			c, err := v.current(r.Name, br.Name, r.Pipeline != "")
			if errors.Is(err, fs.ErrNotExist) {
				continue
			} else if err != nil {
				return nil, err
			}
			ref := &Ref{Name: r.Name + "@" + br.Name, Kind: Branch, Repo: r.Name, Branch: br.Name, Commit: c, Pipeline: r.Pipeline, ReadOnly: v.ReadOnly()}
			out = append(out, ref)
			if br.Name == meta.DefaultBranch {
				def := *ref
				def.Name = r.Name
				out = append(out, &def)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Repo returns a repo (an entry of HistoryDir).
func (v *FS) Repo(name string) (*meta.Repo, error) { return v.src.Repo(name) }

// Repos lists the repos by name (the entries of HistoryDir).
func (v *FS) Repos() ([]*meta.Repo, error) { return v.src.Repos() }

// History lists a repo's finished commits (failed ones too), newest first.
func (v *FS) History(repo string) ([]*meta.Commit, error) {
	cs, err := v.src.Commits(repo, "", 0)
	if err != nil {
		return nil, err
	}
	out := cs[:0]
	for _, c := range cs {
		if c.State != meta.StateOpen {
			out = append(out, c)
		}
	}
	return out, nil
}

// ResolveCommit resolves an entry of HistoryDir/REPO: a commit by full ID
// or unique prefix, never a branch.
func (v *FS) ResolveCommit(repo, id string) (*Ref, error) {
	r, err := v.src.Repo(repo)
	if err != nil {
		return nil, err
	}
	if strings.ContainsAny(id, "^~@/") {
		return nil, fmt.Errorf("%s/%s/%s: only commit IDs: %w", HistoryDir, repo, id, fs.ErrNotExist)
	}
	c, err := v.src.ResolveFinished(repo, id)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(c.ID, id) {
		// id named a branch.
		return nil, fmt.Errorf("%s/%s/%s: no commit %q: %w", HistoryDir, repo, id, id, fs.ErrNotExist)
	}
	return &Ref{Name: HistoryDir + "/" + repo + "/" + id, Kind: Commit, Repo: repo, Commit: c, Pipeline: r.Pipeline, ReadOnly: v.ReadOnly()}, nil
}

// Lookup returns the entry at path p (clean, see meta.CleanPath) of what
// ref shows now. The root is a directory entry named "".
func (v *FS) Lookup(r *Ref, p string) (*meta.Entry, error) {
	e, err := v.LookupTree(r.Root(), p)
	if err != nil {
		return nil, fmt.Errorf("%s:%w", r.Name, err)
	}
	return e, nil
}

// LookupTree returns the entry at path p of the tree rooted at root.
func (v *FS) LookupTree(root meta.Hash, p string) (*meta.Entry, error) {
	if root == meta.EmptyTree {
		// The empty tree need not be stored: a branch's first commit
		// starts from it.
		if p != "/" {
			return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
		}
		return &meta.Entry{Type: meta.TypeDir, Mode: 0o755, Tree: root}, nil
	}
	e, err := v.src.Lookup(root, p)
	if err != nil {
		return nil, err
	}
	if p == "/" {
		e.Mode = 0o755
	}
	return e, nil
}

// ReadTree returns the entries of the directory with tree hash h, sorted
// by name.
func (v *FS) ReadTree(h meta.Hash) ([]meta.Entry, error) {
	if h == meta.EmptyTree {
		return nil, nil
	}
	return v.src.ReadDir(h)
}
