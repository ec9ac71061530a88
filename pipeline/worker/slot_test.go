package worker

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-data/strata/meta"
)

// writeTar sends what a local worker's output would hold, and refuses
// what it would refuse.
func TestWriteTar(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sub", "empty"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "f"), []byte("data"), 0o644)
	os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh"), 0o755)
	var buf bytes.Buffer
	if err := writeTar(&buf, dir); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		got[h.Name] = string(body)
		if h.Name == "run.sh" && h.Mode&0o111 == 0 {
			t.Errorf("run.sh lost its exec bit: %o", h.Mode)
		}
	}
	want := map[string]string{"run.sh": "#!/bin/sh", "sub/": "", "sub/empty/": "", "sub/f": "data"}
	if len(got) != len(want) {
		t.Errorf("tar holds %v; want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q; want %q", k, got[k], v)
		}
	}
	os.Symlink("sub/f", filepath.Join(dir, "link"))
	if err := writeTar(io.Discard, dir); !errors.Is(err, meta.ErrInvalid) {
		t.Errorf("a symlink in the output: %v, want ErrInvalid", err)
	}
}
