package api

import (
	"context"
	"errors"
	"net/http"
	"syscall"

	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/store"
)

// Error codes on the wire, each tied to one sentinel.
var codes = []struct {
	code   string
	status int
	err    error
}{
	{"not_found", http.StatusNotFound, meta.ErrNotExist},
	{"exists", http.StatusConflict, meta.ErrExist},
	{"conflict", http.StatusConflict, meta.ErrConflict},
	{"ambiguous", http.StatusBadRequest, meta.ErrAmbiguous},
	{"not_dir", http.StatusBadRequest, meta.ErrNotDir},
	{"is_dir", http.StatusBadRequest, meta.ErrIsDir},
	{"invalid", http.StatusBadRequest, meta.ErrInvalid},
	{"unauthorized", http.StatusUnauthorized, ErrUnauthorized},
	{"corrupt", http.StatusInternalServerError, chunk.ErrCorrupt},
	{"stale", http.StatusPreconditionFailed, store.ErrStale},
	{"unavailable", http.StatusServiceUnavailable, ErrUnavailable},
}

// ErrUnauthorized: a TCP request without the right bearer token.
var ErrUnauthorized = errors.New("unauthorized")

// ErrUnavailable: a pipeline route on a daemon that runs no pipelines.
var ErrUnavailable = errors.New("pipelines are off: the daemon was started with --no-pipelines")

// classify maps an error to its code and HTTP status.
func classify(err error) (string, int) {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout", http.StatusGatewayTimeout
	}
	if errors.Is(err, syscall.ENOSPC) {
		return "no_space", http.StatusInsufficientStorage
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code, c.status
		}
	}
	return "internal", http.StatusInternalServerError
}

// sentinel returns the error for a wire code (nil if unknown).
func sentinel(code string) error {
	for _, c := range codes {
		if c.code == code {
			return c.err
		}
	}
	return nil
}

// remoteError is an error returned by the daemon.
type remoteError struct {
	msg  string
	kind error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }
