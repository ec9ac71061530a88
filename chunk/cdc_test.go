package chunk

import (
	"math/rand/v2"
	"testing"

	"github.com/restic/chunker"
)

// fingerprint computes the Rabin fingerprint of w from scratch.
func fingerprint(w []byte, pol chunker.Pol) uint64 {
	var h chunker.Pol
	for _, b := range w {
		h = (h<<8 | chunker.Pol(b)).Mod(pol)
	}
	return uint64(h)
}

// TestScan checks the four-lane scan against fingerprints computed from
// scratch, on data with runs of zeros (whose windows are candidates) placed
// in various lanes.
func TestScan(t *testing.T) {
	const pol = chunker.Pol(0x3DA3358B4DC173)
	r := rabinFor(pol)
	rnd := rand.New(rand.NewPCG(1, 1))
	b := make([]byte, 200<<10)
	for i := range b {
		b[i] = byte(rnd.Uint32())
	}
	for range 12 {
		at := rnd.IntN(len(b) - 100)
		clear(b[at : at+window+rnd.IntN(3)])
	}
	hits := 0
	for range 40 {
		from := window + rnd.IntN(len(b)-window)
		to := min(len(b), from+rnd.IntN(4*scanAhead))
		want := -1
		for l := from; l <= to; l++ {
			if fingerprint(b[l-window:l], pol)&splitMask == 0 {
				want = l
				break
			}
		}
		if got := r.scan(b, from, to); got != want {
			t.Fatalf("scan(%d, %d) = %d, want %d", from, to, got, want)
		}
		if want >= 0 {
			hits++
		}
	}
	if hits < 10 {
		t.Errorf("only %d of 40 scans found a cut", hits)
	}
}

// BenchmarkScan measures the chunker alone on random data.
func BenchmarkScan(b *testing.B) {
	r := rabinFor(chunker.Pol(0x3DA3358B4DC173))
	data := make([]byte, 64<<20)
	rand.NewChaCha8([32]byte{}).Read(data)
	b.SetBytes(int64(len(data)))
	for range b.N {
		for off := 0; off+window < len(data); {
			n := r.scan(data[off:], window, min(len(data)-off, 8<<20))
			if n < 0 {
				break
			}
			off += n
		}
	}
}
