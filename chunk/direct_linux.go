package chunk

import (
	"errors"
	"io/fs"
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
// returns errNoDirect if the file system refuses O_DIRECT (tmpfs, for one).
func readDirect(path string) ([]byte, error) {
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
	buf := alignedBuf((size + directAlign - 1) &^ (directAlign - 1))
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
	return buf[:n], nil
}

// alignedBuf returns n bytes starting at a multiple of directAlign.
func alignedBuf(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := int(-uintptr(unsafe.Pointer(unsafe.SliceData(b))) & (directAlign - 1))
	return b[skip : skip+n : skip+n]
}
