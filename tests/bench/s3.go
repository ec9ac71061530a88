package main

// The S3 table: the same data set ingested ('strata put -r') and restored
// ('strata get -r') with large chunks in a local VersityGW next to the
// directory backend, in the same run, and a cold sequential read of the
// big file through the daemon's /pfs with each (S3 cache emptied, page
// cache dropped).

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"
)

const s3Dir = "s3-bench"

func init() { workEntries = append(workEntries, s3Dir) }

const (
	s3Access = "strata-bench-access"
	s3Secret = "strata-bench-secret-key"
	s3Bucket = "strata-bench"
)

// The backends side by side.
const (
	colDir = "dir"
	colS3  = "s3"
)

const (
	s3Put     = "ingest MB/s (put -r)"
	s3Get     = "restore MB/s (get -r, S3 cache empty)"
	s3ColdPfs = "cold /pfs sequential read MB/s (" + bigName + ")"
)

type s3Bench struct {
	cfg  *config
	ds   *dataset
	drop *cacheDropper

	gw       *exec.Cmd
	gwRoot   string
	endpoint string

	vals map[string]map[string][]float64 // metric → column → one value per run
}

func (b *s3Bench) p(parts ...string) string {
	return filepath.Join(append([]string{b.cfg.path(s3Dir)}, parts...)...)
}

func (b *s3Bench) add(metric, col string, v float64) {
	if b.vals[metric] == nil {
		b.vals[metric] = map[string][]float64{}
	}
	b.vals[metric][col] = append(b.vals[metric][col], v)
}

func benchS3(ctx context.Context, cfg *config) (err error) {
	if _, err := exec.LookPath("versitygw"); err != nil {
		return fmt.Errorf("-s3 needs versitygw (install it with .ci/versitygw.sh): %w", err)
	}
	b := &s3Bench{cfg: cfg, drop: &cacheDropper{enabled: os.Geteuid() == 0}, vals: map[string]map[string][]float64{}}
	if !b.drop.enabled {
		logf("warning: not root, page caches will not be dropped; cold reads will be warm")
	}
	b.ds = planDataset(cfg.path("data"), cfg.scale)
	logf("generating data set: %d files, %s ...", len(b.ds.files), fmtBytes(float64(b.ds.total)))
	if err := b.ds.generate(); err != nil {
		return err
	}
	if err := os.MkdirAll(b.p(), 0o755); err != nil {
		return err
	}
	if err := b.startGateway(); err != nil {
		return err
	}
	defer b.stopGateway()
	for run := 1; run <= cfg.runs; run++ {
		for _, col := range []string{colDir, colS3} {
			logf("=== run %d/%d: %s ===", run, cfg.runs, col)
			if err := b.runOnce(ctx, col); err != nil {
				return fmt.Errorf("run %d, %s: %w", run, col, err)
			}
		}
	}
	b.report(os.Stdout)
	return nil
}

// startGateway runs versitygw on a free port over a posix directory.
func (b *s3Bench) startGateway() error {
	b.gwRoot = b.p("gw")
	if err := os.MkdirAll(filepath.Join(b.gwRoot, s3Bucket), 0o755); err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	b.endpoint = l.Addr().String()
	l.Close()
	log, err := os.Create(b.p("versitygw.log"))
	if err != nil {
		return err
	}
	b.gw = exec.Command("versitygw", "--quiet", "--access", s3Access, "--secret", s3Secret, "--port", b.endpoint, "posix", b.gwRoot)
	b.gw.Stdout, b.gw.Stderr = log, log
	if err := b.gw.Start(); err != nil {
		return err
	}
	for deadline := time.Now().Add(15 * time.Second); ; {
		c, err := net.DialTimeout("tcp", b.endpoint, time.Second)
		if err == nil {
			c.Close()
			logf("versitygw on %s over %s", b.endpoint, b.gwRoot)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("versitygw did not listen on %s: %v\n%s", b.endpoint, err, fileTail(log.Name(), 4<<10))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *s3Bench) stopGateway() {
	if b.gw != nil {
		b.gw.Process.Kill()
		b.gw.Wait()
	}
}

// runOnce ingests, restores and reads the big file through /pfs with the
// backend col, starting from an empty data dir (and bucket).
func (b *s3Bench) runOnce(ctx context.Context, col string) (err error) {
	data, out, mnt := b.p("data-"+col), b.p("out"), b.p("pfs")
	cliCache := b.p("cli-cache") // put -r's unchanged-file cache: empty, so every file is read
	for _, p := range []string{data, out, cliCache, filepath.Join(b.gwRoot, s3Bucket)} {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(b.gwRoot, s3Bucket), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	st := newStrata(b.cfg.strataBin, data, b.p("strata-up-"+col+".log"))
	st.env = append(st.env, "XDG_CACHE_HOME="+cliCache)
	if col == colS3 {
		st.upArgs = []string{"--store", "s3://" + s3Bucket + "/bench", "--s3-endpoint", "http://" + b.endpoint}
		st.env = append(st.env, "AWS_ACCESS_KEY_ID="+s3Access, "AWS_SECRET_ACCESS_KEY="+s3Secret)
	}
	defer func() {
		if serr := st.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	// restart stops the daemon, empties the S3 chunk cache and starts it
	// again, so that what follows reads from the backend.
	restart := func() error {
		if err := st.stop(); err != nil {
			return err
		}
		if err := os.RemoveAll(filepath.Join(data, "cache")); err != nil {
			return err
		}
		return st.startMounted(ctx, mnt)
	}
	total := float64(b.ds.total)

	if err := st.startMounted(ctx, mnt); err != nil {
		return err
	}
	if _, err := st.run(ctx, "repo", "create", "bench"); err != nil {
		return err
	}
	b.drop.drop()
	res, err := st.run(ctx, "put", "-r", "bench@main:/", "-f", b.ds.root)
	if err != nil {
		return err
	}
	b.add(s3Put, col, total/1e6/res.dur.Seconds())
	logf("%s: put -r %.2fs = %.1f MB/s", col, res.dur.Seconds(), total/1e6/res.dur.Seconds())

	if err := restart(); err != nil {
		return err
	}
	b.drop.drop()
	res, err = st.run(ctx, "get", "-r", "bench@main:/", "-o", out)
	if err != nil {
		return err
	}
	b.add(s3Get, col, total/1e6/res.dur.Seconds())
	logf("%s: get -r %.2fs = %.1f MB/s; verifying ...", col, res.dur.Seconds(), total/1e6/res.dur.Seconds())
	root, err := findRoot(out)
	if err != nil {
		return err
	}
	if err := verifyTree(root, b.ds.manifest); err != nil {
		return fmt.Errorf("%s get -r: RESTORED DATA DOES NOT MATCH THE DATA SET: %w", col, err)
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}

	if err := restart(); err != nil {
		return err
	}
	b.drop.drop()
	big := filepath.Join(mnt, "bench@main", bigName)
	fi, err := os.Stat(big)
	if err != nil {
		return err
	}
	d, err := readFile(big)
	if err != nil {
		return err
	}
	b.add(s3ColdPfs, col, float64(fi.Size())/1e6/d.Seconds())
	logf("%s: cold read of %s through /pfs %.2fs = %.1f MB/s", col, fmtBytes(float64(fi.Size())), d.Seconds(), float64(fi.Size())/1e6/d.Seconds())
	return nil
}

func (b *s3Bench) report(w io.Writer) {
	fmt.Fprintf(w, "\n## strata: chunks on S3 (VersityGW on 127.0.0.1) vs the directory backend\n\n")
	fmt.Fprintf(w, "Data set: %d files, %s; %d runs, median (min–max); %d CPUs, load average %s.\n\n",
		len(b.ds.files), fmtBytes(float64(b.ds.total)), b.cfg.runs, runtime.NumCPU(), loadAvg())
	fmt.Fprintln(w, "| metric | dir | S3 | S3 / dir | goal | met |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- |")
	for _, m := range []struct {
		name string
		goal float64 // minimum S3/dir; 0: none
	}{{s3Put, 0.5}, {s3Get, 0}, {s3ColdPfs, 0.5}} {
		cell := func(col string) (string, float64, bool) {
			med, lo, hi, ok := mbMedian(b.vals[m.name][col])
			if !ok {
				return "—", 0, false
			}
			return fmt.Sprintf("%.0f (%.0f–%.0f)", med, lo, hi), med, true
		}
		dc, dm, dok := cell(colDir)
		sc, sm, sok := cell(colS3)
		ratio, goal, met := "—", "", ""
		if dok && sok && dm > 0 {
			ratio = strconv.FormatFloat(100*sm/dm, 'f', 0, 64) + " %"
			if m.goal > 0 {
				goal = fmt.Sprintf("≥ %.0f %%", 100*m.goal)
				met = yesNo(sm/dm >= m.goal)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", m.name, dc, sc, ratio, goal, met)
	}
	fmt.Fprintln(w, "\nS3 is a VersityGW (posix backend) on the same disk and CPUs as strata. Restore and the /pfs read start with the daemon's S3 chunk cache (DATA/cache) emptied and the page cache dropped.")
}
