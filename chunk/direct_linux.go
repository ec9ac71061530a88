package chunk

import (
	"errors"
	"io/fs"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// directOpen and directRead are unix.Open and unix.Read, replaced by tests.
var (
	directOpen = unix.Open
	directRead = unix.Read
)

// directAlign is the alignment O_DIRECT wants of buffers, offsets and
// lengths: a page, which is at least any device's logical block.
const directAlign = 4096

// readDirect reads the whole file at path with O_DIRECT, from the disk
// into the returned buffer without a copy through the page cache. It
// returns errNoDirect if the file system refuses O_DIRECT (tmpfs before
// Linux 6.6, for one).
//
// Given a lease, it reads into a reused staging buffer backed by
// transparent huge pages, if one is to be had, and sets the lease's
// release. The disk's DMA wants physically contiguous memory: into the 4
// KiB pages of the Go heap, the block layer cuts a read into requests of
// at most max_segments pages (254 on virtio, about 1 MiB), so a 1.5 MiB
// chunk takes two or three and the device sees small requests; into huge
// pages it is one. Four readers of this machine's virtual disk get 1.3
// GB/s into heap pages and 2.0 GB/s into huge pages. Copying out of the
// staging buffer costs more than that gains, hence the lease.
func readDirect(path string, l *lease) ([]byte, error) {
	fd, err := directOpen(path, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EINVAL) {
		return nil, errNoDirect
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	size := int(st.Size)
	n := (size + directAlign - 1) &^ (directAlign - 1)
	if l != nil {
		if sb := getStage(n); sb != nil {
			b, err := readFull(fd, path, sb.buf[:n], size)
			if err != nil {
				putStage(sb)
				return nil, err
			}
			l.release = func() { putStage(sb) }
			return b, nil
		}
	}
	return readFull(fd, path, alignedBuf(n), size)
}

// readFull reads the size bytes of the file open with O_DIRECT at fd into
// buf, aligned and at least size rounded up to directAlign long.
func readFull(fd int, path string, buf []byte, size int) ([]byte, error) {
	n := 0
	for n < size {
		m, err := directRead(fd, buf[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EINVAL) {
			return nil, errNoDirect // offsets are aligned: the file system's answer
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			break // shrank since the stat; the seal or hash will tell
		}
		if n += m; n < size && n%directAlign != 0 {
			return nil, errShortDirect
		}
	}
	return buf[:n:n], nil
}

// Staging buffers for leased O_DIRECT reads come in sizes of 1 to
// stageClasses huge pages, aligned to a huge page and advised to use huge
// pages. That is best effort: without transparent huge pages, or with none
// free, they are ordinary pages and reads are as fast as into the Go heap.
// Up to stageKeep idle buffers of each size are kept for the next reads;
// at most stageBudget bytes are mapped at once, past which reads use the
// Go heap, so a lease never released costs a bounded amount.
const (
	hugePage     = 2 << 20
	stageClasses = 5 // up to 10 MiB: a blob of the default 8 MiB MaxSize, even compressed
	stageKeep    = 8
	stageBudget  = 512 << 20
)

type stage struct {
	mem   []byte // the whole mapping
	buf   []byte // its huge-page-aligned class*hugePage bytes
	class int
}

var stages struct {
	mu     sync.Mutex
	idle   [stageClasses + 1][]*stage
	mapped int // bytes
}

// getStage returns a staging buffer of at least n bytes, or nil if n is
// too large, the budget is spent or mapping fails.
func getStage(n int) *stage {
	class := (n + hugePage - 1) / hugePage
	if class < 1 || class > stageClasses {
		return nil
	}
	size := class * hugePage
	stages.mu.Lock()
	if idle := stages.idle[class]; len(idle) > 0 {
		sb := idle[len(idle)-1]
		stages.idle[class] = idle[:len(idle)-1]
		stages.mu.Unlock()
		return sb
	}
	if stages.mapped+size+hugePage > stageBudget {
		stages.mu.Unlock()
		return nil
	}
	stages.mapped += size + hugePage
	stages.mu.Unlock()
	mem, err := unix.Mmap(-1, 0, size+hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		stages.mu.Lock()
		stages.mapped -= size + hugePage
		stages.mu.Unlock()
		return nil
	}
	skip := int(-uintptr(unsafe.Pointer(unsafe.SliceData(mem))) & (hugePage - 1))
	sb := &stage{mem: mem, buf: mem[skip : skip+size : skip+size], class: class}
	_ = unix.Madvise(sb.buf, unix.MADV_HUGEPAGE) // EINVAL without THP: ordinary pages
	return sb
}

// putStage keeps sb for the next read, or unmaps it if enough of its size
// are kept.
func putStage(sb *stage) {
	stages.mu.Lock()
	if len(stages.idle[sb.class]) < stageKeep {
		stages.idle[sb.class] = append(stages.idle[sb.class], sb)
		stages.mu.Unlock()
		return
	}
	stages.mapped -= len(sb.mem)
	stages.mu.Unlock()
	_ = unix.Munmap(sb.mem)
}

// alignedBuf returns n bytes starting at a multiple of directAlign.
func alignedBuf(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := int(-uintptr(unsafe.Pointer(unsafe.SliceData(b))) & (directAlign - 1))
	return b[skip : skip+n : skip+n]
}
