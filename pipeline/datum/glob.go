package datum

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/strata-data/strata/meta"
)

// A glob is a path pattern: components separated by "/", each matched
// against one name with path.Match's syntax (*, ?, [classes], \escapes),
// except that a component of exactly "**" matches zero or more components.
// Parentheses (escape them as \( and \) to mean themselves) mark capture
// groups; they may span components. The root is matched only by "/".

type tokKind uint8

const (
	tLit tokKind = iota
	tStar
	tQuest
	tClass
	tOpen
	tClose
	tSep
)

type token struct {
	kind tokKind
	r    rune   // tLit
	re   string // tClass: the class as a regexp
	raw  string // tClass: the class as written
}

// compKind is how a component matches a name.
type compKind uint8

const (
	cLiteral  compKind = iota // equal to lit
	cAny                      // "*": any name
	cPattern                  // pat, with path.Match
	cGlobstar                 // "**": zero or more names
)

type component struct {
	kind compKind
	lit  string
	pat  string
}

// glob is a compiled glob.
type glob struct {
	src     string
	root    bool // the glob is "/": it matches the root only
	comps   []component
	full    *regexp.Regexp // the whole path, with capture groups
	ngroups int
}

// maxComponents bounds a glob so the matcher's state fits a bit set.
const maxComponents = 63

func compileGlob(src string) (*glob, error) {
	g := &glob{src: src}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("glob %q: %s", src, fmt.Sprintf(format, args...))
	}
	if src == "" {
		return nil, bad("empty")
	}
	s := src
	if !strings.HasPrefix(s, "/") {
		s = "/" + s
	}
	toks, err := tokenize(s)
	if err != nil {
		return nil, bad("%v", err)
	}
	// A trailing separator means nothing ("/data/*/" is "/data/*").
	if n := len(toks); n > 1 && toks[n-1].kind == tSep {
		toks = toks[:n-1]
	}
	if len(toks) == 1 {
		g.root = true
		return g, nil
	}
	// Split into components at separators; toks[0] is a separator.
	var parts [][]token
	for _, t := range toks {
		if t.kind == tSep {
			parts = append(parts, nil)
			continue
		}
		parts[len(parts)-1] = append(parts[len(parts)-1], t)
	}
	if len(parts) > maxComponents {
		return nil, bad("more than %d components", maxComponents)
	}
	var full strings.Builder
	full.WriteString("^")
	for i, part := range parts {
		var real []token
		for _, t := range part {
			if t.kind != tOpen && t.kind != tClose {
				real = append(real, t)
			}
		}
		if len(real) == 0 {
			return nil, bad("empty path component %d", i+1)
		}
		var c component
		switch {
		case len(real) == 2 && real[0].kind == tStar && real[1].kind == tStar:
			c.kind = cGlobstar
			// Zero or more "/name"; parentheses stay where they were.
			star := false
			for _, t := range part {
				switch t.kind {
				case tOpen:
					full.WriteString("(")
				case tClose:
					full.WriteString(")")
				default:
					if !star {
						full.WriteString(`(?:/[^/]+)*`)
						star = true
					}
				}
			}
		default:
			lit, isLit := literal(real)
			switch {
			case isLit:
				c.kind, c.lit = cLiteral, lit
			case len(real) == 1 && real[0].kind == tStar:
				c.kind = cAny
			default:
				c.kind, c.pat = cPattern, matchPattern(real)
				if _, err := path.Match(c.pat, ""); err != nil {
					return nil, bad("component %d: %v", i+1, err)
				}
			}
			full.WriteString("/")
			full.WriteString(toRegexp(part))
		}
		g.comps = append(g.comps, c)
	}
	full.WriteString("$")
	re, err := regexp.Compile(full.String())
	if err != nil {
		return nil, bad("%v", err)
	}
	g.full, g.ngroups = re, re.NumSubexp()
	return g, nil
}

// literal returns the text of toks when they are all literal characters.
func literal(toks []token) (string, bool) {
	var b strings.Builder
	for _, t := range toks {
		if t.kind != tLit {
			return "", false
		}
		b.WriteRune(t.r)
	}
	return b.String(), true
}

// matchPattern writes tokens (no separators or groups) as a pattern for
// path.Match.
func matchPattern(toks []token) string {
	var b strings.Builder
	for _, t := range toks {
		switch t.kind {
		case tLit:
			if strings.ContainsRune(`*?[\`, t.r) {
				b.WriteByte('\\')
			}
			b.WriteRune(t.r)
		case tStar:
			b.WriteByte('*')
		case tQuest:
			b.WriteByte('?')
		case tClass:
			b.WriteString(t.raw)
		}
	}
	return b.String()
}

// toRegexp translates tokens (no separators) to regexp syntax.
func toRegexp(toks []token) string {
	var b strings.Builder
	for _, t := range toks {
		switch t.kind {
		case tLit:
			b.WriteString(regexp.QuoteMeta(string(t.r)))
		case tStar:
			b.WriteString(`[^/]*`)
		case tQuest:
			b.WriteString(`[^/]`)
		case tClass:
			b.WriteString(t.re)
		case tOpen:
			b.WriteString("(")
		case tClose:
			b.WriteString(")")
		}
	}
	return b.String()
}

// tokenize reads a glob with path.Match's syntax plus parentheses.
func tokenize(s string) ([]token, error) {
	var toks []token
	depth := 0
	next := func() (rune, error) {
		r, n := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && n <= 1 {
			if n == 0 {
				return 0, errors.New("unexpected end")
			}
			return 0, errors.New("invalid UTF-8")
		}
		s = s[n:]
		return r, nil
	}
	for s != "" {
		r, err := next()
		if err != nil {
			return nil, err
		}
		switch r {
		case '\\':
			if s == "" {
				return nil, errors.New("trailing backslash")
			}
			if r, err = next(); err != nil {
				return nil, err
			}
			toks = append(toks, token{kind: tLit, r: r})
		case '*':
			toks = append(toks, token{kind: tStar})
		case '?':
			toks = append(toks, token{kind: tQuest})
		case '(':
			depth++
			toks = append(toks, token{kind: tOpen})
		case ')':
			if depth--; depth < 0 {
				return nil, errors.New("unbalanced ')'")
			}
			toks = append(toks, token{kind: tClose})
		case '/':
			toks = append(toks, token{kind: tSep})
		case '[':
			re, rest, err := class(s)
			if err != nil {
				return nil, err
			}
			raw := "[" + s[:len(s)-len(rest)]
			s = rest
			toks = append(toks, token{kind: tClass, re: re, raw: raw})
		default:
			toks = append(toks, token{kind: tLit, r: r})
		}
	}
	if depth != 0 {
		return nil, errors.New("unbalanced '('")
	}
	return toks, nil
}

// class reads a character class after its '[' as path.Match does:
// an optional '^', then one or more of c, \c or lo-hi (c not '\\', '-' or
// ']'), then ']'. It returns the class as a regexp and the rest of s.
func class(s string) (re, rest string, err error) {
	var b strings.Builder
	b.WriteString("[")
	if strings.HasPrefix(s, "^") {
		b.WriteString("^/")
		s = s[1:]
	}
	esc := func() (rune, error) {
		if s == "" {
			return 0, errors.New("unterminated character class")
		}
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == '-' || r == ']':
			return 0, errors.New("bad character class")
		case r == '\\':
			s = s[1:]
			if s == "" {
				return 0, errors.New("unterminated character class")
			}
			r, n = utf8.DecodeRuneInString(s)
		}
		if r == utf8.RuneError && n <= 1 {
			return 0, errors.New("invalid UTF-8")
		}
		s = s[n:]
		return r, nil
	}
	for nrange := 0; ; nrange++ {
		if nrange > 0 && strings.HasPrefix(s, "]") {
			b.WriteString("]")
			return b.String(), s[1:], nil
		}
		lo, err := esc()
		if err != nil {
			return "", "", err
		}
		hi := lo
		if strings.HasPrefix(s, "-") {
			s = s[1:]
			if hi, err = esc(); err != nil {
				return "", "", err
			}
			if lo > hi {
				return "", "", errors.New("bad character range")
			}
		}
		fmt.Fprintf(&b, `\x{%x}`, lo)
		if hi != lo {
			fmt.Fprintf(&b, `-\x{%x}`, hi)
		}
	}
}

// matches reports whether component c matches name.
func (c *component) matches(name string) bool {
	switch c.kind {
	case cLiteral:
		return name == c.lit
	case cAny, cGlobstar:
		return true
	default:
		ok, _ := path.Match(c.pat, name) // checked when compiled
		return ok
	}
}

// closure adds, for every globstar state, the state after it (a globstar
// may match nothing).
func (g *glob) closure(states uint64) uint64 {
	for i, c := range g.comps {
		if c.kind == cGlobstar && states&(1<<i) != 0 {
			states |= 1 << (i + 1)
		}
	}
	return states
}

// reader is what matching needs of the metadata database.
type reader interface {
	ReadDir(h meta.Hash) ([]meta.Entry, error)
	Lookup(root meta.Hash, p string) (*meta.Entry, error)
}

// Match calls fn, depth first in name order, for every path of commit c
// that glob matches, with its entry and the text captured by the glob's
// parenthesised groups. A glob of "/" matches the root (a directory entry
// with Tree = c.Root and the commit's Size and Files) unless the commit is
// empty. Match reads only the directories the glob can reach: "/*" reads
// the root alone, literal components are looked up, and only "**" walks.
func Match(db *meta.DB, c *meta.Commit, glob string, fn func(path string, e *meta.Entry, groups []string) error) error {
	g, err := compileGlob(glob)
	if err != nil {
		return err
	}
	return g.match(db, c, fn)
}

func (g *glob) match(r reader, c *meta.Commit, fn func(string, *meta.Entry, []string) error) error {
	if c.Root.IsZero() || c.Root == meta.EmptyTree {
		return nil
	}
	if g.root {
		return fn("/", &meta.Entry{Type: meta.TypeDir, Mode: 0o755, Tree: c.Root, Size: c.Size, Files: c.Files}, nil)
	}
	return g.dir(r, c.Root, "/", g.closure(1), fn)
}

// dir matches the entries of the directory tree (at path dir) against the
// pattern states (bit i: component i is next; never the final state).
func (g *glob) dir(r reader, tree meta.Hash, dir string, states uint64, fn func(string, *meta.Entry, []string) error) error {
	final := uint64(1) << len(g.comps)
	if lits, ok := g.literals(states); ok {
		for _, name := range lits {
			if strings.Contains(name, "/") {
				continue // an escaped separator names nothing
			}
			e, err := r.Lookup(tree, "/"+name)
			if errors.Is(err, meta.ErrNotExist) {
				continue
			} else if err != nil {
				return err
			}
			e.Name = name
			if err := g.entry(r, e, joinPath(dir, name), states, final, fn); err != nil {
				return err
			}
		}
		return nil
	}
	es, err := r.ReadDir(tree)
	if err != nil {
		return err
	}
	for i := range es {
		if err := g.entry(r, &es[i], joinPath(dir, es[i].Name), states, final, fn); err != nil {
			return err
		}
	}
	return nil
}

func (g *glob) entry(r reader, e *meta.Entry, p string, states, final uint64, fn func(string, *meta.Entry, []string) error) error {
	var next uint64
	for i := range g.comps {
		if states&(1<<i) == 0 {
			continue
		}
		c := &g.comps[i]
		if c.kind == cGlobstar {
			next |= 1 << i
		}
		if c.matches(e.Name) {
			next |= 1 << (i + 1)
		}
	}
	if next == 0 {
		return nil
	}
	next = g.closure(next)
	if next&final != 0 {
		groups, err := g.groups(p)
		if err != nil {
			return err
		}
		if err := fn(p, e, groups); err != nil {
			return err
		}
	}
	if rest := next &^ final; rest != 0 && e.IsDir() {
		return g.dir(r, e.Tree, p, rest, fn)
	}
	return nil
}

// literals returns the names to look up when every state is a literal.
func (g *glob) literals(states uint64) ([]string, bool) {
	var names []string
	for i := range g.comps {
		if states&(1<<i) == 0 {
			continue
		}
		if g.comps[i].kind != cLiteral {
			return nil, false
		}
		names = append(names, g.comps[i].lit)
	}
	// Keep name order and visit each name once.
	if len(names) > 1 {
		slices.Sort(names)
		names = slices.Compact(names)
	}
	return names, true
}

// groups returns the captured groups of a matched path.
func (g *glob) groups(p string) ([]string, error) {
	if g.ngroups == 0 {
		return nil, nil
	}
	m := g.full.FindStringSubmatch(p)
	if m == nil {
		return nil, fmt.Errorf("glob %q: matched %q but cannot capture its groups", g.src, p)
	}
	groups := m[1:]
	for i, s := range groups {
		// A group around "**" captures its components without the
		// leading separator.
		groups[i] = strings.TrimPrefix(s, "/")
	}
	return groups, nil
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}
