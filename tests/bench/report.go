package main

// Markdown report: medians (min–max) per metric, strata vs restic.

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

const gib = 1 << 30

type goalKind int

const (
	goalNone         goalKind = iota
	goalRatioAtLeast          // strata/restic ≥ x
	goalRatioAtMost           // strata/restic ≤ x
	goalStrataAtMost          // strata ≤ x
	goalStrataBelow           // strata < x
)

type metricRow struct {
	label string
	key   string
	scale float64 // displayed value = raw / scale
	prec  int
	goal  goalKind
	x     float64
	text  string // goal as shown
}

var rows = []metricRow{
	{"first put MB/s", "put_mbps", 1, 1, goalRatioAtLeast, 4, "≥ 4× restic"},
	{"first put s", "put_s", 1, 2, goalNone, 0, ""},
	{"stored MiB after first put", "stored_first", 1 << 20, 1, goalNone, 0, ""},
	{"re-put s (1 % changed)", "reput_s", 1, 2, goalRatioAtMost, 1, "≤ restic"},
	{"new stored MiB after re-put", "new_bytes", 1 << 20, 2, goalNone, 0, ""},
	{"new stored / changed-file bytes", "new_per_changed", 1, 4, goalNone, 0, ""},
	{"new stored / changed bytes (overwritten)", "new_per_region", 1, 2, goalStrataAtMost, 2.5, "≤ 2.5"},
	{"restore MB/s", "restore_mbps", 1, 1, goalRatioAtLeast, 3, "≥ 3× restic"},
	{"restore s", "restore_s", 1, 2, goalNone, 0, ""},
	{"daemon peak RSS MiB (after first put)", "daemon_rss", 1 << 20, 0, goalStrataBelow, gib, "< 1 GiB"},
	{"daemon peak RSS MiB (whole run)", "daemon_rss_end", 1 << 20, 0, goalNone, 0, ""},
	{"client peak RSS MiB (put / backup)", "client_rss", 1 << 20, 0, goalNone, 0, ""},
}

type stats struct {
	n             int
	med, min, max float64
}

func summarize(samples []sample, strata bool, key string) stats {
	var v []float64
	for _, s := range samples {
		m := s.restic
		if strata {
			m = s.strata
		}
		if x, ok := m[key]; ok && !math.IsNaN(x) && !math.IsInf(x, 0) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return stats{}
	}
	sort.Float64s(v)
	st := stats{n: len(v), min: v[0], max: v[len(v)-1]}
	if len(v)%2 == 1 {
		st.med = v[len(v)/2]
	} else {
		st.med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return st
}

func (r metricRow) cell(st stats) string {
	if st.n == 0 {
		return "—"
	}
	f := func(x float64) string { return fmt.Sprintf("%.*f", r.prec, x/r.scale) }
	if st.n == 1 || st.min == st.max {
		return f(st.med)
	}
	return fmt.Sprintf("%s (%s–%s)", f(st.med), f(st.min), f(st.max))
}

func printReport(w io.Writer, cfg *config, ds *dataset, b *benchRun, samples []sample) {
	var tools []string
	if cfg.useStrata {
		tools = append(tools, "strata")
	}
	if cfg.useRestic {
		tools = append(tools, b.resticVer)
	}
	dropped := "page caches dropped before every timed phase"
	if !b.drop.enabled || b.drop.warned {
		dropped = "page caches NOT dropped (not root / not permitted)"
	}
	fmt.Fprintf(w, "%s — %d run(s), data set %s in %d files (scale %g); medians (min–max); MB = 10⁶ bytes; %s.\n\n",
		strings.Join(tools, " vs "), len(samples), fmtBytes(float64(ds.total)), len(ds.files), cfg.scale, dropped)
	fmt.Fprintln(w, "| metric | strata | restic | ratio | goal | met |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---|:---:|")
	for _, r := range rows {
		s := summarize(samples, true, r.key)
		q := summarize(samples, false, r.key)
		ratio, ratioOK := "—", s.n > 0 && q.n > 0 && q.med != 0
		var rv float64
		if ratioOK {
			rv = s.med / q.med
			ratio = fmt.Sprintf("%.2f×", rv)
		}
		met := "—"
		switch r.goal {
		case goalRatioAtLeast:
			if ratioOK {
				met = yesNo(rv >= r.x)
			}
		case goalRatioAtMost:
			if ratioOK {
				met = yesNo(rv <= r.x)
			}
		case goalStrataAtMost:
			if s.n > 0 {
				met = yesNo(s.med <= r.x)
			}
		case goalStrataBelow:
			if s.n > 0 {
				met = yesNo(s.med < r.x)
			}
		}
		goal := r.text
		if goal == "" {
			goal = "—"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.label, r.cell(s), r.cell(q), ratio, goal, met)
	}
	if len(samples) > 0 {
		cb := samples[0].strata["changed_bytes"]
		if cb == 0 {
			cb = samples[0].restic["changed_bytes"]
		}
		rb := samples[0].strata["region_bytes"]
		if rb == 0 {
			rb = samples[0].restic["region_bytes"]
		}
		fmt.Fprintf(w, "\nChanged bytes = total size of the changed files (%s, incl. %s); overwritten bytes = %s. Ratio = strata / restic (medians).\n",
			fmtBytes(cb), bigName, fmtBytes(rb))
	}
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func fmtBytes(n float64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", n/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", n/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", n/1e3)
	}
	return fmt.Sprintf("%.0f B", n)
}
