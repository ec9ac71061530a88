package mount

import "testing"

// TestKeepChunks: a handle keeps the most chunks any stretch of the
// kernel's read-ahead window touches, plus those being read and fetched
// ahead, but never more than the file has.
func TestKeepChunks(t *testing.T) {
	refs := func(sizes ...uint32) []int64 { // the chunks' ends
		var ends []int64
		var end int64
		for _, s := range sizes {
			end += int64(s)
			ends = append(ends, end)
		}
		return ends
	}
	const mib = 1 << 20
	many := make([]uint32, 100)
	for i := range many {
		many[i] = 2 * mib
	}
	many[50] = mib / 2
	many[99] = 10 // the last chunk does not count
	for _, tc := range []struct {
		refs        []int64
		raKB, ahead int
		want        int
	}{
		{refs(many...), 4096, 3, 2 + 3 + 4}, // the end of 48 or 49, all of 50, 51 and some of 52
		{refs(many[:50]...), 4096, 3, 2 + 3 + 3},
		{refs(many[:50]...), -1, 3, 2 + 3},
		{refs(mib, mib, 1), 4096, 3, 3},
		{refs(5), 4096, 3, 1},
		{nil, 4096, 3, 1},
	} {
		if got := keepChunks(tc.refs, tc.raKB, tc.ahead); got != tc.want {
			t.Errorf("keepChunks(%d refs, %d KiB, %d ahead) = %d, want %d", len(tc.refs), tc.raKB, tc.ahead, got, tc.want)
		}
	}
}
