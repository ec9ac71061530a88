package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as a Go duration string ("90s",
// "1h30m"). It reads a string or a number of seconds and writes the string
// form; the zero Duration means "no limit".
type Duration struct{ time.Duration }

// IsZero makes yaml's omitempty leave out an unset duration.
func (d Duration) IsZero() bool { return d.Duration == 0 }

// MarshalJSON writes the string form, "1h30m0s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// MarshalYAML writes the string form, "1h30m0s".
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalJSON reads a duration string or a number of seconds; null
// leaves d unchanged.
func (d *Duration) UnmarshalJSON(b []byte) error {
	text, quoted, err := jsonText(b)
	if err != nil || !quoted && text == "null" {
		return err
	}
	v, err := parseDuration(text)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// UnmarshalYAML reads a duration string or a number of seconds; null
// leaves d unchanged.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration such as \"30s\" or a number of seconds, got %s", describe(n))
	}
	var v time.Duration
	var err error
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!int", "!!float":
		var f float64
		if err = n.Decode(&f); err == nil {
			v, err = seconds(f)
		}
	default:
		v, err = parseDuration(n.Value)
	}
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// parseDuration reads "90s", "1h30m" or a bare number of seconds ("90");
// "" is zero.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return seconds(f)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration; write e.g. \"30s\", \"1h30m\" or a number of seconds", s)
	}
	return v, nil
}

func seconds(f float64) (time.Duration, error) {
	ns := f * float64(time.Second)
	if math.IsNaN(ns) || ns >= math.MaxInt64 || ns <= math.MinInt64 {
		return 0, fmt.Errorf("%v seconds is not a duration that fits (at most about 292 years)", f)
	}
	return time.Duration(ns), nil
}

// Quantity is a number with an optional Kubernetes-style suffix ("500m",
// "512Mi", "2G"), kept as written.
type Quantity string

// quantitySuffixes are Kubernetes' suffixes; two-letter ones first so
// "Mi" is not read as "M".
var quantitySuffixes = []struct {
	suffix string
	num    int64
	den    int64
}{
	{"Ki", 1 << 10, 1}, {"Mi", 1 << 20, 1}, {"Gi", 1 << 30, 1},
	{"Ti", 1 << 40, 1}, {"Pi", 1 << 50, 1}, {"Ei", 1 << 60, 1},
	{"m", 1, 1000}, {"k", 1e3, 1}, {"M", 1e6, 1}, {"G", 1e9, 1},
	{"T", 1e12, 1}, {"P", 1e15, 1}, {"E", 1e18, 1},
}

// Cores reads q as a number of CPU cores: "500m" is 0.5, "2" is 2, "1.5"
// is 1.5. The empty Quantity is 0.
func (q Quantity) Cores() (float64, error) {
	if q == "" {
		return 0, nil
	}
	r, err := q.rat()
	if err != nil {
		return 0, err
	}
	f, _ := r.Float64()
	return f, nil
}

// Bytes reads q as a number of bytes: "512Mi" is 536870912, "2G" is 2e9,
// "1e9" and "100" are what they say. A fraction of a byte rounds up. The
// empty Quantity is 0.
func (q Quantity) Bytes() (int64, error) {
	if q == "" {
		return 0, nil
	}
	r, err := q.rat()
	if err != nil {
		return 0, err
	}
	n, m := new(big.Int).DivMod(r.Num(), r.Denom(), new(big.Int))
	if m.Sign() != 0 {
		n.Add(n, big.NewInt(1))
	}
	if !n.IsInt64() {
		return 0, fmt.Errorf("quantity %q is too large", string(q))
	}
	return n.Int64(), nil
}

func (q Quantity) rat() (*big.Rat, error) {
	s := strings.TrimSpace(string(q))
	num, mul := s, big.NewRat(1, 1)
	for _, suf := range quantitySuffixes {
		if strings.HasSuffix(s, suf.suffix) {
			num, mul = strings.TrimSuffix(s, suf.suffix), big.NewRat(suf.num, suf.den)
			break
		}
	}
	r, ok := new(big.Rat), decimal(num)
	if ok {
		_, ok = r.SetString(num)
	}
	if !ok {
		return nil, fmt.Errorf("%q is not a quantity; write a number with an optional suffix: m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi or Ei", string(q))
	}
	return r.Mul(r, mul), nil
}

// decimal reports whether s is a plain decimal number, optionally signed,
// with an optional exponent of at most 3 digits (big.Rat also takes "1/3",
// "0x10" and exponents that would take forever).
func decimal(s string) bool {
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	mant, exp, hasExp := strings.Cut(strings.ToLower(s), "e")
	if hasExp {
		if len(exp) > 0 && (exp[0] == '+' || exp[0] == '-') {
			exp = exp[1:]
		}
		if exp == "" || len(exp) > 3 || strings.Trim(exp, "0123456789") != "" {
			return false
		}
	}
	whole, frac, _ := strings.Cut(mant, ".")
	return whole+frac != "" && strings.Trim(whole+frac, "0123456789") == "" && len(mant) <= 100
}

// UnmarshalYAML keeps a string or number as written; null leaves q
// unchanged.
func (q *Quantity) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!bool" {
		return fmt.Errorf("want a quantity such as 2, \"500m\" or \"512Mi\", got %s", describe(n))
	}
	if n.ShortTag() != "!!null" {
		*q = Quantity(n.Value)
	}
	return nil
}

// UnmarshalJSON keeps a string or number as written; null leaves q
// unchanged.
func (q *Quantity) UnmarshalJSON(b []byte) error {
	text, quoted, err := jsonText(b)
	switch {
	case err != nil || !quoted && text == "null":
		return err
	case !quoted && (text == "" || text[0] != '-' && (text[0] < '0' || text[0] > '9')):
		return fmt.Errorf("want a quantity such as 2, \"500m\" or \"512Mi\", got %s", text)
	}
	*q = Quantity(text)
	return nil
}

// jsonText returns the value of a JSON string, or the text of any other
// JSON value ("null", "1.5", "true", "[1]").
func jsonText(b []byte) (text string, quoted bool, err error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		err = json.Unmarshal(b, &text)
		return text, true, err
	}
	return string(b), false, nil
}
