package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-data/strata/api"
)

// The Fashion-MNIST workflow end to end against real containerd and a
// real mount (contrib/examples/fashion-mnist): the first DAG run, one new
// image batch, a new training shard, a revert, lineage, a reprocess, and
// a service answering predictions.

func requireDataset(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the Fashion-MNIST data is required in CI (apt-get install -y dataset-fashion-mnist): %v", err)
		}
		t.Skipf("no Fashion-MNIST data: %v", err)
	}
}

func (d *daemon) example(target string) string {
	d.t.Helper()
	cmd := exec.Command("make", "-s", "-C", "../contrib/examples/fashion-mnist", target, "STRATA="+strataBin)
	cmd.Env = append(os.Environ(), "STRATA_ADDR=unix://"+filepath.Join(d.data, "strata.sock"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		d.t.Fatalf("make %s: %v\n%s", target, err, out)
	}
	return string(out)
}

type commitInfo struct {
	ID         string
	State      string
	Spec       string
	Provenance []struct{ Repo, ID string }
}

func (d *daemon) commit(ref string) commitInfo {
	d.t.Helper()
	var c commitInfo
	d.jsonOut(&c, "commit", "inspect", ref)
	return c
}

func (c commitInfo) from(repo string) string {
	for _, p := range c.Provenance {
		if p.Repo == repo {
			return p.ID
		}
	}
	return ""
}

func (d *daemon) lastJob(pipeline string) *api.Job {
	d.t.Helper()
	var js []*api.Job
	d.jsonOut(&js, "job", "list", "--pipeline", pipeline, "--limit", "1")
	if len(js) != 1 {
		d.t.Fatalf("no job of %s", pipeline)
	}
	return js[0]
}

func TestFashionMNIST(t *testing.T) {
	requireDataset(t)
	d := pipelineDaemon(t)

	start := time.Now()
	out := d.example("run")
	t.Logf("make run: %v\n%s", time.Since(start), out)
	var m struct{ Accuracy float64 }
	if err := json.Unmarshal([]byte(d.ok(nil, "cat", "evaluate@main:/metrics.json")), &m); err != nil || m.Accuracy < 0.84 {
		t.Fatalf("accuracy %v (%v); want >= 0.84 (the paper's logistic regression: 0.842)", m.Accuracy, err)
	}
	train1 := d.commit("train@main")
	infer1 := d.commit("infer@main")
	if infer1.from("train") != train1.ID {
		t.Fatalf("infer@main is not stamped with the model commit: %+v vs train %s", infer1, train1.ID)
	}
	batch3 := d.ok(nil, "cat", "infer@main:/batch-03.csv")

	// One new image batch: only its datum of infer runs.
	start = time.Now()
	d.example("more-images")
	t.Logf("one new image batch: %v", time.Since(start))
	if j := d.lastJob("infer"); j.Processed != 1 || j.Skipped != 9 || j.State != api.JobSuccess {
		t.Fatalf("infer after one new batch: %+v", j)
	}

	// A new training shard: everything downstream retrains, and the
	// predictions are stamped with the new model.
	start = time.Now()
	d.example("more-data")
	t.Logf("new training shard, full DAG: %v", time.Since(start))
	train2 := d.commit("train@main")
	infer2 := d.commit("infer@main")
	if train2.ID == train1.ID || infer2.from("train") != train2.ID {
		t.Fatalf("after a new shard: train %s -> %s, infer's model %s", train1.ID, train2.ID, infer2.from("train"))
	}
	if j := d.lastJob("infer"); j.Processed != 10 {
		t.Fatalf("a new model must re-score every batch: %+v", j)
	}

	// Revert: the model and the predictions return to the first version,
	// reusing every datum.
	start = time.Now()
	d.ok(nil, "branch", "create", "training@main", "--head", "training@main^1")
	d.waitCommit("training@main")
	revert := time.Since(start)
	t.Logf("revert: %v", revert)
	for _, p := range []string{"prepare", "train", "evaluate", "infer"} {
		if j := d.lastJob(p); j.State != api.JobSuccess || j.Processed != 0 {
			t.Errorf("%s after the revert ran %d datums (%+v); want all reused", p, j.Processed, j)
		}
	}
	if got := d.ok(nil, "cat", "train@main:/model.bin"); got != d.ok(nil, "cat", "train@"+train1.ID+":/model.bin") {
		t.Errorf("the reverted model differs from the first one")
	}
	if got := d.ok(nil, "cat", "infer@main:/batch-03.csv"); got != batch3 {
		t.Errorf("reverted predictions differ from the first ones")
	}

	// Lineage of a prediction names the model, training and image commits.
	var l api.Lineage
	d.jsonOut(&l, "lineage", "infer@main:/batch-03.csv")
	repos := map[string]bool{}
	var walk func(l *api.Lineage)
	walk = func(l *api.Lineage) {
		for _, in := range l.Inputs {
			repos[in.Repo] = true
		}
		for _, u := range l.Upstream {
			walk(u)
		}
	}
	walk(&l)
	if l.Pipeline != "infer" || !repos["images"] || !repos["train"] || !repos["training"] {
		t.Errorf("lineage of a prediction: %+v (repos %v)", l, repos)
	}

	// update --reprocess reruns on purpose.
	d.ok(nil, "pipeline", "update", "-f", "../contrib/examples/fashion-mnist/pipelines/train.yaml", "--reprocess")
	d.waitCommit("prepare@main")
	if j := d.lastJob("train"); j.Processed != 1 || j.SpecVersion != 2 {
		t.Errorf("train after update --reprocess: %+v", j)
	}

	// A service serves predictions of the newest model over HTTP.
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l2.Addr().(*net.TCPAddr).Port
	l2.Close()
	d.spec(fmt.Sprintf(`
name: serve
transform: {image: fashion-mnist, cmd: [/bin/serve, --model, /pfs/train/model.bin]}
input: {pfs: {repo: train, glob: /}}
service: {port: %d}
`, port), "pipeline", "create")
	var pred struct {
		ClassName string `json:"class_name"`
	}
	var last string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && pred.ClassName == ""; time.Sleep(300 * time.Millisecond) {
		resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/predict", port), "application/octet-stream", bytes.NewReader(make([]byte, 784)))
		if err != nil {
			last = err.Error()
			continue
		}
		json.NewDecoder(resp.Body).Decode(&pred)
		resp.Body.Close()
		last = resp.Status
	}
	if pred.ClassName == "" {
		t.Fatalf("no prediction from the service: %s", last)
	}
	if !strings.Contains(d.ok(nil, "pipeline", "list"), "serve") {
		t.Error("serve is not listed")
	}

	// A new model restarts the service over it: the model it reports
	// was trained on the 6th shard too.
	examples := func() int {
		var h struct{ Params struct{ Examples int } }
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&h)
		return h.Params.Examples
	}
	before := examples()
	if before == 0 {
		t.Fatal("the service reports no model on /healthz")
	}
	d.example("more-data")
	after := before
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && after == before; time.Sleep(300 * time.Millisecond) {
		if n := examples(); n != 0 {
			after = n
		}
	}
	if after <= before {
		t.Fatalf("after a new model the service reports a model of %d examples, before %d", after, before)
	}
}
