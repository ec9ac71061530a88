package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/store"
)

// fakePipelines is an in-memory Pipelines that records what it was asked.
type fakePipelines struct {
	mu        sync.Mutex
	pipelines map[string]*Pipeline
	jobs      map[string]*Job
	datums    map[string][]*Datum
	images    []*Image
	mounts    map[string]int
	calls     []string

	jobDone    chan struct{} // closed: WaitJob and WaitCommit return
	imported   chan int64    // bytes received so far by ImportImage
	logsEnded  chan error    // what a followed Logs saw when it ended
	lastSpec   []byte
	lastUpdate bool
	lastRepro  bool
}

func newFake() *fakePipelines {
	now := time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC)
	started := now.Add(time.Second)
	return &fakePipelines{
		pipelines: map[string]*Pipeline{
			"edges": {Name: "edges", Spec: json.RawMessage(`{"name":"edges","input":{"pfs":{"repo":"images","glob":"/*"}}}`),
				Version: 1, State: PipelineRunning, Created: now, Updated: now, LastJob: "j1", JobStates: map[string]int{JobRunning: 1}},
		},
		jobs: map[string]*Job{
			"j1": {ID: "j1", Pipeline: "edges", SpecVersion: 1, State: JobRunning, Output: "edges@j1", Created: now, Started: &started,
				Inputs: []JobInput{{Name: "images", Repo: "images", Branch: "main", Commit: "c1"}}, Total: 10, Processed: 3, Skipped: 2},
		},
		datums: map[string][]*Datum{
			"j1": {{ID: "d/1", Job: "j1", Hash: "h1", State: DatumSuccess, Inputs: []DatumFile{{Input: "images", Repo: "images", Commit: "c1", Path: "/cat.png"}}, Outputs: []string{"/cat.png"}}},
		},
		mounts:    map[string]int{},
		jobDone:   make(chan struct{}),
		imported:  make(chan int64, 1024),
		logsEnded: make(chan error, 1),
	}
}

func (f *fakePipelines) call(format string, args ...any) {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

func (f *fakePipelines) lastCall() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return ""
	}
	return f.calls[len(f.calls)-1]
}

func notFound(what, name string) error { return fmt.Errorf("%s %q: %w", what, name, meta.ErrNotExist) }

func (f *fakePipelines) CreatePipelines(ctx context.Context, spec []byte, update, reprocess bool) ([]*Pipeline, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastSpec, f.lastUpdate, f.lastRepro = append([]byte(nil), spec...), update, reprocess
	var out []*Pipeline
	for _, doc := range strings.Split(string(spec), "\n---\n") {
		name := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(doc), "name:"))
		if name == "" || strings.ContainsAny(name, " \n") {
			return nil, fmt.Errorf("spec: bad name %q: %w", name, meta.ErrInvalid)
		}
		p, ok := f.pipelines[name]
		switch {
		case ok && !update:
			return nil, fmt.Errorf("pipeline %q exists; use 'strata pipeline update': %w", name, meta.ErrExist)
		case !ok && update:
			return nil, notFound("pipeline", name)
		case ok:
			p.Version++
		default:
			p = &Pipeline{Name: name, Spec: json.RawMessage(fmt.Sprintf(`{"name":%q}`, name)), Version: 1, State: PipelineRunning}
			f.pipelines[name] = p
		}
		out = append(out, p)
	}
	return out, nil
}

func (f *fakePipelines) ListPipelines(ctx context.Context) ([]*Pipeline, error) {
	f.call("list")
	return nil, nil // nil must still arrive as an empty list
}

func (f *fakePipelines) InspectPipeline(ctx context.Context, name string) (*Pipeline, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.pipelines[name]; ok {
		return p, nil
	}
	return nil, notFound("pipeline", name)
}

func (f *fakePipelines) setState(name, state string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pipelines[name]
	if !ok {
		return notFound("pipeline", name)
	}
	p.State = state
	return nil
}

func (f *fakePipelines) DeletePipeline(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.pipelines[name]; !ok {
		return notFound("pipeline", name)
	}
	delete(f.pipelines, name)
	return nil
}

func (f *fakePipelines) StopPipeline(ctx context.Context, name string) error {
	return f.setState(name, PipelineStopped)
}

func (f *fakePipelines) StartPipeline(ctx context.Context, name string) error {
	return f.setState(name, PipelineRunning)
}

func (f *fakePipelines) ListJobs(ctx context.Context, pipeline string, limit int) ([]*Job, error) {
	f.call("jobs %s %d", pipeline, limit)
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*Job
	for _, j := range f.jobs {
		if pipeline == "" || j.Pipeline == pipeline {
			out = append(out, j)
		}
	}
	return out, nil
}

func (f *fakePipelines) InspectJob(ctx context.Context, id string) (*Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if j, ok := f.jobs[id]; ok {
		return j, nil
	}
	return nil, notFound("job", id)
}

func (f *fakePipelines) WaitJob(ctx context.Context, id string) (*Job, error) {
	if _, err := f.InspectJob(ctx, id); err != nil {
		return nil, err
	}
	select {
	case <-f.jobDone:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return f.InspectJob(ctx, id)
}

func (f *fakePipelines) finishJob(id, state string) {
	f.mu.Lock()
	f.jobs[id].State = state
	f.mu.Unlock()
	close(f.jobDone)
}

func (f *fakePipelines) StopJob(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	if !ok {
		return notFound("job", id)
	}
	j.State = JobKilled
	return nil
}

func (f *fakePipelines) WaitCommit(ctx context.Context, repo, ref string) ([]*Job, error) {
	f.call("wait %s@%s", repo, ref)
	if repo != "images" {
		return nil, notFound("repo", repo)
	}
	select {
	case <-f.jobDone:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return f.ListJobs(ctx, "", 0)
}

func (f *fakePipelines) ListDatums(ctx context.Context, job string) ([]*Datum, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ds, ok := f.datums[job]
	if !ok {
		return nil, notFound("job", job)
	}
	return ds, nil
}

func (f *fakePipelines) InspectDatum(ctx context.Context, job, datum string) (*Datum, error) {
	ds, err := f.ListDatums(ctx, job)
	if err != nil {
		return nil, err
	}
	for _, d := range ds {
		if d.ID == datum {
			return d, nil
		}
	}
	return nil, notFound("datum", datum)
}

// Logs: pipeline "edges" writes two lines, then with Follow one line more
// and waits for ctx; pipeline "broken" fails after a line; "empty" writes
// nothing.
func (f *fakePipelines) Logs(ctx context.Context, q LogQuery, w io.Writer) error {
	f.call("logs %s %s %s %v", q.Pipeline, q.Job, q.Datum, q.Follow)
	switch q.Pipeline {
	case "edges":
	case "broken":
		fmt.Fprintln(w, "starting")
		return fmt.Errorf("datum log %s: %w", "d9", meta.ErrNotExist)
	case "empty":
		return nil
	default:
		return notFound("pipeline", q.Pipeline)
	}
	fmt.Fprintln(w, "line 1")
	fmt.Fprintln(w, "line 2")
	if !q.Follow {
		return nil
	}
	fmt.Fprintln(w, "following")
	<-ctx.Done()
	f.logsEnded <- ctx.Err()
	return ctx.Err()
}

func (f *fakePipelines) Lineage(ctx context.Context, repo, ref, path string) (*Lineage, error) {
	f.call("lineage %s@%s:%s", repo, ref, path)
	up := &Lineage{Repo: "edges", Commit: "j1", Path: "/cat.png", Pipeline: "edges", Job: "j1", Datum: "d/1", Spec: "edges@1",
		Inputs: []DatumFile{{Input: "images", Repo: "images", Commit: "c1", Path: "/cat.png"}}}
	return &Lineage{Repo: repo, Commit: "j2", Path: path, Pipeline: "montage", Job: "j2", Datum: "d0", Spec: "montage@3",
		Inputs:   []DatumFile{{Input: "edges", Repo: "edges", Commit: "j1", Path: "/cat.png"}},
		Upstream: []*Lineage{up}}, nil
}

// ImportImage reads in 64 KiB pieces and reports its progress on
// f.imported, so a test can see the upload arrive while it is sent.
func (f *fakePipelines) ImportImage(ctx context.Context, name, format string, r io.Reader) (*Image, error) {
	h := sha256.New()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		m, err := r.Read(buf)
		h.Write(buf[:m])
		n += int64(m)
		if m > 0 {
			select {
			case f.imported <- n:
			default:
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	img := &Image{Name: name + ":" + format, Digest: fmt.Sprintf("sha256:%x", h.Sum(nil)), Size: n, Created: time.Now().UTC()}
	f.mu.Lock()
	f.images = append(f.images, img)
	f.mu.Unlock()
	return img, nil
}

func (f *fakePipelines) ListImages(ctx context.Context) ([]*Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.images, nil
}

func (f *fakePipelines) MountDatum(ctx context.Context, spec []byte, dir string, n int) (*Datum, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.mounts[dir]; ok {
		return nil, fmt.Errorf("%s is already a datum mount: %w", dir, meta.ErrExist)
	}
	f.mounts[dir] = n
	f.lastSpec = append([]byte(nil), spec...)
	return &Datum{ID: fmt.Sprint(n), Hash: "h", State: DatumPending, Inputs: []DatumFile{{Input: "images", Repo: "images", Commit: "c1", Path: "/cat.png"}}}, nil
}

func (f *fakePipelines) UnmountDatum(ctx context.Context, dir string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.mounts[dir]; !ok {
		return fmt.Errorf("%s is not a datum mount: %w", dir, meta.ErrNotExist)
	}
	delete(f.mounts, dir)
	return nil
}

// servePipelines runs a real Server (with p as its Pipelines unless nil)
// and returns a client of it.
func servePipelines(t *testing.T, p Pipelines) *Client {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := NewServer(st, slog.New(slog.NewTextHandler(io.Discard, nil)), func() Status { return Status{} })
	if p != nil {
		srv.SetPipelines(p)
	}
	hs := httptest.NewServer(srv.Handler(""))
	t.Cleanup(hs.Close)
	cl, err := NewClient(hs.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// TestPipelinesOff: without a Pipelines every pipeline route answers
// ErrUnavailable, with a message that says what to do.
func TestPipelinesOff(t *testing.T) {
	p := servePipelines(t, nil).Pipelines()
	ctx := context.Background()
	calls := map[string]func() error{
		"CreatePipelines": func() error { _, err := p.CreatePipelines(ctx, []byte("name: x"), false, false); return err },
		"ListPipelines":   func() error { _, err := p.ListPipelines(ctx); return err },
		"InspectPipeline": func() error { _, err := p.InspectPipeline(ctx, "x"); return err },
		"DeletePipeline":  func() error { return p.DeletePipeline(ctx, "x") },
		"StopPipeline":    func() error { return p.StopPipeline(ctx, "x") },
		"StartPipeline":   func() error { return p.StartPipeline(ctx, "x") },
		"ListJobs":        func() error { _, err := p.ListJobs(ctx, "", 0); return err },
		"InspectJob":      func() error { _, err := p.InspectJob(ctx, "j"); return err },
		"WaitJob":         func() error { _, err := p.WaitJob(ctx, "j"); return err },
		"StopJob":         func() error { return p.StopJob(ctx, "j") },
		"WaitCommit":      func() error { _, err := p.WaitCommit(ctx, "r", "main"); return err },
		"ListDatums":      func() error { _, err := p.ListDatums(ctx, "j"); return err },
		"InspectDatum":    func() error { _, err := p.InspectDatum(ctx, "j", "d"); return err },
		"Logs":            func() error { return p.Logs(ctx, LogQuery{Pipeline: "x", Follow: true}, io.Discard) },
		"Lineage":         func() error { _, err := p.Lineage(ctx, "r", "main", "/f"); return err },
		"ImportImage": func() error {
			_, err := p.ImportImage(ctx, "img", ImageRootfs, bytes.NewReader(make([]byte, 1<<20)))
			return err
		},
		"ListImages":   func() error { _, err := p.ListImages(ctx); return err },
		"MountDatum":   func() error { _, err := p.MountDatum(ctx, []byte("name: x"), "/tmp/d", 0); return err },
		"UnmountDatum": func() error { return p.UnmountDatum(ctx, "/tmp/d") },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: %v, want ErrUnavailable", name, err)
			continue
		}
		if !strings.Contains(err.Error(), "--no-pipelines") || !strings.Contains(err.Error(), "strata up") {
			t.Errorf("%s: message %q does not say what to do", name, err)
		}
	}
	// The rest of the API works without pipelines.
	if _, err := servePipelines(t, nil).Repos(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPipelineRoundTrip goes through every route with the client used as
// a Pipelines.
func TestPipelineRoundTrip(t *testing.T) {
	f := newFake()
	cl := servePipelines(t, f)
	var p Pipelines = cl.Pipelines()
	ctx := context.Background()

	// Pipelines.
	ps, err := p.CreatePipelines(ctx, []byte("name: a\n---\nname: b\n"), false, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Name != "a" || ps[1].Name != "b" || ps[0].Version != 1 {
		t.Fatalf("create = %+v", ps)
	}
	if _, err := p.CreatePipelines(ctx, []byte("name: a"), false, false); !errors.Is(err, meta.ErrExist) {
		t.Errorf("create twice: %v, want ErrExist", err)
	}
	ps, err = p.CreatePipelines(ctx, []byte("name: a"), true, true)
	if err != nil || len(ps) != 1 || ps[0].Version != 2 || !f.lastUpdate || !f.lastRepro {
		t.Fatalf("update: %v %+v (update %v reprocess %v)", err, ps, f.lastUpdate, f.lastRepro)
	}
	if _, err := p.CreatePipelines(ctx, []byte("  \n"), false, false); !errors.Is(err, meta.ErrInvalid) {
		t.Errorf("empty spec: %v, want ErrInvalid", err)
	}
	if _, err := p.CreatePipelines(ctx, []byte("name: bad name"), false, false); !errors.Is(err, meta.ErrInvalid) {
		t.Errorf("bad spec: %v, want ErrInvalid", err)
	}
	list, err := p.ListPipelines(ctx)
	if err != nil || list == nil || len(list) != 0 {
		t.Errorf("list = %#v, %v; want an empty non-nil list", list, err)
	}
	pl, err := p.InspectPipeline(ctx, "edges")
	if err != nil {
		t.Fatal(err)
	}
	if pl.State != PipelineRunning || pl.LastJob != "j1" || pl.JobStates[JobRunning] != 1 || !strings.Contains(string(pl.Spec), `"glob":"/*"`) {
		t.Errorf("inspect = %+v", pl)
	}
	if err := p.StopPipeline(ctx, "edges"); err != nil {
		t.Fatal(err)
	}
	if pl, _ := p.InspectPipeline(ctx, "edges"); pl.State != PipelineStopped {
		t.Errorf("after stop: %s", pl.State)
	}
	if err := p.StartPipeline(ctx, "edges"); err != nil {
		t.Fatal(err)
	}
	if pl, _ := p.InspectPipeline(ctx, "edges"); pl.State != PipelineRunning {
		t.Errorf("after start: %s", pl.State)
	}
	if err := p.DeletePipeline(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	// not_found crosses the wire (the CLI's exit code 3).
	for name, err := range map[string]error{
		"inspect": func() error { _, err := p.InspectPipeline(ctx, "b"); return err }(),
		"delete":  p.DeletePipeline(ctx, "b"),
		"stop":    p.StopPipeline(ctx, "nope"),
		"start":   p.StartPipeline(ctx, "nope"),
	} {
		if !errors.Is(err, meta.ErrNotExist) || !strings.Contains(err.Error(), `"`) {
			t.Errorf("%s missing pipeline: %v, want ErrNotExist", name, err)
		}
	}
	// Names with odd characters are escaped in the path.
	if _, err := p.InspectPipeline(ctx, "a/b c"); !errors.Is(err, meta.ErrNotExist) || !strings.Contains(err.Error(), `"a/b c"`) {
		t.Errorf("escaped name: %v", err)
	}

	// Jobs.
	js, err := p.ListJobs(ctx, "edges", 5)
	if err != nil || len(js) != 1 || js[0].ID != "j1" || js[0].Total != 10 || js[0].Started == nil {
		t.Fatalf("jobs = %+v, %v", js, err)
	}
	if got := f.lastCall(); got != "jobs edges 5" {
		t.Errorf("ListJobs reached the fake as %q", got)
	}
	if js, err := p.ListJobs(ctx, "", 0); err != nil || len(js) != 1 || f.lastCall() != "jobs  0" {
		t.Errorf("all jobs = %+v, %v (%q)", js, err, f.lastCall())
	}
	j, err := p.InspectJob(ctx, "j1")
	if err != nil || j.Inputs[0].Commit != "c1" || j.Processed != 3 || j.Skipped != 2 {
		t.Fatalf("inspect job = %+v, %v", j, err)
	}
	if _, err := p.InspectJob(ctx, "nope"); !errors.Is(err, meta.ErrNotExist) {
		t.Errorf("missing job: %v", err)
	}

	// WaitJob and WaitCommit are long polls: they return when the job
	// finishes, not before.
	type waited struct {
		jobs []*Job
		err  error
	}
	jobc, commitc := make(chan waited, 1), make(chan waited, 1)
	go func() { j, err := p.WaitJob(ctx, "j1"); jobc <- waited{[]*Job{j}, err} }()
	go func() { js, err := p.WaitCommit(ctx, "images", "main"); commitc <- waited{js, err} }()
	select {
	case w := <-jobc:
		t.Fatalf("WaitJob returned before the job finished: %+v", w)
	case w := <-commitc:
		t.Fatalf("WaitCommit returned before the job finished: %+v", w)
	case <-time.After(200 * time.Millisecond):
	}
	f.finishJob("j1", JobSuccess)
	for _, c := range []chan waited{jobc, commitc} {
		select {
		case w := <-c:
			if w.err != nil || len(w.jobs) != 1 || w.jobs[0].State != JobSuccess {
				t.Errorf("wait = %+v, %v", w.jobs, w.err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("wait did not return after the job finished")
		}
	}
	if _, err := p.WaitCommit(ctx, "nope", "main"); !errors.Is(err, meta.ErrNotExist) {
		t.Errorf("wait on missing repo: %v", err)
	}
	if err := p.StopJob(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if j, _ := p.InspectJob(ctx, "j1"); j.State != JobKilled {
		t.Errorf("after stop: %s", j.State)
	}

	// Datums.
	ds, err := p.ListDatums(ctx, "j1")
	if err != nil || len(ds) != 1 || ds[0].Inputs[0].Path != "/cat.png" {
		t.Fatalf("datums = %+v, %v", ds, err)
	}
	d, err := p.InspectDatum(ctx, "j1", "d/1") // an ID with a slash is escaped
	if err != nil || d.Hash != "h1" || d.Outputs[0] != "/cat.png" {
		t.Fatalf("datum = %+v, %v", d, err)
	}
	if _, err := p.InspectDatum(ctx, "j1", "nope"); !errors.Is(err, meta.ErrNotExist) {
		t.Errorf("missing datum: %v", err)
	}

	// Lineage.
	l, err := p.Lineage(ctx, "montage", "main", "/out/cat.png")
	if err != nil {
		t.Fatal(err)
	}
	if f.lastCall() != "lineage montage@main:/out/cat.png" || l.Pipeline != "montage" || len(l.Upstream) != 1 || l.Upstream[0].Inputs[0].Repo != "images" {
		t.Errorf("lineage = %+v (%q)", l, f.lastCall())
	}

	// Images.
	img, err := p.ImportImage(ctx, "tools", ImageArchive, strings.NewReader("not really a tar"))
	if err != nil || img.Name != "tools:archive" || img.Size != 16 {
		t.Fatalf("import = %+v, %v", img, err)
	}
	if _, err := p.ImportImage(ctx, "tools", "zip", strings.NewReader("x")); !errors.Is(err, meta.ErrInvalid) {
		t.Errorf("bad format: %v", err)
	}
	if _, err := p.ImportImage(ctx, "", ImageArchive, strings.NewReader("x")); !errors.Is(err, meta.ErrInvalid) {
		t.Errorf("no name: %v", err)
	}
	imgs, err := p.ListImages(ctx)
	if err != nil || len(imgs) != 1 || imgs[0].Digest != img.Digest {
		t.Errorf("images = %+v, %v", imgs, err)
	}

	// Datum mounts.
	spec := []byte("name: edges\ninput:\n  pfs: {repo: images, glob: /*}\n")
	d, err = p.MountDatum(ctx, spec, "/tmp/datum", 3)
	if err != nil || d.ID != "3" || !bytes.Equal(f.lastSpec, spec) {
		t.Fatalf("mount = %+v, %v (spec %q)", d, err, f.lastSpec)
	}
	if _, err := p.MountDatum(ctx, spec, "/tmp/datum", 0); !errors.Is(err, meta.ErrExist) {
		t.Errorf("mount twice: %v", err)
	}
	if _, err := p.MountDatum(ctx, spec, "relative/dir", 0); !errors.Is(err, meta.ErrInvalid) {
		t.Errorf("relative dir: %v", err)
	}
	if _, err := p.MountDatum(ctx, spec, "/tmp/d2", -1); !errors.Is(err, meta.ErrInvalid) {
		t.Errorf("negative datum: %v", err)
	}
	if err := p.UnmountDatum(ctx, "/tmp/datum"); err != nil {
		t.Fatal(err)
	}
	if err := p.UnmountDatum(ctx, "/tmp/datum"); !errors.Is(err, meta.ErrNotExist) {
		t.Errorf("unmount twice: %v", err)
	}
}

// TestJobWaitCancel: cancelling a long poll returns at once, and the
// daemon side sees its context end.
func TestJobWaitCancel(t *testing.T) {
	f := newFake()
	cl := servePipelines(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := cl.WaitJob(ctx, "j1"); errc <- err }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled wait: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled wait did not return")
	}
}

// TestImportImageStreams sends 8 MiB through a pipe and checks the daemon
// side receives the first part before the rest is written: the client
// must stream the body, not buffer it.
func TestImportImageStreams(t *testing.T) {
	f := newFake()
	cl := servePipelines(t, f)
	ctx := context.Background()
	const piece, pieces = 1 << 20, 8
	pr, pw := io.Pipe()
	sum := sha256.New()
	werr := make(chan error, 1)
	go func() {
		buf := make([]byte, piece)
		for i := range pieces {
			for j := range buf {
				buf[j] = byte(i*7 + j)
			}
			sum.Write(buf)
			if _, err := pw.Write(buf); err != nil {
				werr <- err
				return
			}
			if i == 0 {
				// Wait until the daemon has read the first piece.
				deadline := time.After(10 * time.Second)
				for got := int64(0); got < piece; {
					select {
					case got = <-f.imported:
					case <-deadline:
						err := errors.New("the daemon did not receive the first MiB before the rest was sent: the upload is buffered")
						pw.CloseWithError(err)
						werr <- err
						return
					}
				}
			}
		}
		werr <- pw.Close()
	}()
	img, err := cl.ImportImage(ctx, "big", ImageRootfs, pr)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("sha256:%x", sum.Sum(nil)); img.Size != piece*pieces || img.Digest != want || img.Name != "big:rootfs" {
		t.Errorf("image = %+v, want %d bytes, %s", img, piece*pieces, want)
	}

	// A local read error is reported as such, not as a daemon fault.
	pr, pw = io.Pipe()
	go func() {
		pw.Write(make([]byte, 100<<10))
		pw.CloseWithError(errors.New("permission denied: secret.txt"))
	}()
	if _, err := cl.ImportImage(ctx, "bad", ImageRootfs, pr); err == nil || !strings.Contains(err.Error(), "permission denied: secret.txt") || errors.Is(err, ErrUnreachable) {
		t.Errorf("upload with a read error: %v", err)
	}
}

// lineWriter signals when it has seen a given text.
type lineWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestLogs(t *testing.T) {
	f := newFake()
	cl := servePipelines(t, f)
	ctx := context.Background()

	var buf bytes.Buffer
	if err := cl.Logs(ctx, LogQuery{Pipeline: "edges", Job: "j1", Datum: "d/1"}, &buf); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "line 1\nline 2\n" || f.lastCall() != "logs edges j1 d/1 false" {
		t.Errorf("logs = %q (%q)", buf.String(), f.lastCall())
	}
	buf.Reset()
	if err := cl.Logs(ctx, LogQuery{Pipeline: "empty"}, &buf); err != nil || buf.Len() != 0 {
		t.Errorf("empty logs: %q, %v", buf.String(), err)
	}
	// An error before anything was written is a plain error response.
	if err := cl.Logs(ctx, LogQuery{Pipeline: "nope"}, &buf); !errors.Is(err, meta.ErrNotExist) {
		t.Errorf("logs of a missing pipeline: %v", err)
	}
	if err := cl.Logs(ctx, LogQuery{}, &buf); !errors.Is(err, meta.ErrInvalid) {
		t.Errorf("logs without pipeline or job: %v", err)
	}
	// An error after the stream started arrives in the trailers.
	buf.Reset()
	err := cl.Logs(ctx, LogQuery{Pipeline: "broken"}, &buf)
	if !errors.Is(err, meta.ErrNotExist) || !strings.Contains(err.Error(), "datum log d9") || buf.String() != "starting\n" {
		t.Errorf("broken stream: %q, %v", buf.String(), err)
	}

	// Follow: the lines arrive while the daemon keeps the stream open
	// (each write is flushed); cancelling ends it on both sides.
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &lineWriter{want: "following\n", seen: make(chan struct{})}
	errc := make(chan error, 1)
	go func() { errc <- cl.Logs(fctx, LogQuery{Pipeline: "edges", Follow: true}, w) }()
	select {
	case <-w.seen:
	case err := <-errc:
		t.Fatalf("followed logs ended early: %v (%q)", err, w.String())
	case <-time.After(5 * time.Second):
		t.Fatalf("followed lines not flushed; got %q", w.String())
	}
	select {
	case err := <-errc:
		t.Fatalf("followed logs ended before the cancel: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("followed logs after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("followed logs did not end after cancel")
	}
	select {
	case err := <-f.logsEnded:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("daemon side ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the daemon side kept following after the client left")
	}
	if got := w.String(); got != "line 1\nline 2\nfollowing\n" {
		t.Errorf("followed logs = %q", got)
	}
}

// TestPipelineRoutesRaw checks the wire format a curl user sees.
func TestPipelineRoutesRaw(t *testing.T) {
	f := newFake()
	cl := servePipelines(t, f)
	get := func(method, path string, body io.Reader) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, cl.base+path, body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if code, body, _ := get("GET", "/v1/pipelines", nil); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Errorf("GET /v1/pipelines = %d %s", code, body)
	}
	if code, body, _ := get("GET", "/v1/jobs?limit=x", nil); code != 400 || !strings.Contains(body, `"code":"invalid"`) {
		t.Errorf("bad limit = %d %s", code, body)
	}
	if code, body, _ := get("GET", "/v1/pipelines/nope", nil); code != 404 || !strings.Contains(body, `"code":"not_found"`) {
		t.Errorf("missing pipeline = %d %s", code, body)
	}
	if code, body, h := get("GET", "/v1/logs?pipeline=edges", nil); code != 200 || body != "line 1\nline 2\n" || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Errorf("logs = %d %q %v", code, body, h)
	}
	if code, body, _ := get("POST", "/v1/datum-mounts", strings.NewReader(`{"spec":"name: x","dir":"/tmp/x","datum":1,"extra":1}`)); code != 400 || !strings.Contains(body, "extra") {
		t.Errorf("unknown field = %d %s", code, body)
	}
	off := servePipelines(t, nil)
	req, _ := http.NewRequest("GET", off.base+"/v1/pipelines", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), `"code":"unavailable"`) {
		t.Errorf("pipelines off = %d %s", resp.StatusCode, b)
	}
}
