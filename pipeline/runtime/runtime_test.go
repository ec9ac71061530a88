package runtime

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/containerd/v2/core/snapshots"
	digest "github.com/opencontainers/go-digest"

	"github.com/strata-data/strata/pipeline/agent"
	"github.com/strata-data/strata/pipeline/runtime/runtimetest"
)

const testImage = "strata-test/busybox"

// newRuntime starts a private containerd under dir (a temp dir when "")
// and closes it at the end of the test.
func newRuntime(t testing.TB, dir string) *Runtime {
	t.Helper()
	runtimetest.RequireContainers(t)
	if dir == "" {
		dir = t.TempDir()
	}
	r, err := Start(context.Background(), Config{
		Dir:       dir,
		AgentPath: runtimetest.Agent(t),
		Log:       slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func importBusybox(t testing.TB, r *Runtime) *Image {
	t.Helper()
	img, err := r.ImportDir(context.Background(), testImage, runtimetest.BusyboxRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func tctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// execIn runs a shell script in w and returns the result and outputs.
func execIn(t *testing.T, w *Worker, req agent.Request) (agent.Result, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	res, err := w.Exec(tctx(t), req, &stdout, &stderr)
	if err != nil {
		t.Fatalf("Exec(%q): %v", req.Args, err)
	}
	return res, stdout.String(), stderr.String()
}

func sh(script string) []string { return []string{"sh", "-c", script} }

func TestWorker(t *testing.T) {
	r := newRuntime(t, "")
	importBusybox(t, r)
	t.Logf("snapshotter: %s", r.Snapshotter())

	tmp := t.TempDir()
	pfs := filepath.Join(tmp, "pfs")
	out := filepath.Join(tmp, "out")
	// A run dir whose socket path is too long for sun_path.
	run := filepath.Join(tmp, strings.Repeat("r", 60), strings.Repeat("u", 40))
	for _, d := range []string{filepath.Join(pfs, "in"), filepath.Join(pfs, "out"), out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(pfs, "in", "x"), []byte("datum x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := tctx(t)
	w, err := r.StartWorker(ctx, WorkerSpec{
		ID: "w1", Image: testImage, PFS: pfs, Out: out, Run: run,
		Env: []string{"STRATA_WORKER=w1"}, CPU: 0.5, Memory: 64 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(w.sock, "/proc/self/fd/") {
		t.Errorf("long run dir: socket path %q does not go through /proc/self/fd", w.sock)
	}

	t.Run("PrivateRuncRootAndCgroup", func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(r.dir, "runc", Namespace, "w1", "state.json")); err != nil {
			t.Errorf("runc state is not under the runtime dir: %v", err)
		}
		spec, err := w.container.Spec(r.ctx(ctx))
		if err != nil {
			t.Fatal(err)
		}
		if want := "/strata/" + r.instance + "-w1"; spec.Linux.CgroupsPath != want {
			t.Errorf("cgroups path %q, want %q", spec.Linux.CgroupsPath, want)
		}
	})
	t.Run("CopyToOut", func(t *testing.T) {
		res, _, stderr := execIn(t, w, agent.Request{Args: sh("cat /pfs/in/x > /pfs/out/y")})
		if res.Err() != nil {
			t.Fatalf("%v: %s", res, stderr)
		}
		b, err := os.ReadFile(filepath.Join(out, "y"))
		if err != nil || string(b) != "datum x\n" {
			t.Errorf("host Out/y = %q, %v", b, err)
		}
		if entries, _ := os.ReadDir(filepath.Join(pfs, "out")); len(entries) != 0 {
			t.Errorf("PFS/out on the host got %d entries; /pfs/out should be the Out mount", len(entries))
		}
	})
	t.Run("PFSReadOnly", func(t *testing.T) {
		res, _, stderr := execIn(t, w, agent.Request{Args: sh("echo z > /pfs/in/z")})
		if res.ExitCode == 0 || !strings.Contains(strings.ToLower(stderr), "read-only") {
			t.Errorf("writing to /pfs/in: %v, stderr %q", res, stderr)
		}
		if _, err := os.Stat(filepath.Join(pfs, "in", "z")); err == nil {
			t.Error("file appeared in the read-only PFS")
		}
	})
	t.Run("ExitCodes", func(t *testing.T) {
		for _, code := range []string{"0", "1", "42"} {
			res, _, _ := execIn(t, w, agent.Request{Args: sh("exit " + code)})
			if strconv.Itoa(res.ExitCode) != code {
				t.Errorf("exit %s: %+v", code, res)
			}
		}
		res, _, _ := execIn(t, w, agent.Request{Args: []string{"no-such-command"}})
		if !strings.Contains(res.StartError, "not found") {
			t.Errorf("missing command: %+v", res)
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		start := time.Now()
		res, _, _ := execIn(t, w, agent.Request{Args: sh("sleep 30"), Timeout: 300 * time.Millisecond})
		if !res.TimedOut || time.Since(start) > 5*time.Second {
			t.Errorf("got %+v after %v", res, time.Since(start))
		}
	})
	t.Run("EnvUserDir", func(t *testing.T) {
		res, stdout, _ := execIn(t, w, agent.Request{
			Args: sh(`echo "$STRATA_WORKER $DATUM $PATH"; id -u; pwd`),
			Env:  []string{"DATUM=d1"}, User: "nobody", Dir: "/tmp",
		})
		want := "w1 d1 /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n65534\n/tmp\n"
		if res.Err() != nil || stdout != want {
			t.Errorf("got %v %q, want %q", res, stdout, want)
		}
	})
	t.Run("Stdin", func(t *testing.T) {
		res, stdout, _ := execIn(t, w, agent.Request{Args: []string{"wc", "-c"}, Stdin: bytes.Repeat([]byte("x"), 100000)})
		if res.Err() != nil || strings.TrimSpace(stdout) != "100000" {
			t.Errorf("got %v %q", res, stdout)
		}
	})
	t.Run("NoNetwork", func(t *testing.T) {
		_, stdout, _ := execIn(t, w, agent.Request{Args: []string{"cat", "/proc/net/dev"}})
		if ifs := interfaces(stdout); len(ifs) != 1 || ifs[0] != "lo" {
			t.Errorf("interfaces without network: %v", ifs)
		}
	})
	t.Run("Limits", func(t *testing.T) {
		_, stdout, _ := execIn(t, w, agent.Request{Args: sh(
			"cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max 2>/dev/null || " +
				"cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us")})
		got := strings.Fields(stdout)
		switch {
		case len(got) == 3 && got[0] == "67108864" && got[1] == "50000" && got[2] == "100000":
			t.Log("cgroup v2 limits seen")
		case len(got) == 2 && got[0] == "67108864" && got[1] == "50000":
			t.Log("cgroup v1 limits seen")
		default:
			t.Errorf("limits inside the container: %q", stdout)
		}
	})
	t.Run("ReapsZombies", func(t *testing.T) {
		// Orphans of a command are killed with its process group and
		// re-parented to the agent, which must reap them.
		for range 3 {
			execIn(t, w, agent.Request{Args: sh("(sleep 5 &) ; sleep 5 & echo started")})
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, stdout, _ := execIn(t, w, agent.Request{Args: sh("cat /proc/[0-9]*/stat")})
			if !strings.Contains(stdout, ") Z ") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("zombies in the container:\n%s", stdout)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	t.Run("Close", func(t *testing.T) {
		if !w.Alive() {
			t.Fatalf("worker died: %v", w.Err())
		}
		if err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if w.Alive() || w.Err() == nil {
			t.Error("worker alive after Close")
		}
		if _, err := w.Exec(ctx, agent.Request{Args: []string{"true"}}, nil, nil); err == nil {
			t.Error("Exec after Close succeeded")
		}
		assertNoContainers(t, r)
	})
}

// interfaces lists the names in /proc/net/dev.
func interfaces(procNetDev string) []string {
	var names []string
	for _, line := range strings.Split(procNetDev, "\n") {
		if name, _, ok := strings.Cut(line, ":"); ok && !strings.Contains(name, "|") {
			names = append(names, strings.TrimSpace(name))
		}
	}
	sort.Strings(names)
	return names
}

func assertNoContainers(t *testing.T, r *Runtime) {
	t.Helper()
	ctx := r.ctx(tctx(t))
	cs, err := r.client.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 0 {
		t.Errorf("%d containers left", len(cs))
	}
	var active []string
	r.client.SnapshotService(r.snapshotter).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind == snapshots.KindActive {
			active = append(active, info.Name)
		}
		return nil
	})
	if len(active) != 0 {
		t.Errorf("active snapshots left: %v", active)
	}
}

func TestHostNetwork(t *testing.T) {
	r := newRuntime(t, "")
	importBusybox(t, r)
	w, err := r.StartWorker(tctx(t), WorkerSpec{ID: "net", Image: testImage, Run: t.TempDir(), Network: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(tctx(t))
	_, stdout, _ := execIn(t, w, agent.Request{Args: []string{"cat", "/proc/net/dev"}})
	host, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := interfaces(stdout), interfaces(string(host)); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("interfaces with host network: %v, host has %v", got, want)
	}
}

func TestWorkerDeath(t *testing.T) {
	r := newRuntime(t, "")
	importBusybox(t, r)
	ctx := tctx(t)
	w, err := r.StartWorker(ctx, WorkerSpec{ID: "doomed", Image: testImage, Run: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	// A long exec is cut off when the container dies.
	errc := make(chan error, 1)
	go func() {
		_, err := w.Exec(ctx, agent.Request{Args: sh("sleep 30")}, nil, nil)
		errc <- err
	}()
	time.Sleep(200 * time.Millisecond)
	if err := w.task.Kill(r.ctx(ctx), syscall.SIGKILL, containerd.WithKillAll); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after the container was killed")
	}
	if w.Alive() || w.Err() == nil {
		t.Errorf("Alive=%v Err=%v", w.Alive(), w.Err())
	}
	if err := <-errc; err == nil {
		t.Error("exec in a killed container succeeded")
	} else {
		t.Logf("exec error: %v", err)
	}
	if _, err := w.Exec(ctx, agent.Request{Args: []string{"true"}}, nil, nil); err == nil {
		t.Error("Exec on a dead worker succeeded")
	}
}

// TestLeftoversAfterCrash leaves a running worker behind as a crashed
// daemon would (containerd stopped, the shim and container alive) and
// checks that the next Start removes it.
func TestLeftoversAfterCrash(t *testing.T) {
	runtimetest.RequireContainers(t)
	dir := t.TempDir()
	r1, err := Start(context.Background(), Config{Dir: dir, AgentPath: runtimetest.Agent(t)})
	if err != nil {
		t.Fatal(err)
	}
	importBusybox(t, r1)
	run := t.TempDir()
	w, err := r1.StartWorker(tctx(t), WorkerSpec{ID: "left", Image: testImage, Run: run})
	if err != nil {
		t.Fatal(err)
	}
	// Crash: no Close; containerd goes away, the container keeps running.
	w.setClosing()
	r1.client.Close()
	r1.daemon.stop()
	if err := agent.Ping(tctx(t), w.sock); err != nil {
		t.Fatalf("the container should have survived containerd: %v", err)
	}

	r2 := newRuntime(t, dir)
	assertNoContainers(t, r2)
	if err := agent.Ping(tctx(t), w.sock); err == nil {
		t.Error("the leftover agent still answers")
	}
	// The image survived, and a worker with the same id starts again.
	w2, err := r2.StartWorker(tctx(t), WorkerSpec{ID: "left", Image: testImage, Run: run})
	if err != nil {
		t.Fatal(err)
	}
	w2.Close(tctx(t))
}

// TestDaemonRestart kills the private containerd under a running worker:
// the supervisor restarts it and the worker keeps working.
func TestDaemonRestart(t *testing.T) {
	r := newRuntime(t, "")
	importBusybox(t, r)
	w, err := r.StartWorker(tctx(t), WorkerSpec{ID: "survivor", Image: testImage, Run: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	r.daemon.mu.Lock()
	r.daemon.cmd.Process.Kill()
	r.daemon.mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	if err := waitServing(tctx(t), r.client, 20*time.Second, nil); err != nil {
		t.Fatalf("containerd not back: %v", err)
	}
	if res, _, _ := execIn(t, w, agent.Request{Args: []string{"true"}}); res.Err() != nil {
		t.Fatal(res.Err())
	}
	time.Sleep(1500 * time.Millisecond) // let the monitor re-establish its wait
	if !w.Alive() {
		t.Fatalf("worker marked dead across a containerd restart: %v", w.Err())
	}
	if err := w.Close(tctx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestImages(t *testing.T) {
	r := newRuntime(t, "")
	ctx := tctx(t)
	img := importBusybox(t, r)
	if img.Name != "docker.io/"+testImage+":latest" || !strings.HasPrefix(img.Digest, "sha256:") || img.Size < 500_000 {
		t.Errorf("ImportDir: %+v", img)
	}
	if time.Since(img.Created) > time.Minute {
		t.Errorf("Created = %v", img.Created)
	}

	// Round trip through an OCI archive under another name.
	var buf bytes.Buffer
	if err := r.client.Export(r.ctx(ctx), &buf, archive.WithImage(r.client.ImageService(), img.Name)); err != nil {
		t.Fatal(err)
	}
	oci, err := r.ImportTar(ctx, "strata-test/oci:v1", bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if oci.Digest != img.Digest || oci.Name != "docker.io/strata-test/oci:v1" {
		t.Errorf("OCI import: %+v, want digest %s", oci, img.Digest)
	}

	// A docker-save archive that names its image.
	docker := dockerArchive(t, map[string]string{"hello.txt": "from docker\n"}, "strata-test/docker:1")
	dimg, err := r.ImportTar(ctx, "", bytes.NewReader(docker))
	if err != nil {
		t.Fatal(err)
	}
	if dimg.Name != "docker.io/strata-test/docker:1" {
		t.Errorf("docker import name: %q", dimg.Name)
	}
	// Two images in one archive are refused.
	two := dockerArchive(t, map[string]string{"a": "1"}, "strata-test/a:1", "strata-test/b:1")
	if _, err := r.ImportTar(ctx, "x", bytes.NewReader(two)); err == nil || !strings.Contains(err.Error(), "2 images") {
		t.Errorf("two-image archive: %v", err)
	}

	list, err := r.Images(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range list {
		names = append(names, i.Name)
	}
	want := []string{"docker.io/strata-test/busybox:latest", "docker.io/strata-test/docker:1", "docker.io/strata-test/oci:v1"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("Images = %v, want %v", names, want)
	}
	if err := r.DeleteImage(ctx, "strata-test/oci:v1"); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteImage(ctx, "strata-test/oci:v1"); !errors.Is(err, ErrImageNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if _, err := r.LookupImage(ctx, "strata-test/oci:v1"); !errors.Is(err, ErrImageNotFound) {
		t.Errorf("lookup of a deleted image: %v", err)
	}
	// The busybox image still works after its twin's deletion.
	res, err := r.RunOnce(ctx, WorkerSpec{Image: testImage}, []string{"true"}, nil, nil)
	if err != nil || res.ExitCode != 0 {
		t.Errorf("RunOnce after delete: %v %v", res, err)
	}
}

// dockerArchive builds a `docker save` archive: one image per tag given,
// each with a single uncompressed layer holding files (made distinct per
// tag so that several tags are several images).
func dockerArchive(t *testing.T, files map[string]string, tags ...string) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	add := func(name string, body []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	type entry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var manifest []entry
	for i, tag := range tags {
		var layer bytes.Buffer
		lw := tar.NewWriter(&layer)
		names := make([]string, 0, len(files))
		for n := range files {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range append(names, "tag") {
			body := files[n]
			if n == "tag" {
				body = tag
			}
			lw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
			lw.Write([]byte(body))
		}
		lw.Close()
		config, _ := json.Marshal(map[string]any{
			"architecture": "amd64", "os": "linux",
			"config": map[string]any{"Env": []string{DefaultPath}},
			"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digest.FromBytes(layer.Bytes()).String()}},
		})
		layerName := string(rune('a'+i)) + "/layer.tar"
		configName := digest.FromBytes(config).Encoded() + ".json"
		add(layerName, layer.Bytes())
		add(configName, config)
		manifest = append(manifest, entry{Config: configName, RepoTags: []string{tag}, Layers: []string{layerName}})
	}
	m, _ := json.Marshal(manifest)
	add("manifest.json", m)
	tw.Close()
	return out.Bytes()
}

func TestRunOnce(t *testing.T) {
	r := newRuntime(t, "")
	importBusybox(t, r)
	ctx := tctx(t)
	var stdout, stderr bytes.Buffer
	res, err := r.RunOnce(ctx, WorkerSpec{Image: testImage, Env: []string{"WHO=once"}}, sh("echo hello $WHO; echo oops >&2; exit 3"), &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || stdout.String() != "hello once\n" || stderr.String() != "oops\n" {
		t.Errorf("got %+v %q %q", res, stdout.String(), stderr.String())
	}
	assertNoContainers(t, r)
}

// TestTmpfsDir runs the runtime with its state on tmpfs, where overlayfs
// also works.
func TestTmpfsDir(t *testing.T) {
	runtimetest.RequireContainers(t)
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=512m"); err != nil {
		t.Skipf("mounting tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	r := newRuntime(t, dir)
	importBusybox(t, r)
	t.Logf("snapshotter on tmpfs: %s", r.Snapshotter())
	var stdout bytes.Buffer
	res, err := r.RunOnce(tctx(t), WorkerSpec{Image: testImage}, []string{"echo", "ok"}, &stdout, nil)
	if err != nil || res.ExitCode != 0 || stdout.String() != "ok\n" {
		t.Fatalf("%v %v %q", res, err, stdout.String())
	}
}

// TestStaleDaemon leaves a private containerd running as if Pdeathsig had
// not fired; the next Start on the same directory stops it.
func TestStaleDaemon(t *testing.T) {
	runtimetest.RequireContainers(t)
	dir := t.TempDir()
	r1, err := Start(context.Background(), Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	r1.client.Close()
	d := r1.daemon
	d.mu.Lock()
	d.stopping = true // the supervisor lets it be
	close(d.stopCh)
	stale, exited := d.cmd.Process, d.exited
	d.mu.Unlock()
	defer stale.Kill()

	newRuntime(t, dir)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the stale containerd is still running")
	}
}

func TestDaemonFailsToStart(t *testing.T) {
	runtimetest.RequireContainers(t)
	dir := t.TempDir()
	// containerd cannot create its root directory.
	if err := os.WriteFile(filepath.Join(dir, "root"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), Config{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "containerd.log")) {
		t.Errorf("Start with a broken containerd: %v", err)
	} else {
		t.Log(err)
	}
}

func TestStartWithoutContainerd(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Start(context.Background(), Config{Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "apt-get install containerd runc") {
		t.Errorf("Start without containerd: %v", err)
	}
}

func TestDaemonConfig(t *testing.T) {
	cfg := daemonConfig("/data/containerd", "/data/containerd/containerd.sock")
	for _, want := range []string{`root = "/data/containerd/root"`, `state = "/data/containerd/state"`,
		`"io.containerd.grpc.v1.cri"`, `address = "/data/containerd/containerd.sock"`} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %s:\n%s", want, cfg)
		}
	}
}

func BenchmarkExec(b *testing.B) {
	r := newRuntime(b, "")
	importBusybox(b, r)
	ctx := context.Background()
	w, err := r.StartWorker(ctx, WorkerSpec{ID: "bench", Image: testImage, Run: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close(ctx)
	var inCommand time.Duration
	for b.Loop() {
		res, err := w.Exec(ctx, agent.Request{Args: []string{"true"}}, nil, nil)
		if err != nil || res.Err() != nil {
			b.Fatal(err, res)
		}
		inCommand += res.Duration
	}
	// The time the command itself ran, as the agent measured it; the rest
	// of ns/op is the agent's and the socket's overhead.
	b.ReportMetric(float64(inCommand.Nanoseconds())/float64(b.N), "cmd-ns/op")
}

func BenchmarkRunOnce(b *testing.B) {
	r := newRuntime(b, "")
	importBusybox(b, r)
	ctx := context.Background()
	for b.Loop() {
		res, err := r.RunOnce(ctx, WorkerSpec{Image: testImage}, []string{"true"}, nil, nil)
		if err != nil || res.ExitCode != 0 {
			b.Fatal(err, res)
		}
	}
}
