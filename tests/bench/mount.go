package main

// The -mount table: reading and writing through strata's FUSE mount next to
// the same work on local disk and on tmpfs.

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
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	mbDir        = "mount" // everything of the -mount table lives in WORK/mount
	mbRepo       = "bench"
	mbSmallFiles = 10000
	mbSmallSize  = 4 << 10
	mbRandReads  = 20000
	mbBufSize    = 1 << 20
)

func init() { workEntries = append(workEntries, mbDir) }

// Columns of the table.
const (
	colMount = "strata mount"
	colDisk  = "local disk"
	colTmpfs = "tmpfs"
)

var mbCols = []string{colMount, colDisk, colTmpfs}

type mbTarget struct {
	name  string // column
	big   string // the big file
	small string // the directory of small files
	write string // parent of the per-run write directories
}

type mountBench struct {
	cfg      *config
	root     string // WORK/mount
	bigSize  int64
	drop     *cacheDropper
	st       *strata
	mnt      string
	tmpfs    string
	tmpfsOn  bool
	targets  []mbTarget
	commitID string
	res      map[string][]float64 // metric/column -> samples
}

func (m *mountBench) p(parts ...string) string {
	return filepath.Join(append([]string{m.root}, parts...)...)
}

func (m *mountBench) add(metric, col string, v float64) {
	k := metric + "/" + col
	m.res[k] = append(m.res[k], v)
}

// benchMount runs the -mount table and prints it on stdout.
func benchMount(ctx context.Context, cfg *config) (err error) {
	m := &mountBench{
		cfg:     cfg,
		root:    cfg.path(mbDir),
		bigSize: int64(float64(2*gib)*cfg.scale) / mbBufSize * mbBufSize,
		drop:    &cacheDropper{enabled: os.Geteuid() == 0},
		res:     map[string][]float64{},
	}
	if m.bigSize < mbBufSize {
		m.bigSize = mbBufSize
	}
	if !m.drop.enabled {
		logf("warning: not root, page caches will not be dropped: cold numbers are warm")
	}
	if err := os.RemoveAll(m.root); err != nil {
		return err
	}
	m.mnt = m.p("mnt")
	m.tmpfs = m.p("tmpfs")
	for _, d := range []string{m.p("local", "new"), m.mnt, m.tmpfs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	defer func() {
		if cerr := m.cleanup(); cerr != nil && err == nil {
			err = cerr
		}
	}()

	if err := m.setup(ctx); err != nil {
		return err
	}
	for i := 1; i <= cfg.runs; i++ {
		logf("=== mount run %d/%d ===", i, cfg.runs)
		if err := m.runOnce(ctx, i); err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
	}
	m.report(os.Stdout)
	return nil
}

func (m *mountBench) setup(ctx context.Context) error {
	local := mbTarget{colDisk, m.p("local", "big"), m.p("local", "small"), m.p("local", "new")}
	logf("generating %s random file and %d files of %d bytes in %s", fmtBytes(float64(m.bigSize)), mbSmallFiles, mbSmallSize, m.p("local"))
	if err := writeRandomFile(local.big, m.bigSize, 1); err != nil {
		return err
	}
	if err := writeSmallFiles(local.small, 2); err != nil {
		return err
	}

	// tmpfs: the big file, the small files and room for the write phase.
	size := m.bigSize + 3*int64(mbSmallFiles)*8<<10 + 64<<20
	if err := syscall.Mount("tmpfs", m.tmpfs, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", m.tmpfs, err)
	}
	m.tmpfsOn = true
	tmp := mbTarget{colTmpfs, filepath.Join(m.tmpfs, "big"), filepath.Join(m.tmpfs, "small"), filepath.Join(m.tmpfs, "new")}
	logf("copying to tmpfs")
	if err := writeRandomFile(tmp.big, m.bigSize, 1); err != nil {
		return err
	}
	if err := writeSmallFiles(tmp.small, 2); err != nil {
		return err
	}
	if err := os.Mkdir(tmp.write, 0o755); err != nil {
		return err
	}

	// strata: daemon with the mount, data loaded with put.
	m.st = newStrata(m.cfg.strataBin, m.p("strata-data"), m.p("strata-up.log"))
	if err := m.st.startMounted(ctx, m.mnt); err != nil {
		return err
	}
	if _, err := m.st.run(ctx, "repo", "create", mbRepo); err != nil {
		return err
	}
	logf("strata put %s", filepath.Base(local.big))
	res, err := m.st.run(ctx, "put", mbRepo+"@main:/big", "-f", local.big)
	if err != nil {
		return err
	}
	logf("  %.2fs", res.dur.Seconds())
	logf("strata put -r %s", filepath.Base(local.small))
	if res, err = m.st.run(ctx, "put", "-r", mbRepo+"@main:/small", "-f", local.small); err != nil {
		return err
	}
	logf("  %.2fs", res.dur.Seconds())
	if m.commitID, err = m.headCommit(ctx); err != nil {
		return err
	}
	view := filepath.Join(m.mnt, ".commits", mbRepo, m.commitID)
	mnt := mbTarget{colMount, filepath.Join(view, "big"), filepath.Join(view, "small"), filepath.Join(m.mnt, mbRepo+"@main", "new")}
	logf("commit %s, view %s", m.commitID, view)

	// Check the mount serves the same bytes (untimed; caches are dropped
	// before every cold measurement).
	if err := sameFile(mnt.big, local.big); err != nil {
		return err
	}
	ents, err := os.ReadDir(mnt.small)
	if err != nil {
		return err
	}
	if len(ents) != mbSmallFiles {
		return fmt.Errorf("%s: %d entries, want %d", mnt.small, len(ents), mbSmallFiles)
	}
	if err := sameFile(filepath.Join(mnt.small, ents[len(ents)/2].Name()), filepath.Join(local.small, ents[len(ents)/2].Name())); err != nil {
		return err
	}
	if err := os.MkdirAll(mnt.write, 0o755); err != nil {
		return fmt.Errorf("mkdir in the branch view: %w", err)
	}
	if _, err := m.st.run(ctx, "commit", "finish", mbRepo+"@main"); err != nil {
		return err
	}
	m.targets = []mbTarget{mnt, local, tmp}
	return nil
}

func (m *mountBench) headCommit(ctx context.Context) (string, error) {
	res, err := m.st.run(ctx, "commit", "list", mbRepo+"@main", "-n", "1", "-o", "json")
	if err != nil {
		return "", err
	}
	var cs []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &cs); err != nil {
		return "", fmt.Errorf("strata commit list -o json: %v\n%s", err, res.stdout)
	}
	if len(cs) == 0 || cs[0].ID == "" {
		return "", fmt.Errorf("strata commit list: no commit in %q", res.stdout)
	}
	return cs[0].ID, nil
}

// Metric keys.
const (
	mSeqCold   = "seq_cold"
	mSeqWarm   = "seq_warm"
	mLsWarm    = "ls_warm"
	mLsCold    = "ls_cold"
	mSmallRead = "small_read"
	mSmallWr   = "small_write"
	mRand1     = "rand1"
	mRand8     = "rand8"
)

func (m *mountBench) runOnce(ctx context.Context, run int) error {
	for _, t := range m.targets {
		if err := ctx.Err(); err != nil {
			return err
		}
		// 1. sequential read, cold then warm
		m.drop.drop()
		d, err := readFile(t.big)
		if err != nil {
			return err
		}
		m.add(mSeqCold, t.name, float64(m.bigSize)/1e9/d.Seconds())
		d2, err := readFile(t.big)
		if err != nil {
			return err
		}
		m.add(mSeqWarm, t.name, float64(m.bigSize)/1e9/d2.Seconds())
		logf("%-12s seq read %s: cold %.2fs (%.2f GB/s), warm %.2fs (%.2f GB/s)", t.name, fmtBytes(float64(m.bigSize)),
			d.Seconds(), float64(m.bigSize)/1e9/d.Seconds(), d2.Seconds(), float64(m.bigSize)/1e9/d2.Seconds())

		// 2. ls -l: cold (not for tmpfs), then warm after one untimed run
		if t.name != colTmpfs {
			m.drop.drop()
			d, err = lsTime(ctx, t.small)
			if err != nil {
				return err
			}
			m.add(mLsCold, t.name, d.Seconds())
		}
		if _, err := lsTime(ctx, t.small); err != nil {
			return err
		}
		d2, err = lsTime(ctx, t.small)
		if err != nil {
			return err
		}
		m.add(mLsWarm, t.name, d2.Seconds())
		logf("%-12s ls -l %d files: cold %.3fs, warm %.3fs", t.name, mbSmallFiles, d.Seconds(), d2.Seconds())

		// 3. reading the small files, cold
		m.drop.drop()
		d, err = readSmallFiles(t.small)
		if err != nil {
			return err
		}
		m.add(mSmallRead, t.name, mbSmallFiles/d.Seconds())
		logf("%-12s read %d small files cold: %.2fs (%.0f files/s)", t.name, mbSmallFiles, d.Seconds(), mbSmallFiles/d.Seconds())

		// 4. writing small files (+ commit finish, or sync)
		dir := filepath.Join(t.write, fmt.Sprintf("run%d", run))
		start := time.Now()
		if err := writeSmallFiles(dir, uint64(100+run)); err != nil {
			return err
		}
		wd := time.Since(start)
		if t.name == colMount {
			if _, err := m.st.run(ctx, "commit", "finish", mbRepo+"@main"); err != nil {
				return err
			}
		} else {
			syscall.Sync()
		}
		d = time.Since(start)
		m.add(mSmallWr, t.name, mbSmallFiles/d.Seconds())
		logf("%-12s write %d small files: %.2fs writes + %.2fs %s (%.0f files/s)", t.name, mbSmallFiles, wd.Seconds(),
			(d - wd).Seconds(), map[bool]string{true: "commit finish", false: "sync"}[t.name == colMount], mbSmallFiles/d.Seconds())
		if t.name == colMount {
			if err := m.checkWritten(ctx, run); err != nil {
				return err
			}
		} else if err := os.RemoveAll(dir); err != nil {
			return err
		}

		// 5. random 4 KiB reads, cold, 1 and 8 goroutines
		for _, g := range []int{1, 8} {
			m.drop.drop()
			d, err = randomReads(t.big, m.bigSize, g, uint64(run))
			if err != nil {
				return err
			}
			key := mRand1
			if g == 8 {
				key = mRand8
			}
			m.add(key, t.name, mbRandReads/d.Seconds())
			logf("%-12s %d random 4 KiB reads, %d goroutine(s), cold: %.2fs (%.0f IOPS)", t.name, mbRandReads, g, d.Seconds(), mbRandReads/d.Seconds())
		}
	}
	return nil
}

// checkWritten makes sure the files written through the mount are in the
// newest finished commit (untimed).
func (m *mountBench) checkWritten(ctx context.Context, run int) error {
	id, err := m.headCommit(ctx)
	if err != nil {
		return err
	}
	dir := filepath.Join(m.mnt, ".commits", mbRepo, id, "new", fmt.Sprintf("run%d", run))
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("after commit finish: %w", err)
	}
	if len(ents) != mbSmallFiles {
		return fmt.Errorf("%s: %d files, want %d", dir, len(ents), mbSmallFiles)
	}
	return nil
}

func (m *mountBench) cleanup() error {
	var errs []error
	if m.st != nil && m.st.cmd != nil {
		logf("strata down")
		if err := m.st.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if isMountPoint(m.mnt) {
		logf("warning: %s still mounted after the daemon stopped; detaching it", m.mnt)
		if err := syscall.Unmount(m.mnt, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.mnt, err))
		}
	}
	if m.tmpfsOn {
		if err := syscall.Unmount(m.tmpfs, 0); err != nil {
			logf("warning: unmount %s: %v; detaching it", m.tmpfs, err)
			if err := syscall.Unmount(m.tmpfs, syscall.MNT_DETACH); err != nil {
				errs = append(errs, fmt.Errorf("unmount %s: %w", m.tmpfs, err))
			}
		}
	}
	if len(errs) > 0 || isMountPoint(m.mnt) || isMountPoint(m.tmpfs) {
		// Never remove a tree with something still mounted in it.
		m.cfg.keep = true
		errs = append(errs, fmt.Errorf("something is still mounted under %s; keeping the work dir", m.root))
	}
	return errors.Join(errs...)
}

// isMountPoint reports whether dir is listed in /proc/self/mounts.
func isMountPoint(dir string) bool {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == dir {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// workloads

func writeRandomFile(path string, size int64, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	var s [32]byte
	s[0] = byte(seed)
	r := rand.NewChaCha8(s)
	buf := make([]byte, mbBufSize)
	for n := int64(0); n < size; n += int64(len(buf)) {
		r.Read(buf)
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// writeSmallFiles writes mbSmallFiles random files of mbSmallSize bytes
// into dir (created), one open/write/close each.
func writeSmallFiles(dir string, seed uint64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	r := rand.NewChaCha8(s)
	buf := make([]byte, mbSmallSize)
	for i := 0; i < mbSmallFiles; i++ {
		r.Read(buf)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), buf, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// readFile reads a file sequentially with 1 MiB reads.
func readFile(path string) (time.Duration, error) {
	buf := make([]byte, mbBufSize)
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	for {
		_, err := f.Read(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", path, err)
		}
	}
	return time.Since(start), nil
}

func sameFile(a, b string) error {
	fa, err := os.Open(a)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return err
	}
	defer fb.Close()
	ba, bb := make([]byte, mbBufSize), make([]byte, mbBufSize)
	for off := int64(0); ; off += mbBufSize {
		na, erra := io.ReadFull(fa, ba)
		nb, errb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return fmt.Errorf("%s differs from %s near offset %d", a, b, off)
		}
		if erra != nil || errb != nil {
			if (erra == io.EOF || erra == io.ErrUnexpectedEOF) && (errb == io.EOF || errb == io.ErrUnexpectedEOF) {
				return nil
			}
			return fmt.Errorf("comparing %s and %s: %v / %v", a, b, erra, errb)
		}
	}
}

func lsTime(ctx context.Context, dir string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, "ls", "-l", dir) // stdout: /dev/null
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("ls -l %s: %v\n%s", dir, err, stderr.String())
	}
	return time.Since(start), nil
}

// readSmallFiles reads every file of dir (sorted by name), one goroutine.
func readSmallFiles(dir string) (time.Duration, error) {
	buf := make([]byte, mbBufSize)
	start := time.Now()
	d, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return 0, err
	}
	sort.Strings(names)
	var total int64
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			return 0, err
		}
		for {
			k, err := f.Read(buf)
			total += int64(k)
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return 0, err
			}
		}
		f.Close()
	}
	el := time.Since(start)
	if len(names) != mbSmallFiles || total != int64(mbSmallFiles*mbSmallSize) {
		return 0, fmt.Errorf("%s: read %d files, %d bytes; want %d, %d", dir, len(names), total, mbSmallFiles, mbSmallFiles*mbSmallSize)
	}
	return el, nil
}

// randomReads does mbRandReads preads of 4 KiB at random aligned offsets,
// split over g goroutines sharing one open file.
func randomReads(path string, size int64, g int, seed uint64) (time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	blocks := uint64(size / 4096)
	var wg sync.WaitGroup
	errs := make([]error, g)
	start := time.Now()
	for i := 0; i < g; i++ {
		n := mbRandReads / g
		if i < mbRandReads%g {
			n++
		}
		wg.Add(1)
		go func(i, n int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(i)))
			buf := make([]byte, 4096)
			for j := 0; j < n; j++ {
				off := int64(r.Uint64N(blocks)) * 4096
				if k, err := f.ReadAt(buf, off); err != nil || k != len(buf) {
					errs[i] = fmt.Errorf("pread %s at %d: %d bytes, %v", path, off, k, err)
					return
				}
			}
		}(i, n)
	}
	wg.Wait()
	el := time.Since(start)
	return el, errors.Join(errs...)
}

// ---------------------------------------------------------------------------
// report

func mbMedian(v []float64) (med, lo, hi float64, ok bool) {
	if len(v) == 0 {
		return 0, 0, 0, false
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	med = s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return med, s[0], s[n-1], true
}

func (m *mountBench) med(metric, col string) (float64, bool) {
	v, _, _, ok := mbMedian(m.res[metric+"/"+col])
	return v, ok
}

func (m *mountBench) report(w io.Writer) {
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	fmt.Fprintf(w, "strata mount — %d run(s), big file %s (scale %g), %d files of %d KiB; medians (min–max) where runs > 1; GB = 10⁹ bytes; %d CPUs%s.\n\n",
		m.cfg.runs, fmtBytes(float64(m.bigSize)), m.cfg.scale, mbSmallFiles, mbSmallSize>>10, runtime.NumCPU(), kernel)
	fmt.Fprintf(w, "| what | %s | %s | %s | goal | met |\n", colMount, colDisk, colTmpfs)
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | --- | --- |")

	type row struct {
		label, key string
		prec       int
		goal       string
		met        func(mount float64) bool
	}
	tmpfsWarm, _ := m.med(mSeqWarm, colTmpfs)
	rowsM := []row{
		{"sequential read, cold (GB/s)", mSeqCold, 2, "≥ 1 GB/s", func(v float64) bool { return v >= 1 }},
		{"sequential read, warm (GB/s)", mSeqWarm, 2, "≥ 50 % of tmpfs", func(v float64) bool { return v >= 0.5*tmpfsWarm }},
		{"`ls -l` 10,000 files, warm (s)", mLsWarm, 3, "≤ 0.15 s", func(v float64) bool { return v <= 0.15 }},
		{"`ls -l` 10,000 files, cold (s)", mLsCold, 3, "", nil},
		{"read 10,000 × 4 KiB files, cold (files/s)", mSmallRead, 0, "≥ 5,000 files/s", func(v float64) bool { return v >= 5000 }},
		{"write 10,000 × 4 KiB files + commit finish / sync (files/s)", mSmallWr, 0, "≥ 1,000 files/s", func(v float64) bool { return v >= 1000 }},
		{"20,000 random 4 KiB preads, cold, 1 goroutine (IOPS)", mRand1, 0, "", nil},
		{"20,000 random 4 KiB preads, cold, 8 goroutines (IOPS)", mRand8, 0, "", nil},
	}
	for _, r := range rowsM {
		cells := []string{r.label}
		for _, c := range mbCols {
			med, lo, hi, ok := mbMedian(m.res[r.key+"/"+c])
			switch {
			case !ok:
				cells = append(cells, "—")
			case len(m.res[r.key+"/"+c]) > 1:
				cells = append(cells, fmt.Sprintf("%.*f (%.*f–%.*f)", r.prec, med, r.prec, lo, r.prec, hi))
			default:
				cells = append(cells, fmt.Sprintf("%.*f", r.prec, med))
			}
		}
		met := ""
		if r.met != nil {
			if v, ok := m.med(r.key, colMount); ok {
				met = yesNo(r.met(v))
			}
		}
		cells = append(cells, r.goal, met)
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	fmt.Fprintf(w, "\nMount reads go through the commit view `.commits/%s/ID/`; writes through the branch view `%s@main/new/`, timed including `strata commit finish` (local disk and tmpfs: including `sync`). Cold = `sync; echo 3 > /proc/sys/vm/drop_caches` before (no effect on tmpfs). Reads in Go with 1 MiB buffers; `ls -l DIR > /dev/null` includes starting `ls`.\n", mbRepo, mbRepo)
}
