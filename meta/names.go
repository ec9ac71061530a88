package meta

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxNameLen is the longest file name component, in bytes.
const MaxNameLen = 255

// ValidName checks a repo or branch name: 1 to 63 characters from
// [A-Za-z0-9._-], not starting with '.' or '-'.
func ValidName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%s name is empty: %w", kind, ErrInvalid)
	}
	if len(name) > 63 {
		return fmt.Errorf("%s name %q is longer than 63 characters: %w", kind, name, ErrInvalid)
	}
	if name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("%s name %q starts with %q: %w", kind, name, name[0], ErrInvalid)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("%s name %q has character %q; use letters, digits, '.', '_' and '-': %w", kind, name, c, ErrInvalid)
		}
	}
	return nil
}

// CleanPath checks a path inside a commit and returns it in canonical form:
// "/" for the root, otherwise "/a/b" without a trailing slash. It rejects
// "." and ".." components, empty components ("a//b"), NUL bytes, invalid
// UTF-8 and components longer than MaxNameLen, so a path can never escape
// its repo or mean two things.
func CleanPath(p string) (string, error) {
	if p == "" || p == "/" {
		return "/", nil
	}
	q := strings.TrimPrefix(p, "/")
	q = strings.TrimSuffix(q, "/")
	if q == "" {
		return "", fmt.Errorf("path %q: empty component: %w", p, ErrInvalid)
	}
	for _, c := range strings.Split(q, "/") {
		if err := validComponent(c); err != nil {
			return "", fmt.Errorf("path %q: %w", p, err)
		}
	}
	return "/" + q, nil
}

func validComponent(c string) error {
	switch {
	case c == "":
		return fmt.Errorf("empty component: %w", ErrInvalid)
	case c == "." || c == "..":
		return fmt.Errorf("component %q is not allowed: %w", c, ErrInvalid)
	case len(c) > MaxNameLen:
		return fmt.Errorf("component is %d bytes, longer than %d: %w", len(c), MaxNameLen, ErrInvalid)
	case strings.IndexByte(c, 0) >= 0:
		return fmt.Errorf("component contains a NUL byte: %w", ErrInvalid)
	case !utf8.ValidString(c):
		return fmt.Errorf("component %q is not valid UTF-8: %w", c, ErrInvalid)
	}
	return nil
}

// splitPath returns the components of a clean path ("/" has none).
func splitPath(p string) []string {
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}
