package mnist

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Kinds of record files (the magic at their start).
const (
	KindTrain  = "FMTR" // labels and images
	KindImages = "FMIM" // images only
	KindLabels = "FMLB" // labels only
)

const headerSize = 20

// Records is the content of one record file: a run of consecutive
// examples of the original set, starting at First.
type Records struct {
	Kind       string
	First      int
	Rows, Cols int
	Labels     []byte // nil for KindImages
	Pixels     []byte // nil for KindLabels; N*Rows*Cols bytes
}

// N is the number of records.
func (r *Records) N() int {
	if r.Kind == KindImages {
		return len(r.Pixels) / (r.Rows * r.Cols)
	}
	return len(r.Labels)
}

// Image returns the pixels of record i.
func (r *Records) Image(i int) []byte {
	n := r.Rows * r.Cols
	return r.Pixels[i*n : (i+1)*n]
}

// WriteRecords writes r to path in the record-file format.
func WriteRecords(path string, r *Records) error {
	var h [headerSize]byte
	copy(h[:4], r.Kind)
	binary.LittleEndian.PutUint32(h[4:], uint32(r.N()))
	binary.LittleEndian.PutUint32(h[8:], uint32(r.Rows))
	binary.LittleEndian.PutUint32(h[12:], uint32(r.Cols))
	binary.LittleEndian.PutUint32(h[16:], uint32(r.First))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.Write(h[:])
	w.Write(r.Labels)
	w.Write(r.Pixels)
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadRecords reads a record file.
func ReadRecords(path string) (*Records, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) < headerSize {
		return nil, fmt.Errorf("%s: too short for a record file", path)
	}
	r := &Records{
		Kind:  string(data[:4]),
		Rows:  int(binary.LittleEndian.Uint32(data[8:])),
		Cols:  int(binary.LittleEndian.Uint32(data[12:])),
		First: int(binary.LittleEndian.Uint32(data[16:])),
	}
	n := int(binary.LittleEndian.Uint32(data[4:]))
	body := data[headerSize:]
	px := n * r.Rows * r.Cols
	var want int
	switch r.Kind {
	case KindTrain:
		want = n + px
	case KindImages:
		want = px
	case KindLabels:
		want = n
	default:
		return nil, fmt.Errorf("%s: not a record file (magic %q)", path, data[:4])
	}
	if len(body) != want {
		return nil, fmt.Errorf("%s: %s file of %d records needs %d bytes after the header, has %d", path, r.Kind, n, want, len(body))
	}
	if r.Kind != KindImages {
		r.Labels = body[:n]
		body = body[n:]
	}
	if r.Kind != KindLabels {
		r.Pixels = body
	}
	for i, l := range r.Labels {
		if l >= byte(len(Classes)) {
			return nil, fmt.Errorf("%s: record %d has label %d", path, i, l)
		}
	}
	return r, nil
}

// RecordFiles lists the files under dir whose names end in ".bin", at any
// depth, in lexical order of their paths relative to dir.
func RecordFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".bin") {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			files = append(files, rel)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

// idxFile is an IDX file (the format the dataset ships in): big-endian
// dimensions, then unsigned bytes.
type idxFile struct {
	dims []int
	data []byte
}

// readIDX reads an IDX file of unsigned bytes, gzipped if its name ends in
// ".gz". With limit > 0 it reads only the first limit items (along the
// first dimension).
func readIDX(path string, limit int) (*idxFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 1<<20)
	if strings.HasSuffix(path, ".gz") {
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer z.Close()
		r = z
	}
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] == 0 {
		return nil, fmt.Errorf("%s: not an IDX file of unsigned bytes (magic % x)", path, magic)
	}
	dims := make([]int, magic[3])
	item := 1
	for i := range dims {
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		dims[i] = int(binary.BigEndian.Uint32(b[:]))
		if i > 0 {
			item *= dims[i]
		}
	}
	if limit > 0 && limit < dims[0] {
		dims[0] = limit
	}
	data := make([]byte, dims[0]*item)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, fmt.Errorf("%s: reading %d items: %w", path, dims[0], err)
	}
	return &idxFile{dims: dims, data: data}, nil
}

// ReadSet reads a set of the dataset from dir: name is "train" or "t10k".
// With limit > 0 only its first limit examples are read.
func ReadSet(dir, name string, limit int) (labels, pixels []byte, err error) {
	img, err := readIDX(filepath.Join(dir, name+"-images-idx3-ubyte.gz"), limit)
	if err != nil {
		return nil, nil, err
	}
	lab, err := readIDX(filepath.Join(dir, name+"-labels-idx1-ubyte.gz"), limit)
	if err != nil {
		return nil, nil, err
	}
	if len(img.dims) != 3 || img.dims[1] != Rows || img.dims[2] != Cols {
		return nil, nil, fmt.Errorf("%s images: dimensions %v, want N×%d×%d", name, img.dims, Rows, Cols)
	}
	if len(lab.dims) != 1 || lab.dims[0] != img.dims[0] {
		return nil, nil, fmt.Errorf("%s: %d labels for %d images", name, lab.dims[0], img.dims[0])
	}
	for i, l := range lab.data {
		if l >= byte(len(Classes)) {
			return nil, nil, fmt.Errorf("%s: label %d of example %d", name, l, i)
		}
	}
	return lab.data, img.data, nil
}
