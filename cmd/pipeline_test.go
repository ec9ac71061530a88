package cmd

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/store"
)

// cliFake is a small Pipelines for driving the CLI.
type cliFake struct {
	mu        sync.Mutex
	pipelines map[string]*api.Pipeline
	tarNames  []string // entries of the last rootfs import
	tarModes  map[string]int64
	tarLinks  map[string]string
	mounted   chan string
	unmounted string
}

func newCLIFake() *cliFake {
	return &cliFake{pipelines: map[string]*api.Pipeline{}, mounted: make(chan string, 1)}
}

var (
	t0      = time.Now().Add(-time.Minute).UTC()
	t1      = t0.Add(12 * time.Second)
	okJob   = &api.Job{ID: "4f1c2a9b0c11d2e3f4a5b6c7d8e9f0a1", Pipeline: "edges", State: api.JobSuccess, Created: t0, Started: &t0, Finished: &t1, Total: 10, Processed: 7, Skipped: 3}
	failJob = &api.Job{ID: "9c1d4e2a7b3f00000000000000000000", Pipeline: "montage", State: api.JobFailure, Error: "datum 0a7c failed: exit status 1", Created: t0, Started: &t0, Finished: &t1, Total: 2, Processed: 1, Failed: 1}
)

func (f *cliFake) CreatePipelines(ctx context.Context, spec []byte, update, reprocess bool) ([]*api.Pipeline, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*api.Pipeline
	for _, doc := range strings.Split(string(spec), "---\n") {
		var s struct {
			Name  string
			Input json.RawMessage
		}
		if err := json.Unmarshal([]byte(doc), &s); err != nil {
			return nil, fmt.Errorf("spec: %v: %w", err, meta.ErrInvalid)
		}
		if _, ok := f.pipelines[s.Name]; ok && !update {
			return nil, fmt.Errorf("pipeline %q exists; change it with 'strata pipeline update -f SPEC': %w", s.Name, meta.ErrExist)
		}
		p := &api.Pipeline{Name: s.Name, Spec: json.RawMessage(doc), Version: 1, State: api.PipelineRunning, Created: t0, Updated: t0,
			LastJob: okJob.ID, JobStates: map[string]int{api.JobSuccess: 2, api.JobRunning: 1}}
		f.pipelines[s.Name] = p
		out = append(out, p)
	}
	return out, nil
}

func (f *cliFake) ListPipelines(ctx context.Context) ([]*api.Pipeline, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*api.Pipeline
	for _, p := range f.pipelines {
		out = append(out, p)
	}
	return out, nil
}

func (f *cliFake) InspectPipeline(ctx context.Context, name string) (*api.Pipeline, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.pipelines[name]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("no pipeline %q: %w", name, meta.ErrNotExist)
}

func (f *cliFake) DeletePipeline(ctx context.Context, name string) error {
	_, err := f.InspectPipeline(ctx, name)
	return err
}
func (f *cliFake) StopPipeline(ctx context.Context, name string) error {
	return f.DeletePipeline(ctx, name)
}
func (f *cliFake) StartPipeline(ctx context.Context, name string) error {
	return f.DeletePipeline(ctx, name)
}

func (f *cliFake) ListJobs(ctx context.Context, pipeline string, limit int) ([]*api.Job, error) {
	return []*api.Job{okJob, failJob}, nil
}

func (f *cliFake) InspectJob(ctx context.Context, id string) (*api.Job, error) {
	for _, j := range []*api.Job{okJob, failJob} {
		if strings.HasPrefix(j.ID, id) {
			return j, nil
		}
	}
	return nil, fmt.Errorf("no job %q: %w", id, meta.ErrNotExist)
}

func (f *cliFake) WaitJob(ctx context.Context, id string) (*api.Job, error) {
	return f.InspectJob(ctx, id)
}
func (f *cliFake) StopJob(ctx context.Context, id string) error {
	_, err := f.InspectJob(ctx, id)
	return err
}

func (f *cliFake) WaitCommit(ctx context.Context, repo, ref string) ([]*api.Job, error) {
	switch repo {
	case "images":
		return []*api.Job{okJob, failJob}, nil
	case "clean":
		return []*api.Job{okJob}, nil
	case "slow":
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, nil
}

func (f *cliFake) ListDatums(ctx context.Context, job string) ([]*api.Datum, error) {
	return []*api.Datum{{ID: "0a7c5e9d1b2f3a4c5d6e7f8091a2b3c4", State: api.DatumFailed, Tries: 3, Duration: 1.5,
		Inputs: []api.DatumFile{{Input: "edges", Repo: "edges", Commit: okJob.ID, Path: "/cat.png"}}}}, nil
}

func (f *cliFake) InspectDatum(ctx context.Context, job, datum string) (*api.Datum, error) {
	ds, _ := f.ListDatums(ctx, job)
	return ds[0], nil
}

func (f *cliFake) Logs(ctx context.Context, q api.LogQuery, w io.Writer) error {
	if q.Pipeline != "edges" {
		return fmt.Errorf("no pipeline %q: %w", q.Pipeline, meta.ErrNotExist)
	}
	fmt.Fprintf(w, "log of %s job=%s datum=%s\n", q.Pipeline, q.Job, q.Datum)
	return nil
}

func (f *cliFake) Lineage(ctx context.Context, repo, ref, path string) (*api.Lineage, error) {
	return &api.Lineage{Repo: repo, Commit: failJob.ID, Path: path, Pipeline: "montage", Job: failJob.ID, Datum: "0a7c5e9d1b2f3a4c", Spec: "montage@3",
		Inputs: []api.DatumFile{
			{Input: "edges", Repo: "edges", Commit: okJob.ID, Path: "/cat.png"},
			{Input: "raw", Repo: "images", Commit: "e1d8af4b9a36b4e9ab69cd579c2e546c", Path: "/dog.png"},
		},
		Upstream: []*api.Lineage{{Repo: "edges", Commit: okJob.ID, Path: "/cat.png", Pipeline: "edges", Job: okJob.ID, Datum: "77aa", Spec: "edges@1",
			Inputs: []api.DatumFile{{Input: "images", Repo: "images", Commit: "e1d8af4b9a36b4e9ab69cd579c2e546c", Path: "/cat.png"}}}},
	}, nil
}

func (f *cliFake) ImportImage(ctx context.Context, name, format string, r io.Reader) (*api.Image, error) {
	if format != api.ImageRootfs {
		n, err := io.Copy(io.Discard, r)
		return &api.Image{Name: name, Digest: "sha256:0123456789abcdef0123", Size: n, Created: t0}, err
	}
	tr := tar.NewReader(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tarNames, f.tarModes, f.tarLinks = nil, map[string]int64{}, map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("tar: %v: %w", err, meta.ErrInvalid)
		}
		f.tarNames = append(f.tarNames, h.Name)
		f.tarModes[h.Name] = h.Mode
		f.tarLinks[h.Name] = h.Linkname
		if h.Uid != 0 || h.Gid != 0 {
			return nil, fmt.Errorf("%s owned by %d:%d", h.Name, h.Uid, h.Gid)
		}
	}
	return &api.Image{Name: name, Digest: "sha256:fedcba9876543210fedc", Size: 1, Created: t0}, nil
}

func (f *cliFake) ListImages(ctx context.Context) ([]*api.Image, error) { return nil, nil }

func (f *cliFake) MountDatum(ctx context.Context, spec []byte, dir string, n int) (*api.Datum, error) {
	f.mounted <- dir
	return &api.Datum{ID: "0a7c5e9d1b2f3a4c5d6e7f8091a2b3c4", Inputs: []api.DatumFile{{Input: "images", Repo: "images", Commit: "e1d8af4b9a36b4e9ab69cd579c2e546c", Path: "/cat.png"}}}, nil
}

func (f *cliFake) UnmountDatum(ctx context.Context, dir string) error {
	f.mu.Lock()
	f.unmounted = dir
	f.mu.Unlock()
	return nil
}

func serveCLI(t *testing.T, p api.Pipelines) string {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := api.NewServer(st, slog.New(slog.NewTextHandler(io.Discard, nil)), func() api.Status { return api.Status{} })
	if p != nil {
		srv.SetPipelines(p)
	}
	hs := httptest.NewServer(srv.Handler(""))
	t.Cleanup(hs.Close)
	return hs.URL
}

var runMu sync.Mutex

// run runs the CLI with args against server and returns its stdout,
// stderr and exit code.
func run(t *testing.T, server string, stdin string, args ...string) (string, string, int) {
	t.Helper()
	runMu.Lock()
	defer runMu.Unlock()
	dir := t.TempDir()
	files := make([]*os.File, 3)
	for i, n := range []string{"in", "out", "err"} {
		f, err := os.Create(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files[i] = f
	}
	files[0].WriteString(stdin)
	files[0].Seek(0, 0)
	oldArgs, oldIn, oldOut, oldErr := os.Args, os.Stdin, os.Stdout, os.Stderr
	os.Args = append([]string{"strata", "--server", server}, args...)
	os.Stdin, os.Stdout, os.Stderr = files[0], files[1], files[2]
	code := Execute()
	os.Args, os.Stdin, os.Stdout, os.Stderr = oldArgs, oldIn, oldOut, oldErr
	out, _ := os.ReadFile(files[1].Name())
	errOut, _ := os.ReadFile(files[2].Name())
	return string(out), string(errOut), code
}

func TestPipelineCLI(t *testing.T) {
	f := newCLIFake()
	srv := serveCLI(t, f)
	dir := t.TempDir()
	spec := filepath.Join(dir, "specs.json")
	os.WriteFile(spec, []byte(`{"name":"edges","input":{"pfs":{"repo":"images","glob":"/*"}}}`+"\n---\n"+
		`{"name":"montage","input":{"cross":[{"pfs":{"repo":"edges","glob":"/"}},{"pfs":{"repo":"images","branch":"dev","glob":"/"}}]}}`+"\n"), 0o644)

	check := func(name string, wantCode int, out, errOut string, code int, wants ...string) {
		t.Helper()
		if code != wantCode {
			t.Errorf("%s: exit %d, want %d (stdout %q, stderr %q)", name, code, wantCode, out, errOut)
		}
		for _, w := range wants {
			if !strings.Contains(out+errOut, w) {
				t.Errorf("%s: output lacks %q:\n%s%s", name, w, out, errOut)
			}
		}
	}

	out, errOut, code := run(t, srv, "", "pipeline", "create", "-f", spec)
	check("create", 0, out, errOut, code, "created pipeline edges (version 1)", "created pipeline montage (version 1)")
	out, errOut, code = run(t, srv, "", "pipeline", "create", "-f", spec)
	check("create again", ExitConflict, out, errOut, code, "strata pipeline update -f")
	out, errOut, code = run(t, srv, `{"name":"stdin"}`, "pipeline", "create", "-f", "-", "-o", "json")
	var ps []api.Pipeline
	if err := json.Unmarshal([]byte(out), &ps); err != nil || len(ps) != 1 || ps[0].Name != "stdin" {
		t.Errorf("create from stdin -o json: %q %v", out, err)
	}
	check("create stdin", 0, out, errOut, code)
	out, errOut, code = run(t, srv, "", "pipeline", "create")
	check("create without -f", ExitUsage, out, errOut, code, "-f SPEC")

	out, errOut, code = run(t, srv, "", "pipeline", "list")
	check("list", 0, out, errOut, code, "NAME", "images:/*", "cross(edges:/, images@dev:/)", "1 running, 2 success", "4f1c2a9b0c11")
	out, errOut, code = run(t, srv, "", "pipeline", "inspect", "edges")
	check("inspect", 0, out, errOut, code, "Version:", "Spec:", "  input:", "glob: /*")
	out, errOut, code = run(t, srv, "", "pipeline", "inspect", "nope")
	check("inspect missing", ExitNotFound, out, errOut, code, `no pipeline "nope"`, "strata pipeline list")
	out, errOut, code = run(t, srv, "", "pipeline", "stop", "edges")
	check("stop", 0, out, errOut, code, "strata pipeline start edges")
	out, errOut, code = run(t, srv, "", "pipeline", "nosuch")
	check("unknown verb", ExitUsage, out, errOut, code)

	out, errOut, code = run(t, srv, "", "job", "list")
	check("job list", 0, out, errOut, code, "ID", "DATUMS", "4f1c2a9b0c11 ", "7+3/10", "1+0/2, 1 failed", "12s")
	if strings.Contains(out, okJob.ID) {
		t.Errorf("job list shows full IDs:\n%s", out)
	}
	out, errOut, code = run(t, srv, "", "job", "inspect", "4f1c2a")
	check("job inspect", 0, out, errOut, code, okJob.ID, "10 total: 7 processed, 3 skipped, 0 failed")
	out, errOut, code = run(t, srv, "", "job", "wait", "4f1c2a")
	check("job wait ok", 0, out, errOut, code)
	out, errOut, code = run(t, srv, "", "job", "wait", "9c1d4e")
	check("job wait failed", ExitJobFailed, out, errOut, code, "exit status 1", "strata logs --pipeline montage --job 9c1d4e2a7b3f")
	out, errOut, code = run(t, srv, "", "job", "inspect", "ffff")
	check("job inspect missing", ExitNotFound, out, errOut, code, "strata job list")

	out, errOut, code = run(t, srv, "", "wait", "images@main")
	check("wait", ExitJobFailed, out, errOut, code, "1 of 2 jobs failed", "PIPELINE", "montage")
	out, errOut, code = run(t, srv, "", "wait", "clean@main", "-o", "json")
	check("wait clean", 0, out, errOut, code, `"datums_total": 10`)
	out, errOut, code = run(t, srv, "", "wait", "none@main")
	check("wait nothing", 0, out, errOut, code, "nothing to wait for")
	out, errOut, code = run(t, srv, "", "wait", "slow@main", "--timeout", "200ms")
	check("wait timeout", ExitError, out, errOut, code, "gave up after 200ms")

	out, errOut, code = run(t, srv, "", "datum", "list", "--job", "4f1c2a")
	check("datum list", 0, out, errOut, code, "0a7c5e9d1b2f", "failed", "1.5s", "edges:/cat.png")
	out, errOut, code = run(t, srv, "", "datum", "inspect", "--job", "4f1c2a", "0a7c")
	check("datum inspect", 0, out, errOut, code, "Input edges:", "edges@"+okJob.ID+":/cat.png")

	out, errOut, code = run(t, srv, "", "logs", "--pipeline", "edges", "--job", "4f1c", "--datum", "0a7c")
	check("logs", 0, out, errOut, code, "log of edges job=4f1c datum=0a7c")
	out, errOut, code = run(t, srv, "", "logs", "--pipeline", "nope")
	check("logs missing", ExitNotFound, out, errOut, code)
	out, errOut, code = run(t, srv, "", "logs")
	check("logs without pipeline", ExitUsage, out, errOut, code)

	out, errOut, code = run(t, srv, "", "lineage", "montage@main:/out.png")
	check("lineage", 0, out, errOut, code,
		"montage@9c1d4e2a7b3f:/out.png\n  <- pipeline montage (spec montage@3), job 9c1d4e2a7b3f, datum 0a7c5e9d1b2f\n",
		"    <- edges@4f1c2a9b0c11:/cat.png\n      <- pipeline edges (spec edges@1), job 4f1c2a9b0c11, datum 77aa\n        <- images@e1d8af4b9a36:/cat.png\n",
		"    <- images@e1d8af4b9a36:/dog.png  (input raw)\n")
	out, errOut, code = run(t, srv, "", "lineage", "montage@main:/out.png", "-o", "yaml")
	check("lineage yaml", 0, out, errOut, code, "upstream:", "pipeline: edges")

	// Datum mount blocks until SIGINT, then unmounts.
	mnt := filepath.Join(dir, "mnt")
	go func() {
		<-f.mounted
		time.Sleep(50 * time.Millisecond)
		syscall.Kill(os.Getpid(), syscall.SIGINT)
	}()
	out, errOut, code = run(t, srv, "", "datum", "mount", "-f", spec+".one", mnt)
	check("datum mount without a readable spec", ExitNotFound, out, errOut, code, "reading spec")
	os.WriteFile(spec+".one", []byte(`{"name":"edges"}`), 0o644)
	out, errOut, code = run(t, srv, "", "datum", "mount", "-f", spec+".one", mnt, "--datum", "2")
	check("datum mount", 0, out, errOut, code, "datum 2 (ID 0a7c5e9d1b2f) mounted at "+mnt, filepath.Join(mnt, "images", "cat.png"), "unmounted "+mnt)
	if f.unmounted != mnt {
		t.Errorf("unmounted %q, want %q", f.unmounted, mnt)
	}
}

func TestImageImportCLI(t *testing.T) {
	f := newCLIFake()
	srv := serveCLI(t, f)
	root := filepath.Join(t.TempDir(), "rootfs")
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.Mkdir(filepath.Join(root, "etc", "empty"), 0o700)
	os.WriteFile(filepath.Join(root, "bin", "busybox"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0::/:/bin/sh\n"), 0o600)
	os.Symlink("busybox", filepath.Join(root, "bin", "sh"))
	os.Symlink("/nonexistent/target", filepath.Join(root, "dangling"))
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, srv, "", "image", "import", root, "--name", "tools:1")
	if code != 0 || !strings.Contains(errOut, "imported image tools:1 (sha256:fedcba987654") || !strings.Contains(errOut, "skipped 1 devices, sockets or fifos (first: fifo)") {
		t.Fatalf("import dir: exit %d, %q %q", code, out, errOut)
	}
	want := map[string]int64{"bin/": 0o755, "bin/busybox": 0o755, "bin/sh": 0o777, "dangling": 0o777, "etc/": 0o755, "etc/empty/": 0o700, "etc/passwd": 0o600}
	if len(f.tarNames) != len(want) {
		t.Errorf("tar entries %v, want %v", f.tarNames, want)
	}
	for name, mode := range want {
		if got, ok := f.tarModes[name]; !ok || got&0o7777 != mode {
			t.Errorf("%s: mode %o (present %v), want %o", name, got, ok, mode)
		}
	}
	if f.tarLinks["bin/sh"] != "busybox" || f.tarLinks["dangling"] != "/nonexistent/target" {
		t.Errorf("links %v", f.tarLinks)
	}

	archive := filepath.Join(t.TempDir(), "img.tar")
	os.WriteFile(archive, make([]byte, 3000), 0o644)
	out, errOut, code = run(t, srv, "", "image", "import", archive, "--name", "a:1", "-o", "json")
	var img api.Image
	if code != 0 || json.Unmarshal([]byte(out), &img) != nil || img.Size != 3000 {
		t.Errorf("import archive: exit %d, %q %q", code, out, errOut)
	}
	if _, errOut, code = run(t, srv, "", "image", "import", archive); code != ExitUsage || !strings.Contains(errOut, "--name") {
		t.Errorf("import without --name: exit %d, %q", code, errOut)
	}

	// An unreadable file fails the import with the local error.
	if os.Geteuid() != 0 {
		os.WriteFile(filepath.Join(root, "secret"), []byte("x"), 0)
		if _, errOut, code = run(t, srv, "", "image", "import", root, "--name", "t:2"); code != ExitError || !strings.Contains(errOut, "permission denied") {
			t.Errorf("unreadable file: exit %d, %q", code, errOut)
		}
	}
}

func TestPipelinesOffCLI(t *testing.T) {
	srv := serveCLI(t, nil)
	for _, args := range [][]string{{"pipeline", "list"}, {"job", "list"}, {"logs", "--pipeline", "x"}, {"image", "list"}, {"wait", "r@main"}} {
		_, errOut, code := run(t, srv, "", args...)
		if code != ExitUnavailable || !strings.Contains(errOut, "--no-pipelines") {
			t.Errorf("%v with pipelines off: exit %d, %q", args, code, errOut)
		}
	}
	if got := exitCode(fmt.Errorf("x: %w", api.ErrUnavailable)); got != ExitUnavailable {
		t.Errorf("exit code for ErrUnavailable = %d", got)
	}
	if got := exitCode(errors.Join(errJobFailed)); got != ExitJobFailed {
		t.Errorf("exit code for a failed job = %d", got)
	}
}
