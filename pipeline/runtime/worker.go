package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/strata-data/strata/pipeline/agent"
)

// Paths inside a worker container.
const (
	AgentInContainer  = "/.strata/strata"
	RunInContainer    = "/.strata/run"
	SocketInContainer = RunInContainer + "/agent.sock"
	AgentCommand      = "__agent"
)

// agentStartTimeout bounds how long StartWorker waits for the agent's
// socket to answer.
const agentStartTimeout = 30 * time.Second

// WorkerSpec describes a worker container.
type WorkerSpec struct {
	// ID names the container (letters, digits, '.', '_', '-'); it must be
	// unique among running workers.
	ID string
	// Image is an image name as accepted by NormalizeImageName.
	Image string
	// PFS is a host directory bind-mounted read-only at /pfs; "" for none.
	PFS string
	// Out is a host directory bind-mounted read-write at /pfs/out, on top
	// of the directory "out" of PFS (created when missing); "" for none.
	Out string
	// Run is a host directory bind-mounted read-write at /.strata/run,
	// where the agent puts its socket (and where agent.log, the
	// container's own stdout and stderr, is written).
	Run string
	// Env is added to the image's environment.
	Env []string
	// Network shares the host's network namespace; otherwise the container
	// has a private one with only loopback.
	Network bool
	// CPU limits the container to this many cores (CFS quota); 0 = none.
	CPU float64
	// Memory limits the container's memory in bytes; 0 = none.
	Memory int64
}

// Worker is a long-lived container whose init process is the agent.
type Worker struct {
	r           *Runtime
	id          string
	sock        string   // how the host reaches the agent's socket
	runDir      *os.File // kept open when sock goes through /proc/self/fd
	defaultUser string   // the image's User, for requests without one
	container   containerd.Container
	task        containerd.Task

	done chan struct{} // closed when the container has stopped

	mu      sync.Mutex
	exitErr error
	closing bool
}

// StartWorker creates and starts a worker container and waits until its
// agent answers.
func (r *Runtime) StartWorker(ctx context.Context, spec WorkerSpec) (_ *Worker, err error) {
	if err := identifiers.Validate(spec.ID); err != nil {
		return nil, fmt.Errorf("runtime: worker id: %w", err)
	}
	if r.agentPath == "" {
		return nil, errors.New("runtime: Config.AgentPath is not set; workers need the agent binary")
	}
	if fi, err := os.Stat(r.agentPath); err != nil {
		return nil, fmt.Errorf("runtime: agent binary: %w", err)
	} else if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("runtime: agent binary %s is not an executable file", r.agentPath)
	}
	if spec.Run == "" {
		return nil, errors.New("runtime: WorkerSpec.Run is required (the agent's socket lives there)")
	}
	if err := os.MkdirAll(spec.Run, 0o700); err != nil {
		return nil, fmt.Errorf("runtime: run dir: %w", err)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errors.New("runtime: closed")
	}
	if _, dup := r.workers[spec.ID]; dup {
		r.mu.Unlock()
		return nil, fmt.Errorf("runtime: worker %s already exists", spec.ID)
	}
	r.workers[spec.ID] = nil // reserve the id
	r.mu.Unlock()
	defer func() {
		if err != nil {
			r.mu.Lock()
			delete(r.workers, spec.ID)
			r.mu.Unlock()
		}
	}()

	ctx = r.ctx(ctx)
	w := &Worker{r: r, id: spec.ID, done: make(chan struct{})}
	w.sock, w.runDir, err = socketPath(spec.Run)
	if err != nil {
		return nil, err
	}
	os.Remove(filepath.Join(spec.Run, "agent.sock")) // stale, from a previous worker
	defer func() {
		if err != nil && w.runDir != nil {
			w.runDir.Close()
		}
	}()

	img, imgUser, err := r.readyImage(ctx, spec.Image)
	if err != nil {
		return nil, err
	}
	w.defaultUser = imgUser
	w.container, err = r.newContainer(ctx, spec, img, []string{AgentInContainer, AgentCommand, SocketInContainer}, true)
	if err != nil {
		return nil, err
	}
	cleanup := func() {
		cctx, cancel := context.WithTimeout(r.ctx(context.Background()), 30*time.Second)
		defer cancel()
		if err := deleteContainer(cctx, w.container); err != nil {
			r.log.Error("removing failed worker", "id", spec.ID, "err", err)
		}
	}
	logPath := filepath.Join(spec.Run, "agent.log")
	w.task, err = w.container.NewTask(ctx, cio.LogFile(logPath))
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("runtime: worker %s: creating task: %w", spec.ID, err)
	}
	// Wait must be called before Start; its context outlives this call.
	exited, err := w.task.Wait(r.ctx(context.Background()))
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("runtime: worker %s: %w", spec.ID, err)
	}
	go w.monitor(exited)
	if err := w.task.Start(ctx); err != nil {
		w.setClosing()
		cleanup()
		return nil, fmt.Errorf("runtime: worker %s: starting the agent %s (it must be a static binary): %w; see %s", spec.ID, r.agentPath, err, logPath)
	}

	// The agent listens as soon as it runs; poll its socket.
	deadline := time.Now().Add(agentStartTimeout)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		perr := agent.Ping(pctx, w.sock)
		cancel()
		if perr == nil {
			break
		}
		var why error
		select {
		case <-w.done:
			why = fmt.Errorf("the container exited (%v) before its agent answered", w.Err())
		case <-ctx.Done():
			why = ctx.Err()
		default:
			if time.Now().After(deadline) {
				why = fmt.Errorf("its agent did not answer within %v (%v)", agentStartTimeout, perr)
			}
		}
		if why != nil {
			w.setClosing()
			cleanup()
			return nil, fmt.Errorf("runtime: worker %s: %w; agent log %s:\n%s", spec.ID, why, logPath, tail(logPath, 10))
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.mu.Lock()
	closed := r.closed
	if !closed {
		r.workers[spec.ID] = w
	}
	r.mu.Unlock()
	if closed { // Close ran meanwhile and could not see this worker
		w.setClosing()
		cleanup()
		return nil, errors.New("runtime: closed")
	}
	r.log.Debug("worker started", "id", spec.ID, "image", spec.Image)
	return w, nil
}

// socketPath returns how the host dials the agent socket in run. A path
// too long for sun_path goes through an open descriptor of the directory.
func socketPath(run string) (string, *os.File, error) {
	sock := filepath.Join(run, "agent.sock")
	if len(sock) < 100 {
		return sock, nil, nil
	}
	dir, err := os.Open(run)
	if err != nil {
		return "", nil, fmt.Errorf("runtime: run dir: %w", err)
	}
	return "/proc/self/fd/" + strconv.Itoa(int(dir.Fd())) + "/agent.sock", dir, nil
}

// readyImage looks an image up, makes sure it is unpacked for our
// snapshotter and returns it with the user its config names.
func (r *Runtime) readyImage(ctx context.Context, name string) (containerd.Image, string, error) {
	img, err := r.getImage(ctx, name)
	if err != nil {
		return nil, "", err
	}
	ok, err := img.IsUnpacked(ctx, r.snapshotter)
	if err != nil {
		return nil, "", fmt.Errorf("runtime: image %s: %w", img.Name(), err)
	}
	if !ok {
		if err := img.Unpack(ctx, r.snapshotter); err != nil {
			return nil, "", fmt.Errorf("runtime: unpacking %s: %w", img.Name(), err)
		}
	}
	cfg, err := img.Spec(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("runtime: image %s: config: %w", img.Name(), err)
	}
	return img, cfg.Config.User, nil
}

// newContainer creates a container for spec running args, with a writable
// snapshot of img. With withAgent, the agent binary and the run directory
// are mounted and the process runs as root (the agent switches to the
// image's user per command).
func (r *Runtime) newContainer(ctx context.Context, spec WorkerSpec, img containerd.Image, args []string, withAgent bool) (containerd.Container, error) {
	var mounts []specs.Mount
	bind := func(src, dst string, opts ...string) {
		mounts = append(mounts, specs.Mount{Type: "bind", Source: src, Destination: dst, Options: append([]string{"bind"}, opts...)})
	}
	if withAgent {
		bind(r.agentPath, AgentInContainer, "ro", "nosuid", "nodev")
		bind(spec.Run, RunInContainer, "rw", "nosuid", "nodev")
	}
	if spec.PFS != "" {
		if spec.Out != "" {
			// /pfs/out is mounted on top of PFS's "out"; the mount point
			// must exist because /pfs itself is read-only by then.
			if err := os.MkdirAll(filepath.Join(spec.PFS, "out"), 0o755); err != nil {
				return nil, fmt.Errorf("runtime: worker %s: PFS needs an \"out\" directory: %w", spec.ID, err)
			}
		}
		bind(spec.PFS, "/pfs", "ro", "nosuid", "nodev")
	}
	if spec.Out != "" {
		// After /pfs: runc mounts in order.
		bind(spec.Out, "/pfs/out", "rw", "nosuid", "nodev")
	}
	// The container's own cgroup, read-only, so that commands can see
	// their limits.
	mounts = append(mounts, specs.Mount{Type: "cgroup", Source: "cgroup", Destination: "/sys/fs/cgroup",
		Options: []string{"ro", "nosuid", "noexec", "nodev"}})

	hostname := spec.ID
	if len(hostname) > 63 {
		hostname = hostname[:63]
	}
	opts := []oci.SpecOpts{
		oci.WithImageConfig(img),
		oci.WithProcessArgs(args...),
		oci.WithHostname(hostname),
		oci.WithEnv(spec.Env),
		oci.WithMounts(mounts),
		oci.WithNoNewPrivileges,
	}
	if withAgent {
		opts = append(opts, oci.WithUIDGID(0, 0))
	}
	// The default cgroup is /strata/ID, but two runtimes on one host (a
	// daemon and a test) may use the same worker ids. Flat, because runc
	// removes only the leaf.
	opts = append(opts, oci.WithCgroup(path.Join("/", Namespace, r.instance+"-"+spec.ID)))
	if spec.Network {
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostHostsFile, oci.WithHostResolvconf)
	}
	if spec.CPU > 0 {
		const period = 100_000 // µs
		opts = append(opts, oci.WithCPUCFS(int64(spec.CPU*period), period))
	}
	if spec.Memory > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(spec.Memory)))
	}
	label := "once"
	if withAgent {
		label = "worker"
	}
	c, err := r.client.NewContainer(ctx, spec.ID,
		containerd.WithImage(img),
		// runc keeps its state under our directory, for the same reason.
		containerd.WithRuntime(defaults.DefaultRuntime, &runcoptions.Options{Root: filepath.Join(r.dir, "runc")}),
		containerd.WithSnapshotter(r.snapshotter),
		containerd.WithNewSnapshot(snapshotPrefix+spec.ID, img),
		containerd.WithNewSpec(opts...),
		containerd.WithContainerLabels(map[string]string{labelWorker: label}),
	)
	if err != nil {
		// A half-created container may hold the snapshot.
		r.client.SnapshotService(r.snapshotter).Remove(ctx, snapshotPrefix+spec.ID)
		return nil, fmt.Errorf("runtime: creating container %s: %w", spec.ID, err)
	}
	return c, nil
}

// monitor waits for the task to exit. A broken wait (containerd
// restarting) is not an exit: the shim and the container live on, so it
// waits again once containerd is back.
func (w *Worker) monitor(exited <-chan containerd.ExitStatus) {
	ctx := w.r.ctx(context.Background())
	for {
		st := <-exited
		if st.Error() == nil || w.isClosing() {
			w.finish(fmt.Errorf("worker %s: container exited with status %d", w.id, st.ExitCode()))
			return
		}
		var err error
		for attempt := 0; ; attempt++ {
			if w.isClosing() {
				w.finish(fmt.Errorf("worker %s: closed", w.id))
				return
			}
			time.Sleep(500 * time.Millisecond)
			var status containerd.Status
			status, err = w.task.Status(ctx)
			if err == nil && (status.Status == containerd.Running || status.Status == containerd.Paused) {
				if exited, err = w.task.Wait(ctx); err == nil {
					break
				}
			}
			if err == nil || errdefs.IsNotFound(err) || attempt >= 120 {
				w.finish(fmt.Errorf("worker %s: container lost (wait: %v, status: %v, %v)", w.id, st.Error(), status.Status, err))
				return
			}
		}
		w.r.log.Warn("lost the wait on a worker; waiting again", "id", w.id, "err", st.Error())
	}
}

func (w *Worker) finish(err error) {
	w.mu.Lock()
	if w.exitErr == nil {
		w.exitErr = err
	}
	w.mu.Unlock()
	close(w.done)
}

func (w *Worker) setClosing() {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
}

func (w *Worker) isClosing() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closing
}

// ID returns the worker's (and its container's) id.
func (w *Worker) ID() string { return w.id }

// Done is closed when the worker's container has stopped, whatever the
// reason; Err then says why.
func (w *Worker) Done() <-chan struct{} { return w.done }

// Alive reports whether the worker's container is still running.
func (w *Worker) Alive() bool {
	select {
	case <-w.done:
		return false
	default:
		return true
	}
}

// Err is nil while the worker runs and describes its end afterwards.
func (w *Worker) Err() error {
	select {
	case <-w.done:
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.exitErr
	default:
		return nil
	}
}

// Exec runs one command in the worker through its agent; see agent.Run.
// A request without User runs as the image's configured user.
func (w *Worker) Exec(ctx context.Context, req agent.Request, stdout, stderr io.Writer) (agent.Result, error) {
	if err := w.Err(); err != nil {
		return agent.Result{}, err
	}
	if req.User == "" {
		req.User = w.defaultUser
	}
	res, err := agent.Run(ctx, w.sock, req, stdout, stderr)
	if err != nil && ctx.Err() == nil {
		// Tell a dead container apart from a transient problem.
		select {
		case <-w.done:
			return res, fmt.Errorf("%w (%v)", err, w.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return res, err
}

// Close kills the worker's container and deletes it with its snapshot.
func (w *Worker) Close(ctx context.Context) error {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		<-w.done
		return nil
	}
	w.closing = true
	w.mu.Unlock()
	err := deleteContainer(w.r.ctx(ctx), w.container)
	select {
	case <-w.done:
	case <-ctx.Done():
	}
	w.r.mu.Lock()
	if w.r.workers[w.id] == w {
		delete(w.r.workers, w.id)
	}
	w.r.mu.Unlock()
	if w.runDir != nil {
		os.Remove(filepath.Join(w.runDir.Name(), "agent.sock"))
		w.runDir.Close()
	} else {
		os.Remove(w.sock)
	}
	if err != nil {
		return fmt.Errorf("runtime: closing worker %s: %w", w.id, err)
	}
	return nil
}

// RunOnce runs cmd in a new container made from spec (spec.Run is not
// needed; spec.ID is generated when empty) and deletes the container
// afterwards: `ctr run --rm`. It exists to measure what a container start
// per datum would cost against Worker.Exec.
func (r *Runtime) RunOnce(ctx context.Context, spec WorkerSpec, cmd []string, stdout, stderr io.Writer) (agent.Result, error) {
	if len(cmd) == 0 {
		return agent.Result{}, errors.New("runtime: RunOnce: empty command")
	}
	if spec.ID == "" {
		var b [4]byte
		rand.Read(b[:])
		spec.ID = "once-" + strconv.FormatInt(time.Now().UnixNano(), 36) + hex.EncodeToString(b[:])
	}
	ctx = r.ctx(ctx)
	img, _, err := r.readyImage(ctx, spec.Image)
	if err != nil {
		return agent.Result{}, err
	}
	start := time.Now()
	c, err := r.newContainer(ctx, spec, img, cmd, false)
	if err != nil {
		return agent.Result{}, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := deleteContainer(dctx, c); err != nil {
			r.log.Error("removing one-shot container", "id", spec.ID, "err", err)
		}
	}()
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	fifoDir := filepath.Join(r.dir, "fifo")
	task, err := c.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, stdout, stderr), cio.WithFIFODir(fifoDir)))
	if err != nil {
		return agent.Result{}, fmt.Errorf("runtime: %s: creating task: %w", spec.ID, err)
	}
	exited, err := task.Wait(context.WithoutCancel(ctx))
	if err != nil {
		return agent.Result{}, fmt.Errorf("runtime: %s: %w", spec.ID, err)
	}
	if err := task.Start(ctx); err != nil {
		return agent.Result{}, fmt.Errorf("runtime: %s: starting: %w", spec.ID, err)
	}
	res := agent.Result{ExitCode: -1}
	select {
	case st := <-exited:
		if st.Error() != nil {
			return res, fmt.Errorf("runtime: %s: %w", spec.ID, st.Error())
		}
		res.ExitCode = int(st.ExitCode())
	case <-ctx.Done():
		task.Kill(context.WithoutCancel(ctx), syscall.SIGKILL, containerd.WithKillAll)
		<-exited
		return res, ctx.Err()
	}
	res.Duration = time.Since(start)
	// Deleting the task waits for its output to be copied.
	if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		return res, fmt.Errorf("runtime: %s: deleting task: %w", spec.ID, err)
	}
	return res, nil
}
