package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-data/strata/api"
)

// 'strata worker' on another "host": the daemon and the worker each in
// their own network namespace, joined by a veth pair, the worker reaching
// the daemon only over TCP with the token. The worker runs datums (its
// containerd, its image copy, its view of /pfs over the API); killed with
// SIGKILL mid-datum, its datum runs elsewhere after the lease; restarted,
// it clears what the kill left and stops cleanly on SIGTERM.

func requireNetns(t *testing.T) {
	t.Helper()
	requireContainers(t)
	for _, bin := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required in CI (apt-get install -y iproute2 util-linux): %v", bin, err)
			}
			t.Skipf("no %s here: %v", bin, err)
		}
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// netnsPair makes two network namespaces joined by a veth pair, with
// addresses 10.201.N.1 (first) and 10.201.N.2 (second) on a /30, and
// returns the namespaces' names and the first one's address.
func netnsPair(t *testing.T) (ns1, ns2, addr1 string) {
	t.Helper()
	n := os.Getpid() % 250
	tag := fmt.Sprintf("%d", os.Getpid())
	ns1, ns2 = "strata-d-"+tag, "strata-w-"+tag
	v1, v2 := "sd"+tag, "sw"+tag
	run(t, "ip", "netns", "add", ns1)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns1).Run() })
	run(t, "ip", "netns", "add", ns2)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns2).Run() })
	run(t, "ip", "link", "add", v1, "type", "veth", "peer", "name", v2)
	run(t, "ip", "link", "set", v1, "netns", ns1)
	run(t, "ip", "link", "set", v2, "netns", ns2)
	addr1 = fmt.Sprintf("10.201.%d.1", n)
	for _, c := range []struct{ ns, dev, addr string }{{ns1, v1, addr1 + "/30"}, {ns2, v2, fmt.Sprintf("10.201.%d.2/30", n)}} {
		run(t, "ip", "-n", c.ns, "addr", "add", c.addr, "dev", c.dev)
		run(t, "ip", "-n", c.ns, "link", "set", c.dev, "up")
		run(t, "ip", "-n", c.ns, "link", "set", "lo", "up")
	}
	return ns1, ns2, addr1
}

// workerProc is a 'strata worker' child process in a network namespace.
type workerProc struct {
	t      *testing.T
	dir    string
	cmd    *exec.Cmd
	log    *bytes.Buffer
	exited chan struct{}
}

func startWorker(t *testing.T, ns, dir string, args ...string) *workerProc {
	t.Helper()
	w := &workerProc{t: t, dir: dir, log: &bytes.Buffer{}, exited: make(chan struct{})}
	// nsenter --net switches the network only: the worker's FUSE mount
	// stays visible to the containerd it starts.
	w.cmd = exec.Command("nsenter", append([]string{"--net=/run/netns/" + ns, strataBin, "worker", "--dir", dir}, args...)...)
	w.cmd.Stdout, w.cmd.Stderr = w.log, w.log
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.cmd.Wait(); close(w.exited) }()
	t.Cleanup(func() {
		select {
		case <-w.exited:
		default:
			w.cmd.Process.Kill()
			<-w.exited
		}
		syscall.Unmount(filepath.Join(dir, "pfs"), syscall.MNT_DETACH)
		if t.Failed() {
			t.Logf("worker log:\n%s", w.log)
		}
	})
	return w
}

// waitListed waits until the daemon lists a worker called name.
func waitListed(t *testing.T, cl *api.Client, w *workerProc, name string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-w.exited:
			t.Fatalf("worker exited (%v); log:\n%s", w.cmd.ProcessState, w.log)
		default:
		}
		ws, err := cl.ListWorkers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ws {
			if x.Name == name {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("worker %s never claimed; log:\n%s", name, w.log)
}

const spreadSpec = `
name: spread
transform:
  image: busybox
  cmd: ["/bin/sh", "-c", "for f in /pfs/in/*; do sleep $(head -c 1 $f); cp $f /pfs/out/; done"]
input: {pfs: {repo: in, glob: "/*"}}
parallelism: 1
`

func TestRemoteWorker(t *testing.T) {
	requireNetns(t)
	ns1, ns2, addr := netnsPair(t)
	base := t.TempDir()
	data := filepath.Join(base, "data")
	d := &daemon{t: t, data: data, cache: filepath.Join(base, "cli-cache"), log: &bytes.Buffer{}}
	d.cmd = exec.Command("nsenter", "--net=/run/netns/"+ns1, strataBin, "up", "--data", data,
		"--mount", filepath.Join(base, "pfs"), "--listen", addr+":7070", "--worker-lease", "3s")
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.shutdown() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, code := d.run(nil, "status"); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not come up; log:\n%s", d.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.ok(nil, "image", "import", busyboxRoot(t), "--name", "busybox")
	tokenBytes, err := os.ReadFile(filepath.Join(data, "token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tokenBytes))
	cl, err := api.NewClient("unix://"+filepath.Join(data, "strata.sock"), "")
	if err != nil {
		t.Fatal(err)
	}
	server := "http://" + addr + ":7070"

	// A wrong token fails at start with the daemon's reason (exit 8).
	bad := startWorker(t, ns2, filepath.Join(base, "bad"), "--server", server, "--token", "nope", "--name", "bad")
	<-bad.exited
	if code := bad.cmd.ProcessState.ExitCode(); code != 8 || !strings.Contains(bad.log.String(), "token") {
		t.Errorf("worker with a wrong token: exit %d, log:\n%s", code, bad.log)
	}

	wdir := filepath.Join(base, "worker")
	w := startWorker(t, ns2, wdir, "--server", server, "--token", token, "--name", "remote1")
	waitListed(t, cl, w, "remote1-0")

	// Every datum takes a second: the local worker and the remote one
	// share them.
	d.ok(nil, "repo", "create", "in")
	for i := range 8 {
		d.ok([]byte(fmt.Sprintf("1-%d", i)), "put", fmt.Sprintf("in@main:/a%d", i), "-f", "-")
	}
	d.spec(spreadSpec, "pipeline", "create")
	jobs := d.waitCommit("in@main")
	if len(jobs) != 1 || jobs[0].State != api.JobSuccess || jobs[0].Processed != 8 {
		t.Fatalf("first job: %+v\ndaemon log:\n%s\nworker log:\n%s", jobs, d.log, w.log)
	}
	byWorker := func(job string) (map[string]int, []*api.Datum) {
		var ds []*api.Datum
		d.jsonOut(&ds, "datum", "list", "--job", job)
		m := map[string]int{}
		for _, x := range ds {
			m[x.Worker]++
		}
		return m, ds
	}
	if m, _ := byWorker(jobs[0].ID); m["remote1-0"] == 0 || m["spread-0"] == 0 || m["remote1-0"]+m["spread-0"] != 8 {
		t.Errorf("first job's datums by worker: %v; want some on remote1-0 and some on spread-0", m)
	}
	for i := range 8 {
		if got := d.ok(nil, "cat", fmt.Sprintf("spread@main:/a%d", i)); got != fmt.Sprintf("1-%d", i) {
			t.Errorf("a%d = %q", i, got)
		}
	}

	// Datums of 6 seconds; SIGKILL the worker during its first.
	d.ok(nil, "commit", "start", "in@main")
	for i := range 4 {
		d.ok([]byte(fmt.Sprintf("6-%d", i)), "put", fmt.Sprintf("in@main:/b%d", i), "-f", "-")
	}
	d.ok(nil, "commit", "finish", "in@main")
	var killed string
	deadline = time.Now().Add(60 * time.Second)
	for killed == "" && time.Now().Before(deadline) {
		var js []*api.Job
		d.jsonOut(&js, "job", "list", "--pipeline", "spread")
		if len(js) == 2 {
			_, ds := byWorker(js[0].ID)
			for _, x := range ds {
				if x.Worker == "remote1-0" && x.State == api.DatumRunning {
					killed = x.ID
				}
			}
		}
		if killed == "" {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if killed == "" {
		t.Fatalf("the remote worker never ran a datum of the second job; worker log:\n%s", w.log)
	}
	time.Sleep(time.Second) // well inside the datum's sleep
	w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.exited

	jobs = d.waitCommit("in@main")
	if len(jobs) != 1 || jobs[0].State != api.JobSuccess || jobs[0].Processed != 4 {
		t.Fatalf("second job after the kill: %+v\ndaemon log:\n%s", jobs, d.log)
	}
	var rec api.Datum
	d.jsonOut(&rec, "datum", "inspect", "--job", jobs[0].ID, killed)
	if rec.State != api.DatumSuccess || rec.Worker != "spread-0" {
		t.Errorf("the killed worker's datum: %+v; want a success on spread-0", rec)
	}
	logs := d.ok(nil, "logs", "--pipeline", "spread", "--job", jobs[0].ID, "--datum", killed)
	if !strings.Contains(logs, "given to remote worker remote1-0") || !strings.Contains(logs, "did not renew its lease") {
		t.Errorf("logs of the killed worker's datum:\n%s", logs)
	}
	for i := range 4 {
		if got := d.ok(nil, "cat", fmt.Sprintf("spread@main:/b%d", i)); got != fmt.Sprintf("6-%d", i) {
			t.Errorf("b%d = %q", i, got)
		}
	}

	// Restarted on the same dir after the kill, it clears the dead mount
	// and containers, works, and stops cleanly on SIGTERM.
	w2 := startWorker(t, ns2, wdir, "--server", server, "--token", token, "--name", "remote2")
	waitListed(t, cl, w2, "remote2-0")
	d.ok(nil, "commit", "start", "in@main")
	for i := range 4 {
		d.ok([]byte(fmt.Sprintf("1-c%d", i)), "put", fmt.Sprintf("in@main:/c%d", i), "-f", "-")
	}
	d.ok(nil, "commit", "finish", "in@main")
	jobs = d.waitCommit("in@main")
	if len(jobs) != 1 || jobs[0].State != api.JobSuccess {
		t.Fatalf("third job: %+v", jobs)
	}
	if m, _ := byWorker(jobs[0].ID); m["remote2-0"] == 0 {
		t.Errorf("third job's datums by worker: %v; want some on remote2-0", m)
	}
	w2.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w2.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("worker did not stop within 60 s of SIGTERM; log:\n%s", w2.log)
	}
	if !w2.cmd.ProcessState.Success() {
		t.Errorf("worker after SIGTERM: %v; log:\n%s", w2.cmd.ProcessState, w2.log)
	}
	if isMountPoint(t, filepath.Join(wdir, "pfs")) {
		t.Errorf("%s still mounted after the worker stopped", filepath.Join(wdir, "pfs"))
	}
}
