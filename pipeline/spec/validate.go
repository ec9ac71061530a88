package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/strata-data/strata/meta"
)

// FieldError is one problem with one field of a spec. It matches
// fs.ErrInvalid under errors.Is.
type FieldError struct {
	// Field is the field's path: "transform.image",
	// "input.cross[1].pfs.glob", `transform.env["1X"]`.
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Is makes every FieldError an fs.ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == fs.ErrInvalid }

// Validate checks every field of s. It returns nil, one *FieldError, or
// several joined with errors.Join (each a *FieldError), in field order.
// Unset fields that have a default (zero parallelism, empty reprocess,
// branch or input name) are valid whether or not Defaults has run.
func (s *Spec) Validate() error {
	v := &validator{spec: s}
	if s.Name == "" {
		v.add("name", "required")
	} else {
		v.name("name", "pipeline", s.Name)
	}
	v.transform()
	v.inputs()
	if s.Parallelism < 0 || s.Parallelism > MaxParallelism {
		v.add("parallelism", "%d is out of range; use 1 to %d", s.Parallelism, MaxParallelism)
	}
	if s.DatumTries < 0 {
		v.add("datum_tries", "%d is not allowed; use 1 or more", s.DatumTries)
	}
	if s.DatumTimeout.Duration < 0 {
		v.add("datum_timeout", "%v is negative", s.DatumTimeout)
	}
	if s.JobTimeout.Duration < 0 {
		v.add("job_timeout", "%v is negative", s.JobTimeout)
	}
	if r := s.Resources; r != nil {
		if r.CPU != "" {
			if c, err := r.CPU.Cores(); err != nil {
				v.add("resources.cpu", "%v", err)
			} else if c <= 0 {
				v.add("resources.cpu", "%q must be more than 0 cores", r.CPU)
			}
		}
		if r.Memory != "" {
			if b, err := r.Memory.Bytes(); err != nil {
				v.add("resources.memory", "%v", err)
			} else if b <= 0 {
				v.add("resources.memory", "%q must be more than 0 bytes", r.Memory)
			}
		}
	}
	switch s.Reprocess {
	case "", ReprocessUntilSuccess, ReprocessEveryJob:
	default:
		v.add("reprocess", "%q is not one of %q or %q", s.Reprocess, ReprocessUntilSuccess, ReprocessEveryJob)
	}
	if s.Service != nil {
		if s.Service.Port < 1 || s.Service.Port > 65535 {
			v.add("service.port", "%d is out of range; use 1 to 65535", s.Service.Port)
		}
		if s.Parallelism > 1 {
			v.add("parallelism", "a service runs one container; parallelism must be 1, not %d", s.Parallelism)
		}
	}
	switch len(v.errs) {
	case 0:
		return nil
	case 1:
		return v.errs[0]
	}
	return errors.Join(v.errs...)
}

type validator struct {
	spec *Spec
	errs []error
}

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// name checks a repo, branch or input name with meta's rules.
func (v *validator) name(field, kind, name string) bool {
	if err := meta.ValidName(kind, name); err != nil {
		v.add(field, "%s", strings.TrimSuffix(err.Error(), ": "+fs.ErrInvalid.Error()))
		return false
	}
	return true
}

var (
	userName = regexp.MustCompile(`^[a-z_][a-z0-9_-]*$`)
	userID   = regexp.MustCompile(`^[0-9]+(:[0-9]+)?$`)
	envName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func (v *validator) transform() {
	t := &v.spec.Transform
	if t.Image == "" {
		v.add("transform.image", "required: the container image to run, e.g. \"busybox:latest\"")
	}
	switch {
	case len(t.Cmd) == 0:
		v.add("transform.cmd", "required: the command to run for each datum, e.g. [sh, -c, \"cp /pfs/in/* /pfs/out/\"]")
	case len(t.Cmd) > 0 && t.Cmd[0] == "":
		v.add("transform.cmd[0]", "the program to run must not be empty")
	}
	keys := make([]string, 0, len(t.Env))
	for k := range t.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !envName.MatchString(k) {
			v.add(fmt.Sprintf("transform.env[%q]", k), "not a valid variable name; use letters, digits and '_', not starting with a digit")
		}
	}
	if t.WorkingDir != "" && !strings.HasPrefix(t.WorkingDir, "/") {
		v.add("transform.working_dir", "%q must be an absolute path", t.WorkingDir)
	}
	if t.User != "" && !userName.MatchString(t.User) && !validUserID(t.User) {
		v.add("transform.user", "%q is not a user; write a name (lower-case letters, digits, '_' and '-'), a uid or uid:gid", t.User)
	}
}

func validUserID(s string) bool {
	if !userID.MatchString(s) {
		return false
	}
	for _, n := range strings.Split(s, ":") {
		if _, err := strconv.ParseUint(n, 10, 32); err != nil {
			return false
		}
	}
	return true
}

const inputKinds = "pfs, cross, union, join, group or cron"

func (v *validator) inputs() {
	v.input("input", &v.spec.Input, "")
	used := map[string]string{} // input name -> path of its input
	v.spec.Input.Walk(func(p string, in *Input) {
		name := in.name()
		switch {
		case name == "":
		case name == "out":
			v.add(p, "the name \"out\" is taken by the output directory /pfs/out; set name to something else")
		case used[name] != "":
			v.add(p, "the name %q is already used by %s; inputs need distinct names (set name)", name, used[name])
		default:
			used[name] = p
		}
	})
}

// input checks in, found at path inside an input of kind parent ("" for
// the top).
func (v *validator) input(path string, in *Input, parent string) {
	var set []string
	for _, k := range []struct {
		name string
		set  bool
	}{
		{"pfs", in.PFS != nil}, {"cross", in.Cross != nil}, {"union", in.Union != nil},
		{"join", in.Join != nil}, {"group", in.Group != nil}, {"cron", in.Cron != nil},
	} {
		if k.set {
			set = append(set, k.name)
		}
	}
	switch len(set) {
	case 0:
		v.add(path, "required: set one of %s", inputKinds)
		return
	case 1:
	case 2:
		v.add(path, "%s and %s are both set; an input is exactly one of %s", set[0], set[1], inputKinds)
		return
	default:
		v.add(path, "%s and %s are all set; an input is exactly one of %s",
			strings.Join(set[:len(set)-1], ", "), set[len(set)-1], inputKinds)
		return
	}
	if (parent == "join" || parent == "group") && in.PFS == nil {
		by := map[string]string{"join": "join_on", "group": "group_by"}[parent]
		v.add(path, "every element of a %s is a pfs input with %s, not a %s", parent, by, set[0])
		return
	}
	nested := func(kind string, inputs []Input, min int) {
		if len(inputs) < min {
			v.add(path+"."+kind, "has %d inputs; a %s needs at least %d", len(inputs), kind, min)
		}
		for i := range inputs {
			v.input(fmt.Sprintf("%s.%s[%d]", path, kind, i), &inputs[i], kind)
		}
	}
	switch {
	case in.PFS != nil:
		v.pfs(path+".pfs", in.PFS, parent)
	case in.Cross != nil:
		nested("cross", in.Cross, 2)
	case in.Union != nil:
		nested("union", in.Union, 1)
	case in.Join != nil:
		nested("join", in.Join, 2)
	case in.Group != nil:
		nested("group", in.Group, 1)
	case in.Cron != nil:
		v.cron(path+".cron", in.Cron)
	}
}

func (v *validator) pfs(path string, p *PFSInput, parent string) {
	switch {
	case p.Repo == "":
		v.add(path+".repo", "required")
	case v.name(path+".repo", "repo", p.Repo) && p.Repo == v.spec.Name:
		v.add(path+".repo", "%q is this pipeline's own output repo; a pipeline cannot read its output", p.Repo)
	}
	if p.Branch != "" {
		v.name(path+".branch", "branch", p.Branch)
	}
	if p.Name != "" {
		v.name(path+".name", "input", p.Name)
	}
	groups, err := globGroups(p.Glob)
	if err != nil {
		v.add(path+".glob", "%v", err)
	} else if groups > 0 && parent != "join" && parent != "group" {
		v.add(path+".glob", "%q has capture groups, which only join_on and group_by use; write \\( and \\) to match parentheses", p.Glob)
	}
	for _, key := range []struct {
		field, kind, value string
	}{{"join_on", "join", p.JoinOn}, {"group_by", "group", p.GroupBy}} {
		switch {
		case parent != key.kind && key.value != "":
			v.add(path+"."+key.field, "only used in an input inside a %s", key.kind)
		case parent == key.kind && key.value == "":
			v.add(path+"."+key.field, "required inside a %s: a key built from the glob's capture groups, e.g. \"$1\"", key.kind)
		case parent == key.kind && err == nil:
			if msg := checkGroupRefs(key.value, p.Glob, groups); msg != "" {
				v.add(path+"."+key.field, "%s", msg)
			}
		}
	}
	if p.OuterJoin && parent != "join" {
		v.add(path+".outer_join", "only used in an input inside a join")
	}
}

func (v *validator) cron(path string, c *CronInput) {
	nameOK := c.Name == "" || v.name(path+".name", "input", c.Name)
	if nameOK && meta.ValidName("pipeline", v.spec.Name) == nil {
		v.name(path+".name", "cron repo", v.spec.CronRepo(c))
	}
	if c.Spec == "" {
		v.add(path+".spec", "required: a schedule such as \"@every 1h\" or \"0 3 * * *\"")
	} else if _, err := ParseCron(c.Spec); err != nil {
		v.add(path+".spec", "%v", err)
	}
}

// globGroups checks a datum glob and returns how many capture groups
// (parenthesised parts) it has. A glob starts with "/"; each component
// after that is "**" or a path.Match pattern; "\" escapes the next
// character, and "(" and ")" outside a character class mark groups and
// match nothing themselves.
func globGroups(glob string) (int, error) {
	if glob == "" {
		return 0, errors.New(`required: "/" for the whole repo as one datum, "/*" for each top-level entry, ...`)
	}
	if glob[0] != '/' {
		return 0, errors.New(`must start with "/"`)
	}
	var plain strings.Builder
	groups, depth, inClass := 0, 0, false
	for i := 0; i < len(glob); i++ {
		c := glob[i]
		switch {
		case c == '\\' && i+1 < len(glob):
			plain.WriteByte(c)
			i++
			c = glob[i]
		case inClass:
			inClass = c != ']'
		case c == '[':
			inClass = true
		case c == '(':
			groups++
			depth++
			continue
		case c == ')':
			if depth--; depth < 0 {
				return 0, fmt.Errorf("%q has a \")\" without a \"(\"", glob)
			}
			continue
		}
		plain.WriteByte(c)
	}
	if depth > 0 {
		return 0, fmt.Errorf("%q has a \"(\" without a \")\"", glob)
	}
	if plain.String() == "/" {
		return groups, nil
	}
	for _, c := range strings.Split(plain.String()[1:], "/") {
		switch {
		case c == "":
			return 0, fmt.Errorf("%q has an empty path component (\"//\" or a trailing \"/\")", glob)
		case c == "." || c == "..":
			return 0, fmt.Errorf("%q has a %q component", glob, c)
		case c == "**":
		case hasDoubleStar(c):
			return 0, fmt.Errorf("%q: \"**\" must be a whole path component, as in \"/**\" or \"/a/**/*.csv\"", glob)
		default:
			if _, err := path.Match(c, ""); err != nil {
				return 0, fmt.Errorf("%q: component %q is not a valid pattern (see path.Match)", glob, c)
			}
		}
	}
	return groups, nil
}

// hasDoubleStar reports whether a pattern component has an unescaped "**".
func hasDoubleStar(c string) bool {
	for i := 0; i < len(c); i++ {
		switch {
		case c[i] == '\\':
			i++
		case c[i] == '*' && i+1 < len(c) && c[i+1] == '*':
			return true
		}
	}
	return false
}

// checkGroupRefs checks that every "$N" in key names one of the glob's
// groups, and returns what is wrong or "".
func checkGroupRefs(key, glob string, groups int) string {
	for i := 0; i < len(key); i++ {
		if key[i] != '$' {
			continue
		}
		j := i + 1
		for j < len(key) && key[j] >= '0' && key[j] <= '9' {
			j++
		}
		if j == i+1 {
			return fmt.Sprintf("%q: \"$\" must be followed by a group number, as in \"$1\"", key)
		}
		n, err := strconv.Atoi(key[i+1 : j])
		switch {
		case err != nil || n > groups:
			return fmt.Sprintf("%q: %s refers to capture group %s, but glob %q has %d", key, key[i:j], key[i+1:j], glob, groups)
		case n == 0:
			return fmt.Sprintf("%q: capture groups are numbered from $1", key)
		}
		i = j - 1
	}
	return ""
}
