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
	all := parseSpecs(t, "all.yaml")
	order := []string{"prepare", "train", "evaluate", "infer"}
	if len(all) != len(order) {
		t.Fatalf("all.yaml has %d specs, want %d", len(all), len(order))
	}
	for i, name := range order {
		one := parseSpecs(t, name+".yaml")
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

// serve.yaml runs the serve program over train as a service on port
// 8080; train-cron.yaml is train.yaml with a nightly cron input crossed in.
func TestSpecsServeAndCron(t *testing.T) {
	serve := parseSpecs(t, "serve.yaml")
	if len(serve) != 1 || serve[0].Name != "serve" {
		t.Fatalf("serve.yaml: %d specs, first %q", len(serve), serve[0].Name)
	}
	s := serve[0]
	if s.Service == nil || s.Service.Port != 8080 {
		t.Errorf("serve: service %+v, want port 8080", s.Service)
	}
	if s.Transform.Image != "fashion-mnist" || len(s.Transform.Cmd) == 0 || s.Transform.Cmd[0] != "/bin/serve" {
		t.Errorf("serve: transform %+v", s.Transform)
	}
	if in := s.Input.PFS; in == nil || in.Repo != "train" || in.Glob != "/" {
		t.Errorf("serve: input %+v, want train with glob /", s.Input)
	}

	train := parseSpecs(t, "train.yaml")[0]
	cron := parseSpecs(t, "train-cron.yaml")
	if len(cron) != 1 || cron[0].Name != "train" {
		t.Fatalf("train-cron.yaml: %d specs, first %q", len(cron), cron[0].Name)
	}
	c := cron[0]
	if !reflect.DeepEqual(c.Transform, train.Transform) || c.Parallelism != train.Parallelism {
		t.Errorf("train-cron.yaml's transform or parallelism differs from train.yaml's")
	}
	if len(c.Input.Cross) != 2 || !reflect.DeepEqual(c.Input.Cross[0], train.Input) {
		t.Fatalf("train-cron.yaml: input %+v, want a cross of train.yaml's input and a cron", c.Input)
	}
	tick := c.Input.Cross[1].Cron
	if tick == nil || tick.Name != "nightly" || !tick.Overwrite {
		t.Fatalf("train-cron.yaml: second input %+v, want cron nightly with overwrite", c.Input.Cross[1])
	}
	if _, err := spec.ParseCron(tick.Spec); err != nil {
		t.Errorf("train-cron.yaml: %v", err)
	}
	if repo := c.CronRepo(tick); repo != "train_nightly" {
		t.Errorf("train-cron.yaml ticks to %q, want train_nightly", repo)
	}
}

func parseSpecs(t *testing.T, name string) []*spec.Spec {
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
