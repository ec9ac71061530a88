package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// contrib/jupyter/model-history.ipynb run headless by Debian's Jupyter
// against a real daemon's mount, over plain repos shaped like the
// Fashion-MNIST example's train and evaluate outputs.

const (
	jupyterExecute = "/usr/bin/jupyter-execute" // python3-nbclient
	debianPython   = "/usr/bin/python3"
	jupyterApt     = "apt-get install -y python3-nbclient python3-ipykernel python3-matplotlib"
)

// requireJupyter checks for jupyter-execute and the Python packages the
// notebook's kernel imports: a failure in CI, a skip elsewhere.
func requireJupyter(t *testing.T) {
	t.Helper()
	_, err := os.Stat(jupyterExecute)
	if err == nil {
		var out []byte
		out, err = exec.Command(debianPython, "-c", "import nbclient, ipykernel, matplotlib").CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Jupyter is required in CI (%s): %v", jupyterApt, err)
		}
		t.Skipf("no Jupyter here (%s): %v", jupyterApt, err)
	}
}

func TestNotebook(t *testing.T) {
	requireFuse(t)
	requireJupyter(t)
	tmp := t.TempDir()
	data, mnt := filepath.Join(tmp, "data"), filepath.Join(tmp, "pfs")
	d := startMountDaemon(t, data, mnt)
	d.ok(nil, "repo", "create", "train")
	d.ok(nil, "repo", "create", "evaluate")
	head := func(repo string) string {
		var c struct{ ID string }
		if err := json.Unmarshal([]byte(d.ok(nil, "commit", "inspect", repo+"@main", "-o", "json")), &c); err != nil || c.ID == "" {
			t.Fatalf("commit inspect %s@main: %v", repo, err)
		}
		return c.ID
	}

	// A commit without metrics.json, which the notebook skips, then three
	// model versions and a failed one. The best is not the newest.
	d.ok([]byte("metrics of the fashion-mnist model\n"), "put", "evaluate@main:/README", "-f", "-")
	accs := []float64{0.80, 0.86, 0.85}
	var trainIDs, evalIDs []string
	for v, acc := range accs {
		params := fmt.Sprintf(`{"model":"softmax","epochs":%d,"learning_rate":0.1,"seed":7,"examples":60000,"train_accuracy":%g,"train_loss":%g}`,
			5*(v+1), acc+0.02, 1-acc)
		d.ok([]byte(params), "put", "train@main:/params.json", "-f", "-")
		trainIDs = append(trainIDs, head("train"))
		d.ok(metricsJSON(acc), "put", "evaluate@main:/metrics.json", "-f", "-")
		evalIDs = append(evalIDs, head("evaluate"))
		if v == 1 { // a failed evaluation, which the notebook leaves out
			d.ok(nil, "commit", "start", "evaluate@main")
			d.ok(metricsJSON(0.99), "put", "evaluate@main:/metrics.json", "-f", "-")
			d.ok(nil, "commit", "finish", "evaluate@main", "--fail", "job stopped")
		}
	}
	d.ok(nil, "branch", "create", "evaluate@baseline", "--head", "evaluate@"+evalIDs[0])

	// Debian's python3 as the kernel, whatever kernels the user has.
	jdir := filepath.Join(tmp, "jupyter")
	kdir := filepath.Join(jdir, "kernels", "strata-test-python3")
	if err := os.MkdirAll(kdir, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := `{"argv": ["` + debianPython + `", "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "Debian python3", "language": "python"}`
	if err := os.WriteFile(filepath.Join(kdir, "kernel.json"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	nb, err := os.ReadFile("../contrib/jupyter/model-history.ipynb")
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(tmp, "work")
	os.MkdirAll(work, 0o755)
	nbPath := filepath.Join(work, "model-history.ipynb")
	if err := os.WriteFile(nbPath, nb, 0o644); err != nil {
		t.Fatal(err)
	}
	plot, summaryPath := filepath.Join(tmp, "acc.png"), filepath.Join(tmp, "summary.json")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, jupyterExecute, "--kernel_name=strata-test-python3", "--timeout=120", nbPath)
	cmd.Dir = work
	cmd.Env = append(os.Environ(),
		"PATH=/usr/bin:/bin:"+os.Getenv("PATH"),
		"STRATA_PFS="+mnt,
		"PLOT_PATH="+plot,
		"SUMMARY_PATH="+summaryPath,
		"STRATA="+strataBin,
		"STRATA_ADDR=unix://"+filepath.Join(data, "strata.sock"),
		"JUPYTER_PATH="+jdir,
		"JUPYTER_RUNTIME_DIR="+filepath.Join(tmp, "runtime"),
		"IPYTHONDIR="+filepath.Join(tmp, "ipython"),
		"PYDEVD_DISABLE_FILE_VALIDATION=1",
	)
	// The kernel is a child of jupyter-execute: on a timeout, kill both.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("jupyter-execute took %v", time.Since(start).Round(10*time.Millisecond))
	if err != nil {
		t.Fatalf("jupyter-execute: %v\n%s", err, out)
	}

	// jupyter-execute does not print cell outputs; the notebook writes its
	// summary to SUMMARY_PATH as well as printing it.
	raw, err := os.ReadFile(summaryPath)
	if err != nil {
		t.Fatalf("no summary: %v\njupyter-execute output:\n%s", err, out)
	}
	var sum struct {
		Versions       int     `json:"versions"`
		BestAccuracy   float64 `json:"best_accuracy"`
		BestCommit     string  `json:"best_commit"`
		NewestAccuracy float64 `json:"newest_accuracy"`
		NewestCommit   string  `json:"newest_commit"`
		TrainCommits   int     `json:"train_commits"`
		History        []struct {
			Commit       string  `json:"commit"`
			Accuracy     float64 `json:"accuracy"`
			TrainCommit  string  `json:"train_commit"`
			PairedByTime bool    `json:"paired_by_time"`
			Params       struct {
				Epochs int `json:"epochs"`
			} `json:"params"`
		} `json:"history"`
	}
	if err := json.Unmarshal(raw, &sum); err != nil {
		t.Fatalf("summary %s: %v", raw, err)
	}
	if sum.Versions != 3 || sum.BestAccuracy != 0.86 || sum.NewestAccuracy != 0.85 || sum.TrainCommits != 3 {
		t.Errorf("summary: versions %d, best %v, newest %v, train commits %d; want 3, 0.86, 0.85, 3",
			sum.Versions, sum.BestAccuracy, sum.NewestAccuracy, sum.TrainCommits)
	}
	if sum.BestCommit != evalIDs[1] || sum.NewestCommit != evalIDs[2] {
		t.Errorf("best commit %s, newest %s; want %s, %s", sum.BestCommit, sum.NewestCommit, evalIDs[1], evalIDs[2])
	}
	if len(sum.History) != len(accs) {
		t.Fatalf("history has %d versions, want %d:\n%s", len(sum.History), len(accs), raw)
	}
	for i, h := range sum.History {
		if h.Commit != evalIDs[i] || h.Accuracy != accs[i] || h.TrainCommit != trainIDs[i] || h.Params.Epochs != 5*(i+1) {
			t.Errorf("version %d: %+v; want commit %s, accuracy %v, trained by %s with %d epochs",
				i+1, h, evalIDs[i], accs[i], trainIDs[i], 5*(i+1))
		}
	}

	png, err := os.ReadFile(plot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 1000 {
		t.Errorf("plot %s: %d bytes, %v; want a PNG", plot, len(png), err)
	}
	if strings.Contains(string(out), "Traceback") {
		t.Errorf("jupyter-execute reported an error:\n%s", out)
	}

	d.stop()
	if isMountPoint(t, mnt) {
		t.Errorf("%s still mounted after SIGTERM", mnt)
	}
}

// metricsJSON is an evaluate-style metrics.json for 1000 test images, 100
// per class, with the given accuracy: each class's misses go to the next.
func metricsJSON(acc float64) []byte {
	classes := []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}
	hit := int(acc*100 + 0.5)
	confusion := make([][]int, 10)
	for i := range confusion {
		confusion[i] = make([]int, 10)
		confusion[i][i] = hit
		confusion[i][(i+1)%10] = 100 - hit
	}
	b, _ := json.Marshal(map[string]any{"accuracy": acc, "examples": 1000, "confusion": confusion, "classes": classes})
	return b
}
