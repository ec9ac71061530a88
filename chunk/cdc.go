package chunk

import (
	"sync"

	"github.com/restic/chunker"
)

// Content-defined cut points, identical to those of restic/chunker with the
// same polynomial and size bounds, found faster.
//
// restic's rolling hash is a Rabin fingerprint of the last 64 bytes. After
// each cut it skips MinSize-64 bytes unhashed, so the hash is a pure
// function of the window from the first eligible cut on: a chunk ends after
// L bytes at the first L >= MinSize where the fingerprint of bytes [L-64, L)
// has its low 20 bits zero, or at L = MaxSize. Whether L is a candidate thus
// depends only on the data, not on where the scan started, which lets the
// Writer scan its buffer whenever it likes and lets scan hash four stretches
// at once. One fingerprint is a chain of dependent table loads; four
// independent chains keep the core busy and run about three times faster.

const (
	window    = 64        // bytes in the rolling hash
	splitMask = 1<<20 - 1 // restic's: a candidate every ~1 MiB
	lane      = 4 << 10   // candidates per stretch in a four-way scan
	scanAhead = 4 * lane  // the Writer scans once this much is new
)

// rabin holds restic's lookup tables for one polynomial.
type rabin struct {
	out   [256]uint64 // fingerprint of byte b followed by 63 zeros: XOR slides b out
	mod   [256]uint64 // reduction by the top 8 bits after a shift
	shift uint        // degree-8
}

var rabins sync.Map // chunker.Pol → *rabin

func rabinFor(pol chunker.Pol) *rabin {
	if r, ok := rabins.Load(pol); ok {
		return r.(*rabin)
	}
	k := pol.Deg()
	r := &rabin{shift: uint(k - 8)}
	for b := range 256 {
		h := chunker.Pol(b)
		for range window - 1 {
			h = (h << 8).Mod(pol)
		}
		r.out[b] = uint64(h)
		r.mod[b] = uint64(chunker.Pol(b<<k).Mod(pol) | chunker.Pol(b)<<k)
	}
	rr, _ := rabins.LoadOrStore(pol, r)
	return rr.(*rabin)
}

// scan returns the first L in [from, to] for which the window b[L-64:L] is a
// cut candidate, or -1. It needs window <= from and to <= len(b).
func (r *rabin) scan(b []byte, from, to int) int {
	out, mod, shift := &r.out, &r.mod, r.shift&63
	for ; from+4*lane-1 <= to; from += 4 * lane {
		// Lane j checks L in [from+j*lane, from+(j+1)*lane).
		w0 := b[from-window : from+lane-1]
		w1 := b[from+lane-window : from+2*lane-1]
		w2 := b[from+2*lane-window : from+3*lane-1]
		w3 := b[from+3*lane-window : from+4*lane-1]
		var d0, d1, d2, d3 uint64
		for k := range window {
			d0 = (d0<<8 | uint64(w0[k])) ^ mod[byte(d0>>shift)]
			d1 = (d1<<8 | uint64(w1[k])) ^ mod[byte(d1>>shift)]
			d2 = (d2<<8 | uint64(w2[k])) ^ mod[byte(d2>>shift)]
			d3 = (d3<<8 | uint64(w3[k])) ^ mod[byte(d3>>shift)]
		}
		// hit[j] is one past the index in w_j of the first candidate.
		var hit [4]int
		if d0&splitMask == 0 {
			hit[0] = window
		}
		if d1&splitMask == 0 {
			hit[1] = window
		}
		if d2&splitMask == 0 {
			hit[2] = window
		}
		if d3&splitMask == 0 {
			hit[3] = window
		}
		for k := window; k < len(w0); k++ {
			d0 ^= out[w0[k-window]]
			d0 = (d0<<8 | uint64(w0[k])) ^ mod[byte(d0>>shift)]
			d1 ^= out[w1[k-window]]
			d1 = (d1<<8 | uint64(w1[k])) ^ mod[byte(d1>>shift)]
			d2 ^= out[w2[k-window]]
			d2 = (d2<<8 | uint64(w2[k])) ^ mod[byte(d2>>shift)]
			d3 ^= out[w3[k-window]]
			d3 = (d3<<8 | uint64(w3[k])) ^ mod[byte(d3>>shift)]
			if d0&splitMask == 0 && hit[0] == 0 {
				hit[0] = k + 1
			}
			if d1&splitMask == 0 && hit[1] == 0 {
				hit[1] = k + 1
			}
			if d2&splitMask == 0 && hit[2] == 0 {
				hit[2] = k + 1
			}
			if d3&splitMask == 0 && hit[3] == 0 {
				hit[3] = k + 1
			}
		}
		for j, h := range hit {
			if h > 0 {
				return from + j*lane - window + h
			}
		}
	}
	if from > to {
		return -1
	}
	w := b[from-window : to]
	var d uint64
	for _, c := range w[:window] {
		d = (d<<8 | uint64(c)) ^ mod[byte(d>>shift)]
	}
	if d&splitMask == 0 {
		return from
	}
	for k := window; k < len(w); k++ {
		d ^= out[w[k-window]]
		d = (d<<8 | uint64(w[k])) ^ mod[byte(d>>shift)]
		if d&splitMask == 0 {
			return from - window + k + 1
		}
	}
	return -1
}
