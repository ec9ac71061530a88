package tests

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/strata-data/strata/"

// allowed lists, per package (by directory prefix), which of our packages
// it may import. The first matching prefix wins. This is the layering of
// DESIGN.md section 2 as code.
var allowed = []struct {
	pkg   string
	deps  []string
	extra string
}{
	{"chunk", nil, "chunk is the bottom layer"},
	{"meta", []string{"chunk"}, "meta may use chunk types only"},
	{"store", []string{"chunk", "meta"}, ""},
	{"fs", []string{"chunk", "meta", "store", "api", "fs"}, "fs never imports pipeline"},
	{"pipeline", []string{"chunk", "meta", "store", "api", "pipeline"}, "pipeline uses an interface of fs, not its packages"},
	{"api", []string{"chunk", "meta", "store"}, ""},
	{"daemon", []string{"chunk", "meta", "store", "api", "fs", "pipeline"}, ""},
	{"cmd", []string{"chunk", "meta", "store", "api", "fs", "pipeline", "daemon", "cmd"}, ""},
	{"tests", []string{"chunk", "meta", "store", "api", "daemon"}, ""},
}

// owners: third-party modules that may enter through exactly one package
// each (a prefix of our package path).
var owners = map[string]string{
	"github.com/spf13/cobra":         "cmd",
	"github.com/vbauerster/mpb":      "cmd",
	"github.com/hanwen/go-fuse":      "fs/mount",
	"github.com/containerd/":         "pipeline/runtime",
	"github.com/minio/minio-go":      "chunk/s3",
	"github.com/cockroachdb/pebble/": "meta",
}

func TestLayering(t *testing.T) {
	imports := packageImports(t, "..")
	if len(imports) < 5 {
		t.Fatalf("found only %d packages; is the test running from tests/?", len(imports))
	}
	pkgs := make([]string, 0, len(imports))
	for p := range imports {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, pkg := range pkgs {
		for _, imp := range imports[pkg] {
			if strings.HasPrefix(imp, module) {
				dep := strings.TrimPrefix(imp, module)
				if !mayImport(pkg, dep) {
					t.Errorf("%s imports %s, which the layering forbids", pkg, dep)
				}
				continue
			}
			for mod, owner := range owners {
				if strings.HasPrefix(imp, mod) && pkg != owner && !strings.HasPrefix(pkg, owner+"/") {
					t.Errorf("%s imports %s; only %s may", pkg, imp, owner)
				}
			}
		}
	}
}

func mayImport(pkg, dep string) bool {
	top := strings.SplitN(dep, "/", 2)[0]
	for _, rule := range allowed {
		if pkg == rule.pkg || strings.HasPrefix(pkg, rule.pkg+"/") {
			if top == rule.pkg {
				return true // within one tree (e.g. chunk/backendtest uses chunk)
			}
			for _, d := range rule.deps {
				if top == d {
					return true
				}
			}
			return false
		}
	}
	return false
}

// packageImports maps each package directory (relative to root) to the
// imports of its non-test Go files.
func packageImports(t *testing.T, root string) map[string][]string {
	t.Helper()
	out := make(map[string][]string)
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin" || d.Name() == "testdata" || d.Name() == "contrib") && p != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		rel = filepath.ToSlash(rel)
		for _, is := range f.Imports {
			imp, _ := strconv.Unquote(is.Path.Value)
			out[rel] = append(out[rel], imp)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s", root)
	}
	return out
}
