// Package datum turns a pipeline's input tree and its input commits into
// datums, the units of work of a job, with Pachyderm's semantics: a pfs
// input's glob picks its datums, cross multiplies, union concatenates, join
// combines datums whose join keys are equal and group gathers datums with
// equal keys.
//
// A datum's ID is its identity: it depends only on the (input, path) pairs
// of its files, so the same paths in the next commit give the same ID. Its
// Hash adds the content of those files and the pipeline's salt, so a job
// can reuse the output of every datum whose hash has not changed.
package datum

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/pipeline/spec"
)

// File is one matched path of one input.
type File struct {
	Input  string // input name (dir under /pfs)
	Repo   string
	Commit string // commit ID
	Path   string // clean path in the commit, "/" for the root
	// Entry is the entry at Path; for "/", a directory entry with Tree =
	// the commit's root and the commit's Size and Files.
	Entry meta.Entry
	Hash  meta.Hash // content hash (meta.DB.ContentHash)
}

// Datum is one unit of work.
type Datum struct {
	// ID is the stable identity: the first 32 hex digits of the SHA-256
	// of the sorted (input, path) pairs.
	ID    string
	Files []File // sorted by (Input, Path)
}

// Hash covers the datum's ID, each file's type, mode and content hash,
// and salt (the pipeline's salt or spec version). It changes when one of
// the datum's files changes or the salt does, and only then.
func (d *Datum) Hash(salt string) string {
	h := sha256.New()
	var buf [8]byte
	str := func(s string) {
		binary.BigEndian.PutUint64(buf[:], uint64(len(s)))
		h.Write(buf[:])
		h.Write([]byte(s))
	}
	str("strata datum v1")
	str(d.ID)
	for i := range d.Files {
		f := &d.Files[i]
		str(f.Input)
		str(f.Path)
		binary.BigEndian.PutUint32(buf[:4], f.Entry.Mode)
		h.Write([]byte{byte(f.Entry.Type)})
		h.Write(buf[:4])
		h.Write(f.Hash[:])
	}
	str(salt)
	return hex.EncodeToString(h.Sum(nil))
}

// Inputs maps an input name to the commit it reads in this job. A cron
// input's commit (of the repo "<pipeline>_<name>") is found under the cron
// input's name.
type Inputs map[string]*meta.Commit

// List computes the datums of in (an input tree with defaults applied)
// over the given commits, sorted by ID.
//
//   - pfs: one datum per path its glob matches (see Match); an empty
//     commit gives none.
//   - cron: like pfs with glob "/", read from Inputs[cron.name].
//   - cross: the cartesian product of the sub-inputs' datums; empty if any
//     sub-input is empty.
//   - union: the sub-inputs' datums, those with equal IDs once.
//   - join: sub-inputs are pfs inputs with join_on, a template of the
//     glob's capture groups ("$1", "${2}-$1", "$$" for "$", "$0" for the
//     whole path). Datums whose keys are equal combine; with several datums
//     per key in one sub-input, the cross product within the key. A key
//     gives datums when every sub-input has it, or when a sub-input with
//     outer_join has it (the sub-inputs that lack it are left out), so an
//     outer_join input's datums are never dropped.
//   - group: sub-inputs are pfs inputs with group_by (same templates); all
//     datums with the same key, across the sub-inputs, form one datum.
func List(ctx context.Context, db *meta.DB, in *spec.Input, commits Inputs) ([]*Datum, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if in == nil {
		return nil, errors.New("datum: no input")
	}
	l := &lister{ctx: ctx, db: db, commits: commits}
	ds, err := l.input(in, "input")
	if err != nil {
		return nil, err
	}
	return sortUnique(ds), nil
}

type lister struct {
	ctx     context.Context
	db      *meta.DB
	commits Inputs
	ticks   int
}

// tick checks the context now and then.
func (l *lister) tick() error {
	if l.ticks++; l.ticks&1023 == 0 {
		return l.ctx.Err()
	}
	return nil
}

// keyed is a datum with its join or group key.
type keyed struct {
	d   *Datum
	key string
}

func (l *lister) input(in *spec.Input, where string) ([]*Datum, error) {
	if err := oneOf(in, where); err != nil {
		return nil, err
	}
	switch {
	case in.PFS != nil:
		ks, err := l.pfs(in.PFS, "", "")
		return datums(ks), err
	case in.Cron != nil:
		ks, err := l.pfs(&spec.PFSInput{Name: in.Cron.Name, Glob: "/"}, "", "")
		return datums(ks), err
	case len(in.Cross) > 0:
		acc := []*Datum{{}}
		for i := range in.Cross {
			ds, err := l.input(&in.Cross[i], fmt.Sprintf("%s.cross[%d]", where, i))
			if err != nil {
				return nil, err
			}
			if acc, err = l.cross(acc, ds); err != nil {
				return nil, err
			}
		}
		return acc, nil
	case len(in.Union) > 0:
		var all []*Datum
		for i := range in.Union {
			ds, err := l.input(&in.Union[i], fmt.Sprintf("%s.union[%d]", where, i))
			if err != nil {
				return nil, err
			}
			all = append(all, ds...)
		}
		return sortUnique(all), nil
	case len(in.Join) > 0:
		return l.join(in.Join, where+".join")
	default:
		return l.group(in.Group, where+".group")
	}
}

// oneOf checks that exactly one field of in is set.
func oneOf(in *spec.Input, where string) error {
	n := 0
	for _, set := range []bool{in.PFS != nil, in.Cron != nil, len(in.Cross) > 0, len(in.Union) > 0, len(in.Join) > 0, len(in.Group) > 0} {
		if set {
			n++
		}
	}
	switch n {
	case 0:
		return fmt.Errorf("datum: %s: empty input (want one of pfs, cross, union, join, group, cron)", where)
	case 1:
		return nil
	default:
		return fmt.Errorf("datum: %s: more than one of pfs, cross, union, join, group, cron", where)
	}
}

// pfs lists the datums of one input, each with its key when tmpl (the
// value of the field named field) is set.
func (l *lister) pfs(p *spec.PFSInput, tmpl, field string) ([]keyed, error) {
	name := cmp.Or(p.Name, p.Repo)
	c := l.commits[name]
	if c == nil {
		return nil, fmt.Errorf("datum: input %q: no commit given for it", name)
	}
	g, err := compileGlob(p.Glob)
	if err != nil {
		return nil, fmt.Errorf("datum: input %q: %w", name, err)
	}
	var t template
	if tmpl != "" {
		if t, err = parseTemplate(tmpl, g.ngroups); err != nil {
			return nil, fmt.Errorf("datum: input %q: %s: %w", name, field, err)
		}
	}
	repo := cmp.Or(c.Repo, p.Repo)
	var out []keyed
	// Datums and their files are allocated in blocks: a glob over a
	// large directory makes many of them.
	var fileBlock []File
	var datumBlock []Datum
	err = g.match(l.db, c, func(path string, e *meta.Entry, groups []string) error {
		if err := l.tick(); err != nil {
			return err
		}
		h, err := l.db.ContentHash(e)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if len(fileBlock) == 0 {
			fileBlock, datumBlock = make([]File, 256), make([]Datum, 256)
		}
		files := fileBlock[:1:1]
		fileBlock = fileBlock[1:]
		files[0] = File{Input: name, Repo: repo, Commit: c.ID, Path: path, Entry: *e, Hash: h}
		d := &datumBlock[0]
		datumBlock = datumBlock[1:]
		*d = Datum{ID: datumID(files), Files: files}
		k := keyed{d: d}
		if t != nil {
			k.key = t.expand(path, groups)
		}
		out = append(out, k)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("datum: input %q: %w", name, err)
	}
	return out, nil
}

func (l *lister) cross(a, b []*Datum) ([]*Datum, error) {
	out := make([]*Datum, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			if err := l.tick(); err != nil {
				return nil, err
			}
			out = append(out, merge(x, y))
		}
	}
	return out, nil
}

// keyedChildren lists the datums of join or group sub-inputs with keys.
func (l *lister) keyedChildren(ins []spec.Input, where, field string) ([][]keyed, error) {
	out := make([][]keyed, len(ins))
	for i := range ins {
		in := &ins[i]
		w := fmt.Sprintf("%s[%d]", where, i)
		if err := oneOf(in, w); err != nil {
			return nil, err
		}
		if in.PFS == nil {
			return nil, fmt.Errorf("datum: %s: must be a pfs input", w)
		}
		tmpl := in.PFS.JoinOn
		if field == "group_by" {
			tmpl = in.PFS.GroupBy
		}
		if tmpl == "" {
			return nil, fmt.Errorf("datum: %s: input %q has no %s", w, cmp.Or(in.PFS.Name, in.PFS.Repo), field)
		}
		ks, err := l.pfs(in.PFS, tmpl, field)
		if err != nil {
			return nil, err
		}
		out[i] = ks
	}
	return out, nil
}

func (l *lister) join(ins []spec.Input, where string) ([]*Datum, error) {
	children, err := l.keyedChildren(ins, where, "join_on")
	if err != nil {
		return nil, err
	}
	byKey := map[string][][]*Datum{}
	for i, ks := range children {
		for _, k := range ks {
			rows := byKey[k.key]
			if rows == nil {
				rows = make([][]*Datum, len(children))
				byKey[k.key] = rows
			}
			rows[i] = append(rows[i], k.d)
		}
	}
	var out []*Datum
	for _, key := range sortedKeys(byKey) {
		rows := byKey[key]
		all, outer := true, false
		for i, ds := range rows {
			if len(ds) == 0 {
				all = false
			} else if ins[i].PFS.OuterJoin {
				outer = true
			}
		}
		if !all && !outer {
			continue
		}
		acc := []*Datum{{}}
		for _, ds := range rows {
			if len(ds) == 0 {
				continue
			}
			if acc, err = l.cross(acc, ds); err != nil {
				return nil, err
			}
		}
		out = append(out, acc...)
	}
	return out, nil
}

func (l *lister) group(ins []spec.Input, where string) ([]*Datum, error) {
	children, err := l.keyedChildren(ins, where, "group_by")
	if err != nil {
		return nil, err
	}
	byKey := map[string][]File{}
	for _, ks := range children {
		for _, k := range ks {
			byKey[k.key] = append(byKey[k.key], k.d.Files...)
		}
	}
	out := make([]*Datum, 0, len(byKey))
	for _, key := range sortedKeys(byKey) {
		out = append(out, newDatum(byKey[key]))
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func datums(ks []keyed) []*Datum {
	out := make([]*Datum, len(ks))
	for i, k := range ks {
		out[i] = k.d
	}
	return out
}

// merge combines two datums' files into a new datum.
func merge(a, b *Datum) *Datum {
	files := make([]File, 0, len(a.Files)+len(b.Files))
	files = append(files, a.Files...)
	files = append(files, b.Files...)
	return newDatum(files)
}

// newDatum sorts files by (Input, Path), drops repeated pairs and sets
// the ID.
func newDatum(files []File) *Datum {
	slices.SortStableFunc(files, compareFiles)
	files = slices.CompactFunc(files, func(a, b File) bool { return compareFiles(a, b) == 0 })
	return &Datum{ID: datumID(files), Files: files}
}

func compareFiles(a, b File) int {
	return cmp.Or(strings.Compare(a.Input, b.Input), strings.Compare(a.Path, b.Path))
}

// datumID hashes the (input, path) pairs of files, which are sorted.
// Neither can hold a NUL byte, so NUL separates them unambiguously.
func datumID(files []File) string {
	var stack [256]byte
	buf := stack[:0]
	for i := range files {
		buf = append(buf, files[i].Input...)
		buf = append(buf, 0)
		buf = append(buf, files[i].Path...)
		buf = append(buf, 0)
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:16])
}

// sortUnique sorts datums by ID and keeps one of each ID.
func sortUnique(ds []*Datum) []*Datum {
	slices.SortFunc(ds, func(a, b *Datum) int { return strings.Compare(a.ID, b.ID) })
	return slices.CompactFunc(ds, func(a, b *Datum) bool { return a.ID == b.ID })
}

// template is a parsed join_on or group_by: literal text and group
// references (-1 for literal parts, 0 for the whole path).
type template []tmplPart

type tmplPart struct {
	lit   string
	group int
}

// parseTemplate reads "$N", "${N}" (N a group number, 0 the whole path)
// and "$$" (a literal "$"); everything else is literal. It fails when a
// group is beyond the glob's ngroups.
func parseTemplate(s string, ngroups int) (template, error) {
	var t template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t = append(t, tmplPart{lit: lit.String(), group: -1})
			lit.Reset()
		}
	}
	src := s
	for s != "" {
		i := strings.IndexByte(s, '$')
		if i < 0 {
			lit.WriteString(s)
			break
		}
		lit.WriteString(s[:i])
		s = s[i+1:]
		var num string
		switch {
		case strings.HasPrefix(s, "$"):
			lit.WriteByte('$')
			s = s[1:]
			continue
		case strings.HasPrefix(s, "{"):
			end := strings.IndexByte(s, '}')
			if end < 0 {
				return nil, fmt.Errorf("%q: unterminated ${", src)
			}
			num, s = s[1:end], s[end+1:]
		default:
			n := 0
			for n < len(s) && s[n] >= '0' && s[n] <= '9' {
				n++
			}
			num, s = s[:n], s[n:]
		}
		g, err := strconv.Atoi(num)
		if err != nil || g < 0 || num[0] == '+' {
			return nil, fmt.Errorf("%q: '$' must be followed by a group number (or \"$$\" for '$')", src)
		}
		if g > ngroups {
			return nil, fmt.Errorf("%q: $%d but the glob has %d capture group(s)", src, g, ngroups)
		}
		flush()
		t = append(t, tmplPart{group: g})
	}
	flush()
	return t, nil
}

func (t template) expand(path string, groups []string) string {
	var b strings.Builder
	for _, p := range t {
		switch {
		case p.group < 0:
			b.WriteString(p.lit)
		case p.group == 0:
			b.WriteString(path)
		default:
			b.WriteString(groups[p.group-1])
		}
	}
	return b.String()
}
