package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"sync"
)

// Pipelines returns the client as a Pipelines, so code written against
// the interface (tests, remote tools) can use a daemon or an in-process
// controller alike. It differs from the client only in WaitCommit, which
// is WaitCommitJobs here (the client's own WaitCommit waits for a commit
// to be finished).
func (c *Client) Pipelines() Pipelines { return remotePipelines{c} }

type remotePipelines struct{ *Client }

func (r remotePipelines) WaitCommit(ctx context.Context, repo, ref string) ([]*Job, error) {
	return r.WaitCommitJobs(ctx, repo, ref)
}

var _ Pipelines = remotePipelines{}

func pipelinePath(name string) string { return "/v1/pipelines/" + esc(name) }
func jobPath(id string) string        { return "/v1/jobs/" + esc(id) }

// send posts a raw body and decodes a JSON answer into out.
func (c *Client) send(ctx context.Context, method, p string, q url.Values, body io.Reader, contentType string, out any) error {
	resp, err := c.do(ctx, method, p, q, body, contentType)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s %s: bad response: %w", method, p, err)
	}
	return nil
}

// CreatePipelines sends one or more specs (YAML or JSON, as in a spec
// file) to be created, or with update to replace existing pipelines
// (reprocess: rerun every datum instead of reusing earlier results).
func (c *Client) CreatePipelines(ctx context.Context, spec []byte, update, reprocess bool) ([]*Pipeline, error) {
	q := url.Values{}
	if update {
		q.Set("update", "1")
	}
	if reprocess {
		q.Set("reprocess", "1")
	}
	var ps []*Pipeline
	return ps, c.send(ctx, "POST", "/v1/pipelines", q, bytes.NewReader(spec), "application/yaml", &ps)
}

func (c *Client) ListPipelines(ctx context.Context) ([]*Pipeline, error) {
	var ps []*Pipeline
	return ps, c.call(ctx, "GET", "/v1/pipelines", nil, nil, &ps)
}

func (c *Client) InspectPipeline(ctx context.Context, name string) (*Pipeline, error) {
	var p Pipeline
	if err := c.call(ctx, "GET", pipelinePath(name), nil, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// DeletePipeline removes a pipeline, its jobs and its output repo.
func (c *Client) DeletePipeline(ctx context.Context, name string) error {
	return c.call(ctx, "DELETE", pipelinePath(name), nil, nil, nil)
}

func (c *Client) StopPipeline(ctx context.Context, name string) error {
	return c.call(ctx, "POST", pipelinePath(name)+"/stop", nil, nil, nil)
}

func (c *Client) StartPipeline(ctx context.Context, name string) error {
	return c.call(ctx, "POST", pipelinePath(name)+"/start", nil, nil, nil)
}

// ListJobs lists jobs newest first; pipeline "" lists every pipeline's,
// limit 0 all of them.
func (c *Client) ListJobs(ctx context.Context, pipeline string, limit int) ([]*Job, error) {
	q := url.Values{}
	if pipeline != "" {
		q.Set("pipeline", pipeline)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var js []*Job
	return js, c.call(ctx, "GET", "/v1/jobs", q, nil, &js)
}

func (c *Client) InspectJob(ctx context.Context, id string) (*Job, error) {
	var j Job
	if err := c.call(ctx, "GET", jobPath(id), nil, nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// WaitJob blocks until the job has finished, however long that takes
// (the client sets no timeout); end it with ctx.
func (c *Client) WaitJob(ctx context.Context, id string) (*Job, error) {
	var j Job
	if err := c.call(ctx, "POST", jobPath(id)+"/wait", nil, nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

func (c *Client) StopJob(ctx context.Context, id string) error {
	return c.call(ctx, "POST", jobPath(id)+"/stop", nil, nil, nil)
}

// WaitCommitJobs blocks until every job downstream of repo@ref has
// finished and returns those jobs (Pipelines.WaitCommit; see Pipelines()).
func (c *Client) WaitCommitJobs(ctx context.Context, repo, ref string) ([]*Job, error) {
	var js []*Job
	return js, c.call(ctx, "POST", "/v1/wait", url.Values{"repo": {repo}, "ref": {ref}}, nil, &js)
}

func (c *Client) ListDatums(ctx context.Context, job string) ([]*Datum, error) {
	var ds []*Datum
	return ds, c.call(ctx, "GET", jobPath(job)+"/datums", nil, nil, &ds)
}

func (c *Client) InspectDatum(ctx context.Context, job, datum string) (*Datum, error) {
	var d Datum
	if err := c.call(ctx, "GET", jobPath(job)+"/datums/"+esc(datum), nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Logs copies the selected logs to w as the daemon sends them. With
// q.Follow it keeps copying until ctx ends, and then returns ctx.Err().
func (c *Client) Logs(ctx context.Context, q LogQuery, w io.Writer) error {
	v := url.Values{}
	for k, s := range map[string]string{"pipeline": q.Pipeline, "job": q.Job, "datum": q.Datum} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Follow {
		v.Set("follow", "1")
	}
	resp, err := c.do(ctx, "GET", "/v1/logs", v, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, &ctxReader{ctx: ctx, r: resp.Body}); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("log stream: %w", err)
	}
	// The body has been read to its end, so the trailers are in.
	if msg := resp.Trailer.Get(trailerError); msg != "" {
		return &remoteError{msg: msg, kind: sentinel(resp.Trailer.Get(trailerCode))}
	}
	return nil
}

// ctxReader tells a read cut by ctx from one cut by the daemon.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (cr *ctxReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	if err != nil && err != io.EOF && cr.ctx.Err() != nil {
		err = cr.ctx.Err()
	}
	return n, err
}

// Lineage says which pipeline, job and datum made repo@ref:path, from
// which input files, up to the input repos.
func (c *Client) Lineage(ctx context.Context, repo, ref, path string) (*Lineage, error) {
	var l Lineage
	if err := c.call(ctx, "GET", "/v1/lineage", url.Values{"repo": {repo}, "ref": {ref}, "path": {path}}, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// ImportImage streams an image to the daemon's containerd: format
// ImageArchive (an OCI or docker-save tarball) or ImageRootfs (a tar of a
// root directory). r is read as the upload goes, never held whole.
func (c *Client) ImportImage(ctx context.Context, name, format string, r io.Reader) (*Image, error) {
	er := &errReader{r: r}
	var img Image
	err := c.send(ctx, "POST", "/v1/images", url.Values{"name": {name}, "format": {format}}, er, "application/x-tar", &img)
	if err != nil {
		// A failure to read the local image is not the daemon's fault.
		if rerr := er.error(); rerr != nil {
			return nil, fmt.Errorf("reading image %s: %w", name, rerr)
		}
		return nil, err
	}
	return &img, nil
}

// errReader remembers the first read error other than io.EOF.
type errReader struct {
	r   io.Reader
	mu  sync.Mutex
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		e.mu.Lock()
		if e.err == nil {
			e.err = err
		}
		e.mu.Unlock()
	}
	return n, err
}

func (e *errReader) error() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

func (c *Client) ListImages(ctx context.Context) ([]*Image, error) {
	var is []*Image
	return is, c.call(ctx, "GET", "/v1/images", nil, nil, &is)
}

// MountDatum asks the daemon to mount at dir (an absolute path on the
// daemon's machine) what a container of the spec's pipeline would see for
// datum n of its inputs' current heads, until UnmountDatum(dir).
func (c *Client) MountDatum(ctx context.Context, spec []byte, dir string, n int) (*Datum, error) {
	var d Datum
	if err := c.call(ctx, "POST", "/v1/datum-mounts", nil, datumMountRequest{Spec: string(spec), Dir: dir, Datum: n}, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

func (c *Client) UnmountDatum(ctx context.Context, dir string) error {
	return c.call(ctx, "DELETE", "/v1/datum-mounts", url.Values{"dir": {dir}}, nil, nil)
}
