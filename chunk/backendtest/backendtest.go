// Package backendtest is the conformance suite for chunk.Backend: every
// implementation's test calls Run once.
package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/strata-data/strata/chunk"
)

// Run tests the Backend that newBackend returns. newBackend is called once
// per subtest and must return an empty backend.
func Run(t *testing.T, newBackend func(t *testing.T) chunk.Backend) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, chunk.Backend)
	}{
		{"RoundTrip", testRoundTrip},
		{"Missing", testMissing},
		{"IdempotentPut", testIdempotentPut},
		{"Delete", testDelete},
		{"List", testList},
		{"Concurrent", testConcurrent},
		{"Large", testLarge},
		{"ModTime", testModTime},
		{"Sync", testSync},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newBackend(t)) })
	}
}

var ctx = context.Background()

// blob returns n pseudo-random bytes and an ID for them.
func blob(seed uint64, n int) (chunk.ID, []byte) {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), 1})
	r.Read(b)
	return chunk.Sum(b), b
}

func put(t *testing.T, be chunk.Backend, id chunk.ID, data []byte) {
	t.Helper()
	if err := be.Put(ctx, id, data); err != nil {
		t.Fatalf("Put(%s): %v", id, err)
	}
}

func mustGet(t *testing.T, be chunk.Backend, id chunk.ID, want []byte) {
	t.Helper()
	got, err := be.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%s): got %d bytes, want %d (contents differ)", id, len(got), len(want))
	}
}

func testRoundTrip(t *testing.T, be chunk.Backend) {
	for i, n := range []int{0, 1, 100, 64 << 10} {
		id, data := blob(uint64(i), n)
		put(t, be, id, data)
		mustGet(t, be, id, data)
		info, err := be.Stat(ctx, id)
		if err != nil {
			t.Fatalf("Stat(%s): %v", id, err)
		}
		if info.Size != int64(n) {
			t.Errorf("Stat(%s).Size = %d, want %d", id, info.Size, n)
		}
		if info.ModTime.IsZero() {
			t.Errorf("Stat(%s).ModTime is zero", id)
		}
	}

	// Put must not retain data, and Get's result belongs to the caller.
	id, data := blob(99, 1000)
	orig := bytes.Clone(data)
	put(t, be, id, data)
	data[0] ^= 0xff
	got, _ := be.Get(ctx, id)
	if !bytes.Equal(got, orig) {
		t.Fatal("blob changed when the caller modified the slice it put")
	}
	got[1] ^= 0xff
	mustGet(t, be, id, orig)
}

func testMissing(t *testing.T, be chunk.Backend) {
	id, _ := blob(1, 10)
	if _, err := be.Get(ctx, id); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get(missing) = %v, want fs.ErrNotExist", err)
	}
	if _, err := be.Stat(ctx, id); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(missing) = %v, want fs.ErrNotExist", err)
	}
	if tb, ok := be.(chunk.Toucher); ok {
		if err := tb.Touch(ctx, id); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Touch(missing) = %v, want fs.ErrNotExist", err)
		}
	}
}

func testIdempotentPut(t *testing.T, be chunk.Backend) {
	id, data := blob(2, 5000)
	put(t, be, id, data)
	put(t, be, id, data)
	mustGet(t, be, id, data)
	n := 0
	if err := be.List(ctx, func(chunk.ID, chunk.Info) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("List after putting one id twice saw %d blobs, want 1", n)
	}
}

func testDelete(t *testing.T, be chunk.Backend) {
	id, data := blob(3, 100)
	if err := be.Delete(ctx, id); err != nil {
		t.Errorf("Delete(missing) = %v, want nil", err)
	}
	put(t, be, id, data)
	if err := be.Delete(ctx, id); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := be.Get(ctx, id); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get after Delete = %v, want fs.ErrNotExist", err)
	}
	if err := be.Delete(ctx, id); err != nil {
		t.Errorf("second Delete = %v, want nil", err)
	}
}

func testList(t *testing.T, be chunk.Backend) {
	want := make(map[chunk.ID]int64)
	for i := range 50 {
		id, data := blob(uint64(100+i), i*37)
		put(t, be, id, data)
		want[id] = int64(len(data))
	}
	gone, data := blob(1000, 10)
	put(t, be, gone, data)
	if err := be.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}

	got := make(map[chunk.ID]int64)
	err := be.List(ctx, func(id chunk.ID, info chunk.Info) error {
		if _, dup := got[id]; dup {
			t.Errorf("List: %s twice", id)
		}
		got[id] = info.Size
		return nil
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for id, size := range want {
		if g, ok := got[id]; !ok {
			t.Errorf("List missed %s", id)
		} else if g != size {
			t.Errorf("List: %s has size %d, want %d", id, g, size)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("List: unexpected %s", id)
		}
	}

	stop := errors.New("stop")
	calls := 0
	err = be.List(ctx, func(chunk.ID, chunk.Info) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("List with failing fn: err %v after %d calls, want %v after 1", err, calls, stop)
	}
}

// testConcurrent puts and gets the same and different ids from many
// goroutines. A Get must see nothing or the whole blob.
func testConcurrent(t *testing.T, be chunk.Backend) {
	shared, sharedData := blob(4, 256<<10)
	var wg sync.WaitGroup
	errc := make(chan error, 100)
	for g := range 8 {
		wg.Go(func() {
			id, data := blob(uint64(200+g), 32<<10+g)
			for range 10 {
				if err := be.Put(ctx, shared, sharedData); err != nil {
					errc <- err
					return
				}
				if err := be.Put(ctx, id, data); err != nil {
					errc <- err
					return
				}
				for _, c := range []struct {
					id   chunk.ID
					data []byte
				}{{shared, sharedData}, {id, data}} {
					got, err := be.Get(ctx, c.id)
					if err != nil {
						errc <- err
						return
					}
					if !bytes.Equal(got, c.data) {
						errc <- fmt.Errorf("Get(%s): %d bytes, want %d (contents differ)", c.id, len(got), len(c.data))
						return
					}
				}
			}
		})
		wg.Go(func() { // a reader racing the first Put
			for range 20 {
				got, err := be.Get(ctx, shared)
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					errc <- err
					return
				}
				if !bytes.Equal(got, sharedData) {
					errc <- fmt.Errorf("concurrent Get saw %d of %d bytes", len(got), len(sharedData))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

func testLarge(t *testing.T, be chunk.Backend) {
	id, data := blob(5, 9<<20)
	put(t, be, id, data)
	mustGet(t, be, id, data)
	info, err := be.Stat(ctx, id)
	if err != nil || info.Size != int64(len(data)) {
		t.Fatalf("Stat = %+v, %v; want size %d", info, err, len(data))
	}
}

// testModTime checks that putting again and touching move ModTime forward.
func testModTime(t *testing.T, be chunk.Backend) {
	id, data := blob(6, 100)
	put(t, be, id, data)
	mod := func() time.Time {
		t.Helper()
		info, err := be.Stat(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return info.ModTime
	}
	t0 := mod()
	time.Sleep(20 * time.Millisecond) // file systems keep coarse times
	put(t, be, id, data)
	t1 := mod()
	if !t1.After(t0) {
		t.Errorf("ModTime after second Put = %v, want after %v", t1, t0)
	}
	tb, ok := be.(chunk.Toucher)
	if !ok {
		return
	}
	time.Sleep(20 * time.Millisecond)
	if err := tb.Touch(ctx, id); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	if t2 := mod(); !t2.After(t1) {
		t.Errorf("ModTime after Touch = %v, want after %v", t2, t1)
	}
	mustGet(t, be, id, data)
}

func testSync(t *testing.T, be chunk.Backend) {
	s, ok := be.(chunk.Syncer)
	if !ok {
		t.Skip("not a Syncer")
	}
	id, data := blob(7, 1000)
	put(t, be, id, data)
	if err := s.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	mustGet(t, be, id, data)
}
