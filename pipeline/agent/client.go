package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
)

// Run sends req to the agent listening on socketPath, copies the command's
// stdout and stderr to the given writers (nil discards) as they arrive, and
// returns how the command ended. The error is about talking to the agent or
// writing the output; a command that fails is a Result (see Result.Err).
//
// Canceling ctx closes the connection, which makes the agent kill the
// command's process group; Run then returns ctx.Err().
func Run(ctx context.Context, socketPath string, req Request, stdout, stderr io.Writer) (Result, error) {
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	body, err := json.Marshal(req)
	if err != nil {
		return Result{}, fmt.Errorf("agent: encoding request: %w", err)
	}
	if len(body) > maxFrame {
		return Result{}, fmt.Errorf("agent: request of %d bytes (stdin included) exceeds the limit of %d", len(body), maxFrame)
	}
	conn, err := dial(ctx, socketPath)
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	fail := func(what string, err error) (Result, error) {
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		return Result{}, fmt.Errorf("agent %s: %s: %w", socketPath, what, err)
	}
	if err := writeFrame(conn, frameRequest, body); err != nil {
		return fail("sending request", err)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	buf := make([]byte, 64<<10)
	for {
		typ, p, err := readFrame(br, buf)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("connection closed before the result (did the container die?)")
			}
			return fail("reading", err)
		}
		switch typ {
		case frameStdout:
			if _, err := stdout.Write(p); err != nil {
				return Result{}, fmt.Errorf("agent: writing stdout: %w", err)
			}
		case frameStderr:
			if _, err := stderr.Write(p); err != nil {
				return Result{}, fmt.Errorf("agent: writing stderr: %w", err)
			}
		case frameResult:
			var res Result
			if err := json.Unmarshal(p, &res); err != nil {
				return fail("decoding result", err)
			}
			return res, nil
		default:
			return fail("reading", fmt.Errorf("unexpected frame type %q", typ))
		}
	}
}

// Ping checks that an agent answers on socketPath.
func Ping(ctx context.Context, socketPath string) error {
	conn, err := dial(ctx, socketPath)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := writeFrame(conn, framePing, nil); err != nil {
		return fmt.Errorf("agent %s: ping: %w", socketPath, err)
	}
	typ, _, err := readFrame(conn, nil)
	if err == nil && typ != framePing {
		err = fmt.Errorf("unexpected frame type %q", typ)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("agent %s: ping: %w", socketPath, err)
	}
	return nil
}

func dial(ctx context.Context, socketPath string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return conn, nil
}
