package main

// One benchmark run: first ingest, 1 % change + re-ingest, restore, for
// strata and restic side by side.

import (
	"context"
	"fmt"
	"os"
)

type benchRun struct {
	cfg       *config
	ds        *dataset
	drop      *cacheDropper
	resticVer string

	// Manifest of the data set with the 1 % change applied (the state the
	// latest strata commit / restic snapshot holds at restore time). The
	// change is deterministic, so it is computed once and reused.
	changedWant map[string]fileSum
}

// sample holds one run's metrics per tool, keyed by metric id (see report.go).
type sample struct {
	strata map[string]float64
	restic map[string]float64
}

func (b *benchRun) runOnce(ctx context.Context) (s sample, err error) {
	cfg, ds := b.cfg, b.ds
	s = sample{strata: map[string]float64{}, restic: map[string]float64{}}
	total := float64(ds.total)
	strataData := cfg.path("strata-data")
	resticRepo := cfg.path("restic-repo")
	resticCache := cfg.path("restic-cache")
	strataCache := cfg.path("strata-cli-cache") // put -r's unchanged-file cache, like restic's
	outStrata := cfg.path("out-strata")
	outRestic := cfg.path("out-restic")
	for _, p := range []string{strataData, strataCache, resticRepo, resticCache, outStrata, outRestic} {
		if err := os.RemoveAll(p); err != nil {
			return s, err
		}
	}

	var st *strata
	if cfg.useStrata {
		st = newStrata(cfg.strataBin, strataData, cfg.path("strata-up.log"))
		st.env = append(st.env, "XDG_CACHE_HOME="+strataCache)
		defer func() {
			if st != nil {
				if serr := st.stop(); serr != nil && err == nil {
					err = serr
				}
			}
		}()
	}
	var rs *restic
	if cfg.useRestic {
		rs = newRestic(cfg.resticBin, resticRepo, cfg.path("restic-password"), resticCache)
	}

	// --- first ingest ------------------------------------------------------
	if st != nil {
		logf("strata: starting daemon (log %s)", st.logPath)
		if err := st.start(ctx); err != nil {
			return s, err
		}
		if _, err := st.run(ctx, "repo", "create", "bench"); err != nil {
			return s, err
		}
		b.drop.drop()
		logf("strata: first put of %s ...", fmtBytes(total))
		res, err := st.run(ctx, "put", "-r", "bench@main:/", "-f", ds.root)
		if err != nil {
			return s, err
		}
		hwm, err := st.peakRSS()
		if err != nil {
			return s, fmt.Errorf("daemon peak RSS: %w", err)
		}
		stored, err := treeBytes(strataData)
		if err != nil {
			return s, err
		}
		s.strata["put_s"] = res.dur.Seconds()
		s.strata["put_mbps"] = total / 1e6 / res.dur.Seconds()
		s.strata["client_rss"] = float64(res.maxRSS)
		s.strata["daemon_rss"] = float64(hwm)
		s.strata["stored_first"] = float64(stored)
		logf("strata: first put %.2fs = %.1f MB/s, stored %s, daemon VmHWM %s, client max RSS %s",
			res.dur.Seconds(), s.strata["put_mbps"], fmtBytes(float64(stored)), fmtBytes(float64(hwm)), fmtBytes(float64(res.maxRSS)))
	}
	if rs != nil {
		if err := rs.init(ctx); err != nil {
			return s, err
		}
		b.drop.drop()
		logf("restic: first backup of %s ...", fmtBytes(total))
		res, err := rs.backup(ctx, ds.root)
		if err != nil {
			return s, err
		}
		stored, err := treeBytes(resticRepo)
		if err != nil {
			return s, err
		}
		s.restic["put_s"] = res.dur.Seconds()
		s.restic["put_mbps"] = total / 1e6 / res.dur.Seconds()
		s.restic["client_rss"] = float64(res.maxRSS)
		s.restic["stored_first"] = float64(stored)
		logf("restic: first backup %.2fs = %.1f MB/s, stored %s, max RSS %s",
			res.dur.Seconds(), s.restic["put_mbps"], fmtBytes(float64(stored)), fmtBytes(float64(res.maxRSS)))
	}

	// --- change 1 % and re-ingest ---------------------------------------------
	cs, err := ds.applyChanges()
	if err != nil {
		return s, fmt.Errorf("applying changes: %w", err)
	}
	defer func() {
		if cs.changes != nil {
			if rerr := ds.revert(cs); rerr != nil && err == nil {
				err = fmt.Errorf("reverting changes: %w", rerr)
			}
		}
	}()
	if b.changedWant == nil {
		if b.changedWant, err = ds.changedManifest(cs); err != nil {
			return s, err
		}
	}
	logf("changed %d files totalling %s (%s overwritten)", cs.changedFiles, fmtBytes(float64(cs.fileBytes)), fmtBytes(float64(cs.regionBytes)))
	for _, m := range []map[string]float64{s.strata, s.restic} {
		m["changed_bytes"] = float64(cs.fileBytes)
		m["region_bytes"] = float64(cs.regionBytes)
	}
	record := func(m map[string]float64, res cmdResult, before, after int64) {
		grow := float64(after - before)
		m["reput_s"] = res.dur.Seconds()
		m["new_bytes"] = grow
		m["new_per_changed"] = grow / float64(cs.fileBytes)
		m["new_per_region"] = grow / float64(cs.regionBytes)
	}
	if st != nil {
		before, err := treeBytes(strataData)
		if err != nil {
			return s, err
		}
		b.drop.drop()
		logf("strata: re-put ...")
		res, err := st.run(ctx, "put", "-r", "bench@main:/", "-f", ds.root)
		if err != nil {
			return s, err
		}
		after, err := treeBytes(strataData)
		if err != nil {
			return s, err
		}
		record(s.strata, res, before, after)
		logf("strata: re-put %.2fs, new stored %s", res.dur.Seconds(), fmtBytes(float64(after-before)))
	}
	if rs != nil {
		before, err := treeBytes(resticRepo)
		if err != nil {
			return s, err
		}
		b.drop.drop()
		logf("restic: second backup ...")
		res, err := rs.backup(ctx, ds.root)
		if err != nil {
			return s, err
		}
		after, err := treeBytes(resticRepo)
		if err != nil {
			return s, err
		}
		record(s.restic, res, before, after)
		logf("restic: second backup %.2fs, new stored %s", res.dur.Seconds(), fmtBytes(float64(after-before)))
	}
	// The stores now hold the changed state (b.changedWant); put the data
	// set back to its original bytes for the next run.
	if err := ds.revert(cs); err != nil {
		return s, fmt.Errorf("reverting changes: %w", err)
	}

	// --- restore ---------------------------------------------------------
	if st != nil {
		b.drop.drop()
		logf("strata: get ...")
		res, err := st.run(ctx, "get", "-r", "bench@main:/", "-o", outStrata)
		if err != nil {
			return s, err
		}
		s.strata["restore_s"] = res.dur.Seconds()
		s.strata["restore_mbps"] = total / 1e6 / res.dur.Seconds()
		logf("strata: get %.2fs = %.1f MB/s; verifying ...", res.dur.Seconds(), s.strata["restore_mbps"])
		if err := b.verify("strata get", outStrata); err != nil {
			return s, err
		}
		if hwm, err := st.peakRSS(); err == nil {
			s.strata["daemon_rss_end"] = float64(hwm)
		}
	}
	if rs != nil {
		b.drop.drop()
		logf("restic: restore ...")
		res, err := rs.restore(ctx, outRestic)
		if err != nil {
			return s, err
		}
		s.restic["restore_s"] = res.dur.Seconds()
		s.restic["restore_mbps"] = total / 1e6 / res.dur.Seconds()
		s.restic["restore_rss"] = float64(res.maxRSS)
		logf("restic: restore %.2fs = %.1f MB/s; verifying ...", res.dur.Seconds(), s.restic["restore_mbps"])
		if err := b.verify("restic restore", outRestic); err != nil {
			return s, err
		}
	}

	// --- teardown ----------------------------------------------------------
	if st != nil {
		logf("strata: down")
		serr := st.stop()
		st = nil
		if serr != nil {
			return s, serr
		}
	}
	for _, p := range []string{strataData, strataCache, resticRepo, resticCache} {
		if err := os.RemoveAll(p); err != nil {
			return s, err
		}
	}
	return s, nil
}

// verify checks a restored tree against the expected manifest and removes it.
func (b *benchRun) verify(what, out string) error {
	root, err := findRoot(out)
	if err != nil {
		return fmt.Errorf("%s: restored tree: %w", what, err)
	}
	if root != out {
		logf("%s: restored data set found at %s", what, root)
	}
	if err := verifyTree(root, b.changedWant); err != nil {
		return fmt.Errorf("%s: RESTORED DATA DOES NOT MATCH THE DATA SET: %w", what, err)
	}
	logf("%s: verified %d files byte-identical (size + SHA-256)", what, len(b.changedWant))
	return os.RemoveAll(out)
}
