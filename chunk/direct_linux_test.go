package chunk

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestDirDirect: Dir reads chunk files of any size with O_DIRECT for a
// sequential read, and buffered for any other read, where the file system
// refuses O_DIRECT (at open or at the first read: remembered) or a read
// comes back short (not remembered).
func TestDirDirect(t *testing.T) {
	ctx := sequential(context.Background())
	blobs := map[ID][]byte{}
	for _, n := range []int{1, 4095, 4096, 4097, 1<<20 + 3, 3 << 20} {
		b := make([]byte, n)
		rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)}).Read(b)
		blobs[Sum(b)] = b
	}
	newDir := func(t *testing.T) *Dir {
		d, err := NewDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		for id, b := range blobs {
			if err := d.Put(ctx, id, b); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	readAll := func(t *testing.T, ctx context.Context, d *Dir) {
		t.Helper()
		for id, want := range blobs {
			got, err := d.Get(ctx, id)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("Get of %d bytes: %d bytes, %v", len(want), len(got), err)
			}
		}
		if _, err := d.Get(ctx, Sum([]byte("absent"))); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Get of a missing blob: %v, want fs.ErrNotExist", err)
		}
	}
	hook := func(t *testing.T, open func(string, int, uint32) (int, error), read func(int, []byte) (int, error)) {
		oldOpen, oldRead := directOpen, directRead
		t.Cleanup(func() { directOpen, directRead = oldOpen, oldRead })
		directOpen, directRead = open, read
	}

	t.Run("direct", func(t *testing.T) {
		opens := 0
		hook(t, func(p string, flags int, mode uint32) (int, error) {
			if flags&unix.O_DIRECT != 0 {
				opens++
			}
			return unix.Open(p, flags, mode)
		}, unix.Read)
		d := newDir(t)
		readAll(t, context.Background(), d)
		if opens != 0 {
			t.Fatalf("%d O_DIRECT opens for reads that are not sequential, want none", opens)
		}
		readAll(t, ctx, d)
		if opens == 0 {
			t.Fatal("no O_DIRECT open for a sequential read")
		}
	})
	t.Run("refused at open", func(t *testing.T) {
		opens := 0
		hook(t, func(string, int, uint32) (int, error) { opens++; return -1, unix.EINVAL }, unix.Read)
		d := newDir(t)
		readAll(t, ctx, d)
		if !d.buffered.Load() || opens != 1 {
			t.Fatalf("after EINVAL at open: buffered %v after %d O_DIRECT opens, want true after 1", d.buffered.Load(), opens)
		}
	})
	t.Run("refused at read", func(t *testing.T) {
		hook(t, unix.Open, func(int, []byte) (int, error) { return 0, unix.EINVAL })
		d := newDir(t)
		readAll(t, ctx, d)
		if !d.buffered.Load() {
			t.Fatal("EINVAL at the first read not remembered")
		}
	})
	t.Run("short read", func(t *testing.T) {
		hook(t, unix.Open, func(fd int, p []byte) (int, error) {
			m, err := unix.Read(fd, p)
			return min(m, 1000), err // as if it had stopped at an unaligned length
		})
		d := newDir(t)
		readAll(t, ctx, d)
		if d.buffered.Load() {
			t.Fatal("a short read made the Dir read buffered for good")
		}
	})
}

// TestDirLease: a sequential Get with a lease reads a blob that fits a
// staging buffer into one and sets the lease's release, which gives the
// buffer back for the next read; a larger blob, or a Get without a lease,
// gets a buffer of its own.
func TestDirLease(t *testing.T) {
	ctx := sequential(context.Background())
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	blob := func(n int, seed byte) (ID, []byte) {
		b := make([]byte, n)
		rand.NewChaCha8([32]byte{seed}).Read(b)
		id := Sum(b)
		if err := d.Put(ctx, id, b); err != nil {
			t.Fatal(err)
		}
		return id, b
	}
	small1, want1 := blob(1<<20+5, 1)
	small2, want2 := blob(1<<20+7, 2)
	big, wantBig := blob(stageClasses*hugePage+1, 3)

	lctx, l := withLease(ctx)
	got1, err := d.Get(lctx, small1)
	if err != nil || !bytes.Equal(got1, want1) {
		t.Fatalf("leased Get: %d bytes, %v", len(got1), err)
	}
	if l.release == nil {
		t.Fatal("no staging buffer: mapping one failed")
	}
	p1 := unsafe.SliceData(got1)
	l.drop()
	if l.release != nil {
		t.Fatal("drop left the release set")
	}
	lctx, l = withLease(ctx)
	got2, err := d.Get(lctx, small2)
	if err != nil || !bytes.Equal(got2, want2) {
		t.Fatalf("second leased Get: %d bytes, %v", len(got2), err)
	}
	if unsafe.SliceData(got2) != p1 {
		t.Error("the released staging buffer was not reused")
	}
	l.drop()

	lctx, l = withLease(ctx)
	if got, err := d.Get(lctx, big); err != nil || !bytes.Equal(got, wantBig) || l.release != nil {
		t.Fatalf("leased Get of %d bytes: %d bytes, %v, leased %v; want its own buffer", len(wantBig), len(got), err, l.release != nil)
	}
	if got, err := d.Get(ctx, small1); err != nil || !bytes.Equal(got, want1) || unsafe.SliceData(got) == p1 {
		t.Fatalf("Get without a lease: %d bytes, %v, in the staging buffer %v", len(got), err, unsafe.SliceData(got) == p1)
	}
}
