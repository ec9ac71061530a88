// Command bench compares strata's ingest/re-ingest/restore performance with
// restic on a deterministic ~2.4 GB data set and prints a Markdown table of
// the results on stdout (progress goes to stderr).
//
//	go run ./tests/bench [-runs 3] [-size-scale 1.0] [-strata bin/strata] [-work DIR] [-keep]
//	go run ./tests/bench -size-scale 0.01 -gen-only     # only generate the data set
//	go run ./tests/bench -tools restic -size-scale 0.05 # one tool only
//	go run ./tests/bench -mount [-runs 3] [-size-scale 0.1] # only the FUSE mount table
//	go run ./tests/bench -pipeline [-runs 3]                # only the pipeline table (root, containerd, ctr)
//	go run ./tests/bench -s3 [-runs 3] [-size-scale 1.0]    # only the S3 table (versitygw; root for /pfs and cold caches)
//
// Exit status: 0 when the benchmark ran (goals met or not), 1 on any failure
// (including a restored tree that differs from the data set), 2 on usage
// errors or a missing restic/strata binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const markerName = ".strata-bench" // marks a work dir as ours

type config struct {
	work      string
	ownWork   bool // work dir was created by us (temp dir): remove it whole
	strataBin string
	resticBin string
	runs      int
	scale     float64
	keep      bool
	genOnly   bool
	useStrata bool
	useRestic bool
	mount     bool // only the mount table
	pipeline  bool // only the pipeline table
	s3        bool // only the S3 table
}

func (c *config) path(name string) string { return filepath.Join(c.work, name) }

var startTime = time.Now()

func logf(format string, args ...any) {
	d := time.Since(startTime)
	fmt.Fprintf(os.Stderr, "[%3d:%04.1f] %s\n", int(d.Minutes()), d.Seconds()-60*float64(int(d.Minutes())), fmt.Sprintf(format, args...))
}

func main() {
	os.Exit(realMain())
}

func realMain() int {
	var cfg config
	var tools string
	flag.StringVar(&cfg.work, "work", "", "work directory (default: a new temp dir under /var/tmp, removed at the end unless -keep)")
	flag.StringVar(&cfg.strataBin, "strata", "bin/strata", "path to the strata binary")
	flag.IntVar(&cfg.runs, "runs", 3, "number of runs")
	flag.Float64Var(&cfg.scale, "size-scale", 1.0, "data set scale (1.0 ≈ 2.4 GB, 60,000 small files + 1 GiB file; 0.05 for a smoke run)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the work directory (data set, repos, logs) at the end")
	flag.BoolVar(&cfg.genOnly, "gen-only", false, "only generate the data set and print its file count, bytes and generation time")
	flag.BoolVar(&cfg.mount, "mount", false, "run only the mount table (strata's FUSE mount vs local disk vs tmpfs; -size-scale scales its 2 GiB file), not the restic comparison")
	flag.BoolVar(&cfg.pipeline, "pipeline", false, "run only the pipeline table (per-datum overhead vs a container per datum, commit → job latency, one new file in 10,000 datums; needs root, containerd, runc, ctr and busybox), not the restic comparison")
	flag.BoolVar(&cfg.s3, "s3", false, "run only the S3 table (ingest, restore and a cold /pfs read with chunks in a local VersityGW next to the directory backend; needs versitygw, and root for the mount and cold caches), not the restic comparison")
	flag.StringVar(&tools, "tools", "strata,restic", "comma-separated tools to benchmark (strata, restic)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./tests/bench [flags]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "unexpected arguments: %v\n", flag.Args())
		return 2
	}
	if cfg.runs < 1 || cfg.scale <= 0 {
		fmt.Fprintln(os.Stderr, "-runs must be ≥ 1 and -size-scale > 0")
		return 2
	}
	for _, t := range strings.Split(tools, ",") {
		switch strings.TrimSpace(t) {
		case "strata":
			cfg.useStrata = true
		case "restic":
			cfg.useRestic = true
		case "":
		default:
			fmt.Fprintf(os.Stderr, "-tools: unknown tool %q (want strata and/or restic)\n", t)
			return 2
		}
	}
	if n := btoi(cfg.mount) + btoi(cfg.pipeline) + btoi(cfg.s3); n > 1 {
		fmt.Fprintln(os.Stderr, "-mount, -pipeline and -s3 are separate tables; give one")
		return 2
	}
	if cfg.mount || cfg.pipeline || cfg.s3 {
		cfg.useStrata, cfg.useRestic, cfg.genOnly = true, false, false
	}
	if cfg.pipeline {
		for _, bin := range []string{"containerd", "runc", "ctr", "busybox"} {
			if _, err := exec.LookPath(bin); err != nil {
				fmt.Fprintf(os.Stderr, "error: -pipeline needs %s: %v\nInstall it with:\n\n    apt-get install -y containerd runc busybox-static\n", bin, err)
				return 2
			}
		}
		if os.Geteuid() != 0 {
			fmt.Fprintln(os.Stderr, "error: -pipeline runs containers and needs root")
			return 2
		}
	}
	if !cfg.useStrata && !cfg.useRestic {
		fmt.Fprintln(os.Stderr, "-tools: nothing to benchmark")
		return 2
	}

	if !cfg.genOnly {
		if cfg.useRestic {
			p, err := exec.LookPath("restic")
			if err != nil {
				fmt.Fprintln(os.Stderr, "error: restic is not installed (needed as the baseline).\nInstall it with:\n\n    apt-get install -y restic")
				return 2
			}
			cfg.resticBin = p
		}
		if cfg.useStrata {
			p, err := filepath.Abs(cfg.strataBin)
			if err == nil {
				var fi os.FileInfo
				fi, err = os.Stat(p)
				if err == nil && (fi.IsDir() || fi.Mode()&0o111 == 0) {
					err = errors.New("not an executable file")
				}
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "error: strata binary %s: %v (build it first, or pass -strata PATH)\n", cfg.strataBin, err)
				return 2
			}
			cfg.strataBin = p
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := setupWork(&cfg); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		return 1
	}
	defer cleanupWork(&cfg)

	run := bench
	switch {
	case cfg.mount:
		run = benchMount
	case cfg.pipeline:
		run = benchPipeline
	case cfg.s3:
		run = benchS3
	}
	if err := run(ctx, &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "\nFAILED: %v\n", err)
		if !cfg.keep {
			fmt.Fprintln(os.Stderr, "(the work dir is removed; rerun with -keep to inspect data, repos and strata-up.log)")
		}
		return 1
	}
	return 0
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// setupWork creates (or adopts) the work directory.
func setupWork(cfg *config) error {
	if cfg.work == "" {
		d, err := os.MkdirTemp("/var/tmp", "strata-bench-")
		if err != nil {
			return err
		}
		cfg.work, cfg.ownWork = d, true
	} else {
		abs, err := filepath.Abs(cfg.work)
		if err != nil {
			return err
		}
		cfg.work = abs
		ents, err := os.ReadDir(abs)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := os.MkdirAll(abs, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case len(ents) > 0:
			if _, err := os.Stat(filepath.Join(abs, markerName)); err != nil {
				return fmt.Errorf("-work %s is not empty and was not created by this benchmark (no %s); refusing to use it", abs, markerName)
			}
		}
		// Leftovers from an earlier -keep run: start from scratch.
		for _, n := range workEntries {
			if err := os.RemoveAll(cfg.path(n)); err != nil {
				return err
			}
		}
	}
	logf("work dir %s", cfg.work)
	return os.WriteFile(cfg.path(markerName), []byte("strata benchmark work dir\n"), 0o644)
}

// Everything the benchmark creates inside the work dir.
var workEntries = []string{"data", "strata-data", "strata-up.log", "restic-repo", "restic-cache", "restic-password", "out-strata", "out-restic"}

func cleanupWork(cfg *config) {
	if cfg.keep {
		logf("keeping work dir %s", cfg.work)
		return
	}
	if cfg.ownWork {
		if err := os.RemoveAll(cfg.work); err != nil {
			logf("warning: removing %s: %v", cfg.work, err)
		}
		return
	}
	for _, n := range append(workEntries, markerName) {
		if err := os.RemoveAll(cfg.path(n)); err != nil {
			logf("warning: removing %s: %v", cfg.path(n), err)
		}
	}
}

func bench(ctx context.Context, cfg *config) error {
	ds := planDataset(cfg.path("data"), cfg.scale)
	logf("generating data set: %d files (%d dirs + big.bin), %s ...", len(ds.files), len(ds.dirs), fmtBytes(float64(ds.total)))
	t0 := time.Now()
	if err := ds.generate(); err != nil {
		return err
	}
	genDur := time.Since(t0)
	syscall.Sync()
	syncDur := time.Since(t0) - genDur
	logf("generated in %.1fs (+%.1fs sync), %.0f MB/s", genDur.Seconds(), syncDur.Seconds(), float64(ds.total)/1e6/genDur.Seconds())
	if cfg.genOnly {
		fmt.Printf("files: %d (%d small in %d dirs + %s)\nbytes: %d (%s)\ntime: %.2fs generate + %.2fs sync (%.0f MB/s)\n",
			len(ds.files), len(ds.files)-1, len(ds.dirs), bigName, ds.total, fmtBytes(float64(ds.total)),
			genDur.Seconds(), syncDur.Seconds(), float64(ds.total)/1e6/(genDur+syncDur).Seconds())
		if cfg.keep {
			fmt.Printf("dir: %s\n", ds.root)
		}
		return nil
	}

	b := &benchRun{cfg: cfg, ds: ds, drop: &cacheDropper{enabled: os.Geteuid() == 0}}
	if !b.drop.enabled {
		logf("warning: not root, page caches will not be dropped between phases")
	}
	if cfg.useRestic {
		b.resticVer = resticVersion(ctx, cfg.resticBin)
		if err := os.WriteFile(cfg.path("restic-password"), []byte("strata-bench\n"), 0o600); err != nil {
			return err
		}
	}
	var samples []sample
	for i := 1; i <= cfg.runs; i++ {
		logf("=== run %d/%d ===", i, cfg.runs)
		s, err := b.runOnce(ctx)
		if err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
		samples = append(samples, s)
	}
	printReport(os.Stdout, cfg, ds, b, samples)
	return nil
}
