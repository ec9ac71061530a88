package fashionmnist_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-data/strata/contrib/examples/fashion-mnist/mnist"
)

// The example's programs end to end, without containers: load, prepare,
// train, evaluate and infer on a subset of the real dataset, run twice to
// check that every output is byte-identical.

const (
	trainExamples = 6000
	testExamples  = 1000
	batchSize     = 250
)

func requireDataset(t *testing.T) {
	t.Helper()
	for _, f := range []string{"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"} {
		if _, err := os.Stat(filepath.Join(mnist.DefaultSource, f)); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("the dataset is required in CI (apt-get install -y dataset-fashion-mnist): %v", err)
			}
			t.Skipf("no Fashion-MNIST here: %v", err)
		}
	}
}

// run runs the whole DAG under root, laid out like the repos: root/load
// (training, images, labels), root/prepare, root/train, root/evaluate,
// root/infer.
func run(t *testing.T, root string) *mnist.Metrics {
	t.Helper()
	dir := func(name string) string {
		d := filepath.Join(root, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	load := dir("load")
	if _, err := mnist.Load(mnist.DefaultSource, load, mnist.LoadOptions{
		Shards: 6, BatchSize: batchSize, ShardSel: mnist.All, BatchSel: mnist.All,
		TrainLimit: trainExamples, TestLimit: testExamples,
	}); err != nil {
		t.Fatal(err)
	}
	pm, err := mnist.Prepare(filepath.Join(load, "training"), dir("prepare"))
	if err != nil {
		t.Fatal(err)
	}
	if pm.Examples != trainExamples || len(pm.Files) != 6 {
		t.Fatalf("prepare: %d examples from %d files", pm.Examples, len(pm.Files))
	}
	params, err := mnist.TrainDir(filepath.Join(root, "prepare"), dir("train"), mnist.DefaultTrainOptions)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("train: accuracy %.4f, loss %.4f on %d examples", params.TrainAccuracy, params.TrainLoss, params.Examples)
	m, err := mnist.Evaluate(filepath.Join(root, "train"), filepath.Join(load, "images"), filepath.Join(load, "labels"), dir("evaluate"))
	if err != nil {
		t.Fatal(err)
	}
	// infer runs once per batch, as the pipeline's datums do.
	for i := range testExamples / batchSize {
		name := "batch-0" + strconv.Itoa(i) + ".bin"
		datum := filepath.Join(root, "datum-"+strconv.Itoa(i))
		if err := os.MkdirAll(datum, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(filepath.Join(load, "images", name), filepath.Join(datum, name)); err != nil {
			t.Fatal(err)
		}
		files, err := mnist.Infer(filepath.Join(root, "train"), datum, dir("infer"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != 1 || files[0] != strings.TrimSuffix(name, ".bin")+".csv" {
			t.Fatalf("infer on %s wrote %v", name, files)
		}
	}
	return m
}

func TestPipeline(t *testing.T) {
	requireDataset(t)
	a, b := t.TempDir(), t.TempDir()
	m := run(t, a)
	t.Logf("evaluate: accuracy %.4f on %d examples", m.Accuracy, m.Examples)
	if m.Examples != testExamples || len(m.Batches) != testExamples/batchSize {
		t.Fatalf("evaluate scored %d examples in %v", m.Examples, m.Batches)
	}
	if m.Accuracy < 0.75 {
		t.Errorf("test accuracy %.4f on the subset, want at least 0.75", m.Accuracy)
	}

	// The predictions agree with the metrics.
	labels := map[int]int{}
	for i := range testExamples / batchSize {
		r, err := mnist.ReadRecords(filepath.Join(a, "load", "labels", "batch-0"+strconv.Itoa(i)+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		for j, l := range r.Labels {
			labels[r.First+j] = int(l)
		}
	}
	correct, lines := 0, 0
	for i := range testExamples / batchSize {
		data, err := os.ReadFile(filepath.Join(a, "infer", "batch-0"+strconv.Itoa(i)+".csv"))
		if err != nil {
			t.Fatal(err)
		}
		rows := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if rows[0] != "index,class_id,class_name,confidence" || len(rows) != batchSize+1 {
			t.Fatalf("batch %d: %d lines, header %q", i, len(rows), rows[0])
		}
		for _, row := range rows[1:] {
			f := strings.Split(row, ",")
			idx, _ := strconv.Atoi(f[0])
			c, _ := strconv.Atoi(f[1])
			conf, err := strconv.ParseFloat(f[3], 64)
			if len(f) != 4 || f[2] != mnist.Classes[c] || err != nil || conf < 0.1 || conf > 1 {
				t.Fatalf("bad prediction line %q", row)
			}
			if labels[idx] == c {
				correct++
			}
			lines++
		}
	}
	if lines != testExamples || correct != m.Correct {
		t.Errorf("predictions: %d of %d right; metrics say %d", correct, lines, m.Correct)
	}

	// A second run gives byte-identical files.
	run(t, b)
	n := 0
	filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		x, _ := os.ReadFile(p)
		y, err := os.ReadFile(filepath.Join(b, rel))
		if err != nil || !bytes.Equal(x, y) {
			t.Errorf("%s differs between two runs (%v)", rel, err)
		}
		n++
		return nil
	})
	if n < 20 {
		t.Fatalf("compared only %d files", n)
	}

	// serve's handler answers with the trained model.
	model, err := mnist.ReadModel(filepath.Join(a, "train", "model.bin"))
	if err != nil {
		t.Fatal(err)
	}
	params, err := mnist.ReadParams(filepath.Join(a, "train", "params.json"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mnist.Handler(model, params))
	defer srv.Close()
	imgs, err := mnist.ReadRecords(filepath.Join(a, "load", "images", "batch-00.bin"))
	if err != nil {
		t.Fatal(err)
	}
	want := model.Predict(imgs.Image(0))
	nums, _ := json.Marshal(bytesToInts(imgs.Image(0)))
	for _, body := range [][]byte{imgs.Image(0), nums} {
		resp, err := http.Post(srv.URL+"/predict", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var got mnist.Prediction
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || got != want {
			t.Fatalf("POST /predict: %d %+v %v, want %+v", resp.StatusCode, got, err, want)
		}
	}
	resp, err := http.Post(srv.URL+"/predict", "application/json", strings.NewReader("[1, 2, 3]"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("POST /predict with 3 numbers: %d", resp.StatusCode)
	}
	resp, err = http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Status string
		Params mnist.TrainParams
	}
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if h.Status != "ok" || h.Params.Examples != trainExamples || h.Params.Model != "softmax" {
		t.Fatalf("GET /healthz: %+v", h)
	}
}

func bytesToInts(b []byte) []int {
	r := make([]int, len(b))
	for i, v := range b {
		r[i] = int(v)
	}
	return r
}
