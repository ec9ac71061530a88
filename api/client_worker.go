package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// The client side of the remote-worker routes (server_worker.go). The
// client implements Workers.

var _ Workers = (*Client)(nil)

func taskPath(id, verb string) string { return "/v1/workers/tasks/" + esc(id) + "/" + verb }

// ClaimTask asks for a task, waiting up to req.Wait (at most a minute)
// for one; nil when none came.
func (c *Client) ClaimTask(ctx context.Context, req ClaimRequest) (*Task, error) {
	buf, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, "POST", "/v1/workers/claim", nil, bytes.NewReader(buf), "application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return nil, nil
	}
	var t Task
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("claim: bad response: %w", err)
	}
	return &t, nil
}

func (c *Client) Heartbeat(ctx context.Context, worker, task string) (*Lease, error) {
	var l Lease
	if err := c.call(ctx, "POST", taskPath(task, "heartbeat"), url.Values{"worker": {worker}}, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

func (c *Client) AppendTaskLog(ctx context.Context, worker, task string, r io.Reader) error {
	resp, err := c.do(ctx, "POST", taskPath(task, "log"), url.Values{"worker": {worker}}, r, "text/plain")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// PutTaskOutput streams a tar of the datum's /pfs/out.
func (c *Client) PutTaskOutput(ctx context.Context, worker, task string, r io.Reader) (*TaskOutput, error) {
	var out TaskOutput
	return &out, c.send(ctx, "PUT", taskPath(task, "output"), url.Values{"worker": {worker}}, r, "application/x-tar", &out)
}

func (c *Client) FinishTask(ctx context.Context, task string, res TaskResult) error {
	return c.call(ctx, "POST", taskPath(task, "done"), nil, res, nil)
}

func (c *Client) ListWorkers(ctx context.Context) ([]*RemoteWorker, error) {
	var ws []*RemoteWorker
	return ws, c.call(ctx, "GET", "/v1/workers", nil, nil, &ws)
}

// ExportImage copies the daemon's image called name, as an OCI
// image-layout tarball, to w.
func (c *Client) ExportImage(ctx context.Context, name string, w io.Writer) error {
	resp, err := c.do(ctx, "GET", "/v1/images/export", url.Values{"name": {name}}, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("export image %s: %w", name, err)
	}
	if msg := resp.Trailer.Get(trailerError); msg != "" {
		return &remoteError{msg: msg, kind: sentinel(resp.Trailer.Get(trailerCode))}
	}
	return nil
}
