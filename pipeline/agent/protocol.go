// Package agent is the tiny supervisor that runs as the init process of a
// long-lived worker container and executes one command per datum on behalf
// of the host, so that the per-datum cost is a fork/exec instead of a
// container start.
//
// The host talks to it over a unix socket that lives in a directory
// bind-mounted from the host. Each connection carries one request: the
// client sends a request frame, the agent streams stdout and stderr frames
// while the command runs and ends with a result frame. Closing the
// connection early cancels the command (its whole process group is killed).
//
// The package is stdlib only and builds with CGO_ENABLED=0, because the
// strata binary that carries it is bind-mounted into arbitrary images.
package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"
)

// Request describes one command to run inside the container.
type Request struct {
	// Args is the argv; Args[0] is looked up in the PATH of the final
	// environment when it has no slash.
	Args []string `json:"args"`
	// Env entries ("KEY=value") are added to the agent's own environment
	// (which is the container's), overriding entries with the same key.
	Env []string `json:"env,omitempty"`
	// Dir is the working directory; "" keeps the agent's (the image's
	// WorkingDir).
	Dir string `json:"dir,omitempty"`
	// User is "uid", "uid:gid", "name" or "name:group", resolved through
	// the container's /etc/passwd and /etc/group; "" keeps the agent's.
	User string `json:"user,omitempty"`
	// Stdin is fed to the command; nil means /dev/null.
	Stdin []byte `json:"stdin,omitempty"`
	// Timeout bounds the run; 0 means none.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// Result is how a command ended.
type Result struct {
	// ExitCode is the exit status when the command exited by itself, or -1.
	ExitCode int `json:"exit_code"`
	// Signal is the number of the signal that ended the command, or 0.
	Signal int `json:"signal,omitempty"`
	// TimedOut is set when the agent killed the command at its timeout.
	TimedOut bool `json:"timed_out,omitempty"`
	// Canceled is set when the command was killed because the agent shut
	// down (a canceled client never sees its result).
	Canceled bool `json:"canceled,omitempty"`
	// StartError is set when the command could not be started at all
	// (executable not found, bad user, missing working directory...).
	StartError string `json:"start_error,omitempty"`
	// Duration is the wall time from start to exit as seen by the agent.
	Duration time.Duration `json:"duration"`
}

// Success reports whether the command ran and exited with status 0.
func (r Result) Success() bool {
	return r.StartError == "" && !r.TimedOut && !r.Canceled && r.Signal == 0 && r.ExitCode == 0
}

// String describes the outcome in the style of os/exec.
func (r Result) String() string {
	switch {
	case r.StartError != "":
		return "start: " + r.StartError
	case r.TimedOut:
		return fmt.Sprintf("timed out after %v", r.Duration.Round(time.Millisecond))
	case r.Canceled:
		return "canceled"
	case r.Signal != 0:
		return "killed by signal " + signalName(r.Signal)
	default:
		return fmt.Sprintf("exit status %d", r.ExitCode)
	}
}

// Err returns nil on success and an *ExitError otherwise.
func (r Result) Err() error {
	if r.Success() {
		return nil
	}
	return &ExitError{Result: r}
}

// ExitError is the error form of an unsuccessful Result.
type ExitError struct{ Result Result }

func (e *ExitError) Error() string { return e.Result.String() }

func signalName(n int) string {
	s := syscall.Signal(n)
	name := s.String() // "killed", "terminated", ...
	for _, k := range []struct {
		sig  syscall.Signal
		name string
	}{{syscall.SIGKILL, "SIGKILL"}, {syscall.SIGTERM, "SIGTERM"}, {syscall.SIGINT, "SIGINT"},
		{syscall.SIGSEGV, "SIGSEGV"}, {syscall.SIGABRT, "SIGABRT"}, {syscall.SIGPIPE, "SIGPIPE"},
		{syscall.SIGHUP, "SIGHUP"}, {syscall.SIGBUS, "SIGBUS"}, {syscall.SIGFPE, "SIGFPE"}} {
		if k.sig == s {
			return k.name + " (" + name + ")"
		}
	}
	if strings.HasPrefix(name, "signal ") {
		return name
	}
	return fmt.Sprintf("%d (%s)", n, name)
}

// Frame types. Every frame is: type (1 byte), payload length (4 bytes, big
// endian), payload.
const (
	frameRequest = 'Q' // client → agent: JSON Request
	framePing    = 'P' // client → agent: empty; the agent answers with an empty ping
	frameStdout  = 'O' // agent → client: a chunk of stdout
	frameStderr  = 'E' // agent → client: a chunk of stderr
	frameResult  = 'R' // agent → client: JSON Result, the last frame
)

// maxFrame bounds a frame's payload; requests carry stdin, so it is large.
const maxFrame = 256 << 20

const headerLen = 5

func appendFrame(buf []byte, typ byte, payload []byte) []byte {
	buf = append(buf, typ, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(buf[len(buf)-4:], uint32(len(payload)))
	return append(buf, payload...)
}

func writeFrame(w io.Writer, typ byte, payload []byte) error {
	_, err := w.Write(appendFrame(make([]byte, 0, headerLen+len(payload)), typ, payload))
	return err
}

// readFrame reads one frame, reusing buf for the payload when it is large
// enough.
func readFrame(r io.Reader, buf []byte) (typ byte, payload []byte, err error) {
	var hdr [headerLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes exceeds the limit of %d", n, maxFrame)
	}
	if int(n) <= cap(buf) {
		payload = buf[:n]
	} else {
		payload = make([]byte, n)
	}
	if _, err := io.ReadFull(r, payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[0], payload, nil
}
