package fashionmnist_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/strata-data/strata/pipeline/spec"
)

// The pipeline specs parse with strata's own parser, all.yaml holds the
// four single-pipeline files in DAG order, and each runs a program this
// example builds.
func TestSpecs(t *testing.T) {
	parse := func(name string) []*spec.Spec {
		t.Helper()
		data, err := os.ReadFile(filepath.Join("pipelines", name))
		if err != nil {
			t.Fatal(err)
		}
		specs, err := spec.Parse(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return specs
	}
	all := parse("all.yaml")
	order := []string{"prepare", "train", "evaluate", "infer"}
	if len(all) != len(order) {
		t.Fatalf("all.yaml has %d specs, want %d", len(all), len(order))
	}
	for i, name := range order {
		one := parse(name + ".yaml")
		if len(one) != 1 || one[0].Name != name {
			t.Fatalf("%s.yaml: %d specs, first %q", name, len(one), one[0].Name)
		}
		if !reflect.DeepEqual(one[0], all[i]) {
			t.Errorf("all.yaml's spec #%d differs from %s.yaml: regenerate it", i+1, name)
		}
		s := one[0]
		if s.Transform.Image != "fashion-mnist" || len(s.Transform.Cmd) == 0 {
			t.Fatalf("%s: transform %+v", name, s.Transform)
		}
		if prog := filepath.Base(s.Transform.Cmd[0]); prog != name {
			t.Errorf("%s runs %s", name, s.Transform.Cmd[0])
		}
		want := 1
		if name == "infer" {
			want = 2
		}
		if s.Parallelism != want {
			t.Errorf("%s: parallelism %d, want %d", name, s.Parallelism, want)
		}
	}
}
