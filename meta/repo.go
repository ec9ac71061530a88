package meta

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

// Repo is a named, versioned tree of files.
type Repo struct {
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
	// Pipeline names the pipeline that owns this repo as its output, if any.
	Pipeline string `json:"pipeline,omitempty"`
	// NextSeq numbers the repo's commits in creation order.
	NextSeq uint64 `json:"next_seq"`
}

// Branch is a movable name for a commit.
type Branch struct {
	Repo    string    `json:"repo"`
	Name    string    `json:"name"`
	Head    string    `json:"head,omitempty"` // commit ID; empty for a branch with no commits
	Created time.Time `json:"created"`
}

// DefaultBranch is the branch commits go to when none is named.
const DefaultBranch = "main"

// CreateRepo makes an empty repo with a "main" branch.
func (db *DB) CreateRepo(name, description, pipeline string) (*Repo, error) {
	if err := ValidName("repo", name); err != nil {
		return nil, err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if _, err := db.get(key(famRepo, name)); err == nil {
		return nil, fmt.Errorf("repo %q: %w", name, ErrExist)
	}
	now := time.Now().UTC()
	r := &Repo{Name: name, Description: description, Created: now, Pipeline: pipeline}
	b := db.pdb.NewBatch()
	setJSON(b, key(famRepo, name), r)
	setJSON(b, key(famBranch, name, DefaultBranch), &Branch{Repo: name, Name: DefaultBranch, Created: now})
	return r, db.commit(b)
}

// Repo returns the repo called name.
func (db *DB) Repo(name string) (*Repo, error) {
	var r Repo
	if err := db.getJSON(key(famRepo, name), &r); err != nil {
		return nil, fmt.Errorf("repo %q: %w", name, err)
	}
	return &r, nil
}

// Repos lists every repo by name.
func (db *DB) Repos() ([]*Repo, error) {
	var out []*Repo
	err := db.scan([]byte{famRepo}, false, func(_, v []byte) (bool, error) {
		var r Repo
		if err := json.Unmarshal(v, &r); err != nil {
			return false, err
		}
		out = append(out, &r)
		return true, nil
	})
	return out, err
}

// DeleteRepo removes a repo with its branches and commits. A repo that has
// commits is only deleted with force. Tree nodes and chunks are left for
// garbage collection.
func (db *DB) DeleteRepo(name string, force bool) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if _, err := db.Repo(name); err != nil {
		return err
	}
	if n, err := db.CommitCount(name); err != nil {
		return err
	} else if n > 0 && !force {
		return fmt.Errorf("repo %q has %d commits; delete it with --force: %w", name, n, ErrConflict)
	}
	b := db.pdb.NewBatch()
	b.Delete(key(famRepo, name), nil)
	for _, fam := range []byte{famBranch, famCommit, famSeq} {
		p := append(key(fam, name), 0)
		b.DeleteRange(p, prefixEnd(p), nil)
	}
	return db.commit(b)
}

// Branches lists a repo's branches by name.
func (db *DB) Branches(repo string) ([]*Branch, error) {
	if _, err := db.Repo(repo); err != nil {
		return nil, err
	}
	var out []*Branch
	err := db.scan(append(key(famBranch, repo), 0), false, func(_, v []byte) (bool, error) {
		var br Branch
		if err := json.Unmarshal(v, &br); err != nil {
			return false, err
		}
		out = append(out, &br)
		return true, nil
	})
	return out, err
}

// Branch returns one branch.
func (db *DB) Branch(repo, name string) (*Branch, error) {
	if _, err := db.Repo(repo); err != nil {
		return nil, err
	}
	var br Branch
	if err := db.getJSON(key(famBranch, repo, name), &br); err != nil {
		return nil, fmt.Errorf("branch %s@%s: %w", repo, name, err)
	}
	return &br, nil
}

// SetBranch creates a branch or moves it to head (a ref resolved in the
// same repo; "" creates an empty branch). Moving a branch to an older
// commit is how a revert is done. A branch with an open commit cannot be
// moved until that commit is finished or deleted.
func (db *DB) SetBranch(repo, name, head string) (*Branch, error) {
	if err := ValidName("branch", name); err != nil {
		return nil, err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if _, err := db.Repo(repo); err != nil {
		return nil, err
	}
	var headID string
	if head != "" {
		c, err := db.Resolve(repo, head)
		if err != nil {
			return nil, err
		}
		if c.State == StateOpen {
			return nil, fmt.Errorf("commit %s is open; finish it before pointing a branch at it: %w", c.ID, ErrConflict)
		}
		headID = c.ID
	}
	br, err := db.Branch(repo, name)
	switch {
	case err == nil && head == "":
		return nil, fmt.Errorf("branch %s@%s already exists; give a head commit to move it: %w", repo, name, ErrExist)
	case err == nil:
		if cur, err := db.Commit(repo, br.Head); err == nil && cur.State == StateOpen {
			return nil, fmt.Errorf("branch %s@%s has open commit %s; finish or delete it first: %w", repo, name, cur.ID, ErrConflict)
		}
	case isNotExist(err):
		br = &Branch{Repo: repo, Name: name, Created: time.Now().UTC()}
	default:
		return nil, err
	}
	br.Head = headID
	b := db.pdb.NewBatch()
	setJSON(b, key(famBranch, repo, name), br)
	return br, db.commit(b)
}

// DeleteBranch removes a branch (its commits stay reachable by ID).
func (db *DB) DeleteBranch(repo, name string) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	br, err := db.Branch(repo, name)
	if err != nil {
		return err
	}
	if c, err := db.Commit(repo, br.Head); err == nil && c.State == StateOpen {
		return fmt.Errorf("branch %s@%s has open commit %s; finish or delete it first: %w", repo, name, c.ID, ErrConflict)
	}
	b := db.pdb.NewBatch()
	b.Delete(key(famBranch, repo, name), nil)
	return db.commit(b)
}

// CommitCount counts a repo's commits.
func (db *DB) CommitCount(repo string) (int, error) {
	n := 0
	err := db.scan(append(key(famSeq, repo), 0), false, func(_, _ []byte) (bool, error) {
		n++
		return true, nil
	})
	return n, err
}

func seqKey(repo string, seq uint64) []byte {
	k := append(key(famSeq, repo), 0)
	return binary.BigEndian.AppendUint64(k, seq)
}
