package meta

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Commit states.
const (
	StateOpen     = "open"
	StateFinished = "finished"
	// StateFailed marks a finished commit whose producer (a pipeline job)
	// failed; downstream pipelines do not run on it.
	StateFailed = "failed"
)

// CommitRef names a commit in a repo.
type CommitRef struct {
	Repo string `json:"repo"`
	ID   string `json:"id"`
}

func (r CommitRef) String() string { return r.Repo + "@" + r.ID }

// Origin says who made a commit.
type Origin struct {
	Kind string `json:"kind"` // "user" or "pipeline"
	Name string `json:"name,omitempty"`
}

// Commit is a snapshot of a repo's tree.
type Commit struct {
	Repo       string      `json:"repo"`
	ID         string      `json:"id"`
	Seq        uint64      `json:"seq"`
	Branch     string      `json:"branch,omitempty"` // branch it was started on
	Parent     string      `json:"parent,omitempty"`
	State      string      `json:"state"`
	Message    string      `json:"message,omitempty"`
	Error      string      `json:"error,omitempty"`
	Origin     Origin      `json:"origin"`
	Provenance []CommitRef `json:"provenance,omitempty"`
	// Spec names the pipeline spec version that made an output commit
	// ("edges@3").
	Spec     string     `json:"spec,omitempty"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	Root     Hash       `json:"root"`
	Size     int64      `json:"size"`
	Files    int64      `json:"files"`
}

// CommitOptions describe a new commit.
type CommitOptions struct {
	Message    string
	Origin     Origin
	Provenance []CommitRef
	Spec       string
}

func newCommitID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

func isNotExist(err error) bool { return errors.Is(err, ErrNotExist) }

// Commit returns a commit by full ID.
func (db *DB) Commit(repo, id string) (*Commit, error) {
	if id == "" {
		return nil, fmt.Errorf("commit in repo %q: no ID: %w", repo, ErrNotExist)
	}
	var c Commit
	if err := db.getJSON(key(famCommit, repo, id), &c); err != nil {
		return nil, fmt.Errorf("commit %s@%s: %w", repo, id, err)
	}
	return &c, nil
}

// Resolve turns a ref into a commit. ref is a branch name, a commit ID or a
// unique prefix of one (at least 4 hex digits), optionally followed by ^N
// (or ~N): the N-th ancestor. A bare ^ means ^1.
func (db *DB) Resolve(repo, ref string) (*Commit, error) {
	return db.resolve(repo, ref, false)
}

// ResolveFinished resolves ref for reading: like Resolve, except that a
// branch whose head is an open commit stands for the newest finished commit
// before it, so readers never see a half-written commit. An open commit
// named by its ID is still returned (the caller asked for it).
func (db *DB) ResolveFinished(repo, ref string) (*Commit, error) {
	return db.resolve(repo, ref, true)
}

func (db *DB) resolve(repo, ref string, finished bool) (*Commit, error) {
	if _, err := db.Repo(repo); err != nil {
		return nil, err
	}
	base, n, err := splitAncestor(ref)
	if err != nil {
		return nil, err
	}
	var c *Commit
	if br, err := db.Branch(repo, base); err == nil {
		if br.Head == "" {
			return nil, fmt.Errorf("branch %s@%s has no commits: %w", repo, base, ErrNotExist)
		}
		if c, err = db.Commit(repo, br.Head); err != nil {
			return nil, err
		}
		if finished && c.State == StateOpen {
			if c.Parent == "" {
				return nil, fmt.Errorf("branch %s@%s has no finished commits yet (commit %s is open): %w", repo, base, c.ID, ErrNotExist)
			}
			if c, err = db.Commit(repo, c.Parent); err != nil {
				return nil, err
			}
		}
	} else if !isNotExist(err) {
		return nil, err
	} else if c, err = db.commitByPrefix(repo, base); err != nil {
		return nil, err
	}
	for i := 0; i < n; i++ {
		if c.Parent == "" {
			return nil, fmt.Errorf("%s@%s: history has only %d commits before it: %w", repo, ref, i, ErrNotExist)
		}
		if c, err = db.Commit(repo, c.Parent); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func splitAncestor(ref string) (string, int, error) {
	i := strings.IndexAny(ref, "^~")
	if i < 0 {
		return ref, 0, nil
	}
	base, rest := ref[:i], ref[i:]
	n := 0
	for rest != "" {
		j := strings.IndexAny(rest[1:], "^~") + 1
		if j == 0 {
			j = len(rest)
		}
		tok := rest[1:j]
		k := 1
		if tok != "" {
			v, err := strconv.Atoi(tok)
			if err != nil || v < 0 {
				return "", 0, fmt.Errorf("ref %q: bad ancestor %q: %w", ref, rest[:j], ErrInvalid)
			}
			k = v
		}
		n += k
		rest = rest[j:]
	}
	if base == "" {
		return "", 0, fmt.Errorf("ref %q: missing branch or commit before %q: %w", ref, ref[i:], ErrInvalid)
	}
	return base, n, nil
}

func (db *DB) commitByPrefix(repo, prefix string) (*Commit, error) {
	if len(prefix) < 4 || strings.Trim(prefix, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("no branch or commit %q in repo %q: %w", prefix, repo, ErrNotExist)
	}
	var found []*Commit
	err := db.scan(key(famCommit, repo, prefix), false, func(_, v []byte) (bool, error) {
		var c Commit
		if err := json.Unmarshal(v, &c); err != nil {
			return false, err
		}
		found = append(found, &c)
		return len(found) < 2, nil
	})
	if err != nil {
		return nil, err
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no branch or commit %q in repo %q: %w", prefix, repo, ErrNotExist)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("commit prefix %q in repo %q matches %s and %s at least; give more digits: %w",
		prefix, repo, found[0].ID, found[1].ID, ErrAmbiguous)
}

// Commits lists a repo's commits, newest first. With branch set, only the
// branch's history (head, parent, ...). limit <= 0 means all.
func (db *DB) Commits(repo, branch string, limit int) ([]*Commit, error) {
	if _, err := db.Repo(repo); err != nil {
		return nil, err
	}
	var out []*Commit
	if branch != "" {
		br, err := db.Branch(repo, branch)
		if err != nil {
			return nil, err
		}
		for id := br.Head; id != "" && (limit <= 0 || len(out) < limit); {
			c, err := db.Commit(repo, id)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
			id = c.Parent
		}
		return out, nil
	}
	err := db.scan(append(key(famSeq, repo), 0), true, func(_, v []byte) (bool, error) {
		c, err := db.Commit(repo, string(v))
		if err != nil {
			return false, err
		}
		out = append(out, c)
		return limit <= 0 || len(out) < limit, nil
	})
	return out, err
}

// AllCommits calls fn for every commit of every repo.
func (db *DB) AllCommits(fn func(*Commit) error) error {
	return db.scan([]byte{famCommit}, false, func(_, v []byte) (bool, error) {
		var c Commit
		if err := json.Unmarshal(v, &c); err != nil {
			return false, err
		}
		return true, fn(&c)
	})
}

// StartCommit opens a commit on a branch, starting from the branch's head.
// A branch can have one open commit at a time.
func (db *DB) StartCommit(repo, branch string, o CommitOptions) (*Commit, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	c, b, err := db.startLocked(repo, branch, o)
	if err != nil {
		return nil, err
	}
	return c, db.commit(b)
}

func (db *DB) startLocked(repo, branch string, o CommitOptions) (*Commit, *pebble.Batch, error) {
	r, err := db.Repo(repo)
	if err != nil {
		return nil, nil, err
	}
	br, err := db.Branch(repo, branch)
	if err != nil {
		return nil, nil, err
	}
	root := EmptyTree
	var size, files int64
	if br.Head != "" {
		head, err := db.Commit(repo, br.Head)
		if err != nil {
			return nil, nil, err
		}
		if head.State == StateOpen {
			return nil, nil, fmt.Errorf("branch %s@%s already has open commit %s; finish it with 'strata commit finish %s@%s' or delete it: %w",
				repo, branch, head.ID, repo, branch, ErrConflict)
		}
		root, size, files = head.Root, head.Size, head.Files
	}
	if o.Origin.Kind == "" {
		o.Origin.Kind = "user"
	}
	c := &Commit{
		Repo: repo, ID: newCommitID(), Seq: r.NextSeq, Branch: branch, Parent: br.Head,
		State: StateOpen, Message: o.Message, Origin: o.Origin, Provenance: o.Provenance, Spec: o.Spec,
		Started: time.Now().UTC(), Root: root, Size: size, Files: files,
	}
	r.NextSeq++
	br.Head = c.ID
	b := db.pdb.NewBatch()
	setJSON(b, key(famRepo, repo), r)
	setJSON(b, key(famBranch, repo, branch), br)
	setJSON(b, key(famCommit, repo, c.ID), c)
	b.Set(seqKey(repo, c.Seq), []byte(c.ID), nil)
	return c, b, nil
}

// applyLocked applies changes to an open commit, staging everything in b.
func (db *DB) applyLocked(c *Commit, cs []Change, b *pebble.Batch) (int, error) {
	if c.State != StateOpen {
		return 0, fmt.Errorf("commit %s@%s is %s; only open commits can change: %w", c.Repo, c.ID, c.State, ErrConflict)
	}
	w := &treeWriter{db: db, b: b, nodes: make(map[Hash]*node)}
	root, err := w.applyChanges(c.Root, cs)
	if err != nil {
		return 0, err
	}
	n, err := w.get(root)
	if err != nil {
		return 0, err
	}
	c.Root = root
	c.Size, c.Files = nodeStats(n)
	setJSON(b, key(famCommit, c.Repo, c.ID), c)
	for h, n := range w.nodes {
		db.nodes.add(h, n)
	}
	return w.bytes, nil
}

// Apply applies changes to the open commit named by ref (a branch with an
// open head, or an open commit's ID), in one atomic, synced batch.
func (db *DB) Apply(repo, ref string, cs []Change) (*Commit, error) {
	return db.apply(repo, ref, cs, pebble.Sync)
}

// ApplyNoSync is Apply without waiting for the disk: the batch is written
// to the database's log but not synced, so a crash may lose it (whole,
// never in part: a batch is atomic). The log is written in order, so the
// next synced write (any other commit's, FinishCommit, or Sync) makes it
// durable too. Chunks the changes refer to must be durable before that
// synced write; as for Apply, small chunks are (they are in the same log).
func (db *DB) ApplyNoSync(repo, ref string, cs []Change) (*Commit, error) {
	return db.apply(repo, ref, cs, pebble.NoSync)
}

func (db *DB) apply(repo, ref string, cs []Change, wo *pebble.WriteOptions) (*Commit, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	c, err := db.Resolve(repo, ref)
	if err != nil {
		return nil, err
	}
	b := db.pdb.NewBatch()
	if _, err := db.applyLocked(c, cs, b); err != nil {
		return nil, err
	}
	if err := b.Commit(wo); err != nil {
		return nil, fmt.Errorf("write metadata: %w", err)
	}
	db.notify()
	return c, nil
}

// Sync makes every earlier write to the database durable, such as those
// of ApplyNoSync.
func (db *DB) Sync() error {
	if err := db.pdb.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("sync metadata: %w", err)
	}
	return nil
}

// WriteResult reports what Write did.
type WriteResult struct {
	Commit *Commit `json:"commit"`
	// OneOff is true when the write made and finished its own commit.
	OneOff bool `json:"one_off"`
	// NodeBytes counts the tree metadata the write added.
	NodeBytes int `json:"node_bytes"`
}

// Write applies changes to a branch: into its open commit if it has one,
// otherwise as a new commit that is started and finished in the same
// atomic batch, so readers see all of the changes or none.
func (db *DB) Write(repo, branch string, cs []Change, o CommitOptions) (*WriteResult, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	br, err := db.Branch(repo, branch)
	if err != nil {
		return nil, err
	}
	if br.Head != "" {
		head, err := db.Commit(repo, br.Head)
		if err != nil {
			return nil, err
		}
		if head.State == StateOpen {
			b := db.pdb.NewBatch()
			n, err := db.applyLocked(head, cs, b)
			if err != nil {
				return nil, err
			}
			return &WriteResult{Commit: head, NodeBytes: n}, db.commit(b)
		}
	}
	c, b, err := db.startLocked(repo, branch, o)
	if err != nil {
		return nil, err
	}
	n, err := db.applyLocked(c, cs, b)
	if err != nil {
		return nil, err
	}
	finish(c, "")
	setJSON(b, key(famCommit, repo, c.ID), c)
	return &WriteResult{Commit: c, OneOff: true, NodeBytes: n}, db.commit(b)
}

func finish(c *Commit, failure string) {
	now := time.Now().UTC()
	c.Finished = &now
	c.State = StateFinished
	if failure != "" {
		c.State = StateFailed
		c.Error = failure
	}
}

// FinishCommit seals an open commit. With failure set, it is finished as
// failed with that reason. Finishing a finished commit is ErrConflict.
func (db *DB) FinishCommit(repo, ref, failure string) (*Commit, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	c, err := db.Resolve(repo, ref)
	if err != nil {
		return nil, err
	}
	if c.State != StateOpen {
		return nil, fmt.Errorf("commit %s@%s is already %s: %w", repo, c.ID, c.State, ErrConflict)
	}
	finish(c, failure)
	b := db.pdb.NewBatch()
	setJSON(b, key(famCommit, repo, c.ID), c)
	return c, db.commit(b)
}

// DeleteCommit removes a commit that is the head of its branch and has no
// children: an open commit is aborted, a finished head is dropped. The
// branches that pointed at it move back to its parent.
func (db *DB) DeleteCommit(repo, ref string) (*Commit, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	c, err := db.Resolve(repo, ref)
	if err != nil {
		return nil, err
	}
	hasChild := false
	if err := db.AllCommits(func(o *Commit) error {
		if o.Repo == repo && o.Parent == c.ID {
			hasChild = true
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if hasChild {
		return nil, fmt.Errorf("commit %s@%s has later commits; move the branch back with 'strata branch create %s@BRANCH --head %s^1' instead: %w",
			repo, c.ID, repo, c.ID, ErrConflict)
	}
	brs, err := db.Branches(repo)
	if err != nil {
		return nil, err
	}
	b := db.pdb.NewBatch()
	for _, br := range brs {
		if br.Head == c.ID {
			br.Head = c.Parent
			setJSON(b, key(famBranch, repo, br.Name), br)
		}
	}
	b.Delete(key(famCommit, repo, c.ID), nil)
	b.Delete(seqKey(repo, c.Seq), nil)
	return c, db.commit(b)
}
