package main

// Deterministic benchmark data set: generation, the "change 1 %" mutation and
// its revert, and SHA-256 manifests used to verify restored trees.
//
// Determinism: every byte is derived from math/rand/v2's PCG and ChaCha8
// sources, both fully specified algorithms. Range reduction is done here with
// integer arithmetic (no floats, no rand.Rand helpers) so the output depends on
// nothing but those two generators and is identical on every machine and Go
// release.

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
)

const (
	datasetSeed1 = 0x5354524154414231 // "STRATAB1"
	datasetSeed2 = 0x62656e6368646174 // "benchdat"
	changeSeed   = 0x6368616e67653031 // "change01"

	baseSmallFiles = 60000   // small files at scale 1
	baseBigSize    = 1 << 30 // big.bin at scale 1
	filesPerDir    = 100
	bigName        = "big.bin"
	bigChange      = 1 << 20 // bytes overwritten in the middle of big.bin
	changeFraction = 100     // 1 in changeFraction small files is modified
)

// Small file sizes are spread over the ten binary octaves [1 KiB, 1 MiB):
// an octave is picked with the weights below, the size is then uniform inside
// the octave. Equal weights would be exactly log-uniform, but a log-uniform
// 1 KiB–1 MiB distribution has a mean of ~144 KiB, i.e. ~8.7 GB for 60,000
// files. The weights decay by 0.65 per octave, which keeps the full 1 KiB–1 MiB
// range and the file count while bringing the mean to ~22 KiB, so that the
// whole set is ~2.4 GB (1 GiB big file + ~1.35 GB of small files).
var octaveWeights = [10]uint64{1000, 650, 423, 275, 179, 116, 75, 49, 32, 21}

type fileKind uint8

const (
	kindBig fileKind = iota
	kindBinary
	kindProse
	kindCSV
)

type fileSpec struct {
	rel  string // slash-separated path relative to the data root
	size int64
	kind fileKind
	seed [2]uint64
}

type digest [sha256.Size]byte

type dataset struct {
	root     string
	files    []fileSpec // files[0] is big.bin
	dirs     []string
	total    int64
	manifest map[string]fileSum // original content
}

type fileSum struct {
	size int64
	sum  digest
}

// un returns a uniform integer in [0, n) from r (Lemire's multiply-shift,
// without the rejection step; the bias is < n/2^64 and irrelevant here).
func un(r *rand.PCG, n uint64) uint64 {
	hi, _ := bits.Mul64(r.Uint64(), n)
	return hi
}

// planDataset lays out the file list for a given scale; no I/O.
func planDataset(root string, scale float64) *dataset {
	r := rand.NewPCG(datasetSeed1, datasetSeed2)
	nSmall := int(float64(baseSmallFiles)*scale + 0.5)
	bigSize := int64(float64(baseBigSize)*scale + 0.5)
	if bigSize < 1 {
		bigSize = 1
	}
	ds := &dataset{root: root}
	ds.files = append(ds.files, fileSpec{rel: bigName, size: bigSize, kind: kindBig, seed: [2]uint64{r.Uint64(), r.Uint64()}})

	nDirs := (nSmall + filesPerDir - 1) / filesPerDir
	fan := 1
	for fan*fan < nDirs {
		fan++
	}
	var wsum uint64
	for _, w := range octaveWeights {
		wsum += w
	}
	for i := 0; i < nSmall; i++ {
		d := i / filesPerDir
		dir := fmt.Sprintf("d%03d/s%03d", d/fan, d%fan)
		if i%filesPerDir == 0 {
			ds.dirs = append(ds.dirs, dir)
		}
		x := un(r, wsum)
		oct := 0
		for x >= octaveWeights[oct] {
			x -= octaveWeights[oct]
			oct++
		}
		lo := uint64(1024) << oct
		size := int64(lo + un(r, lo)) // uniform in [lo, 2*lo)
		var kind fileKind
		var ext string
		switch un(r, 4) {
		case 0, 1:
			kind, ext = kindBinary, ".bin"
		case 2:
			kind, ext = kindProse, ".txt"
		default:
			kind, ext = kindCSV, ".csv"
		}
		ds.files = append(ds.files, fileSpec{
			rel:  fmt.Sprintf("%s/f%05d%s", dir, i, ext),
			size: size,
			kind: kind,
			seed: [2]uint64{r.Uint64(), r.Uint64()},
		})
	}
	for _, f := range ds.files {
		ds.total += f.size
	}
	return ds
}

func chachaFrom(r *rand.PCG) *rand.ChaCha8 {
	var seed [32]byte
	for i := 0; i < 4; i++ {
		binary.LittleEndian.PutUint64(seed[i*8:], r.Uint64())
	}
	return rand.NewChaCha8(seed)
}

// vocabulary for text files: 4096 pseudo-words of 2..11 lowercase letters.
var vocab = func() [][]byte {
	r := rand.NewPCG(0x766f636162, 0x756c617279)
	words := make([][]byte, 4096)
	for i := range words {
		w := make([]byte, 2+un(r, 10))
		for j := range w {
			w[j] = 'a' + byte(un(r, 26))
		}
		words[i] = w
	}
	return words
}()

// textGen produces compressible text: prose lines or CSV-like rows.
type textGen struct {
	r   *rand.PCG
	csv bool
	row uint64
}

func (g *textGen) word(buf []byte) []byte {
	// Zipf-ish: half of the words come from the 256 most common ones.
	if g.r.Uint64()&1 == 0 {
		return append(buf, vocab[un(g.r, 256)]...)
	}
	return append(buf, vocab[un(g.r, uint64(len(vocab)))]...)
}

// fill returns buf resized to exactly n bytes of text.
func (g *textGen) fill(buf []byte, n int) []byte {
	buf = buf[:0]
	if g.csv && g.row == 0 {
		buf = append(buf, "id,ts,user,event,amount,note\n"...)
	}
	for len(buf) < n {
		if g.csv {
			g.row++
			buf = strconv.AppendUint(buf, g.row, 10)
			buf = append(buf, ',')
			buf = strconv.AppendUint(buf, 1700000000+g.row*7+un(g.r, 7), 10)
			buf = append(buf, ",user"...)
			buf = strconv.AppendUint(buf, un(g.r, 5000), 10)
			buf = append(buf, ',')
			buf = append(buf, vocab[un(g.r, 32)]...)
			buf = append(buf, ',')
			buf = strconv.AppendUint(buf, un(g.r, 100000), 10)
			buf = append(buf, '.')
			c := un(g.r, 100)
			buf = append(buf, byte('0'+c/10), byte('0'+c%10), ',')
			for k, nw := 0, 1+int(un(g.r, 6)); k < nw; k++ {
				if k > 0 {
					buf = append(buf, ' ')
				}
				buf = g.word(buf)
			}
			buf = append(buf, '\n')
		} else {
			for k, nw := 0, 6+int(un(g.r, 11)); k < nw; k++ {
				if k > 0 {
					buf = append(buf, ' ')
				}
				buf = g.word(buf)
			}
			if un(g.r, 4) == 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, ".\n"...)
		}
	}
	return buf[:n]
}

// generate writes the data set under ds.root (which must not exist yet) and
// records the SHA-256 manifest of every file.
func (ds *dataset) generate() error {
	if _, err := os.Lstat(ds.root); err == nil {
		return fmt.Errorf("data dir %s already exists", ds.root)
	}
	if err := os.MkdirAll(ds.root, 0o755); err != nil {
		return err
	}
	for _, d := range ds.dirs {
		if err := os.MkdirAll(filepath.Join(ds.root, filepath.FromSlash(d)), 0o755); err != nil {
			return err
		}
	}
	ds.manifest = make(map[string]fileSum, len(ds.files))
	var mu sync.Mutex
	record := func(rel string, size int64, sum digest) {
		mu.Lock()
		ds.manifest[rel] = fileSum{size, sum}
		mu.Unlock()
	}

	jobs := make(chan int)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	workers := 2 * runtime.NumCPU() // overlap CPU with write-back
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 1<<20+4096)
			for i := range jobs {
				f := ds.files[i]
				var sum digest
				var err error
				if f.kind == kindBig {
					sum, err = ds.writeBig(f)
				} else {
					buf = contentOf(f, buf)
					sum = sha256.Sum256(buf)
					err = os.WriteFile(filepath.Join(ds.root, filepath.FromSlash(f.rel)), buf, 0o644)
				}
				if err != nil {
					select {
					case errc <- fmt.Errorf("generate %s: %w", f.rel, err):
					default:
					}
					continue
				}
				record(f.rel, f.size, sum)
			}
		}()
	}
	for i := range ds.files {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	return nil
}

// contentOf returns the full content of a small file.
func contentOf(f fileSpec, buf []byte) []byte {
	r := rand.NewPCG(f.seed[0], f.seed[1])
	n := int(f.size)
	switch f.kind {
	case kindBinary:
		buf = buf[:n]
		chachaFrom(r).Read(buf)
		return buf
	default:
		g := &textGen{r: r, csv: f.kind == kindCSV}
		return g.fill(buf, n)
	}
}

func (ds *dataset) writeBig(f fileSpec) (digest, error) {
	out, err := os.Create(filepath.Join(ds.root, f.rel))
	if err != nil {
		return digest{}, err
	}
	c := chachaFrom(rand.NewPCG(f.seed[0], f.seed[1]))
	h := sha256.New()
	buf := make([]byte, 8<<20)
	for left := f.size; left > 0; {
		b := buf
		if int64(len(b)) > left {
			b = b[:left]
		}
		c.Read(b)
		h.Write(b)
		if _, err := out.Write(b); err != nil {
			out.Close()
			return digest{}, err
		}
		left -= int64(len(b))
	}
	if err := out.Close(); err != nil {
		return digest{}, err
	}
	var d digest
	h.Sum(d[:0])
	return d, nil
}

// ---------------------------------------------------------------------------
// change 1 %

type change struct {
	rel  string
	off  int64
	orig []byte // original bytes of the overwritten region
}

type changeSet struct {
	changes      []change
	changedFiles int
	fileBytes    int64 // total size of the changed files
	regionBytes  int64 // bytes actually overwritten
}

// applyChanges overwrites, in place and without changing sizes, the middle
// half of 1 % of the small files (picked deterministically) and 1 MiB in the
// middle of big.bin. The replaced bytes are kept so revert can undo it.
func (ds *dataset) applyChanges() (*changeSet, error) {
	r := rand.NewPCG(changeSeed, changeSeed)
	small := len(ds.files) - 1
	k := small / changeFraction
	if k == 0 && small > 0 {
		k = 1
	}
	// Partial Fisher–Yates over the small-file indices.
	idx := make([]int, small)
	for i := range idx {
		idx[i] = i + 1
	}
	for i := 0; i < k; i++ {
		j := i + int(un(r, uint64(small-i)))
		idx[i], idx[j] = idx[j], idx[i]
	}
	pick := append([]int{0}, idx[:k]...)
	sort.Ints(pick)

	cs := &changeSet{}
	for _, i := range pick {
		f := ds.files[i]
		var off, n int64
		if f.kind == kindBig {
			n = min(int64(bigChange), f.size/2)
			off = f.size/2 - n/2
		} else {
			n = f.size / 2
			off = f.size / 4
		}
		if n == 0 {
			continue
		}
		fr := rand.NewPCG(f.seed[0]^changeSeed, f.seed[1])
		var repl []byte
		switch f.kind {
		case kindProse, kindCSV:
			repl = (&textGen{r: fr, csv: f.kind == kindCSV, row: 1}).fill(make([]byte, 0, n+256), int(n))
		default:
			repl = make([]byte, n)
			chachaFrom(fr).Read(repl)
		}
		orig, err := overwrite(filepath.Join(ds.root, filepath.FromSlash(f.rel)), off, repl, true)
		if err != nil {
			// Put back what was already changed before giving up.
			ds.revert(cs)
			return nil, err
		}
		cs.changes = append(cs.changes, change{rel: f.rel, off: off, orig: orig})
		cs.changedFiles++
		cs.fileBytes += f.size
		cs.regionBytes += n
	}
	return cs, nil
}

// revert restores the original bytes of every changed region.
func (ds *dataset) revert(cs *changeSet) error {
	var errs []error
	for _, c := range cs.changes {
		if _, err := overwrite(filepath.Join(ds.root, filepath.FromSlash(c.rel)), c.off, c.orig, false); err != nil {
			errs = append(errs, err)
		}
	}
	// Check the changed files really are back to their original content.
	for _, c := range cs.changes {
		got, err := hashFile(filepath.Join(ds.root, filepath.FromSlash(c.rel)))
		if err != nil {
			errs = append(errs, err)
		} else if got != ds.manifest[c.rel] {
			errs = append(errs, fmt.Errorf("%s: content differs from the original after revert", c.rel))
		}
	}
	cs.changes = nil
	return errors.Join(errs...)
}

// overwrite writes data at off in path, returning the previous bytes there
// when keep is set.
func overwrite(path string, off int64, data []byte, keep bool) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var orig []byte
	if keep {
		orig = make([]byte, len(data))
		if _, err := f.ReadAt(orig, off); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
	}
	if _, err := f.WriteAt(data, off); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return orig, f.Close()
}

// changedManifest returns the manifest of the data set with cs applied, by
// re-hashing only the changed files.
func (ds *dataset) changedManifest(cs *changeSet) (map[string]fileSum, error) {
	m := make(map[string]fileSum, len(ds.manifest))
	for k, v := range ds.manifest {
		m[k] = v
	}
	for _, c := range cs.changes {
		s, err := hashFile(filepath.Join(ds.root, filepath.FromSlash(c.rel)))
		if err != nil {
			return nil, err
		}
		m[c.rel] = s
	}
	return m, nil
}

// ---------------------------------------------------------------------------
// verification

func hashFile(path string) (fileSum, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileSum{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	if err != nil {
		return fileSum{}, fmt.Errorf("read %s: %w", path, err)
	}
	var s fileSum
	s.size = n
	h.Sum(s.sum[:0])
	return s, nil
}

// findRoot locates the directory holding big.bin inside a restored tree
// (restic restores absolute source paths below the target), breadth first.
func findRoot(out string) (string, error) {
	level := []string{out}
	for depth := 0; depth < 12 && len(level) > 0; depth++ {
		var next []string
		for _, d := range level {
			if fi, err := os.Lstat(filepath.Join(d, bigName)); err == nil && fi.Mode().IsRegular() {
				return d, nil
			}
			ents, err := os.ReadDir(d)
			if err != nil {
				return "", err
			}
			for _, e := range ents {
				if e.IsDir() {
					next = append(next, filepath.Join(d, e.Name()))
				}
			}
		}
		level = next
	}
	return "", fmt.Errorf("no %s found anywhere under %s", bigName, out)
}

// verifyTree checks that the tree at root holds exactly the files of want,
// with the same sizes and SHA-256 digests. It returns a descriptive error
// listing (up to 20) problems.
func verifyTree(root string, want map[string]fileSum) error {
	type item struct {
		rel  string
		path string
	}
	var items []item
	var problems []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if !d.Type().IsRegular() {
			problems = append(problems, fmt.Sprintf("%s: not a regular file (%v)", rel, d.Type()))
			return nil
		}
		if _, ok := want[rel]; !ok {
			problems = append(problems, fmt.Sprintf("%s: unexpected file", rel))
			return nil
		}
		items = append(items, item{rel, p})
		return nil
	})
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		seen[it.rel] = true
	}
	for rel := range want {
		if !seen[rel] {
			problems = append(problems, fmt.Sprintf("%s: missing", rel))
		}
	}

	var mu sync.Mutex
	jobs := make(chan item)
	var wg sync.WaitGroup
	for w := 0; w < runtime.NumCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range jobs {
				exp := want[it.rel]
				var msg string
				if fi, err := os.Stat(it.path); err != nil {
					msg = err.Error()
				} else if fi.Size() != exp.size {
					msg = fmt.Sprintf("size %d, want %d", fi.Size(), exp.size)
				} else if got, err := hashFile(it.path); err != nil {
					msg = err.Error()
				} else if got.sum != exp.sum {
					msg = fmt.Sprintf("sha256 %x, want %x", got.sum[:8], exp.sum[:8])
				}
				if msg != "" {
					mu.Lock()
					problems = append(problems, it.rel+": "+msg)
					mu.Unlock()
				}
			}
		}()
	}
	for _, it := range items {
		jobs <- it
	}
	close(jobs)
	wg.Wait()

	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	msg := fmt.Sprintf("%d problem(s) in restored tree %s:", len(problems), root)
	for i, p := range problems {
		if i == 20 {
			msg += fmt.Sprintf("\n  ... and %d more", len(problems)-20)
			break
		}
		msg += "\n  " + p
	}
	return errors.New(msg)
}

// treeBytes sums the apparent sizes of all regular files under dir (a
// `du -sb`-like measure of stored bytes). A missing dir counts as 0.
func treeBytes(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // vanished while walking (temp files)
			}
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			total += fi.Size()
		}
		return nil
	})
	return total, err
}
