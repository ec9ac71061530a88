package datum

import (
	"fmt"
	"strings"

	"github.com/strata-data/strata/meta"
)

// OutDir is the name of the writable output directory in a datum's view.
const OutDir = "out"

// View builds the tree a datum's container sees under /pfs: for each
// input, a directory holding only the datum's files of that input at their
// paths ("images" and "/b1/x.png" give "/images/b1/x.png"; the path "/"
// makes "/images" the whole commit root), and an empty directory "out".
func View(db *meta.DB, d *Datum) (meta.Hash, error) {
	cs, err := viewChanges(d)
	if err != nil {
		return meta.Hash{}, err
	}
	return db.BuildTree(cs)
}

// viewChanges lists the changes that build a datum's view. Files are
// sorted by (Input, Path), so a directory comes before the paths below it
// and later puts land inside it.
func viewChanges(d *Datum) ([]meta.Change, error) {
	cs := make([]meta.Change, 0, len(d.Files)+1)
	for _, f := range d.Files {
		if f.Input == OutDir {
			return nil, fmt.Errorf("datum: an input cannot be named %q", OutDir)
		}
		if f.Input == "" || strings.Contains(f.Input, "/") {
			return nil, fmt.Errorf("datum: bad input name %q", f.Input)
		}
		p := "/" + f.Input
		if f.Path != "/" {
			p += f.Path
		}
		if _, err := meta.CleanPath(p); err != nil {
			return nil, fmt.Errorf("datum: input %q: %w", f.Input, err)
		}
		e := f.Entry
		e.Name = ""
		cs = append(cs, meta.Change{Op: meta.OpPut, Path: p, Entry: e})
	}
	cs = append(cs, meta.Change{Op: meta.OpMkdir, Path: "/" + OutDir})
	return cs, nil
}
