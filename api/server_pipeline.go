package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/strata-data/strata/meta"
)

// maxSpecBytes bounds a pipeline spec upload.
const maxSpecBytes = 4 << 20

// Trailers of a log stream that failed after it had started.
const (
	trailerError = "Strata-Error"
	trailerCode  = "Strata-Error-Code"
)

func (s *Server) getPipelines() Pipelines {
	s.pipelinesMu.RLock()
	defer s.pipelinesMu.RUnlock()
	return s.pipelines
}

// pipe registers a pipeline route: it answers ErrUnavailable while no
// Pipelines is plugged in, and does not log a request whose client went
// away (a long poll or a followed log the client stopped).
func (s *Server) pipe(pattern string, h func(p Pipelines, w http.ResponseWriter, r *http.Request) error) {
	s.handle(pattern, func(w http.ResponseWriter, r *http.Request) error {
		p := s.getPipelines()
		if p == nil {
			return fmt.Errorf("%w; restart it without that flag ('strata down', then 'strata up')", ErrUnavailable)
		}
		err := h(p, w, r)
		if err != nil && r.Context().Err() != nil && errors.Is(err, context.Canceled) {
			return nil // the client is gone; nobody reads the answer
		}
		return err
	})
}

func (s *Server) pipelineRoutes() {
	s.pipe("POST /v1/pipelines", func(p Pipelines, w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		update, err := boolParam(q, "update")
		if err != nil {
			return err
		}
		reprocess, err := boolParam(q, "reprocess")
		if err != nil {
			return err
		}
		spec, err := io.ReadAll(io.LimitReader(r.Body, maxSpecBytes+1))
		if err != nil {
			return fmt.Errorf("reading the spec: %v: %w", err, meta.ErrInvalid)
		}
		if len(spec) > maxSpecBytes {
			return fmt.Errorf("spec is larger than %d MiB: %w", maxSpecBytes>>20, meta.ErrInvalid)
		}
		if len(strings.TrimSpace(string(spec))) == 0 {
			return fmt.Errorf("empty spec: send one or more pipeline specs (YAML or JSON) as the request body: %w", meta.ErrInvalid)
		}
		ps, err := p.CreatePipelines(r.Context(), spec, update, reprocess)
		if err != nil {
			return err
		}
		return writeJSON(w, nonNil(ps))
	})
	s.pipe("GET /v1/pipelines", func(p Pipelines, w http.ResponseWriter, r *http.Request) error {
		ps, err := p.ListPipelines(r.Context())
		if err != nil {
			return err
		}
		return writeJSON(w, nonNil(ps))
	})
	s.pipe("GET /v1/pipelines/{name}", func(p Pipelines, w http.ResponseWriter, r *http.Request) error {
		pl, err := p.InspectPipeline(r.Context(), r.PathValue("name"))
		if err != nil {
			return err
		}
		return writeJSON(w, pl)
	})
	s.pipe("DELETE /v1/pipelines/{name}", func(p Pipelines, w http.ResponseWriter, r *http.Request) error {
		return p.DeletePipeline(r.Context(), r.PathValue("name"))
	})
	s.pipe("POST /v1/pipelines/{name}/stop", func(p Pipelines, w http.ResponseWriter, r *http.Request) error {
		return p.StopPipeline(r.Context(), r.PathValue("name"))
	})
	s.pipe("POST /v1/pipelines/{name}/start", func(p Pipelines, w http.ResponseWriter, r *http.Request) error {
		return p.StartPipeline(r.Context(), r.PathValue("name"))
	})

	s.pipe("GET /v1/jobs", func(p Pipelines, w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		limit, err := intParam(q, "limit")
		if err != nil {
			return err
		}
		js, err := p.ListJobs(r.Context(), q.Get("pipeline"), limit)
		if err != nil {
			return err
		}
		return writeJSON(w, nonNil(js))
	})
	s.pipe("GET /v1/jobs/{id}", func(p Pipelines, w http.ResponseWriter, r *http.Request) error {
		j, err := p.InspectJob(r.Context(), r.PathValue("id"))
		if err != nil {
			return err
		}
		return writeJSON(w, j)
	})
	s.pipe("POST /v1/jobs/{id}/wait", func(p Pipelines, w http.ResponseWriter, r *http.Request) error {
		j, err := p.WaitJob(r.Context(), r.PathValue("id"))
		if err != nil {
			return err
		}
		return writeJSON(w, j)
	})
	s.pipe("POST /v1/jobs/{id}/stop", func(p Pipelines, w http.ResponseWriter, r *http.Request) error {
		return p.StopJob(r.Context(), r.PathValue("id"))
	})
	s.pipe("POST /v1/wait", func(p Pipelines, w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		if q.Get("repo") == "" {
			return fmt.Errorf("wait needs repo= (and ref=, default main): %w", meta.ErrInvalid)
		}
		ref := q.Get("ref")
		if ref == "" {
			ref = meta.DefaultBranch
		}
		js, err := p.WaitCommit(r.Context(), q.Get("repo"), ref)
		if err != nil {
			return err
		}
		return writeJSON(w, nonNil(js))
	})
	s.pipe("GET /v1/jobs/{id}/datums", func(p Pipelines, w http.ResponseWriter, r *http.Request) error {
		ds, err := p.ListDatums(r.Context(), r.PathValue("id"))
		if err != nil {
			return err
		}
		return writeJSON(w, nonNil(ds))
	})
	s.pipe("GET /v1/jobs/{id}/datums/{datum}", func(p Pipelines, w http.ResponseWriter, r *http.Request) error {
		d, err := p.InspectDatum(r.Context(), r.PathValue("id"), r.PathValue("datum"))
		if err != nil {
			return err
		}
		return writeJSON(w, d)
	})
	s.pipe("GET /v1/logs", s.logs)
	s.pipe("GET /v1/lineage", func(p Pipelines, w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		if q.Get("repo") == "" {
			return fmt.Errorf("lineage needs repo=, ref= and path=: %w", meta.ErrInvalid)
		}
		ref, p0 := q.Get("ref"), q.Get("path")
		if ref == "" {
			ref = meta.DefaultBranch
		}
		if p0 == "" {
			p0 = "/"
		}
		l, err := p.Lineage(r.Context(), q.Get("repo"), ref, p0)
		if err != nil {
			return err
		}
		return writeJSON(w, l)
	})

	s.pipe("POST /v1/images", func(p Pipelines, w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		name, format := q.Get("name"), q.Get("format")
		if name == "" {
			return fmt.Errorf("image import needs name=: %w", meta.ErrInvalid)
		}
		if format == "" {
			format = ImageArchive
		}
		if format != ImageArchive && format != ImageRootfs {
			return fmt.Errorf("image format %q: want %s or %s: %w", format, ImageArchive, ImageRootfs, meta.ErrInvalid)
		}
		// r.Body streams: the image is never held whole in memory here.
		img, err := p.ImportImage(r.Context(), name, format, r.Body)
		if err != nil {
			return err
		}
		return writeJSON(w, img)
	})
	s.pipe("GET /v1/images", func(p Pipelines, w http.ResponseWriter, r *http.Request) error {
		is, err := p.ListImages(r.Context())
		if err != nil {
			return err
		}
		return writeJSON(w, nonNil(is))
	})

	s.pipe("POST /v1/datum-mounts", func(p Pipelines, w http.ResponseWriter, r *http.Request) error {
		var req datumMountRequest
		if err := readJSON(r, &req); err != nil {
			return err
		}
		if err := checkMountDir(req.Dir); err != nil {
			return err
		}
		if req.Datum < 0 {
			return fmt.Errorf("datum %d: want 0 or more: %w", req.Datum, meta.ErrInvalid)
		}
		if strings.TrimSpace(req.Spec) == "" {
			return fmt.Errorf("datum mount needs the pipeline's spec: %w", meta.ErrInvalid)
		}
		d, err := p.MountDatum(r.Context(), []byte(req.Spec), req.Dir, req.Datum)
		if err != nil {
			return err
		}
		return writeJSON(w, d)
	})
	s.pipe("DELETE /v1/datum-mounts", func(p Pipelines, w http.ResponseWriter, r *http.Request) error {
		dir := r.URL.Query().Get("dir")
		if err := checkMountDir(dir); err != nil {
			return err
		}
		return p.UnmountDatum(r.Context(), dir)
	})
}

// datumMountRequest is the body of POST /v1/datum-mounts.
type datumMountRequest struct {
	Spec  string `json:"spec"`
	Dir   string `json:"dir"`
	Datum int    `json:"datum"`
}

func checkMountDir(dir string) error {
	if dir == "" || !path.IsAbs(dir) {
		return fmt.Errorf("mount directory %q: want an absolute path on the daemon's machine: %w", dir, meta.ErrInvalid)
	}
	return nil
}

// logs streams datum logs as text, flushing each write; an error after the
// stream started is sent in the Strata-Error trailers.
func (s *Server) logs(p Pipelines, w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	follow, err := boolParam(q, "follow")
	if err != nil {
		return err
	}
	lq := LogQuery{Pipeline: q.Get("pipeline"), Job: q.Get("job"), Datum: q.Get("datum"), Follow: follow}
	if lq.Pipeline == "" && lq.Job == "" {
		return fmt.Errorf("logs needs pipeline= or job=: %w", meta.ErrInvalid)
	}
	sw := &streamWriter{w: w, rc: http.NewResponseController(w)}
	err = p.Logs(r.Context(), lq, sw)
	if !sw.close() {
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	if err != nil && r.Context().Err() == nil {
		code, _ := classify(err)
		w.Header().Set(trailerError, headerSafe(err.Error()))
		w.Header().Set(trailerCode, code)
		if code == "internal" {
			s.log.Error("log stream failed", "pipeline", lq.Pipeline, "job", lq.Job, "datum", lq.Datum, "err", err)
		}
	}
	return nil
}

// streamWriter sends the response header on the first write and flushes
// every write, so a followed log reaches the client as it is written.
type streamWriter struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
	closed  bool
}

func (sw *streamWriter) Write(b []byte) (int, error) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.closed {
		return 0, errors.New("log stream closed")
	}
	if len(b) == 0 {
		return 0, nil
	}
	if !sw.started {
		sw.started = true
		h := sw.w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Trailer", trailerError+", "+trailerCode)
		sw.w.WriteHeader(http.StatusOK)
	}
	n, err := sw.w.Write(b)
	if err == nil {
		err = sw.rc.Flush()
	}
	return n, err
}

// close stops further writes and says whether the stream had started.
func (sw *streamWriter) close() bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.closed = true
	return sw.started
}

func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func boolParam(q url.Values, name string) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want 1 or 0: %w", name, v, meta.ErrInvalid)
	}
	return b, nil
}

func intParam(q url.Values, name string) (int, error) {
	v := q.Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q: want a number, 0 or more: %w", name, v, meta.ErrInvalid)
	}
	return n, nil
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
