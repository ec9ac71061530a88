package api

import (
	"bufio"
	"fmt"
	"net/http"
	"time"

	"github.com/strata-data/strata/meta"
)

// maxClaimWait bounds a claim's long poll, below the HTTP servers' and
// proxies' usual idle timeouts.
const maxClaimWait = 60 * time.Second

// work registers a route of the remote-worker protocol: it needs a
// Pipelines that also implements Workers.
func (s *Server) work(pattern string, h func(ws Workers, w http.ResponseWriter, r *http.Request) error) {
	s.pipe(pattern, func(p Pipelines, w http.ResponseWriter, r *http.Request) error {
		ws, ok := p.(Workers)
		if !ok {
			return fmt.Errorf("this daemon does not take remote workers: %w", ErrUnavailable)
		}
		return h(ws, w, r)
	})
}

// workerName is the ?worker= of a task route. An empty name is refused:
// it names no worker, so it must not match a task.
func workerName(r *http.Request) (string, error) {
	name := r.URL.Query().Get("worker")
	if name == "" {
		return "", fmt.Errorf("task %s: the request needs worker=: %w", r.PathValue("id"), meta.ErrInvalid)
	}
	return name, nil
}

func (s *Server) workerRoutes() {
	s.work("POST /v1/workers/claim", func(ws Workers, w http.ResponseWriter, r *http.Request) error {
		var req ClaimRequest
		if err := readJSON(r, &req); err != nil {
			return err
		}
		if req.Worker == "" {
			return fmt.Errorf("claim needs the worker's name: %w", meta.ErrInvalid)
		}
		req.Wait = min(max(req.Wait, 0), maxClaimWait)
		t, err := ws.ClaimTask(r.Context(), req)
		if err != nil {
			return err
		}
		if t == nil {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		return writeJSON(w, t)
	})
	s.work("GET /v1/workers", func(ws Workers, w http.ResponseWriter, r *http.Request) error {
		list, err := ws.ListWorkers(r.Context())
		if err != nil {
			return err
		}
		return writeJSON(w, nonNil(list))
	})
	s.work("POST /v1/workers/tasks/{id}/heartbeat", func(ws Workers, w http.ResponseWriter, r *http.Request) error {
		name, err := workerName(r)
		if err != nil {
			return err
		}
		l, err := ws.Heartbeat(r.Context(), name, r.PathValue("id"))
		if err != nil {
			return err
		}
		return writeJSON(w, l)
	})
	s.work("POST /v1/workers/tasks/{id}/log", func(ws Workers, w http.ResponseWriter, r *http.Request) error {
		name, err := workerName(r)
		if err != nil {
			return err
		}
		return ws.AppendTaskLog(r.Context(), name, r.PathValue("id"), r.Body)
	})
	s.work("PUT /v1/workers/tasks/{id}/output", func(ws Workers, w http.ResponseWriter, r *http.Request) error {
		name, err := workerName(r)
		if err != nil {
			return err
		}
		out, err := ws.PutTaskOutput(r.Context(), name, r.PathValue("id"), r.Body)
		if err != nil {
			return err
		}
		return writeJSON(w, out)
	})
	s.work("POST /v1/workers/tasks/{id}/done", func(ws Workers, w http.ResponseWriter, r *http.Request) error {
		var res TaskResult
		if err := readJSON(r, &res); err != nil {
			return err
		}
		if res.Worker == "" {
			return fmt.Errorf("task %s: the result needs the worker's name: %w", r.PathValue("id"), meta.ErrInvalid)
		}
		switch res.State {
		case TaskSuccess, TaskFailure, TaskReleased:
		default:
			return fmt.Errorf("task result %q: want %s, %s or %s: %w", res.State, TaskSuccess, TaskFailure, TaskReleased, meta.ErrInvalid)
		}
		return ws.FinishTask(r.Context(), r.PathValue("id"), res)
	})
	s.work("GET /v1/images/export", func(ws Workers, w http.ResponseWriter, r *http.Request) error {
		name := r.URL.Query().Get("name")
		if name == "" {
			return fmt.Errorf("image export needs name=: %w", meta.ErrInvalid)
		}
		sw := &streamWriter{w: w, rc: http.NewResponseController(w)}
		bw := bufio.NewWriterSize(sw, 1<<20)
		err := ws.ExportImage(r.Context(), name, bw)
		if err == nil {
			err = bw.Flush()
		}
		if !sw.close() {
			if err != nil {
				return err
			}
			w.WriteHeader(http.StatusOK)
			return nil
		}
		if err != nil && r.Context().Err() == nil {
			// The tarball is cut short; the trailers say why.
			code, _ := classify(err)
			w.Header().Set(trailerError, headerSafe(err.Error()))
			w.Header().Set(trailerCode, code)
			s.log.Error("image export failed", "image", name, "err", err)
		}
		return nil
	})
}
