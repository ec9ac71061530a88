package main

// The -pipeline table: what a pipeline costs per datum next to starting one
// container per datum with ctr, how fast a commit starts a job, and how
// fast one new file in a 10,000-datum input comes through. Only the strata
// CLI and ctr (containerd's CLI, on the daemon's private containerd) run.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/strata-data/strata/api"
)

const (
	pbDir         = "pipeline" // everything of the -pipeline table lives in WORK/pipeline
	pbSmallFiles  = 2000       // datums of the per-datum cost job
	pbBigFiles    = 10000      // datums of the incremental input
	pbFileSize    = 1 << 10
	pbParallelism = 2
	pbCtrSample   = 20 // containers started with ctr run, per run
	pbHostRuns    = 200
	pbLatCommits  = 10 // commits per run for commit → job latency
	pbImage       = "busybox"
	pbImageRef    = "docker.io/library/busybox:latest"
	pbNamespace   = "strata"
	pbCopyCmd     = "cp /pfs/in/* /pfs/out/"

	// Repos (inputs) and pipelines.
	pbRepoSmall = "small"  // 2,000 files; a fresh pipeline cp-rN per run
	pbRepoLat   = "lat"    // grows by one file per commit
	pbPipeLat   = "lat-cp" // reads lat
	pbRepoBig   = "big"    // 10,000 files
	pbPipeBig   = "big-cp" // reads big
)

func init() { workEntries = append(workEntries, pbDir) }

// Columns of the table.
const (
	colPipe = "strata pipeline"
	colCtr  = "`ctr run` per datum"
)

// Metric keys.
const (
	pJobWall    = "job_wall"    // s
	pDatumsPerS = "datums_s"    // datums/s
	pCost       = "cost"        // ms per datum
	pOverhead   = "overhead"    // ms per datum
	pHostCmd    = "host_cmd"    // ms
	pPoolStart  = "pool_start"  // s: job started → first datum started
	pCostSteady = "cost_steady" // ms per datum, first datum started → job finished
	pDatumDur   = "datum_dur"   // ms, median of the job's datums
	pLatCreated = "lat_created" // ms: commit finished → job created
	pLatStarted = "lat_started" // ms: commit finished → job started
	pLatDone    = "lat_done"    // ms: commit finished → job finished
	pIncrWait   = "incr_wait"   // s: put returned → strata wait returned
	pIncrJob    = "incr_job"    // s: commit finished → job finished
	pIncrPut    = "incr_put"    // s: the put itself
	pIncrBefore = "incr_before" // s: job started → the new datum started
	pIncrAfter  = "incr_after"  // s: the new datum done → job finished
	pBigFirst   = "big_first"   // s: first job over 10,000 datums (once)
	pBigPut     = "big_put"     // s: put -r of 10,000 files (once)
)

type pipelineBench struct {
	cfg      *config
	root     string // WORK/pipeline
	st       *strata
	busybox  string // host busybox
	ctrAddr  string
	snap     string  // snapshotter of the daemon's containerd
	hostCmdS float64 // this run's time of the command on the host, s
	res      map[string][]float64
	incrOK   []string // "1/10000" per run, verified
	logSum   string   // errors and warnings of the daemon log
}

func (b *pipelineBench) p(parts ...string) string {
	return filepath.Join(append([]string{b.root}, parts...)...)
}

func (b *pipelineBench) add(metric, col string, v float64) {
	k := metric + "/" + col
	b.res[k] = append(b.res[k], v)
}

// benchPipeline runs the -pipeline table and prints it on stdout.
func benchPipeline(ctx context.Context, cfg *config) (err error) {
	b := &pipelineBench{cfg: cfg, root: cfg.path(pbDir), res: map[string][]float64{}}
	if b.busybox, err = exec.LookPath("busybox"); err != nil {
		return fmt.Errorf("busybox (for the image and the host baseline): %w (apt-get install -y busybox-static)", err)
	}
	if err := os.RemoveAll(b.root); err != nil {
		return err
	}
	if err := os.MkdirAll(b.root, 0o755); err != nil {
		return err
	}
	defer func() {
		if cerr := b.cleanup(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := b.setup(ctx); err != nil {
		return err
	}
	for i := 1; i <= cfg.runs; i++ {
		logf("=== pipeline run %d/%d (load average %s) ===", i, cfg.runs, loadAvg())
		if err := b.runOnce(ctx, i); err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
	}
	logf("strata down")
	if err := b.st.stop(); err != nil {
		return err
	}
	b.logSum = b.scanLog()
	b.report(os.Stdout)
	return nil
}

func (b *pipelineBench) setup(ctx context.Context) error {
	logf("generating %d + %d files of %d bytes in %s", pbSmallFiles, pbBigFiles, pbFileSize, b.root)
	if err := pbWriteFiles(b.p(pbRepoSmall), pbSmallFiles, 11); err != nil {
		return err
	}
	if err := pbWriteFiles(b.p(pbRepoBig), pbBigFiles, 12); err != nil {
		return err
	}
	if err := pbWriteFiles(b.p("host", "in"), 1, 13); err != nil {
		return err
	}
	for _, d := range []string{b.p("host", "out"), b.p("new"), b.p("ctr")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	rootfs, err := b.busyboxRoot()
	if err != nil {
		return err
	}

	b.st = newStrata(b.cfg.strataBin, b.p("strata-data"), b.p("strata-up.log"))
	logf("starting strata daemon with pipelines (log %s)", b.st.logPath)
	if err := b.startDaemon(ctx); err != nil {
		return err
	}
	res, err := b.st.run(ctx, "image", "import", rootfs, "--name", pbImage)
	if err != nil {
		return err
	}
	logf("image import %.2fs (starts the private containerd)", res.dur.Seconds())
	b.findContainerd()
	logf("containerd %s, snapshotter %s", b.ctrAddr, b.snap)

	for _, r := range []string{pbRepoSmall, pbRepoLat, pbRepoBig} {
		if _, err := b.st.run(ctx, "repo", "create", r); err != nil {
			return err
		}
	}
	logf("strata put -r %d files to %s", pbSmallFiles, pbRepoSmall)
	if res, err = b.st.run(ctx, "put", "-r", pbRepoSmall+"@main:/", "-f", b.p(pbRepoSmall)); err != nil {
		return err
	}
	logf("  %.2fs", res.dur.Seconds())
	logf("strata put -r %d files to %s", pbBigFiles, pbRepoBig)
	if res, err = b.st.run(ctx, "put", "-r", pbRepoBig+"@main:/", "-f", b.p(pbRepoBig)); err != nil {
		return err
	}
	logf("  %.2fs", res.dur.Seconds())
	b.add(pBigPut, colPipe, res.dur.Seconds())

	// The latency pipeline, with a first commit so its workers run.
	if err := os.WriteFile(b.p("new", "lat-0"), []byte("first\n"), 0o644); err != nil {
		return err
	}
	if _, err := b.st.run(ctx, "put", pbRepoLat+"@main:/lat-0", "-f", b.p("new", "lat-0")); err != nil {
		return err
	}
	if err := b.createPipeline(ctx, pbPipeLat, pbRepoLat); err != nil {
		return err
	}
	if _, err := b.waitJob(ctx, pbRepoLat+"@main", pbPipeLat); err != nil {
		return err
	}

	// The incremental pipeline and its first, full job.
	logf("pipeline %s: first job over %d datums ...", pbPipeBig, pbBigFiles)
	if err := b.createPipeline(ctx, pbPipeBig, pbRepoBig); err != nil {
		return err
	}
	j, err := b.waitJob(ctx, pbRepoBig+"@main", pbPipeBig)
	if err != nil {
		return err
	}
	if j.Processed != pbBigFiles || j.Total != pbBigFiles {
		return fmt.Errorf("first job of %s: %d of %d datums processed, want %d", pbPipeBig, j.Processed, j.Total, pbBigFiles)
	}
	wall := j.Finished.Sub(j.Created).Seconds()
	b.add(pBigFirst, colPipe, wall)
	logf("  %.1fs (%.0f datums/s)", wall, pbBigFiles/wall)
	return nil
}

// busyboxRoot makes a root directory with the host's static busybox and
// the applets the command needs (like tests/pipeline_test.go).
func (b *pipelineBench) busyboxRoot() (string, error) {
	root := b.p("rootfs")
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev", "pfs"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return "", err
		}
	}
	data, err := os.ReadFile(b.busybox)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		return "", err
	}
	for _, a := range []string{"sh", "cp", "cat", "ls"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0:root:/:/bin/sh\n"), 0o644); err != nil {
		return "", err
	}
	return root, os.WriteFile(filepath.Join(root, "etc", "group"), []byte("root:x:0:\n"), 0o644)
}

// startDaemon is strata.start with pipelines on and without the /pfs mount
// (pipelines do not need it).
func (b *pipelineBench) startDaemon(ctx context.Context) error {
	s := b.st
	lf, err := os.Create(s.logPath)
	if err != nil {
		return err
	}
	s.logFile = lf
	args := []string{"up", "--data", s.dataDir, "--no-mount"}
	cmd := exec.Command(s.bin, args...) // lifetime managed by stop, not ctx
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start %s: %w", shellLine(s.bin, args), err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-s.done:
			return fmt.Errorf("%s exited during startup: %v\n--- daemon log (%s) ---\n%s",
				shellLine(s.bin, args), s.waitErr, s.logPath, fileTail(s.logPath, 8<<10))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := s.run(sctx, "status")
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("strata daemon not ready after 60s; last status error:\n%v\n--- daemon log (%s) ---\n%s",
				err, s.logPath, fileTail(s.logPath, 8<<10))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// findContainerd reads the private containerd's socket and snapshotter
// from the daemon log ("containerd ready address=... snapshotter=...").
func (b *pipelineBench) findContainerd() {
	b.ctrAddr = filepath.Join(b.st.dataDir, "containerd", "containerd.sock")
	b.snap = "overlayfs"
	data, _ := os.ReadFile(b.st.logPath)
	for _, l := range strings.Split(string(data), "\n") {
		if !strings.Contains(l, `msg="containerd ready"`) {
			continue
		}
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "address="); ok {
				b.ctrAddr = v
			}
			if v, ok := strings.CutPrefix(f, "snapshotter="); ok {
				b.snap = v
			}
		}
	}
}

func (b *pipelineBench) createPipeline(ctx context.Context, name, repo string) error {
	spec := fmt.Sprintf(`name: %s
transform:
  image: %s
  cmd: ["/bin/sh", "-c", %q]
input:
  pfs: {repo: %s, glob: "/*", name: in}
parallelism: %d
`, name, pbImage, pbCopyCmd, repo, pbParallelism)
	path := b.p("spec-" + name + ".yaml")
	if err := os.WriteFile(path, []byte(spec), 0o644); err != nil {
		return err
	}
	_, err := b.st.run(ctx, "pipeline", "create", "-f", path)
	return err
}

// waitJob runs `strata wait REF -o json` and returns the job of pipeline,
// which must have succeeded.
func (b *pipelineBench) waitJob(ctx context.Context, ref, pipeline string) (*api.Job, error) {
	res, err := b.st.run(ctx, "wait", ref, "-o", "json")
	if err != nil {
		return nil, err
	}
	return pickJob(res.stdout, ref, pipeline)
}

func pickJob(out, ref, pipeline string) (*api.Job, error) {
	var jobs []*api.Job
	if err := json.Unmarshal([]byte(out), &jobs); err != nil {
		return nil, fmt.Errorf("strata wait %s -o json: %v\n%s", ref, err, out)
	}
	for _, j := range jobs {
		if j.Pipeline != pipeline {
			continue
		}
		if j.State != api.JobSuccess || j.Finished == nil || j.Started == nil {
			return nil, fmt.Errorf("job %s of %s: state %s, error %q", j.ID, pipeline, j.State, j.Error)
		}
		return j, nil
	}
	return nil, fmt.Errorf("strata wait %s: no job of pipeline %s in\n%s", ref, pipeline, out)
}

func (b *pipelineBench) datums(ctx context.Context, job string) ([]*api.Datum, error) {
	// Megabytes of JSON: runCmd keeps only the tail of stdout.
	args := []string{"datum", "list", "--job", job, "-o", "json"}
	cmd := exec.CommandContext(ctx, b.st.bin, args...)
	cmd.Env = append(os.Environ(), b.st.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("command failed: %s\n  error: %v\n--- stderr ---\n%s", shellLine(b.st.bin, args), err, stderr.String())
	}
	var ds []*api.Datum
	if err := json.Unmarshal(out, &ds); err != nil {
		return nil, fmt.Errorf("strata datum list -o json: %v", err)
	}
	return ds, nil
}

// putFile puts one local file and returns the commit it made.
func (b *pipelineBench) putFile(ctx context.Context, dst, src string) (id string, finished time.Time, res cmdResult, err error) {
	res, err = b.st.run(ctx, "put", dst, "-f", src, "-o", "json")
	if err != nil {
		return "", time.Time{}, res, err
	}
	var out struct {
		Commit struct {
			ID       string     `json:"id"`
			State    string     `json:"state"`
			Finished *time.Time `json:"finished"`
		} `json:"commit"`
		OneOff bool `json:"one_off"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
		return "", time.Time{}, res, fmt.Errorf("strata put -o json: %v\n%s", err, res.stdout)
	}
	if out.Commit.Finished == nil || !out.OneOff {
		return "", time.Time{}, res, fmt.Errorf("strata put %s made no finished commit of its own:\n%s", dst, res.stdout)
	}
	return out.Commit.ID, *out.Commit.Finished, res, nil
}

func (b *pipelineBench) runOnce(ctx context.Context, run int) error {
	for _, f := range []func(context.Context, int) error{b.runCost, b.runCtr, b.runLatency, b.runIncremental} {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := f(ctx, run); err != nil {
			return err
		}
	}
	return nil
}

// 1. The pipeline over 2,000 datums, next to the command on the host.
func (b *pipelineBench) runCost(ctx context.Context, run int) error {
	host, err := b.hostCmd(ctx)
	if err != nil {
		return err
	}
	b.hostCmdS = host
	b.add(pHostCmd, colPipe, host*1e3)
	b.add(pHostCmd, colCtr, host*1e3)
	logf("host: `busybox sh -c %q` %.2f ms (median of %d runs)", pbCopyCmd, host*1e3, pbHostRuns)

	name := fmt.Sprintf("cp-r%d", run)
	if err := b.createPipeline(ctx, name, pbRepoSmall); err != nil {
		return err
	}
	j, err := b.waitJob(ctx, pbRepoSmall+"@main", name)
	if err != nil {
		return err
	}
	if j.Processed != pbSmallFiles || j.Skipped != 0 || j.Total != pbSmallFiles {
		return fmt.Errorf("job %s: %d processed, %d skipped of %d; want all %d processed", j.ID, j.Processed, j.Skipped, j.Total, pbSmallFiles)
	}
	wall := j.Finished.Sub(j.Created).Seconds()
	cost := wall * pbParallelism / pbSmallFiles
	b.add(pJobWall, colPipe, wall)
	b.add(pDatumsPerS, colPipe, pbSmallFiles/wall)
	b.add(pCost, colPipe, cost*1e3)
	b.add(pOverhead, colPipe, (cost-host)*1e3)

	ds, err := b.datums(ctx, j.ID)
	if err != nil {
		return err
	}
	var durs []float64
	var first time.Time
	for _, d := range ds {
		if d.State != api.DatumSuccess || d.Started == nil {
			return fmt.Errorf("job %s: datum %s is %s", j.ID, d.ID, d.State)
		}
		durs = append(durs, d.Duration)
		if first.IsZero() || d.Started.Before(first) {
			first = *d.Started
		}
	}
	if len(ds) != pbSmallFiles {
		return fmt.Errorf("job %s: %d datums listed, want %d", j.ID, len(ds), pbSmallFiles)
	}
	dmed, _, _, _ := mbMedian(durs)
	pool := first.Sub(*j.Started).Seconds()
	b.add(pPoolStart, colPipe, pool)
	b.add(pCostSteady, colPipe, j.Finished.Sub(first).Seconds()*pbParallelism/pbSmallFiles*1e3)
	b.add(pDatumDur, colPipe, dmed*1e3)
	logf("pipeline %s: %d datums in %.2fs (created → finished; %.2fs to start the workers) = %.0f datums/s, %.1f ms per datum × %d workers, datum median %.1f ms",
		name, pbSmallFiles, wall, pool, pbSmallFiles/wall, cost*1e3, pbParallelism, dmed*1e3)

	// The output is the input (untimed).
	name0 := filepath.Base(ds[len(ds)/2].Inputs[0].Path)
	res, err := b.st.run(ctx, "cat", name+"@main:/"+name0)
	if err != nil {
		return err
	}
	want, err := os.ReadFile(b.p(pbRepoSmall, name0))
	if err != nil {
		return err
	}
	if res.stdout != strings.TrimRight(string(want), "\n") && res.stdout != string(want) {
		return fmt.Errorf("%s@main:/%s differs from the input file", name, name0)
	}
	// Its workers would idle until the end.
	_, err = b.st.run(ctx, "pipeline", "delete", name)
	return err
}

// hostCmd returns the median time of the pipeline's command run directly
// on the host over one 1 KiB file (the median: on a busy machine a few runs
// wait for a CPU much longer than the rest).
func (b *pipelineBench) hostCmd(ctx context.Context) (float64, error) {
	script := fmt.Sprintf("cp %s/* %s/", b.p("host", "in"), b.p("host", "out"))
	var times []float64
	for i := 0; i < pbHostRuns; i++ {
		start := time.Now()
		if out, err := exec.CommandContext(ctx, b.busybox, "sh", "-c", script).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("busybox sh -c %q: %v\n%s", script, err, out)
		}
		times = append(times, time.Since(start).Seconds())
	}
	med, _, _, _ := mbMedian(times)
	return med, nil
}

// 2. The same command with one container per datum: ctr run --rm, one
// after the other, for a sample of the datums.
func (b *pipelineBench) runCtr(ctx context.Context, run int) error {
	ents, err := os.ReadDir(b.p(pbRepoSmall))
	if err != nil {
		return err
	}
	var times []float64
	for i := 0; i < pbCtrSample; i++ {
		name := ents[(i*len(ents)/pbCtrSample+run)%len(ents)].Name()
		src := b.p(pbRepoSmall, name)
		out := b.p("ctr", fmt.Sprintf("r%d-%02d", run, i))
		if err := os.MkdirAll(out, 0o755); err != nil {
			return err
		}
		id := fmt.Sprintf("strata-bench-r%d-%02d", run, i)
		res, err := runCmd(ctx, "", nil, "ctr", "-a", b.ctrAddr, "-n", pbNamespace, "run", "--rm", "--snapshotter", b.snap,
			"--mount", "type=bind,src="+src+",dst=/pfs/in/"+name+",options=rbind:ro",
			"--mount", "type=bind,src="+out+",dst=/pfs/out,options=rbind:rw",
			pbImageRef, id, "/bin/sh", "-c", pbCopyCmd)
		if err != nil {
			// Leave nothing behind in the daemon's containerd.
			runCmd(context.Background(), "", nil, "ctr", "-a", b.ctrAddr, "-n", pbNamespace, "task", "kill", "-s", "KILL", id)
			runCmd(context.Background(), "", nil, "ctr", "-a", b.ctrAddr, "-n", pbNamespace, "container", "rm", id)
			return err
		}
		times = append(times, res.dur.Seconds())
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			return fmt.Errorf("ctr run %s: %w", id, err)
		}
		want, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("ctr run %s: %s differs from its input", id, filepath.Join(out, name))
		}
	}
	var sum float64
	for _, t := range times {
		sum += t
	}
	mean := sum / float64(len(times))
	wall := mean * pbSmallFiles / pbParallelism
	b.add(pCost, colCtr, mean*1e3)
	b.add(pOverhead, colCtr, (mean-b.hostCmdS)*1e3)
	b.add(pJobWall, colCtr, wall)
	b.add(pDatumsPerS, colCtr, pbSmallFiles/wall)
	med, lo, hi, _ := mbMedian(times)
	logf("ctr run: %d containers one after the other, %.0f ms each on average (median %.0f, %.0f–%.0f); %d datums at parallelism %d ≈ %.0fs",
		len(times), mean*1e3, med*1e3, lo*1e3, hi*1e3, pbSmallFiles, pbParallelism, wall)
	return nil
}

// 3. Commit → job latency: one file per commit, each job waited for.
func (b *pipelineBench) runLatency(ctx context.Context, run int) error {
	var created, started, done []float64
	for i := 1; i <= pbLatCommits; i++ {
		name := fmt.Sprintf("lat-r%d-%02d", run, i)
		src := b.p("new", name)
		if err := os.WriteFile(src, []byte(name+"\n"), 0o644); err != nil {
			return err
		}
		id, fin, _, err := b.putFile(ctx, pbRepoLat+"@main:/"+name, src)
		if err != nil {
			return err
		}
		j, err := b.waitJob(ctx, pbRepoLat+"@"+id, pbPipeLat)
		if err != nil {
			return err
		}
		if len(j.Inputs) != 1 || j.Inputs[0].Commit != id {
			return fmt.Errorf("job %s read %+v, not commit %s", j.ID, j.Inputs, id)
		}
		if j.Processed != 1 {
			return fmt.Errorf("job %s: %d datums processed, want 1", j.ID, j.Processed)
		}
		created = append(created, j.Created.Sub(fin).Seconds()*1e3)
		started = append(started, j.Started.Sub(fin).Seconds()*1e3)
		done = append(done, j.Finished.Sub(fin).Seconds()*1e3)
	}
	c, _, _, _ := mbMedian(created)
	s, slo, shi, _ := mbMedian(started)
	d, _, _, _ := mbMedian(done)
	b.add(pLatCreated, colPipe, c)
	b.add(pLatStarted, colPipe, s)
	b.add(pLatDone, colPipe, d)
	logf("commit → job over %d commits (medians): created %.1f ms, started %.1f ms (%.1f–%.1f), finished %.1f ms",
		pbLatCommits, c, s, slo, shi, d)
	return nil
}

// 4. One new file in the 10,000-datum input; then it is removed again
// (untimed) so every run adds one file to the same 10,000.
func (b *pipelineBench) runIncremental(ctx context.Context, run int) error {
	name := fmt.Sprintf("new-r%d", run)
	src := b.p("new", name)
	if err := pbWriteFiles(b.p("new", "tmp"), 1, uint64(100+run)); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(b.p("new", "tmp"), "f00000"), src); err != nil {
		return err
	}
	id, fin, putRes, err := b.putFile(ctx, pbRepoBig+"@main:/"+name, src)
	if err != nil {
		return err
	}
	ref := pbRepoBig + "@" + id
	res, err := b.st.run(ctx, "wait", ref, "-o", "json")
	if err != nil {
		return err
	}
	j, err := pickJob(res.stdout, ref, pbPipeBig)
	if err != nil {
		return err
	}
	jobDur := j.Finished.Sub(fin).Seconds()
	b.add(pIncrWait, colPipe, res.dur.Seconds())
	b.add(pIncrJob, colPipe, jobDur)
	b.add(pIncrPut, colPipe, putRes.dur.Seconds())
	logf("one new file in %d: put %.3fs, then strata wait %.3fs (commit finished → job finished %.3fs; job created → finished %.3fs), %d processed, %d skipped",
		pbBigFiles, putRes.dur.Seconds(), res.dur.Seconds(), jobDur, j.Finished.Sub(j.Created).Seconds(), j.Processed, j.Skipped)
	if j.Processed != 1 || j.Skipped != pbBigFiles || j.Total != pbBigFiles+1 || j.Failed != 0 {
		return fmt.Errorf("job %s after adding one file: %d processed, %d skipped, %d failed of %d; want 1 processed and %d skipped",
			j.ID, j.Processed, j.Skipped, j.Failed, j.Total, pbBigFiles)
	}
	// The datum records agree: the new file's datum ran, the rest were reused.
	ds, err := b.datums(ctx, j.ID)
	if err != nil {
		return err
	}
	count := map[string]int{}
	var ran *api.Datum
	for _, d := range ds {
		count[d.State]++
		if d.State == api.DatumSuccess {
			if len(d.Inputs) != 1 || d.Inputs[0].Path != "/"+name || d.Started == nil {
				return fmt.Errorf("job %s ran datum %s over %+v, not /%s", j.ID, d.ID, d.Inputs, name)
			}
			ran = d
		}
	}
	if count[api.DatumSuccess] != 1 || count[api.DatumSkipped] != pbBigFiles || len(ds) != pbBigFiles+1 {
		return fmt.Errorf("job %s: datum states %v, want 1 success and %d skipped", j.ID, count, pbBigFiles)
	}
	before := ran.Started.Sub(*j.Started).Seconds()
	after := j.Finished.Sub(*ran.Started).Seconds() - ran.Duration
	b.add(pIncrBefore, colPipe, before)
	b.add(pIncrAfter, colPipe, after)
	logf("  job started → its datum started %.3fs, datum %.3fs, datum done → job finished %.3fs", before, ran.Duration, after)
	b.incrOK = append(b.incrOK, fmt.Sprintf("%d/%d", count[api.DatumSuccess], count[api.DatumSkipped]))

	// Back to 10,000 files (untimed).
	rm, err := b.st.run(ctx, "rm", pbRepoBig+"@main:/"+name)
	if err != nil {
		return err
	}
	j2, err := b.waitJob(ctx, pbRepoBig+"@main", pbPipeBig)
	if err != nil {
		return err
	}
	logf("removed it again: rm %.3fs, job created → finished %.3fs, %d processed, %d skipped",
		rm.dur.Seconds(), j2.Finished.Sub(j2.Created).Seconds(), j2.Processed, j2.Skipped)
	if j2.Processed != 0 || j2.Skipped != pbBigFiles {
		return fmt.Errorf("job %s after removing the file: %d processed, %d skipped; want 0 and %d", j2.ID, j2.Processed, j2.Skipped, pbBigFiles)
	}
	return nil
}

func (b *pipelineBench) cleanup() error {
	var errs []error
	if b.st != nil && b.st.cmd != nil {
		logf("strata down")
		if err := b.st.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if ms := mountsUnder(b.root); len(ms) > 0 {
		// Never remove a tree with something still mounted in it.
		b.cfg.keep = true
		errs = append(errs, fmt.Errorf("still mounted after the daemon stopped: %s; keeping the work dir", strings.Join(ms, ", ")))
	}
	return errors.Join(errs...)
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && (f[1] == dir || strings.HasPrefix(f[1], dir+"/")) {
			out = append(out, f[1])
		}
	}
	return out
}

// scanLog logs the daemon's errors and warnings and sums them up.
func (b *pipelineBench) scanLog() string {
	data, err := os.ReadFile(b.st.logPath)
	if err != nil {
		return "daemon log: " + err.Error()
	}
	var errs, warns []string
	for _, l := range strings.Split(string(data), "\n") {
		switch {
		case strings.Contains(l, "level=ERROR"), strings.Contains(l, "panic"):
			errs = append(errs, l)
		case strings.Contains(l, "level=WARN"):
			warns = append(warns, l)
		}
	}
	for i, l := range append(errs, warns...) {
		if i == 20 {
			logf("  ... (%d more)", len(errs)+len(warns)-i)
			break
		}
		logf("daemon log: %s", l)
	}
	return fmt.Sprintf("daemon log: %d error and %d warning lines", len(errs), len(warns))
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// pbWriteFiles writes n random files of pbFileSize bytes, f00000 ...,
// into dir (created).
func pbWriteFiles(dir string, n int, seed uint64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	r := rand.NewChaCha8(s)
	buf := make([]byte, pbFileSize)
	for i := 0; i < n; i++ {
		r.Read(buf)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), buf, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// report

func (b *pipelineBench) report(w io.Writer) {
	kernel := ""
	if k, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(k))
	}
	fmt.Fprintf(w, "strata pipelines — %d run(s); medians (min–max) where runs > 1; files of %d bytes; parallelism %d; snapshotter %s; %d CPUs%s.\n\n",
		b.cfg.runs, pbFileSize, pbParallelism, b.snap, runtime.NumCPU(), kernel)
	fmt.Fprintf(w, "| what | %s | %s | goal | met |\n", colPipe, colCtr)
	fmt.Fprintln(w, "| --- | ---: | ---: | --- | --- |")

	cell := func(key, col string, prec int) string {
		v := b.res[key+"/"+col]
		med, lo, hi, ok := mbMedian(v)
		switch {
		case !ok:
			return "—"
		case len(v) > 1:
			return fmt.Sprintf("%.*f (%.*f–%.*f)", prec, med, prec, lo, prec, hi)
		}
		return fmt.Sprintf("%.*f", prec, med)
	}
	type row struct {
		label, key string
		prec       int
		ctr        bool // has a ctr column
		goal       string
		met        func(v float64) bool
	}
	n := fmtInt(pbSmallFiles)
	rowsP := []row{
		{fmt.Sprintf("job wall time, %s datums (s)", n), pJobWall, 2, true, "", nil},
		{"datums/s", pDatumsPerS, 1, true, "", nil},
		{fmt.Sprintf("per-datum cost = wall × %d / %s (ms)", pbParallelism, n), pCost, 1, true, "", nil},
		{"the command itself on the host (ms)", pHostCmd, 2, true, "", nil},
		{"per-datum overhead = cost − command (ms)", pOverhead, 1, true, "≤ 30 ms", func(v float64) bool { return v <= 30 }},
		{"worker start: job started → first datum (s)", pPoolStart, 2, false, "", nil},
		{fmt.Sprintf("per-datum cost, workers up = (finished − first datum) × %d / %s (ms)", pbParallelism, n), pCostSteady, 1, false, "", nil},
		{"datum duration as recorded, median of the job (ms)", pDatumDur, 1, false, "", nil},
		{"commit finished → job created (ms)", pLatCreated, 1, false, "", nil},
		{"commit finished → job started (ms)", pLatStarted, 1, false, "≤ 100 ms", func(v float64) bool { return v <= 100 }},
		{"commit finished → job finished, 1 new datum (ms)", pLatDone, 1, false, "", nil},
		{fmt.Sprintf("one new file in %s datums: put returned → `strata wait` returned (s)", fmtInt(pbBigFiles)), pIncrWait, 3, false, "≤ 2 s", func(v float64) bool { return v <= 2 }},
		{"… the same, commit finished → job finished (s)", pIncrJob, 3, false, "", nil},
		{"… job started → its one datum started (list and match datums) (s)", pIncrBefore, 3, false, "", nil},
		{"… that datum done → job finished (merge outputs, commit) (s)", pIncrAfter, 3, false, "", nil},
		{"… the `put` of that file (s)", pIncrPut, 3, false, "", nil},
	}
	for _, r := range rowsP {
		ctr := "—"
		if r.ctr {
			ctr = cell(r.key, colCtr, r.prec)
		}
		met := ""
		if r.met != nil {
			if v, _, _, ok := mbMedian(b.res[r.key+"/"+colPipe]); ok {
				met = yesNo(r.met(v))
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", r.label, cell(r.key, colPipe, r.prec), ctr, r.goal, met)
	}
	okAll := len(b.incrOK) == b.cfg.runs
	for _, s := range b.incrOK {
		okAll = okAll && s == fmt.Sprintf("1/%d", pbBigFiles)
	}
	fmt.Fprintf(w, "| … datums processed / skipped (every run) | %s | — | 1 / %s | %s |\n",
		strings.Join(b.incrOK, ", "), fmtInt(pbBigFiles), yesNo(okAll))
	fmt.Fprintf(w, "| first job over %s datums, once (s) | %s | — | | |\n", fmtInt(pbBigFiles), cell(pBigFirst, colPipe, 1))
	fmt.Fprintf(w, "| `put -r` of %s files, once (s) | %s | — | | |\n", fmtInt(pbBigFiles), cell(pBigPut, colPipe, 2))

	fmt.Fprintf(w, "\nThe command is `sh -c %q`, glob `/*` (one 1 KiB file per datum). Pipeline: a new pipeline per run over the same %s-file commit, job wall time = created → finished from the job record (including starting its %d worker containers); "+
		"the command on the host = `busybox sh -c 'cp IN/* OUT/'` on one file, median of %d runs (including starting it, as in the container). "+
		"`ctr run`: `ctr run --rm` with the datum's file bind-mounted read-only at /pfs/in and a directory at /pfs/out, on the daemon's containerd and image, %d datums per run one after the other (parallelism 1); its cost is the mean time of one `ctr run`, and its wall time and datums/s are extrapolated to %s datums at parallelism %d (cost × %s / %d), which assumes perfect scaling. "+
		"Latency: %d one-file commits per run (each run's median), each waited for before the next; times from the commit and job records. "+
		"One new file: `strata put` of one file into a %s-file input whose previous job has finished, then `strata wait` on its commit (timed from the put returning); the file is removed again afterwards. %s.\n",
		pbCopyCmd, n, pbParallelism, pbHostRuns, pbCtrSample, n, pbParallelism, n, pbParallelism, pbLatCommits, fmtInt(pbBigFiles), b.logSum)
}

// fmtInt writes n with thousands separators.
func fmtInt(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
