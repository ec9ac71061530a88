package mnist

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
)

// PrepareMeta is prepare's meta.json.
type PrepareMeta struct {
	Examples    int               `json:"examples"`
	Rows        int               `json:"rows"`
	Cols        int               `json:"cols"`
	Features    int               `json:"features"`
	Scale       string            `json:"scale"`
	Files       []FileInfo        `json:"files"`
	ClassCounts [10]int           `json:"class_counts"`
	Formats     map[string]string `json:"formats"`
}

// FileInfo names one input file of prepare and what it held.
type FileInfo struct {
	Name     string `json:"name"`
	First    int    `json:"first"`
	Examples int    `json:"examples"`
}

// Prepare reads every training shard (*.bin) under in, in lexical order
// of their paths, and writes to out: train.f32 (one row of float32
// pixel/255 per example, little-endian), labels.u8 (one byte per example)
// and meta.json.
func Prepare(in, out string) (*PrepareMeta, error) {
	files, err := RecordFiles(in)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no training shards (*.bin) under %s", in)
	}
	m := &PrepareMeta{Rows: Rows, Cols: Cols, Features: Features, Scale: "pixel/255",
		Formats: map[string]string{
			"train.f32": "examples x features float32, little-endian, row-major",
			"labels.u8": "one byte per example, 0-9",
		}}

	var scale [256][4]byte
	for v := range scale {
		binary.LittleEndian.PutUint32(scale[v][:], math.Float32bits(float32(v)/255))
	}
	xf, err := os.Create(filepath.Join(out, "train.f32"))
	if err != nil {
		return nil, err
	}
	defer xf.Close()
	xw := bufio.NewWriterSize(xf, 1<<20)
	var labels []byte
	for _, name := range files {
		r, err := ReadRecords(filepath.Join(in, name))
		if err != nil {
			return nil, err
		}
		if r.Kind != KindTrain || r.Rows != Rows || r.Cols != Cols {
			return nil, fmt.Errorf("%s: a %s file of %dx%d images, want a training shard (%s) of %dx%d", name, r.Kind, r.Rows, r.Cols, KindTrain, Rows, Cols)
		}
		for _, p := range r.Pixels {
			xw.Write(scale[p][:])
		}
		for _, l := range r.Labels {
			m.ClassCounts[l]++
		}
		labels = append(labels, r.Labels...)
		m.Files = append(m.Files, FileInfo{Name: filepath.ToSlash(name), First: r.First, Examples: r.N()})
	}
	if err := xw.Flush(); err != nil {
		return nil, err
	}
	if err := xf.Close(); err != nil {
		return nil, err
	}
	m.Examples = len(labels)
	if err := os.WriteFile(filepath.Join(out, "labels.u8"), labels, 0o644); err != nil {
		return nil, err
	}
	return m, writeJSON(filepath.Join(out, "meta.json"), m)
}

// TrainingSet is prepare's output, read back.
type TrainingSet struct {
	N      int
	X      []float32 // N*Features
	Labels []byte
}

// ReadTrainingSet reads prepare's output from dir.
func ReadTrainingSet(dir string) (*TrainingSet, error) {
	labels, err := os.ReadFile(filepath.Join(dir, "labels.u8"))
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, "train.f32"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n := len(labels)
	if st, err := f.Stat(); err != nil || st.Size() != int64(n*Features*4) {
		return nil, fmt.Errorf("%s: train.f32 does not hold %d float32 for %d examples (%v)", dir, n*Features, n, err)
	}
	x := make([]float32, n*Features)
	buf := make([]byte, 1<<20)
	for i := 0; i < len(x); {
		k, err := io.ReadFull(f, buf[:min(len(buf), 4*(len(x)-i))])
		if err != nil {
			return nil, fmt.Errorf("%s: train.f32: %w", dir, err)
		}
		for o := 0; o < k; o += 4 {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[o:]))
			i++
		}
	}
	for i, l := range labels {
		if l >= byte(len(Classes)) {
			return nil, fmt.Errorf("%s: example %d has label %d", dir, i, l)
		}
	}
	return &TrainingSet{N: n, X: x, Labels: labels}, nil
}

// writeJSON writes v as indented JSON with a final newline, keeping
// arrays of numbers on one line each.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = numberArray.ReplaceAllFunc(b, func(a []byte) []byte {
		return bytes.ReplaceAll(space.ReplaceAll(a, nil), []byte(","), []byte(", "))
	})
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

var (
	numberArray = regexp.MustCompile(`\[[-+.eE0-9,\s]*\]`)
	space       = regexp.MustCompile(`\s+`)
)
