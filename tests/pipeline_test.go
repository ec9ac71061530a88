package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-data/strata/api"
)

// Pipelines end to end against a real containerd, runc and FUSE: a
// two-stage DAG, incremental runs, failures with retries and logs,
// timeouts, lineage, updates with and without reprocess, and a daemon
// killed mid-job that resumes.

func requireContainers(t *testing.T) {
	t.Helper()
	requireFuse(t)
	for _, bin := range []string{"containerd", "runc", "busybox"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required in CI (apt-get install -y containerd runc busybox-static): %v", bin, err)
			}
			t.Skipf("no %s here: %v", bin, err)
		}
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("pipeline tests run containers and need root")
		}
		t.Skip("pipeline tests need root")
	}
}

// busyboxRoot makes a root directory with a static busybox and its
// applets.
func busyboxRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev", "pfs"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "cat", "ls", "cp", "sleep", "echo", "wc", "mkdir", "basename", "sort", "tr", "head", "test", "[", "env", "rm", "date", "httpd"} {
		os.Symlink("busybox", filepath.Join(root, "bin", a))
	}
	os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "group"), []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	return root
}

// pipelineDaemon starts a daemon with a mount and pipelines, and imports
// the busybox image.
func pipelineDaemon(t *testing.T) *daemon {
	t.Helper()
	requireContainers(t)
	base := t.TempDir()
	d := startDaemonWith(t, filepath.Join(base, "data"), "--mount", filepath.Join(base, "pfs"))
	t.Cleanup(func() { d.shutdown() })
	d.ok(nil, "image", "import", busyboxRoot(t), "--name", "busybox")
	return d
}

// shutdown stops a daemon with SIGTERM (so its workers and mounts go
// away) and logs its output if the test failed.
func (d *daemon) shutdown() {
	if d.cmd.ProcessState == nil {
		d.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { d.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			d.t.Errorf("daemon did not stop within 60 s of SIGTERM")
			d.cmd.Process.Kill()
			<-done
		}
	}
	if d.t.Failed() {
		d.t.Logf("daemon log:\n%s", d.log)
	}
}

func (d *daemon) jsonOut(v any, args ...string) {
	d.t.Helper()
	out := d.ok(nil, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		d.t.Fatalf("strata %v: %v\n%s", args, err, out)
	}
}

func (d *daemon) waitCommit(ref string) []*api.Job {
	d.t.Helper()
	var jobs []*api.Job
	cmd := exec.Command(strataBin, "wait", ref, "-o", "json")
	cmd.Env = append(os.Environ(), "STRATA_ADDR=unix://"+filepath.Join(d.data, "strata.sock"))
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output() // exit 10 when a job failed: still JSON on stdout
	if jerr := json.Unmarshal(out, &jobs); jerr != nil {
		d.t.Fatalf("strata wait %s: %v: %v\n%s%s", ref, err, jerr, out, errb.String())
	}
	failed := false
	for _, j := range jobs {
		failed = failed || j.State != api.JobSuccess
	}
	if code := cmd.ProcessState.ExitCode(); failed != (code == 10) {
		d.t.Errorf("strata wait %s: exit %d with jobs %+v", ref, code, jobs)
	}
	return jobs
}

func (d *daemon) datums(job string) map[string]int {
	d.t.Helper()
	var ds []*api.Datum
	d.jsonOut(&ds, "datum", "list", "--job", job)
	m := map[string]int{}
	for _, x := range ds {
		m[x.State]++
	}
	return m
}

func (d *daemon) spec(yaml string, args ...string) {
	d.t.Helper()
	d.ok([]byte(yaml), append(args, "-f", "-")...)
}

const copySpec = `
name: lens
transform:
  image: busybox
  cmd: ["/bin/sh", "-c", "for f in /pfs/data/*; do wc -c < $f | tr -d ' ' > /pfs/out/$(basename $f).len; done"]
input:
  pfs: {repo: data, glob: "/*"}
parallelism: 2
---
name: total
transform:
  image: busybox
  cmd: ["/bin/sh", "-c", "cat /pfs/lens/* | sort > /pfs/out/all"]
input:
  pfs: {repo: lens, glob: "/"}
`

func TestPipelineDAG(t *testing.T) {
	d := pipelineDaemon(t)
	d.ok(nil, "repo", "create", "data")
	for i := range 5 {
		d.ok([]byte(strings.Repeat("x", i+1)), "put", fmt.Sprintf("data@main:/f%d", i), "-f", "-", "-m", "seed")
	}
	d.spec(copySpec, "pipeline", "create")

	jobs := d.waitCommit("data@main")
	if len(jobs) != 2 || jobs[0].State != api.JobSuccess || jobs[1].State != api.JobSuccess {
		t.Fatalf("first run: %+v", jobs)
	}
	if got := d.ok(nil, "cat", "lens@main:/f3.len"); strings.TrimSpace(got) != "4" {
		t.Fatalf("lens f3: %q", got)
	}
	if got := d.ok(nil, "cat", "total@main:/all"); got != "1\n2\n3\n4\n5\n" {
		t.Fatalf("total: %q", got)
	}
	// Provenance: the output commit names its input commit and spec.
	var c struct {
		Provenance []struct{ Repo, ID string }
		Spec       string
	}
	d.jsonOut(&c, "commit", "inspect", "lens@main")
	if len(c.Provenance) != 1 || c.Provenance[0].Repo != "data" || c.Spec != "lens@1" {
		t.Fatalf("provenance of lens@main: %+v", c)
	}

	// One new file: exactly one datum runs, four are reused.
	d.ok([]byte("yyyyyyy"), "put", "data@main:/f9", "-f", "-")
	jobs = d.waitCommit("data@main")
	if st := d.datums(jobs[0].ID); st[api.DatumSuccess] != 1 || st[api.DatumSkipped] != 5 {
		t.Fatalf("after adding one file: %v", st)
	}
	if got := d.ok(nil, "cat", "total@main:/all"); got != "1\n2\n3\n4\n5\n7\n" {
		t.Fatalf("total after add: %q", got)
	}
	// A changed file reruns its datum; a deleted one's output disappears.
	d.ok([]byte("zz"), "put", "data@main:/f0", "-f", "-")
	jobs = d.waitCommit("data@main")
	if st := d.datums(jobs[0].ID); st[api.DatumSuccess] != 1 || st[api.DatumSkipped] != 5 {
		t.Fatalf("after changing one file: %v", st)
	}
	d.ok(nil, "rm", "data@main:/f9")
	d.waitCommit("data@main")
	if _, code := d.run(nil, "cat", "lens@main:/f9.len"); code != 3 {
		t.Fatalf("output of a deleted datum: exit %d", code)
	}
	if got := d.ok(nil, "cat", "total@main:/all"); got != "2\n2\n3\n4\n5\n" {
		t.Fatalf("total after change and delete: %q", got)
	}

	// Lineage of a file two stages down names both jobs and the input.
	var l api.Lineage
	d.jsonOut(&l, "lineage", "total@main:/all")
	if l.Pipeline != "total" || len(l.Upstream) != 1 || l.Upstream[0].Pipeline != "lens" {
		t.Fatalf("lineage: %+v", l)
	}
	var l2 api.Lineage
	d.jsonOut(&l2, "lineage", "lens@main:/f2.len")
	if l2.Datum == "" || len(l2.Inputs) != 1 || l2.Inputs[0].Path != "/f2" || l2.Inputs[0].Repo != "data" {
		t.Fatalf("lineage of one datum's file: %+v", l2)
	}

	// Update without reprocess reuses every datum; with it, all rerun.
	d.spec(strings.Replace(copySpec, "parallelism: 2", "parallelism: 1", 1), "pipeline", "update")
	jobs = d.waitCommit("data@main")
	if st := d.datums(jobs[0].ID); st[api.DatumSkipped] != 5 || jobs[0].SpecVersion != 2 {
		t.Fatalf("update without reprocess: %v %+v", st, jobs[0])
	}
	d.spec(copySpec, "pipeline", "update", "--reprocess")
	jobs = d.waitCommit("data@main")
	if st := d.datums(jobs[0].ID); st[api.DatumSuccess] != 5 {
		t.Fatalf("update --reprocess: %v", st)
	}

	// A stopped pipeline does not run; started again, it catches up.
	d.ok(nil, "pipeline", "stop", "lens")
	d.ok([]byte("abc"), "put", "data@main:/f5", "-f", "-")
	time.Sleep(300 * time.Millisecond)
	var js []*api.Job
	d.jsonOut(&js, "job", "list", "--pipeline", "lens")
	before := len(js)
	d.ok(nil, "pipeline", "start", "lens")
	jobs = d.waitCommit("data@main")
	d.jsonOut(&js, "job", "list", "--pipeline", "lens")
	if len(js) != before+1 || js[0].State != api.JobSuccess || strings.TrimSpace(d.ok(nil, "cat", "lens@main:/f5.len")) != "3" {
		t.Fatalf("after stop, put, start: %d jobs before, now %+v", before, js)
	}

	// Cross: every file against every model.
	d.ok(nil, "repo", "create", "models")
	d.ok([]byte("m1"), "put", "models@main:/a", "-f", "-")
	d.ok([]byte("m2"), "put", "models@main:/b", "-f", "-")
	d.spec(`
name: pairs
transform:
  image: busybox
  cmd: ["/bin/sh", "-c", "for f in /pfs/data/*; do for m in /pfs/models/*; do echo $(basename $f)-$(basename $m) > /pfs/out/$(basename $f)-$(basename $m); done; done"]
input:
  cross:
  - pfs: {repo: data, glob: "/*"}
  - pfs: {repo: models, glob: "/*"}
`, "pipeline", "create")
	jobs = d.waitCommit("models@main")
	if len(jobs) != 1 || jobs[0].Total != 12 || jobs[0].Processed != 12 {
		t.Fatalf("cross of 6 files and 2 models: %+v", jobs)
	}
	if got := d.ok(nil, "ls", "pairs@main", "-o", "json"); strings.Count(got, `"path"`) != 12 {
		t.Fatalf("cross outputs: %s", got)
	}
	// A new model runs only its 6 pairs.
	d.ok([]byte("m3"), "put", "models@main:/c", "-f", "-")
	jobs = d.waitCommit("models@main")
	if jobs[0].Processed != 6 || jobs[0].Skipped != 12 {
		t.Fatalf("cross after a new model: %+v", jobs[0])
	}
}

func TestPipelineFailures(t *testing.T) {
	d := pipelineDaemon(t)
	d.ok(nil, "repo", "create", "in")
	d.ok([]byte("ok"), "put", "in@main:/good", "-f", "-")
	d.ok([]byte("bad"), "put", "in@main:/bad", "-f", "-")
	d.spec(`
name: picky
datum_tries: 2
transform:
  image: busybox
  cmd: ["/bin/sh", "-c", "echo looking at $(ls /pfs/in); if [ -e /pfs/in/bad ]; then echo refusing >&2; exit 3; fi; cp /pfs/in/* /pfs/out/"]
input: {pfs: {repo: in, glob: "/*"}}
---
name: after
transform: {image: busybox, cmd: ["/bin/sh", "-c", "cp /pfs/picky/* /pfs/out/"]}
input: {pfs: {repo: picky, glob: "/"}}
`, "pipeline", "create")
	jobs := d.waitCommit("in@main")
	if len(jobs) != 1 || jobs[0].State != api.JobFailure || !strings.Contains(jobs[0].Error, "exit status 3") {
		t.Fatalf("failing datum: %+v", jobs)
	}
	logs := d.ok(nil, "logs", "--pipeline", "picky")
	if !strings.Contains(logs, "refusing") || !strings.Contains(logs, "try 2/2") {
		t.Fatalf("logs of a failed datum:\n%s", logs)
	}
	var c struct{ State string }
	d.jsonOut(&c, "commit", "inspect", "picky@"+jobs[0].ID)
	if c.State != "failed" {
		t.Fatalf("output commit of a failed job is %s", c.State)
	}
	var after []*api.Job
	d.jsonOut(&after, "job", "list", "--pipeline", "after")
	if len(after) != 0 {
		t.Fatalf("downstream ran on a failed commit: %+v", after)
	}

	// Two datums writing one path fail the job, naming both.
	d.spec(`
name: clash
transform: {image: busybox, cmd: ["/bin/sh", "-c", "echo x > /pfs/out/same"]}
input: {pfs: {repo: in, glob: "/*"}}
`, "pipeline", "create")
	clash := d.waitCommit("in@main")
	var cj *api.Job
	for _, j := range clash {
		if j.Pipeline == "clash" {
			cj = j
		}
	}
	if cj == nil || cj.State != api.JobFailure || !strings.Contains(cj.Error, "both write /same") {
		t.Fatalf("two datums writing one path: %+v", cj)
	}

	// datum mount shows what a worker would see for one datum.
	specFile := filepath.Join(t.TempDir(), "picky.yaml")
	os.WriteFile(specFile, []byte("name: picky\ntransform: {image: busybox, cmd: [true]}\ninput: {pfs: {repo: in, glob: \"/*\"}}\n"), 0o644)
	mnt := filepath.Join(t.TempDir(), "datum")
	dm := exec.Command(strataBin, "datum", "mount", "-f", specFile, mnt, "--datum", "1")
	dm.Env = append(os.Environ(), "STRATA_ADDR=unix://"+filepath.Join(d.data, "strata.sock"))
	var dmOut strings.Builder
	dm.Stdout, dm.Stderr = &dmOut, &dmOut
	if err := dm.Start(); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && len(seen) == 0; time.Sleep(100 * time.Millisecond) {
		es, _ := os.ReadDir(filepath.Join(mnt, "in"))
		for _, e := range es {
			seen = append(seen, e.Name())
		}
	}
	if len(seen) != 1 {
		dm.Process.Kill()
		t.Fatalf("datum mount shows %v in /pfs/in, want one file\n%s", seen, dmOut.String())
	}
	if err := os.WriteFile(filepath.Join(mnt, "out", "x"), []byte("draft"), 0o644); err != nil {
		t.Errorf("write to the preview's out: %v", err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "in", "y"), []byte("no"), 0o644); err == nil {
		t.Errorf("the preview's inputs are writable")
	}
	dm.Process.Signal(syscall.SIGINT)
	if err := dm.Wait(); err != nil {
		t.Errorf("datum mount after SIGINT: %v\n%s", err, dmOut.String())
	}
	if es, _ := os.ReadDir(mnt); len(es) != 0 {
		t.Errorf("datum mount left %d entries at %s after SIGINT", len(es), mnt)
	}

	// job stop kills a running job; its output commit is failed.
	d.spec(`
name: sleepy
transform: {image: busybox, cmd: ["/bin/sh", "-c", "sleep 60"]}
input: {pfs: {repo: in, glob: "/"}}
`, "pipeline", "create")
	var sj []*api.Job
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		d.jsonOut(&sj, "job", "list", "--pipeline", "sleepy")
		if len(sj) == 1 && sj[0].State == api.JobRunning {
			break
		}
	}
	if len(sj) != 1 {
		t.Fatalf("sleepy jobs: %+v", sj)
	}
	d.ok(nil, "job", "stop", sj[0].ID)
	var killed api.Job
	d.jsonOut(&killed, "job", "inspect", sj[0].ID)
	d.jsonOut(&c, "commit", "inspect", "sleepy@"+sj[0].ID)
	if killed.State != api.JobKilled || c.State != "failed" {
		t.Fatalf("stopped job: %+v, output commit %s", killed, c.State)
	}

	// A datum timeout kills the command.
	d.spec(`
name: slow
datum_timeout: 1s
datum_tries: 1
transform: {image: busybox, cmd: ["/bin/sh", "-c", "sleep 30"]}
input: {pfs: {repo: in, glob: "/"}}
`, "pipeline", "create")
	start := time.Now()
	var j []*api.Job
	for time.Since(start) < 60*time.Second {
		d.jsonOut(&j, "job", "list", "--pipeline", "slow")
		if len(j) == 1 && (j[0].State == api.JobFailure || j[0].State == api.JobSuccess) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(j) != 1 || j[0].State != api.JobFailure || !strings.Contains(j[0].Error, "timed out") || time.Since(start) > 25*time.Second {
		t.Fatalf("datum timeout: %+v after %v", j, time.Since(start))
	}
}

func TestPipelineResumesAfterKill(t *testing.T) {
	d := pipelineDaemon(t)
	d.ok(nil, "repo", "create", "in")
	for i := range 8 {
		d.ok([]byte{byte('a' + i)}, "put", fmt.Sprintf("in@main:/f%d", i), "-f", "-")
	}
	d.spec(`
name: steady
transform: {image: busybox, cmd: ["/bin/sh", "-c", "sleep 0.5; cp /pfs/in/* /pfs/out/"]}
input: {pfs: {repo: in, glob: "/*"}}
`, "pipeline", "create")
	var jobs []*api.Job
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		d.jsonOut(&jobs, "job", "list", "--pipeline", "steady")
		if len(jobs) == 1 && jobs[0].Processed >= 3 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(jobs) != 1 || jobs[0].Processed < 3 || jobs[0].Processed == 8 {
		t.Fatalf("job before the kill: %+v", jobs)
	}
	d.kill()
	d2 := startDaemonWith(t, d.data, "--mount", filepath.Join(filepath.Dir(d.data), "pfs"))
	t.Cleanup(func() { d2.shutdown() })
	j := d2.ok(nil, "job", "wait", jobs[0].ID)
	var done api.Job
	d2.jsonOut(&done, "job", "inspect", jobs[0].ID)
	if done.State != api.JobSuccess || done.Processed+done.Skipped != 8 {
		t.Fatalf("resumed job: %+v\n%s", done, j)
	}
	for i := range 8 {
		if got := d2.ok(nil, "cat", fmt.Sprintf("steady@main:/f%d", i)); got != string(rune('a'+i)) {
			t.Fatalf("f%d after resume: %q", i, got)
		}
	}
}

func TestServicePipeline(t *testing.T) {
	d := pipelineDaemon(t)
	d.ok(nil, "repo", "create", "site")
	d.ok([]byte("v1"), "put", "site@main:/index.html", "-f", "-")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	d.spec(fmt.Sprintf(`
name: web
transform: {image: busybox, cmd: ["/bin/sh", "-c", "exec httpd -f -p $PORT -h /pfs/site"]}
input: {pfs: {repo: site, glob: "/"}}
service: {port: %d}
`, port), "pipeline", "create")
	get := func(want string) {
		t.Helper()
		var got string
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/index.html", port))
			if err != nil {
				got = err.Error()
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got = string(b); got == want {
				return
			}
		}
		t.Fatalf("service answered %q, want %q", got, want)
	}
	get("v1")
	// A new commit restarts the service over the new data.
	d.ok([]byte("v2"), "put", "site@main:/index.html", "-f", "-")
	get("v2")
	jobs := d.waitCommit("site@main")
	if len(jobs) != 1 || jobs[0].State != api.JobSuccess {
		t.Fatalf("service job: %+v", jobs)
	}
	var js []*api.Job
	d.jsonOut(&js, "job", "list", "--pipeline", "web")
	if len(js) != 2 {
		t.Fatalf("%d service jobs, want 2", len(js))
	}
}

func TestPipelineJoinGroup(t *testing.T) {
	d := pipelineDaemon(t)
	for repo, files := range map[string][]string{
		"left":  {"/a-1.txt", "/b-2.txt", "/c-9.txt"},
		"right": {"/1.csv", "/2.csv", "/3.csv"},
		"logs":  {"/x-1", "/y-1", "/z-2"},
	} {
		d.ok(nil, "repo", "create", repo)
		for _, f := range files {
			d.ok([]byte(f), "put", repo+"@main:"+f, "-f", "-")
		}
	}
	d.spec(`
name: joined
transform: {image: busybox, cmd: ["/bin/sh", "-c", "cat /pfs/left/* /pfs/right/* > /pfs/out/$(ls /pfs/right)"]}
input:
  join:
  - pfs: {repo: left, glob: "/*-(*).txt", join_on: "$1"}
  - pfs: {repo: right, glob: "/(*).csv", join_on: "$1"}
---
name: grouped
transform: {image: busybox, cmd: ["/bin/sh", "-c", "ls /pfs/logs | tr '\n' ' ' > /pfs/out/$STRATA_DATUM_ID"]}
input:
  group:
  - pfs: {repo: logs, glob: "/*-(*)", group_by: "$1"}
`, "pipeline", "create")
	d.waitCommit("left@main")
	d.waitCommit("logs@main")
	if got := d.ok(nil, "cat", "joined@main:/1.csv"); got != "/a-1.txt/1.csv" {
		t.Errorf("join of key 1: %q", got)
	}
	if got := d.ok(nil, "cat", "joined@main:/2.csv"); got != "/b-2.txt/2.csv" {
		t.Errorf("join of key 2: %q", got)
	}
	if _, code := d.run(nil, "cat", "joined@main:/3.csv"); code != 3 {
		t.Errorf("key 3 has no left side, yet a datum ran (exit %d)", code)
	}
	var groups []string
	var ls []struct{ Path string }
	d.jsonOut(&ls, "ls", "grouped@main")
	for _, e := range ls {
		groups = append(groups, strings.TrimSpace(d.ok(nil, "cat", "grouped@main:"+e.Path)))
	}
	sort.Strings(groups)
	if strings.Join(groups, "|") != "x-1 y-1|z-2" {
		t.Errorf("groups: %q", groups)
	}
}

// TestPipelineIncremental100: one new file in an input of 100 datums runs
// exactly that datum; the other 100 are reused from the previous job.
func TestPipelineIncremental100(t *testing.T) {
	d := pipelineDaemon(t)
	src := t.TempDir()
	for i := range 100 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%03d", i)), []byte(strings.Repeat("x", i+1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d.ok(nil, "repo", "create", "data")
	d.ok(nil, "put", "-r", "data@main:/", "-f", src)
	d.spec(strings.SplitN(copySpec, "---", 2)[0], "pipeline", "create")
	jobs := d.waitCommit("data@main")
	if len(jobs) != 1 || jobs[0].State != api.JobSuccess {
		t.Fatalf("first run: %+v", jobs)
	}
	if st := d.datums(jobs[0].ID); st[api.DatumSuccess] != 100 {
		t.Fatalf("first run over 100 files: %v", st)
	}
	d.ok([]byte("new"), "put", "data@main:/g", "-f", "-")
	jobs = d.waitCommit("data@main")
	if st := d.datums(jobs[0].ID); st[api.DatumSuccess] != 1 || st[api.DatumSkipped] != 100 || len(st) != 2 {
		t.Fatalf("after adding one file to 100: %v, want 1 success and 100 skipped", st)
	}
	if got := d.ok(nil, "cat", "lens@main:/g.len"); strings.TrimSpace(got) != "3" {
		t.Fatalf("output of the new datum: %q", got)
	}
	if got := d.ok(nil, "cat", "lens@main:/f099.len"); strings.TrimSpace(got) != "100" {
		t.Fatalf("reused output: %q", got)
	}
}
