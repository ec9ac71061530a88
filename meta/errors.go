package meta

import (
	"errors"
	"io/fs"
)

// Errors wrap these sentinels (test them with errors.Is). Where io/fs has
// a fitting sentinel it is used, so every edge (HTTP, errno, exit code) can
// translate them in one place.
var (
	ErrNotExist = fs.ErrNotExist
	ErrExist    = fs.ErrExist
	ErrInvalid  = fs.ErrInvalid
	// ErrConflict: the operation conflicts with the current state, such as a
	// second open commit on a branch or writing to a finished commit.
	ErrConflict = errors.New("conflict")
	// ErrAmbiguous: a commit ID prefix matches more than one commit.
	ErrAmbiguous = errors.New("ambiguous commit prefix")
	// ErrNotDir and ErrIsDir: a path names the wrong kind of entry.
	ErrNotDir = errors.New("not a directory")
	ErrIsDir  = errors.New("is a directory")
)
