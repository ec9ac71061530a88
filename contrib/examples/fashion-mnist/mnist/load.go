package mnist

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultSource is where Debian's dataset-fashion-mnist package puts the
// dataset.
const DefaultSource = "/usr/share/datasets/fashion-mnist"

// LoadOptions says how load splits the dataset and which pieces it writes.
type LoadOptions struct {
	Shards    int   // training shards (default 6)
	BatchSize int   // test images per batch (default 1000)
	ShardSel  Range // which shards to write
	BatchSel  Range // which batches to write
	// TrainLimit and TestLimit, if > 0, use only the first examples of
	// each set (for quick runs and tests).
	TrainLimit, TestLimit int
}

// Range selects indices [From, To) of a sequence; To < 0 means up to the
// end.
type Range struct{ From, To int }

// All selects every index.
var All = Range{0, -1}

// ParseRange parses "A:B" (Python-style, half-open, either end optional:
// ":5", "5:", ":"), or "none".
func ParseRange(s string) (Range, error) {
	if s == "none" {
		return Range{0, 0}, nil
	}
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return Range{}, fmt.Errorf("range %q: want FROM:TO, e.g. \":5\", \"5:\" or \"none\"", s)
	}
	r := Range{0, -1}
	var err error
	if a != "" {
		if r.From, err = strconv.Atoi(a); err != nil || r.From < 0 {
			return Range{}, fmt.Errorf("range %q: bad start", s)
		}
	}
	if b != "" {
		if r.To, err = strconv.Atoi(b); err != nil || r.To < 0 {
			return Range{}, fmt.Errorf("range %q: bad end", s)
		}
	}
	return r, nil
}

func (r Range) has(i int) bool { return i >= r.From && (r.To < 0 || i < r.To) }

// LoadResult lists the files Load wrote, relative to its output directory.
type LoadResult struct {
	Files []string
}

// Load reads the IDX files in src and writes, under out:
//
//	training/train-SS.bin   training shards (KindTrain), the 60,000
//	                        examples split into opt.Shards runs
//	images/batch-BB.bin     test images (KindImages), opt.BatchSize each
//	labels/batch-BB.bin     the same batches' labels (KindLabels)
//
// only for the shards and batches opt selects. A directory none of whose
// files is selected is not created.
func Load(src, out string, opt LoadOptions) (*LoadResult, error) {
	if opt.Shards <= 0 {
		opt.Shards = 6
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = 1000
	}
	res := &LoadResult{}
	write := func(dir, name string, r *Records) error {
		if err := os.MkdirAll(filepath.Join(out, dir), 0o755); err != nil {
			return err
		}
		res.Files = append(res.Files, filepath.Join(dir, name))
		return WriteRecords(filepath.Join(out, dir, name), r)
	}

	if opt.ShardSel != (Range{0, 0}) {
		labels, pixels, err := ReadSet(src, "train", opt.TrainLimit)
		if err != nil {
			return nil, err
		}
		n := len(labels)
		if opt.Shards > n {
			return nil, fmt.Errorf("%d shards of %d examples", opt.Shards, n)
		}
		for s := range opt.Shards {
			if !opt.ShardSel.has(s) {
				continue
			}
			a, b := s*n/opt.Shards, (s+1)*n/opt.Shards
			r := &Records{Kind: KindTrain, First: a, Rows: Rows, Cols: Cols,
				Labels: labels[a:b], Pixels: pixels[a*Features : b*Features]}
			if err := write("training", fmt.Sprintf("train-%0*d.bin", width(opt.Shards), s), r); err != nil {
				return nil, err
			}
		}
	}

	if opt.BatchSel != (Range{0, 0}) {
		labels, pixels, err := ReadSet(src, "t10k", opt.TestLimit)
		if err != nil {
			return nil, err
		}
		n := len(labels)
		batches := (n + opt.BatchSize - 1) / opt.BatchSize
		for bi := range batches {
			if !opt.BatchSel.has(bi) {
				continue
			}
			a, b := bi*opt.BatchSize, min((bi+1)*opt.BatchSize, n)
			name := fmt.Sprintf("batch-%0*d.bin", width(batches), bi)
			if err := write("images", name, &Records{Kind: KindImages, First: a, Rows: Rows, Cols: Cols, Pixels: pixels[a*Features : b*Features]}); err != nil {
				return nil, err
			}
			if err := write("labels", name, &Records{Kind: KindLabels, First: a, Rows: Rows, Cols: Cols, Labels: labels[a:b]}); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

// width is the number of digits of count-1, at least 2.
func width(count int) int {
	return max(2, len(strconv.Itoa(count-1)))
}
