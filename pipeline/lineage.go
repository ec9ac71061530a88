package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/meta"
)

// Lineage says which job and datum of which pipeline wrote repo@ref:path,
// from which input files and commits, recursively up the DAG.
func (c *Controller) Lineage(ctx context.Context, repo, ref, path string) (*api.Lineage, error) {
	p, err := meta.CleanPath(path)
	if err != nil {
		return nil, err
	}
	cm, err := c.db.ResolveFinished(repo, ref)
	if err != nil {
		return nil, err
	}
	if _, err := c.db.Lookup(cm.Root, p); err != nil {
		return nil, fmt.Errorf("%s@%s:%s: %w", repo, cm.ID, p, err)
	}
	return c.lineage(ctx, repo, cm.ID, p, 0)
}

func (c *Controller) lineage(ctx context.Context, repo, commit, path string, depth int) (*api.Lineage, error) {
	l := &api.Lineage{Repo: repo, Commit: commit, Path: path}
	if depth > 64 || ctx.Err() != nil {
		return l, ctx.Err()
	}
	cm, err := c.db.Commit(repo, commit)
	if err != nil {
		return nil, err
	}
	if cm.Origin.Kind != "pipeline" {
		return l, nil // an input repo: the end of the line
	}
	j, err := c.job(commit)
	if errors.Is(err, meta.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, err
	}
	l.Pipeline, l.Job, l.Spec = j.Pipeline, j.ID, cm.Spec
	// The datum whose output holds path (a file); for a directory, the
	// job's inputs as a whole.
	var found *api.Datum
	if e, err := c.db.Lookup(cm.Root, path); err == nil && !e.IsDir() {
		err := c.db.ScanRecords(nsDatum, j.ID+"/", false, func(_ string, raw []byte) (bool, error) {
			var d api.Datum
			if err := json.Unmarshal(raw, &d); err != nil {
				return false, err
			}
			if d.Output.IsZero() {
				return true, nil
			}
			if _, err := c.db.Lookup(d.Output, path); err == nil {
				found = &d
				return false, nil
			}
			return true, nil
		})
		if err != nil {
			return nil, err
		}
	}
	if found != nil {
		l.Datum, l.Inputs = found.ID, found.Inputs
	} else {
		for _, in := range j.Inputs {
			l.Inputs = append(l.Inputs, api.DatumFile{Input: in.Name, Repo: in.Repo, Commit: in.Commit, Path: "/"})
		}
	}
	for _, in := range l.Inputs {
		up, err := c.lineage(ctx, in.Repo, in.Commit, in.Path, depth+1)
		if err != nil {
			return nil, err
		}
		if up.Pipeline != "" {
			l.Upstream = append(l.Upstream, up)
		}
	}
	return l, nil
}
