package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Parse reads one or more specs from YAML or JSON: YAML documents
// separated by "---", one JSON object, several JSON objects one after the
// other, or a list (YAML sequence or JSON array) of specs. Every spec has
// its defaults applied and is validated.
//
// Errors match fs.ErrInvalid under errors.Is. Each names its spec (by name,
// or as "pipeline #N" counting from 1 in the input) and then the line of
// a syntax error, type error or unknown field, or the field path of a
// validation error (a *FieldError, found with errors.As):
//
//	pipeline "edges": line 7: unknown field "imge" in transform; did you mean "image"?
//	pipeline "edges": input.cross[1].pfs.glob: must start with "/"
//
// Several problems are joined with errors.Join, one per line. On error
// Parse returns no specs.
func Parse(data []byte) ([]*Spec, error) {
	nodes, err := specNodes(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")))
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		return nil, &lineError{msg: "no pipeline spec found: the input is empty"}
	}
	var specs []*Spec
	var errs []error
	first := map[string]int{} // pipeline name -> index of its first spec
	for i, n := range nodes {
		label := fmt.Sprintf("pipeline #%d", i+1)
		if name := nodeName(n); name != "" {
			label = fmt.Sprintf("pipeline %q", name)
		}
		s, err := decodeSpec(n)
		if err == nil {
			s.Defaults()
			err = s.Validate()
		}
		if err == nil {
			if j, dup := first[s.Name]; dup {
				err = &FieldError{Field: "name", Msg: fmt.Sprintf("pipeline #%d in this input has the same name", j+1)}
			} else {
				first[s.Name] = i
			}
		}
		if err != nil {
			errs = appendLabelled(errs, label, err)
			continue
		}
		specs = append(specs, s)
	}
	switch len(errs) {
	case 0:
		return specs, nil
	case 1:
		return nil, errs[0]
	}
	return nil, errors.Join(errs...)
}

// appendLabelled appends err, or each of the errors it joins, prefixed
// with label.
func appendLabelled(errs []error, label string, err error) []error {
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	for _, e := range list {
		errs = append(errs, fmt.Errorf("%s: %w", label, e))
	}
	return errs
}

// lineError is a syntax, type or unknown-field error at a line of the
// input (line 0: not at a particular line).
type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string {
	if e.line == 0 {
		return e.msg
	}
	return fmt.Sprintf("line %d: %s", e.line, e.msg)
}

func (e *lineError) Is(target error) bool { return target == fs.ErrInvalid }

// specNodes returns the mapping node of every spec in data.
func specNodes(data []byte) ([]*yaml.Node, error) {
	var tops []*yaml.Node
	var err error
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		// yaml.v3 reads neither concatenated objects nor every JSON escape,
		// so JSON has its own reader. What is not JSON may still be YAML
		// in flow style ("{name: x, ...}").
		if tops, err = readJSON(data); err != nil {
			if y, yerr := readYAML(data); yerr == nil {
				tops, err = y, nil
			}
		}
	} else {
		tops, err = readYAML(data)
	}
	if err != nil {
		return nil, err
	}
	var specs []*yaml.Node
	for _, n := range tops {
		n = unalias(n)
		switch {
		case n.Kind == yaml.MappingNode:
			specs = append(specs, n)
		case n.Kind == yaml.SequenceNode:
			for _, e := range n.Content {
				if e = unalias(e); e.Kind != yaml.MappingNode {
					return nil, &lineError{e.Line, fmt.Sprintf("want a pipeline spec (a mapping of fields), got %s", describe(e))}
				}
				specs = append(specs, e)
			}
		case isNull(n): // an empty document
		default:
			return nil, &lineError{n.Line, fmt.Sprintf("want a pipeline spec (a mapping of fields), got %s", describe(n))}
		}
	}
	return specs, nil
}

// readYAML returns the top node of every document in data.
func readYAML(data []byte) ([]*yaml.Node, error) {
	var tops []*yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if err == io.EOF {
			return tops, nil
		}
		if err != nil {
			return nil, &lineError{msg: strings.TrimPrefix(err.Error(), "yaml: ")}
		}
		if len(doc.Content) > 0 {
			tops = append(tops, doc.Content[0])
		}
	}
}

// readJSON reads a stream of JSON values into YAML nodes that carry their
// line numbers.
func readJSON(data []byte) ([]*yaml.Node, error) {
	r := &jsonReader{dec: json.NewDecoder(bytes.NewReader(data)), size: int64(len(data))}
	r.dec.UseNumber()
	for i, b := range data {
		if b == '\n' {
			r.newlines = append(r.newlines, i)
		}
	}
	var tops []*yaml.Node
	for {
		tok, err := r.dec.Token()
		if err == io.EOF {
			return tops, nil
		}
		if err != nil {
			return nil, r.error(err)
		}
		n, err := r.value(tok)
		if err != nil {
			return nil, err
		}
		tops = append(tops, n)
	}
}

type jsonReader struct {
	dec      *json.Decoder
	size     int64
	newlines []int // offsets of '\n'
}

// line returns the line of the byte before offset off.
func (r *jsonReader) line(off int64) int {
	return 1 + sort.SearchInts(r.newlines, int(off-1))
}

func (r *jsonReader) error(err error) error {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return &lineError{r.line(syn.Offset), syn.Error()}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF): // inside a value
		return &lineError{r.line(r.size), "unexpected end of JSON input"}
	}
	return &lineError{r.line(r.dec.InputOffset()), err.Error()}
}

// value turns tok, just read, and for '{' or '[' everything up to its
// closing delimiter, into a node.
func (r *jsonReader) value(tok json.Token) (*yaml.Node, error) {
	n := &yaml.Node{Kind: yaml.ScalarNode, Line: r.line(r.dec.InputOffset())}
	switch v := tok.(type) {
	case json.Delim:
		n.Kind, n.Tag = yaml.MappingNode, "!!map"
		if v == '[' {
			n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
		}
		for r.dec.More() {
			if n.Kind == yaml.MappingNode {
				key, err := r.dec.Token()
				if err != nil {
					return nil, r.error(err)
				}
				k, _ := key.(string)
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k, Line: r.line(r.dec.InputOffset())})
			}
			tok, err := r.dec.Token()
			if err != nil {
				return nil, r.error(err)
			}
			c, err := r.value(tok)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		if _, err := r.dec.Token(); err != nil { // the closing delimiter
			return nil, r.error(err)
		}
	case string:
		n.Tag, n.Value, n.Style = "!!str", v, yaml.DoubleQuotedStyle
	case json.Number:
		n.Tag, n.Value = "!!int", v.String()
		if strings.ContainsAny(n.Value, ".eE") {
			n.Tag = "!!float"
		}
	case bool:
		n.Tag, n.Value = "!!bool", strconv.FormatBool(v)
	case nil:
		n.Tag, n.Value = "!!null", "null"
	}
	return n, nil
}

// decodeSpec checks the node for unknown fields, repeated fields and
// values of the wrong type, naming each with its line and field path, and
// decodes it.
func decodeSpec(n *yaml.Node) (*Spec, error) {
	c := &checker{}
	c.check(n, reflect.TypeFor[Spec](), "")
	switch len(c.errs) {
	case 0:
	case 1:
		return nil, c.errs[0]
	default:
		return nil, errors.Join(c.errs...)
	}
	var s Spec
	if err := n.Decode(&s); err != nil { // not expected after the check
		return nil, &lineError{n.Line, strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	return &s, nil
}

type checker struct{ errs []error }

func (c *checker) errorf(n *yaml.Node, format string, args ...any) {
	c.errs = append(c.errs, &lineError{n.Line, fmt.Sprintf(format, args...)})
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// check checks node n against type t at field path p.
func (c *checker) check(n *yaml.Node, t reflect.Type, p string) {
	n = unalias(n)
	if isNull(n) {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			c.errorf(n, "%s: %v", p, err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			c.errorf(n, "%s: want a mapping of fields, got %s", orSpec(p), describe(n))
			return
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			fields[name] = t.Field(i).Type
		}
		c.mapping(n, p, func(k, v *yaml.Node) {
			ft, ok := fields[k.Value]
			if !ok {
				in := ""
				if p != "" {
					in = " in " + p
				}
				c.errorf(k, "unknown field %q%s%s", k.Value, in, suggest(k.Value, fields))
				return
			}
			c.check(v, ft, join(p, k.Value))
		})
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.errorf(n, "%s: want a mapping, got %s", p, describe(n))
			return
		}
		c.mapping(n, p, func(k, v *yaml.Node) {
			c.check(v, t.Elem(), fmt.Sprintf("%s[%q]", p, k.Value))
		})
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.errorf(n, "%s: want a list, got %s", p, describe(n))
			return
		}
		for i, e := range n.Content {
			c.check(e, t.Elem(), fmt.Sprintf("%s[%d]", p, i))
		}
	default:
		want := map[reflect.Kind]string{reflect.Int: "an integer", reflect.Bool: "true or false", reflect.String: "a string"}[t.Kind()]
		if want == "" {
			want = "a " + t.Kind().String()
		}
		if n.Kind != yaml.ScalarNode || n.Decode(reflect.New(t).Interface()) != nil {
			c.errorf(n, "%s: want %s, got %s", p, want, describe(n))
		}
	}
}

// mapping calls fn for each key and value of n, after the values merged
// in with "<<", and reports keys that are not scalars or appear twice.
func (c *checker) mapping(n *yaml.Node, p string, fn func(k, v *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge":
			for _, m := range mergeSources(v) {
				c.mapping(m, p, fn)
			}
			continue
		case k.Kind != yaml.ScalarNode:
			c.errorf(k, "%s: a key must be a string, not %s", orSpec(p), describe(k))
			continue
		case seen[k.Value] > 0:
			in := ""
			if p != "" {
				in = " in " + p
			}
			c.errorf(k, "field %q%s is set twice (first on line %d)", k.Value, in, seen[k.Value])
			continue
		}
		seen[k.Value] = k.Line
		fn(k, v)
	}
}

// mergeSources returns the mappings of a "<<" value: one, or a list.
func mergeSources(v *yaml.Node) []*yaml.Node {
	if v = unalias(v); v.Kind == yaml.SequenceNode {
		var ms []*yaml.Node
		for _, e := range v.Content {
			if e = unalias(e); e.Kind == yaml.MappingNode {
				ms = append(ms, e)
			}
		}
		return ms
	}
	if v.Kind == yaml.MappingNode {
		return []*yaml.Node{v}
	}
	return nil
}

func unalias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe says what a node is, for "want X, got Y".
func describe(n *yaml.Node) string {
	switch n = unalias(n); {
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case isNull(n):
		return "null"
	case n.ShortTag() == "!!str":
		v := n.Value
		if len(v) > 40 {
			v = v[:37] + "..."
		}
		return strconv.Quote(v)
	}
	return n.Value
}

// nodeName returns the value of a spec node's "name" field, if it is a
// plain string.
func nodeName(n *yaml.Node) string {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, v := n.Content[i], unalias(n.Content[i+1]); k.Value == "name" && v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" {
			return v.Value
		}
	}
	return ""
}

func join(p, field string) string {
	if p == "" {
		return field
	}
	return p + "." + field
}

func orSpec(p string) string {
	if p == "" {
		return "pipeline spec"
	}
	return p
}

// suggest returns `; did you mean "x"?` for the known field closest to an
// unknown one, if one is close: the same but for case and '_' or '-'
// ("datumTries"), or at most two edits away ("imgae").
func suggest(unknown string, fields map[string]reflect.Type) string {
	norm := func(s string) string {
		return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s))
	}
	best, bestDist := "", 3
	for f := range fields {
		d := editDistance(norm(unknown), norm(f))
		if d < bestDist || d == bestDist && f < best {
			best, bestDist = f, d
		}
	}
	if best == "" || bestDist > 0 && len(unknown) < 4 {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	row := make([]int, len(b)+1)
	for j := range row {
		row[j] = j
	}
	for i := 1; i <= len(a); i++ {
		prev := row[0]
		row[0] = i
		for j := 1; j <= len(b); j++ {
			cur := row[j]
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			row[j] = min(row[j]+1, row[j-1]+1, prev+cost)
			prev = cur
		}
	}
	return row[len(b)]
}
