package mnist

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Metrics is evaluate's metrics.json.
type Metrics struct {
	Accuracy float64 `json:"accuracy"`
	Examples int     `json:"examples"`
	Correct  int     `json:"correct"`
	// Batches are the image batches scored: those with labels.
	Batches []string `json:"batches"`
	// Unlabeled are image batches without a label batch of the same
	// name; they are not scored.
	Unlabeled []string `json:"unlabeled,omitempty"`
	// Confusion[t][p] counts the examples of true class t predicted as p.
	Confusion [10][10]int `json:"confusion"`
	// PerClass is the accuracy (recall) of each true class.
	PerClass [10]float64 `json:"per_class_accuracy"`
	Classes  [10]string  `json:"classes"`
}

// Evaluate scores the model in modelDir (model.bin) on the image batches
// under images whose label batch of the same path exists under labels,
// and writes metrics.json to out.
func Evaluate(modelDir, images, labels, out string) (*Metrics, error) {
	m, err := ReadModel(filepath.Join(modelDir, "model.bin"))
	if err != nil {
		return nil, err
	}
	files, err := RecordFiles(images)
	if err != nil {
		return nil, err
	}
	met := &Metrics{Classes: Classes, Batches: []string{}}
	x, p := make([]float32, Features), make([]float32, len(Classes))
	for _, name := range files {
		lp := filepath.Join(labels, name)
		if _, err := os.Stat(lp); os.IsNotExist(err) {
			met.Unlabeled = append(met.Unlabeled, filepath.ToSlash(name))
			continue
		}
		img, err := readImages(filepath.Join(images, name))
		if err != nil {
			return nil, err
		}
		lab, err := ReadRecords(lp)
		if err != nil {
			return nil, err
		}
		if lab.Kind != KindLabels || lab.N() != img.N() || lab.First != img.First {
			return nil, fmt.Errorf("%s: labels (%s, %d from %d) do not match the images (%d from %d)", name, lab.Kind, lab.N(), lab.First, img.N(), img.First)
		}
		for i := range img.N() {
			Pixels(img.Image(i), x)
			pred := m.Probs(x, p)
			met.Confusion[lab.Labels[i]][pred]++
		}
		met.Batches = append(met.Batches, filepath.ToSlash(name))
	}
	for t := range met.Confusion {
		n := 0
		for pr, c := range met.Confusion[t] {
			n += c
			if pr == t {
				met.Correct += c
			}
		}
		met.Examples += n
		if n > 0 {
			met.PerClass[t] = round(float64(met.Confusion[t][t])/float64(n), 4)
		}
	}
	if met.Examples > 0 {
		met.Accuracy = round(float64(met.Correct)/float64(met.Examples), 4)
	}
	return met, writeJSON(filepath.Join(out, "metrics.json"), met)
}

// readImages reads an image batch (or the images of a training shard).
func readImages(path string) (*Records, error) {
	r, err := ReadRecords(path)
	if err != nil {
		return nil, err
	}
	if r.Kind == KindLabels || r.Rows != Rows || r.Cols != Cols {
		return nil, fmt.Errorf("%s: a %s file of %dx%d images, want images of %dx%d", path, r.Kind, r.Rows, r.Cols, Rows, Cols)
	}
	return r, nil
}

// Infer writes, for every image batch under images (NAME.bin), the
// predictions of the model in modelDir to out/NAME.csv: a header line,
// then one line "index,class_id,class_name,confidence" per image, where
// index is the image's index in the test set.
func Infer(modelDir, images, out string) ([]string, error) {
	m, err := ReadModel(filepath.Join(modelDir, "model.bin"))
	if err != nil {
		return nil, err
	}
	files, err := RecordFiles(images)
	if err != nil {
		return nil, err
	}
	var written []string
	x, p := make([]float32, Features), make([]float32, len(Classes))
	for _, name := range files {
		img, err := readImages(filepath.Join(images, name))
		if err != nil {
			return nil, err
		}
		csv := strings.TrimSuffix(name, ".bin") + ".csv"
		dst := filepath.Join(out, csv)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		f, err := os.Create(dst)
		if err != nil {
			return nil, err
		}
		w := bufio.NewWriter(f)
		w.WriteString("index,class_id,class_name,confidence\n")
		for i := range img.N() {
			Pixels(img.Image(i), x)
			c := m.Probs(x, p)
			fmt.Fprintf(w, "%d,%d,%s,%s\n", img.First+i, c, Classes[c], strconv.FormatFloat(float64(p[c]), 'f', 4, 32))
		}
		if err := w.Flush(); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
		written = append(written, filepath.ToSlash(csv))
	}
	return written, nil
}

func unmarshalJSON(path string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
