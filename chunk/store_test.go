package chunk_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/restic/chunker"
	"github.com/strata-data/strata/chunk"
)

var ctx = context.Background()

// testPol is restic's test polynomial, so cuts are reproducible.
const testPol = chunker.Pol(0x3DA3358B4DC173)

func testConfig(codec string) chunk.Config {
	return chunk.Config{
		Polynomial: testPol,
		Hash:       "sha256",
		Codec:      codec,
		MinSize:    chunk.DefaultMinSize,
		MaxSize:    chunk.DefaultMaxSize,
		SmallLimit: chunk.DefaultSmallLimit,
	}
}

func newStore(t testing.TB, cfg chunk.Config, small, large chunk.Backend) *chunk.Store {
	t.Helper()
	s, err := chunk.NewStore(cfg, small, large)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 2}).Read(b)
	return b
}

// textBytes returns n bytes of word salad, which compresses well.
func textBytes(seed uint64, n int) []byte {
	words := strings.Fields("the quick brown fox jumps over a lazy dog while strata stores chunks of data " +
		"in content defined pieces named by their hash and verified on every read")
	r := rand.New(rand.NewPCG(seed, 3))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		if r.IntN(12) == 0 {
			b.WriteString(".\n")
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

// resticSizes returns the chunk sizes restic's chunker cuts data into.
func resticSizes(t testing.TB, cfg chunk.Config, data []byte) []uint32 {
	t.Helper()
	c := chunker.NewWithBoundaries(bytes.NewReader(data), cfg.Polynomial, cfg.MinSize, cfg.MaxSize)
	var sizes []uint32
	buf := make([]byte, cfg.MaxSize)
	for {
		ch, err := c.Next(buf)
		if err == io.EOF {
			return sizes
		}
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, uint32(ch.Length))
	}
}

func sizes(refs []chunk.Ref) []uint32 {
	s := make([]uint32, len(refs))
	for i, r := range refs {
		s[i] = r.Size
	}
	return s
}

// write stores data as one file with a single Write and returns its refs.
func write(t testing.TB, s *chunk.Store, data []byte) []chunk.Ref {
	t.Helper()
	w := s.NewWriter(ctx)
	defer w.Abort()
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := w.Size(); got != int64(len(data)) {
		t.Fatalf("Size() = %d, want %d", got, len(data))
	}
	return w.Refs()
}

func readAll(t testing.TB, s *chunk.Store, refs []chunk.Ref) []byte {
	t.Helper()
	got, err := io.ReadAll(s.NewReader(ctx, refs))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// storedSize sums the stored sizes of all blobs in be.
func storedSize(t *testing.T, be chunk.Backend) (n int64) {
	t.Helper()
	err := be.List(ctx, func(_ chunk.ID, info chunk.Info) error { n += info.Size; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestConfig(t *testing.T) {
	cfg, err := chunk.NewConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("NewConfig is invalid: %v", err)
	}
	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var back chunk.Config
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatal(err)
	}
	if back != cfg {
		t.Errorf("JSON round trip: got %+v, want %+v", back, cfg)
	}

	for name, mod := range map[string]func(*chunk.Config){
		"reducible polynomial": func(c *chunk.Config) { c.Polynomial = 1<<53 | 1<<1 },
		"zero polynomial":      func(c *chunk.Config) { c.Polynomial = 0 },
		"hash":                 func(c *chunk.Config) { c.Hash = "md5" },
		"codec":                func(c *chunk.Config) { c.Codec = "gzip" },
		"min > max":            func(c *chunk.Config) { c.MinSize = c.MaxSize + 1 },
		"tiny min":             func(c *chunk.Config) { c.MinSize = 10 },
		"huge max":             func(c *chunk.Config) { c.MaxSize = 1 << 30 },
		"negative small limit": func(c *chunk.Config) { c.SmallLimit = -1 },
	} {
		c := cfg
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
		if _, err := chunk.NewStore(c, nil, chunk.NewMem()); err == nil {
			t.Errorf("%s: NewStore accepted %+v", name, c)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	cfg := testConfig("s2")
	min := int(cfg.MinSize)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"1B", randomBytes(1, 1)},
		{"min-1", randomBytes(2, min-1)},
		{"min", randomBytes(3, min)},
		{"min+1", randomBytes(4, min+1)},
		{"zeros", make([]byte, 3*min+5)},
		{"random20M", randomBytes(5, 20<<20)},
		{"text20M", textBytes(6, 20<<20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := chunk.NewMem()
			s := newStore(t, cfg, be, be)
			refs := write(t, s, tc.data)
			if want := resticSizes(t, cfg, tc.data); !slices.Equal(sizes(refs), want) {
				t.Fatalf("chunk sizes %v, restic cuts %v", sizes(refs), want)
			}
			if len(tc.data) > 0 && len(tc.data) < min && len(refs) != 1 {
				t.Fatalf("%d refs for a file shorter than MinSize, want 1", len(refs))
			}
			for _, r := range refs {
				if r.ID.IsZero() {
					t.Fatal("zero ID in refs")
				}
			}
			if got := readAll(t, s, refs); !bytes.Equal(got, tc.data) {
				t.Fatalf("read back %d bytes, want %d (contents differ)", len(got), len(tc.data))
			}
			stored := storedSize(t, be)
			switch tc.name {
			case "random20M": // stored raw: a codec byte and a seal per chunk
				if want := int64(len(tc.data) + len(refs)*blobOverhead); stored != want {
					t.Errorf("stored %d bytes, want %d", stored, want)
				}
			case "text20M":
				if stored > int64(len(tc.data))/2 {
					t.Errorf("stored %d bytes, want at most half of %d", stored, len(tc.data))
				}
			}
		})
	}
}

func TestCodecs(t *testing.T) {
	text := textBytes(7, 6<<20)
	random := randomBytes(8, 4<<20)
	for _, codec := range []string{"s2", "zstd", "none"} {
		t.Run(codec, func(t *testing.T) {
			be := chunk.NewMem()
			s := newStore(t, testConfig(codec), be, be)
			refs := write(t, s, text)
			if got := readAll(t, s, refs); !bytes.Equal(got, text) {
				t.Fatal("text: read back differs")
			}
			stored := storedSize(t, be)
			if codec == "none" {
				if stored != int64(len(text)+len(refs)*blobOverhead) {
					t.Errorf("stored %d bytes for %d bytes in %d chunks uncompressed", stored, len(text), len(refs))
				}
			} else if stored > int64(len(text))/2 {
				t.Errorf("text stored in %d bytes, want at most half of %d", stored, len(text))
			}

			// Incompressible data is stored raw: a codec byte and a seal
			// per chunk.
			be2 := chunk.NewMem()
			s2 := newStore(t, testConfig(codec), be2, be2)
			refs = write(t, s2, random)
			if stored, want := storedSize(t, be2), int64(len(random)+len(refs)*blobOverhead); stored != want {
				t.Errorf("random: stored %d bytes, want %d", stored, want)
			}
			if got := readAll(t, s2, refs); !bytes.Equal(got, random) {
				t.Fatal("random: read back differs")
			}
		})
	}
}

// TestCodecChange reads chunks written with every codec through one store.
func TestCodecChange(t *testing.T) {
	be := chunk.NewMem()
	var files [][]byte
	var refs [][]chunk.Ref
	for i, codec := range []string{"zstd", "none", "s2"} {
		data := textBytes(uint64(10+i), 3<<20)
		files = append(files, data)
		refs = append(refs, write(t, newStore(t, testConfig(codec), be, be), data))
	}
	s := newStore(t, testConfig("s2"), be, be)
	for i := range files {
		if got := readAll(t, s, refs[i]); !bytes.Equal(got, files[i]) {
			t.Errorf("file %d: read back differs", i)
		}
	}
}

// chopReader returns data in reads of random sizes.
type chopReader struct {
	data []byte
	r    *rand.Rand
}

func (c *chopReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 1+c.r.IntN(100<<10))], c.data)
	c.data = c.data[n:]
	return n, nil
}

// TestWriteSplit checks that cuts depend on the bytes only, not on how they
// arrive.
func TestWriteSplit(t *testing.T) {
	data := slices.Concat(randomBytes(20, 20<<20), textBytes(21, 4<<20), make([]byte, 6<<20))
	be := chunk.NewMem()
	s := newStore(t, testConfig("s2"), be, be)
	want := write(t, s, data)
	if got := sizes(want); !slices.Equal(got, resticSizes(t, s.Config(), data)) {
		t.Fatalf("chunk sizes %v differ from restic's", got)
	}

	r := rand.New(rand.NewPCG(1, 2))
	w := s.NewWriter(ctx)
	for p := data; len(p) > 0; {
		n := min(len(p), 1<<r.IntN(21)+r.IntN(3)) // 1 B to 1 MiB, most of them small
		if m, err := w.Write(p[:n]); err != nil || m != n {
			t.Fatalf("Write = %d, %v; want %d, nil", m, err, n)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := w.Refs(); !slices.Equal(got, want) {
		t.Errorf("pieces: got %v, want %v", sizes(got), sizes(want))
	}

	w = s.NewWriter(ctx)
	if n, err := w.ReadFrom(&chopReader{data, rand.New(rand.NewPCG(3, 4))}); err != nil || n != int64(len(data)) {
		t.Fatalf("ReadFrom = %d, %v; want %d, nil", n, err, len(data))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := w.Refs(); !slices.Equal(got, want) {
		t.Errorf("ReadFrom: got %v, want %v", sizes(got), sizes(want))
	}

	w = s.NewWriter(ctx)
	if _, err := io.Copy(w, iotest.HalfReader(bytes.NewReader(data[:3<<20]))); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := w.Refs(), write(t, s, data[:3<<20]); !slices.Equal(got, want) {
		t.Errorf("io.Copy: got %v, want %v", sizes(got), sizes(want))
	}
}

// TestSmallChunkSizes checks cuts against restic with bounds that make most
// cuts forced by MaxSize, and with the smallest MinSize.
func TestSmallChunkSizes(t *testing.T) {
	data := slices.Concat(randomBytes(30, 3<<20), make([]byte, 100<<10), textBytes(31, 1<<20))
	for _, b := range [][2]uint{{64, 4 << 10}, {4 << 10, 64 << 10}, {200 << 10, 2 << 20}, {64 << 10, 64 << 10}} {
		cfg := testConfig("s2")
		cfg.MinSize, cfg.MaxSize = b[0], b[1]
		be := chunk.NewMem()
		s := newStore(t, cfg, be, be)
		refs := write(t, s, data)
		if got, want := sizes(refs), resticSizes(t, cfg, data); !slices.Equal(got, want) {
			t.Errorf("min %d max %d: %d chunks differ from restic's %d", b[0], b[1], len(got), len(want))
		}
		if got := readAll(t, s, refs); !bytes.Equal(got, data) {
			t.Errorf("min %d max %d: read back differs", b[0], b[1])
		}
	}
}

func TestAppend(t *testing.T) {
	data := slices.Concat(randomBytes(40, 12<<20), textBytes(41, 2<<20))
	be := chunk.NewMem()
	s := newStore(t, testConfig("s2"), be, be)
	want := write(t, s, data)
	min := int(s.Config().MinSize)
	cut := int(want[0].Size) + int(want[1].Size)
	for _, split := range [][]int{
		{0},
		{1},
		{min - 1},
		{cut},     // right at a cut
		{cut + 1}, // just past one
		{5 << 20},
		{len(data) - 1},
		{len(data)},
		{100, min + 7, 3 << 20, 3<<20 + 1, 9 << 20}, // several appends
	} {
		var refs []chunk.Ref
		off := 0
		for _, end := range append(split, len(data)) {
			w, err := s.NewAppendWriter(ctx, refs)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(data[off:end]); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if w.Size() != int64(end) {
				t.Fatalf("split %v: Size() = %d after appending up to %d", split, w.Size(), end)
			}
			refs, off = w.Refs(), end
		}
		if !slices.Equal(refs, want) {
			t.Errorf("split %v: got %v, want %v", split, sizes(refs), sizes(want))
		}
	}
}

func TestSmallBackend(t *testing.T) {
	small, large := chunk.NewMem(), chunk.NewMem()
	s := newStore(t, testConfig("s2"), small, large)
	tiny := textBytes(50, 1000)
	big := randomBytes(51, 5<<20)
	tinyRefs, bigRefs := write(t, s, tiny), write(t, s, big)
	if _, err := small.Stat(ctx, tinyRefs[0].ID); err != nil {
		t.Errorf("small chunk not in small backend: %v", err)
	}
	if _, err := large.Stat(ctx, tinyRefs[0].ID); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("small chunk in large backend: %v", err)
	}
	for _, r := range bigRefs {
		if _, err := large.Stat(ctx, r.ID); err != nil {
			t.Errorf("large chunk not in large backend: %v", err)
		}
	}
	if storedSize(t, small) >= 1000 {
		t.Error("small text chunk was not compressed")
	}
	if !bytes.Equal(readAll(t, s, tinyRefs), tiny) || !bytes.Equal(readAll(t, s, bigRefs), big) {
		t.Error("read back differs")
	}
}

// TestPutDedup checks that putting a chunk again stores nothing new but
// refreshes its ModTime.
func TestPutDedup(t *testing.T) {
	for name, be := range map[string]chunk.Backend{"mem": chunk.NewMem(), "dir": newDir(t)} {
		t.Run(name, func(t *testing.T) {
			s := newStore(t, testConfig("zstd"), be, be)
			data := textBytes(60, 300<<10)
			ref, err := s.Put(ctx, data)
			if err != nil {
				t.Fatal(err)
			}
			if ref.ID != chunk.Sum(data) || ref.Size != uint32(len(data)) {
				t.Fatalf("Put returned %v, want ID %s size %d", ref, chunk.Sum(data), len(data))
			}
			age(t, be, ref.ID, 2*time.Hour)
			if again, err := s.Put(ctx, data); err != nil || again != ref {
				t.Fatalf("second Put = %v, %v; want %v", again, err, ref)
			}
			info, err := be.Stat(ctx, ref.ID)
			if err != nil {
				t.Fatal(err)
			}
			if time.Since(info.ModTime) > time.Minute {
				t.Errorf("ModTime %v not refreshed by the second Put", info.ModTime)
			}
			got, err := s.Get(ctx, ref)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Get = %d bytes, %v", len(got), err)
			}
		})
	}
}

func newDir(t testing.TB) *chunk.Dir {
	t.Helper()
	d, err := chunk.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// age sets the ModTime of a blob to d ago.
func age(t *testing.T, be chunk.Backend, id chunk.ID, d time.Duration) {
	t.Helper()
	var err error
	switch be := be.(type) {
	case *chunk.Mem:
		err = be.SetModTime(id, time.Now().Add(-d))
	case *chunk.Dir:
		err = os.Chtimes(be.Path(id), time.Now().Add(-d), time.Now().Add(-d))
	default:
		t.Fatalf("cannot age blobs in %T", be)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestCorrupt(t *testing.T) {
	dir := newDir(t)
	s := newStore(t, testConfig("s2"), dir, dir)
	rawRefs := write(t, s, randomBytes(70, 8<<20))
	textRefs := write(t, s, textBytes(71, 4<<20))
	ok := write(t, s, randomBytes(72, 100))[0]

	flip := func(id chunk.ID, at int) {
		t.Helper()
		b, err := os.ReadFile(dir.Path(id))
		if err != nil {
			t.Fatal(err)
		}
		b[(at+len(b))%len(b)] ^= 0x40
		if err := os.WriteFile(dir.Path(id), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bad := map[chunk.ID]bool{rawRefs[1].ID: true, textRefs[0].ID: true, textRefs[1].ID: true}
	flip(rawRefs[1].ID, -1)
	flip(textRefs[0].ID, 1000) // compressed: a decode error or a hash mismatch
	flip(textRefs[1].ID, 0)    // the codec byte

	for id := range bad {
		ref := chunk.Ref{ID: id, Size: uint32(s.Config().MaxSize)} // size only routes here
		if _, err := s.Get(ctx, ref); !errors.Is(err, chunk.ErrCorrupt) {
			t.Errorf("Get(%s) = %v, want ErrCorrupt", id, err)
		}
	}
	if _, err := io.ReadAll(s.NewReader(ctx, rawRefs)); !errors.Is(err, chunk.ErrCorrupt) {
		t.Errorf("reading a file with a corrupt chunk: %v, want ErrCorrupt", err)
	}
	if _, err := s.Get(ctx, ok); err != nil {
		t.Errorf("Get(intact) = %v", err)
	}
	if _, err := s.Get(ctx, chunk.Ref{ID: ok.ID, Size: ok.Size + 1}); !errors.Is(err, chunk.ErrCorrupt) {
		t.Errorf("Get with the wrong size = %v, want ErrCorrupt", err)
	}

	seen := make(map[chunk.ID]error)
	err := s.Verify(ctx, func(id chunk.ID, err error) { seen[id] = err })
	if err != nil {
		t.Fatal(err)
	}
	if want := len(rawRefs) + len(textRefs) + 1; len(seen) != want {
		t.Errorf("Verify saw %d chunks, want %d", len(seen), want)
	}
	for id, err := range seen {
		if bad[id] != errors.Is(err, chunk.ErrCorrupt) {
			t.Errorf("Verify(%s) = %v, corrupt: %v", id, err, bad[id])
		}
	}
}

func TestSweep(t *testing.T) {
	for name, mk := range map[string]func() (small, large chunk.Backend){
		"dir": func() (chunk.Backend, chunk.Backend) { d := newDir(t); return d, d },
		"mem": func() (chunk.Backend, chunk.Backend) { return chunk.NewMem(), chunk.NewMem() },
	} {
		t.Run(name, func(t *testing.T) {
			small, large := mk()
			s := newStore(t, testConfig("s2"), small, large)
			put := func(data []byte) chunk.Ref {
				ref, err := s.Put(ctx, data)
				if err != nil {
					t.Fatal(err)
				}
				return ref
			}
			backend := func(r chunk.Ref) chunk.Backend {
				if int(r.Size) < s.Config().SmallLimit {
					return small
				}
				return large
			}
			oldKept, oldGone := put(randomBytes(80, 10)), put(randomBytes(81, 200<<10))
			newKept, newUnref := put(randomBytes(82, 300<<10)), put(randomBytes(83, 20))
			age(t, backend(oldKept), oldKept.ID, 2*time.Hour)
			age(t, backend(oldGone), oldGone.ID, 2*time.Hour)
			live := map[chunk.ID]bool{oldKept.ID: true, newKept.ID: true}
			keep := func(id chunk.ID) bool { return live[id] }

			n, bytes, err := s.Sweep(ctx, keep, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if n != 1 || bytes != blobOverhead+200<<10 {
				t.Errorf("Sweep = %d chunks, %d bytes; want 1, %d", n, bytes, blobOverhead+200<<10)
			}
			if _, err := s.Get(ctx, oldGone); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("old unreferenced chunk: %v, want fs.ErrNotExist", err)
			}
			for _, r := range []chunk.Ref{oldKept, newKept, newUnref} {
				if _, err := s.Get(ctx, r); err != nil {
					t.Errorf("Sweep with grace deleted %v: %v", r, err)
				}
			}

			if n, _, err := s.Sweep(ctx, keep, 0); err != nil || n != 1 {
				t.Errorf("Sweep with no grace = %d, %v; want 1, nil", n, err)
			}
			if _, err := s.Get(ctx, newUnref); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("new unreferenced chunk after Sweep with no grace: %v", err)
			}
			for _, r := range []chunk.Ref{oldKept, newKept} {
				if _, err := s.Get(ctx, r); err != nil {
					t.Errorf("Sweep deleted referenced %v: %v", r, err)
				}
			}
		})
	}
}

func TestReader(t *testing.T) {
	data := slices.Concat(randomBytes(90, 3<<20), textBytes(91, 1<<20))
	cfg := testConfig("s2")
	cfg.MinSize, cfg.MaxSize = 16<<10, 256<<10
	dir := newDir(t)
	s := newStore(t, cfg, dir, dir)
	refs := write(t, s, data)
	if len(refs) < 10 {
		t.Fatalf("only %d chunks", len(refs))
	}

	r := s.NewReader(ctx, refs)
	if r.Size() != int64(len(data)) {
		t.Fatalf("Size() = %d, want %d", r.Size(), len(data))
	}
	if err := iotest.TestReader(r, data); err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	r = s.NewReader(ctx, refs)
	r.Seek(12345, io.SeekStart)
	if n, err := r.WriteTo(&buf); err != nil || n != int64(len(data)-12345) {
		t.Fatalf("WriteTo = %d, %v", n, err)
	}
	if !bytes.Equal(buf.Bytes(), data[12345:]) {
		t.Fatal("WriteTo wrote different bytes")
	}

	// Concurrent ReadAt at random offsets, many across chunk boundaries.
	var bounds []int64
	var end int64
	for _, ref := range refs[:len(refs)-1] {
		end += int64(ref.Size)
		bounds = append(bounds, end)
	}
	r = s.NewReader(ctx, refs)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(g), 5))
			var off int64
			for range 100 {
				n := rnd.IntN(1 << 20)
				if rnd.IntN(2) == 0 { // straddle a boundary
					off = bounds[rnd.IntN(len(bounds))] - int64(rnd.IntN(1000))
					n = max(n, 1000+rnd.IntN(300<<10))
				} else {
					off = rnd.Int64N(int64(len(data)) + 1)
				}
				p := make([]byte, n)
				m, err := r.ReadAt(p, off)
				want := data[off:min(int(off)+n, len(data))]
				if m != len(want) || !bytes.Equal(p[:m], want) {
					t.Errorf("ReadAt(%d bytes, %d) = %d, %v; want %d bytes", n, off, m, err, len(want))
					return
				}
				if (err == io.EOF) != (len(want) < n) {
					t.Errorf("ReadAt(%d bytes, %d): err %v", n, off, err)
					return
				}
			}
		})
	}
	wg.Wait()

	// Slice: the bytes without a copy within a chunk, nil across chunks.
	r = s.NewReader(ctx, refs)
	for _, tc := range []struct {
		off    int64
		n      int
		within bool
	}{
		{0, 100, true},
		{bounds[0] - 100, 100, true},
		{bounds[0] - 100, 101, false},
		{bounds[2], int(refs[3].Size), true},
		{bounds[len(bounds)-1] + 5, 10 << 20, true}, // the short end of the file
		{int64(len(data)) - 1, 1, true},
	} {
		b, done, err := r.Slice(tc.off, tc.n)
		if b != nil {
			defer done()
		}
		switch {
		case err != nil:
			t.Errorf("Slice(%d, %d): %v", tc.off, tc.n, err)
		case !tc.within && b != nil:
			t.Errorf("Slice(%d, %d) across chunks = %d bytes, want nil", tc.off, tc.n, len(b))
		case tc.within && !bytes.Equal(b, data[tc.off:min(tc.off+int64(tc.n), int64(len(data)))]):
			t.Errorf("Slice(%d, %d) = %d bytes, differs from the file", tc.off, tc.n, len(b))
		}
	}
	if b, _, err := r.Slice(int64(len(data)), 1); b != nil || err != io.EOF {
		t.Errorf("Slice at the end = %d bytes, %v; want nil, EOF", len(b), err)
	}

	if n, err := s.NewReader(ctx, nil).Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("empty file: Read = %d, %v; want 0, EOF", n, err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	be := chunk.NewMem()
	s := newStore(t, testConfig("s2"), be, be)
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			data := randomBytes(uint64(100+g), 3<<20+g*100000)
			if g%2 == 1 {
				data = textBytes(uint64(g), len(data))
			}
			w := s.NewWriter(ctx)
			defer w.Abort()
			if _, err := w.ReadFrom(bytes.NewReader(data)); err != nil {
				t.Error(err)
				return
			}
			if err := w.Close(); err != nil {
				t.Error(err)
				return
			}
			if got, err := io.ReadAll(s.NewReader(ctx, w.Refs())); err != nil || !bytes.Equal(got, data) {
				t.Errorf("writer %d: read back %d bytes, %v", g, len(got), err)
			}
		})
	}
	wg.Wait()
}

// failing fails every Put after the first few.
type failing struct {
	*chunk.Mem
	mu   sync.Mutex
	left int
}

var errDiskFull = errors.New("disk full")

func (f *failing) Put(ctx context.Context, id chunk.ID, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.left == 0 {
		return errDiskFull
	}
	f.left--
	return f.Mem.Put(ctx, id, data)
}

func TestWriterErrors(t *testing.T) {
	be := &failing{Mem: chunk.NewMem(), left: 2}
	s := newStore(t, testConfig("s2"), be, be)
	w := s.NewWriter(ctx)
	_, err := w.Write(randomBytes(110, 30<<20))
	if cerr := w.Close(); !errors.Is(cerr, errDiskFull) {
		t.Errorf("Close = %v (Write: %v), want %v", cerr, err, errDiskFull)
	}
	if w.Refs() != nil {
		t.Error("Refs after a failed Close is not nil")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}

	cctx, cancel := context.WithCancel(ctx)
	w = s.NewWriter(cctx)
	cancel()
	w.Write(randomBytes(111, 10<<20))
	if err := w.Close(); !errors.Is(err, context.Canceled) {
		t.Errorf("Close after cancel = %v, want context.Canceled", err)
	}

	w = newStore(t, testConfig("s2"), chunk.NewMem(), chunk.NewMem()).NewWriter(ctx)
	w.Write(randomBytes(112, 10<<20))
	w.Abort()
	if err := w.Close(); err == nil || w.Refs() != nil {
		t.Errorf("Close after Abort = %v, Refs %v; want an error and no refs", err, w.Refs())
	}
}

// TestDecode: a blob fetched from the backend directly decodes to the same
// plaintext Store.Get returns, and a damaged blob or a wrong size is
// ErrCorrupt, as through the Store.
func TestDecode(t *testing.T) {
	dir := newDir(t)
	s := newStore(t, testConfig("s2"), dir, dir)
	for _, data := range [][]byte{textBytes(80, 3<<20), randomBytes(81, 2<<20)} {
		for _, ref := range write(t, s, data) {
			blob, err := dir.Get(ctx, ref.ID)
			if err != nil {
				t.Fatal(err)
			}
			want, err := s.Get(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			got, err := chunk.Decode(ref, blob)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("Decode(%s): %d bytes, %v; want the %d Get returns", ref.ID, len(got), err, len(want))
			}
			if _, err := chunk.Decode(chunk.Ref{ID: ref.ID, Size: ref.Size - 1}, blob); !errors.Is(err, chunk.ErrCorrupt) {
				t.Errorf("Decode with a short size = %v, want ErrCorrupt", err)
			}
			blob[len(blob)/2] ^= 1
			if _, err := chunk.Decode(ref, blob); !errors.Is(err, chunk.ErrCorrupt) {
				t.Errorf("Decode of a damaged blob = %v, want ErrCorrupt", err)
			}
		}
	}
	if !chunk.IsLarge(128<<10, 128<<10) || chunk.IsLarge(128<<10-1, 128<<10) {
		t.Error("IsLarge: chunks of SmallLimit bytes and more are large, shorter ones small")
	}
}

// countingGetter counts fetches per chunk.
type countingGetter struct {
	g  chunk.Getter
	mu sync.Mutex
	n  map[chunk.ID]int
}

func (c *countingGetter) Get(ctx context.Context, ref chunk.Ref) ([]byte, error) {
	c.mu.Lock()
	c.n[ref.ID]++
	c.mu.Unlock()
	return c.g.Get(ctx, ref)
}

// TestReaderKeep: chunks prefetched with ReadAt stay decoded until they are
// read, however far ahead, when Keep says so; each is fetched once.
func TestReaderKeep(t *testing.T) {
	cfg := testConfig("none")
	cfg.MinSize, cfg.MaxSize = 16<<10, 64<<10
	s := newStore(t, cfg, chunk.NewMem(), chunk.NewMem())
	data := randomBytes(95, 1<<20)
	refs := write(t, s, data)
	const ahead = 6
	if len(refs) < 2*ahead {
		t.Fatalf("only %d chunks", len(refs))
	}
	cg := &countingGetter{g: s, n: map[chunk.ID]int{}}
	r := chunk.NewReaderFrom(ctx, cg, refs)
	r.Keep(ahead + 2)
	var start int64
	starts := make([]int64, len(refs))
	for i, ref := range refs {
		starts[i] = start
		start += int64(ref.Size)
	}
	b := make([]byte, 1)
	for i := range refs {
		// Like the mount's read-ahead: touch the chunks ahead, then read
		// this one.
		for j := i + 1; j <= i+ahead && j < len(refs); j++ {
			r.ReadAt(b, starts[j])
		}
		got := make([]byte, refs[i].Size)
		if _, err := r.ReadAt(got, starts[i]); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data[starts[i]:starts[i]+int64(refs[i].Size)]) {
			t.Fatalf("chunk %d differs", i)
		}
	}
	for i, ref := range refs {
		if n := cg.n[ref.ID]; n != 1 {
			t.Errorf("chunk %d fetched %d times, want once", i, n)
		}
	}
}

// blobOverhead is what storing a chunk raw adds: the codec byte and the
// seal.
const blobOverhead = 1 + 4

// sealed returns the stored form of plaintext raw under id, sealed.
func sealed(id chunk.ID, raw []byte) []byte {
	tab := crc32.MakeTable(crc32.Castagnoli)
	sum := crc32.Update(crc32.Checksum(id[:], tab), tab, raw)
	return binary.LittleEndian.AppendUint32(append([]byte{0x80}, raw...), sum)
}

// remote is a Backend that does not say it is Local.
type remote struct{ chunk.Backend }

// TestSeal: blobs from a Local backend are checked by their seal, which
// catches damage and a blob under another chunk's name; blobs from
// elsewhere, blobs from before seals, and fsck are checked by the hash.
func TestSeal(t *testing.T) {
	dir := newDir(t)
	s := newStore(t, testConfig("none"), dir, dir)
	const size = 300 << 10 // one chunk each
	a, b := write(t, s, randomBytes(90, size))[0], write(t, s, randomBytes(91, size))[0]
	blob, err := os.ReadFile(dir.Path(a.ID))
	if err != nil {
		t.Fatal(err)
	}
	if want := size + blobOverhead; len(blob) != want || blob[0] != 0x80 {
		t.Fatalf("stored blob: %d bytes, codec byte %#x; want %d bytes, 0x80 (raw, sealed)", len(blob), blob[0], want)
	}
	if !bytes.Equal(blob, sealed(a.ID, randomBytes(90, size))) {
		t.Fatal("the stored blob is not the codec byte, the plaintext and the CRC-32C of the ID and the plaintext")
	}
	writeBlob := func(id chunk.ID, blob []byte) {
		t.Helper()
		if err := os.WriteFile(dir.Path(id), blob, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	corrupt := func(what string, ref chunk.Ref, be chunk.Backend) {
		t.Helper()
		st := newStore(t, testConfig("none"), be, be)
		if _, err := st.Get(ctx, ref); !errors.Is(err, chunk.ErrCorrupt) {
			t.Errorf("%s: Get = %v, want ErrCorrupt", what, err)
		}
	}

	// A sealed blob under another chunk's name, same size.
	writeBlob(b.ID, blob)
	corrupt("a's blob under b's name", b, dir)
	corrupt("a's blob under b's name, not Local", b, remote{dir})

	// A blob whose seal matches altered plaintext: only hashing sees it.
	forged := randomBytes(90, size)
	forged[7] ^= 1
	writeBlob(b.ID, sealed(b.ID, forged))
	corrupt("forged blob with a valid seal, not Local", b, remote{dir})
	// A Local backend's blobs are not hashed on reads: that is the point.
	if got, err := s.Get(ctx, b); err != nil || !bytes.Equal(got, forged) {
		t.Errorf("forged blob with a valid seal, Local: %d bytes, %v; want the forged bytes, nil", len(got), err)
	}

	// A blob from before seals: the hash checks it on every read.
	writeBlob(a.ID, append([]byte{0}, randomBytes(90, size)...))
	if got, err := s.Get(ctx, a); err != nil || !bytes.Equal(got, randomBytes(90, size)) {
		t.Fatalf("unsealed blob: %d bytes, %v", len(got), err)
	}
	writeBlob(a.ID, append([]byte{0}, forged...))
	corrupt("unsealed blob, damaged", a, dir)

	// fsck hashes everything.
	seen := map[chunk.ID]error{}
	if err := s.Verify(ctx, func(id chunk.ID, err error) { seen[id] = err }); err != nil {
		t.Fatal(err)
	}
	for _, id := range []chunk.ID{a.ID, b.ID} {
		if !errors.Is(seen[id], chunk.ErrCorrupt) {
			t.Errorf("Verify(%s) = %v, want ErrCorrupt", id, seen[id])
		}
	}
}
