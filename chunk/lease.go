package chunk

import (
	"context"
	"unsafe"
)

// A lease lets a Get return a chunk in a reused buffer: the backend that
// reads the blob into one (Dir, for a sequential read) sets release, and
// whoever ends up holding the plaintext calls it once no one reads the
// bytes any more. Only a Reader in Reuse mode asks for one; every other
// Get gets buffers of its own, left to the garbage collector.
type lease struct {
	release func()
}

type leaseKey struct{}

// withLease returns ctx carrying a new lease for one Get.
func withLease(ctx context.Context) (context.Context, *lease) {
	l := &lease{}
	return context.WithValue(ctx, leaseKey{}, l), l
}

// leaseOf returns the lease ctx carries, or nil.
func leaseOf(ctx context.Context) *lease {
	l, _ := ctx.Value(leaseKey{}).(*lease)
	return l
}

// drop releases what l holds, if anything. It is safe on a nil lease.
func (l *lease) drop() {
	if l != nil && l.release != nil {
		l.release()
		l.release = nil
	}
}

// keepIfAliased drops l unless data lies within blob: a codec that
// decoded into a buffer of its own has no use for the leased one.
func (l *lease) keepIfAliased(data, blob []byte) {
	if l == nil || l.release == nil {
		return
	}
	if len(data) == 0 || cap(blob) == 0 {
		l.drop()
		return
	}
	d := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	b := uintptr(unsafe.Pointer(unsafe.SliceData(blob)))
	if d < b || d >= b+uintptr(cap(blob)) {
		l.drop()
	}
}
