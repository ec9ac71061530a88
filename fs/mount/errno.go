package mount

import (
	"context"
	"errors"
	"io/fs"
	"syscall"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/meta"
)

// errno translates an error of operation op into the errno the kernel
// sees. It is the one place where this happens:
//
//	syscall.Errno (ENOSPC, ENOTEMPTY, ...)   itself
//	fs.ErrNotExist                           ENOENT
//	fs.ErrExist                              EEXIST
//	fs.ErrPermission (read-only view)        EROFS
//	meta.ErrIsDir / meta.ErrNotDir           EISDIR / ENOTDIR
//	meta.ErrAmbiguous                        EINVAL, logged with the matches
//	fs.ErrInvalid (bad name or ref)          EINVAL
//	meta.ErrConflict                         EBUSY
//	fs.ErrClosed (unmounting)                ESHUTDOWN
//	context.Canceled (interrupted)           EINTR
//	api.ErrUnauthorized (remote mount)       EACCES, logged
//	anything else (corrupt chunk, I/O,       EIO, logged
//	  daemon unreachable)
//
// An ambiguous commit prefix is EINVAL rather than ENOENT because the name
// does exist, more than once; the log line names the matching commits so
// `strata log` can tell them apart.
func (s *Server) errno(op string, err error) syscall.Errno {
	var en syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.As(err, &en):
		return en
	case errors.Is(err, fs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, fs.ErrExist):
		return syscall.EEXIST
	case errors.Is(err, fs.ErrPermission):
		return syscall.EROFS
	case errors.Is(err, meta.ErrIsDir):
		return syscall.EISDIR
	case errors.Is(err, meta.ErrNotDir):
		return syscall.ENOTDIR
	case errors.Is(err, meta.ErrAmbiguous):
		s.log.Info("pfs: "+op, "err", err)
		return syscall.EINVAL
	case errors.Is(err, fs.ErrInvalid):
		return syscall.EINVAL
	case errors.Is(err, meta.ErrConflict):
		s.log.Info("pfs: "+op, "err", err)
		return syscall.EBUSY
	case errors.Is(err, fs.ErrClosed):
		return syscall.ESHUTDOWN
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	case errors.Is(err, api.ErrUnauthorized):
		s.log.Error("pfs: "+op+": the daemon refused the token", "err", err)
		return syscall.EACCES
	case errors.Is(err, chunk.ErrCorrupt):
		s.log.Error("pfs: "+op+": corrupt data; run 'strata fsck'", "err", err)
		return syscall.EIO
	}
	s.log.Error("pfs: "+op, "err", err)
	return syscall.EIO
}
