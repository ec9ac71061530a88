package api

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/store"
)

// Version is the strata version, set at build time.
var Version = "dev"

// Status describes a running daemon.
type Status struct {
	Version  string    `json:"version"`
	PID      int       `json:"pid"`
	DataDir  string    `json:"data_dir"`
	Started  time.Time `json:"started"`
	Socket   string    `json:"socket"`
	Listen   string    `json:"listen,omitempty"`
	Mount    string    `json:"mount,omitempty"`
	Repos    int       `json:"repos"`
	Pipeline bool      `json:"pipelines"`
}

// Server serves the API over a store.
type Server struct {
	st     *store.Store
	log    *slog.Logger
	status func() Status
	mux    *http.ServeMux

	pipelinesMu sync.RWMutex
	pipelines   Pipelines // nil: pipeline routes answer ErrUnavailable
}

// SetPipelines plugs in the pipeline controller (nil: pipelines are off).
// It may be called while the server is serving.
func (s *Server) SetPipelines(p Pipelines) {
	s.pipelinesMu.Lock()
	s.pipelines = p
	s.pipelinesMu.Unlock()
}

// NewServer returns the API handler. status fills in the daemon's status.
func NewServer(st *store.Store, log *slog.Logger, status func() Status) *Server {
	s := &Server{st: st, log: log, status: status, mux: http.NewServeMux()}
	s.routes()
	return s
}

// Handler returns the handler; with a non-empty token every request must
// carry "Authorization: Bearer TOKEN" (used for TCP listeners).
func (s *Server) Handler(token string) http.Handler {
	if token == "" {
		return s.mux
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			writeError(w, fmt.Errorf("missing or wrong bearer token (see 'strata status' on the daemon's host): %w", ErrUnauthorized))
			return
		}
		s.mux.ServeHTTP(w, r)
	})
}

// userWritable refuses user writes to a pipeline's output repo: its jobs
// write it, and a user's commit there would trigger downstream pipelines
// on data no job made. (Moving its branches, e.g. to revert, is allowed.)
func (s *Server) userWritable(repo string) error {
	rp, err := s.st.Meta.Repo(repo)
	if err != nil {
		return err
	}
	if rp.Pipeline != "" {
		return fmt.Errorf("repo %s is the output of pipeline %s and only its jobs write to it; change the pipeline's input or spec instead: %w", repo, rp.Pipeline, meta.ErrConflict)
	}
	return nil
}

type handler func(w http.ResponseWriter, r *http.Request) error

func (s *Server) handle(pattern string, h handler) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			if code, _ := classify(err); code == "internal" || code == "no_space" || code == "corrupt" {
				s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeError(w, err)
		}
	})
}

func (s *Server) routes() {
	s.handle("GET /v1/version", func(w http.ResponseWriter, r *http.Request) error {
		return writeJSON(w, map[string]string{"version": Version})
	})
	s.handle("GET /v1/status", func(w http.ResponseWriter, r *http.Request) error {
		st := s.status()
		rs, err := s.st.Meta.Repos()
		if err != nil {
			return err
		}
		st.Repos = len(rs)
		return writeJSON(w, st)
	})
	s.handle("GET /v1/repos", func(w http.ResponseWriter, r *http.Request) error {
		rs, err := s.st.Meta.Repos()
		if err != nil {
			return err
		}
		out := make([]RepoInfo, 0, len(rs))
		for _, repo := range rs {
			out = append(out, s.repoInfo(repo))
		}
		return writeJSON(w, out)
	})
	s.handle("POST /v1/repos", func(w http.ResponseWriter, r *http.Request) error {
		var req struct{ Name, Description string }
		if err := readJSON(r, &req); err != nil {
			return err
		}
		repo, err := s.st.Meta.CreateRepo(req.Name, req.Description, "")
		if err != nil {
			return err
		}
		return writeJSON(w, s.repoInfo(repo))
	})
	s.handle("GET /v1/repos/{repo}", func(w http.ResponseWriter, r *http.Request) error {
		repo, err := s.st.Meta.Repo(r.PathValue("repo"))
		if err != nil {
			return err
		}
		return writeJSON(w, s.repoInfo(repo))
	})
	s.handle("DELETE /v1/repos/{repo}", func(w http.ResponseWriter, r *http.Request) error {
		return s.st.Meta.DeleteRepo(r.PathValue("repo"), r.URL.Query().Get("force") == "true")
	})
	s.handle("GET /v1/repos/{repo}/branches", func(w http.ResponseWriter, r *http.Request) error {
		bs, err := s.st.Meta.Branches(r.PathValue("repo"))
		if err != nil {
			return err
		}
		return writeJSON(w, bs)
	})
	s.handle("PUT /v1/repos/{repo}/branches/{branch}", func(w http.ResponseWriter, r *http.Request) error {
		var req struct{ Head string }
		if err := readJSON(r, &req); err != nil {
			return err
		}
		br, err := s.st.Meta.SetBranch(r.PathValue("repo"), r.PathValue("branch"), req.Head)
		if err != nil {
			return err
		}
		return writeJSON(w, br)
	})
	s.handle("DELETE /v1/repos/{repo}/branches/{branch}", func(w http.ResponseWriter, r *http.Request) error {
		return s.st.Meta.DeleteBranch(r.PathValue("repo"), r.PathValue("branch"))
	})
	s.handle("GET /v1/repos/{repo}/commits", func(w http.ResponseWriter, r *http.Request) error {
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		cs, err := s.st.Meta.Commits(r.PathValue("repo"), r.URL.Query().Get("branch"), limit)
		if err != nil {
			return err
		}
		if cs == nil {
			cs = []*meta.Commit{}
		}
		return writeJSON(w, cs)
	})
	s.handle("POST /v1/repos/{repo}/commits", func(w http.ResponseWriter, r *http.Request) error {
		var req struct{ Branch, Message string }
		if err := readJSON(r, &req); err != nil {
			return err
		}
		if req.Branch == "" {
			req.Branch = meta.DefaultBranch
		}
		if err := s.userWritable(r.PathValue("repo")); err != nil {
			return err
		}
		c, err := s.st.Meta.StartCommit(r.PathValue("repo"), req.Branch, meta.CommitOptions{Message: req.Message})
		if err != nil {
			return err
		}
		return writeJSON(w, c)
	})
	s.handle("GET /v1/repos/{repo}/commits/{ref}", func(w http.ResponseWriter, r *http.Request) error {
		c, err := s.st.Meta.Resolve(r.PathValue("repo"), r.PathValue("ref"))
		if err != nil {
			return err
		}
		return writeJSON(w, c)
	})
	s.handle("POST /v1/repos/{repo}/commits/{ref}/finish", func(w http.ResponseWriter, r *http.Request) error {
		var req struct{ Error string }
		if err := readJSON(r, &req); err != nil {
			return err
		}
		if err := s.userWritable(r.PathValue("repo")); err != nil {
			return err
		}
		c, err := s.st.Meta.FinishCommit(r.PathValue("repo"), r.PathValue("ref"), req.Error)
		if err != nil {
			return err
		}
		return writeJSON(w, c)
	})
	s.handle("GET /v1/repos/{repo}/commits/{ref}/wait", s.waitCommit)
	s.handle("DELETE /v1/repos/{repo}/commits/{ref}", func(w http.ResponseWriter, r *http.Request) error {
		c, err := s.st.Meta.DeleteCommit(r.PathValue("repo"), r.PathValue("ref"))
		if err != nil {
			return err
		}
		return writeJSON(w, c)
	})
	s.handle("GET /v1/repos/{repo}/commits/{ref}/stat", func(w http.ResponseWriter, r *http.Request) error {
		c, e, p, err := s.st.Stat(r.PathValue("repo"), r.PathValue("ref"), r.URL.Query().Get("path"))
		if err != nil {
			return err
		}
		return writeJSON(w, fileInfo(c, p, e))
	})
	s.handle("GET /v1/repos/{repo}/commits/{ref}/list", func(w http.ResponseWriter, r *http.Request) error {
		c, e, p, err := s.st.Stat(r.PathValue("repo"), r.PathValue("ref"), r.URL.Query().Get("path"))
		if err != nil {
			return err
		}
		if e.Type != meta.TypeDir {
			return writeJSON(w, []FileInfo{fileInfo(c, p, e)})
		}
		es, err := s.st.Meta.ReadDir(e.Tree)
		if err != nil {
			return err
		}
		out := make([]FileInfo, len(es))
		for i := range es {
			out[i] = fileInfo(c, joinPath(p, es[i].Name), &es[i])
		}
		return writeJSON(w, out)
	})
	s.handle("GET /v1/repos/{repo}/commits/{ref}/file", func(w http.ResponseWriter, r *http.Request) error {
		f, err := s.st.Open(r.Context(), r.PathValue("repo"), r.PathValue("ref"), r.URL.Query().Get("path"))
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Strata-Commit", f.Commit.ID)
		mod := f.Commit.Started
		if f.Commit.Finished != nil {
			mod = *f.Commit.Finished
		}
		http.ServeContent(w, r, "", mod, &logReader{File: f, log: s.log})
		return nil
	})
	s.handle("GET /v1/repos/{repo}/commits/{ref}/tar", func(w http.ResponseWriter, r *http.Request) error {
		repo, ref, p := r.PathValue("repo"), r.PathValue("ref"), r.URL.Query().Get("path")
		if _, _, _, err := s.st.Stat(repo, ref, p); err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/x-tar")
		// The response writer buffers only 4 KiB; tar headers and small
		// files would otherwise cost a syscall each.
		bw := bufio.NewWriterSize(w, 1<<20)
		err := s.st.WriteTar(r.Context(), repo, ref, p, bw)
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			// Headers are gone; cut the stream so the client sees a broken tar.
			s.log.Error("tar stream failed", "repo", repo, "ref", ref, "path", p, "err", err)
			panic(http.ErrAbortHandler)
		}
		return nil
	})
	s.handle("GET /v1/repos/{repo}/diff", s.diff)
	s.handle("PUT /v1/repos/{repo}/branches/{branch}/file", func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		mode, _ := strconv.ParseUint(q.Get("mode"), 8, 32)
		if err := s.userWritable(r.PathValue("repo")); err != nil {
			return err
		}
		res, err := s.st.PutFile(r.Context(), r.PathValue("repo"), r.PathValue("branch"), q.Get("path"), r.Body, store.PutOptions{
			Append: q.Get("append") == "true", Mode: uint32(mode), Commit: commitOptions(r),
		})
		if err != nil {
			return err
		}
		return writeJSON(w, res)
	})
	s.handle("POST /v1/repos/{repo}/branches/{branch}/tar", func(w http.ResponseWriter, r *http.Request) error {
		if err := s.userWritable(r.PathValue("repo")); err != nil {
			return err
		}
		res, err := s.st.PutTar(r.Context(), r.PathValue("repo"), r.PathValue("branch"), r.URL.Query().Get("path"), r.Body,
			store.PutOptions{Commit: commitOptions(r)}, nil)
		if err != nil {
			return err
		}
		return writeJSON(w, res)
	})
	s.handle("DELETE /v1/repos/{repo}/branches/{branch}/file", func(w http.ResponseWriter, r *http.Request) error {
		if err := s.userWritable(r.PathValue("repo")); err != nil {
			return err
		}
		res, err := s.st.Delete(r.Context(), r.PathValue("repo"), r.PathValue("branch"), r.URL.Query().Get("path"), commitOptions(r))
		if err != nil {
			return err
		}
		return writeJSON(w, res)
	})
	s.pipelineRoutes()
	s.workerRoutes()
	s.treeRoutes()
	s.handle("POST /v1/fsck", s.fsck)
	s.handle("POST /v1/gc", func(w http.ResponseWriter, r *http.Request) error {
		grace := store.DefaultGrace
		if g := r.URL.Query().Get("grace"); g != "" {
			d, err := time.ParseDuration(g)
			if err != nil {
				return fmt.Errorf("grace %q: %v: %w", g, err, meta.ErrInvalid)
			}
			grace = d
		}
		res, err := s.st.GC(r.Context(), grace)
		if err != nil {
			return err
		}
		return writeJSON(w, res)
	})
}

// logReader logs a read fault: once the body has started, the client only
// sees a cut stream, so the daemon log must say why.
type logReader struct {
	*store.File
	log    *slog.Logger
	logged bool
}

func (l *logReader) Read(p []byte) (int, error) {
	n, err := l.File.Read(p)
	if err != nil && err != io.EOF && !l.logged {
		l.logged = true
		l.log.Error("file read failed", "repo", l.Commit.Repo, "commit", l.Commit.ID, "path", l.Path, "err", err)
	}
	return n, err
}

func commitOptions(r *http.Request) meta.CommitOptions {
	return meta.CommitOptions{Message: r.URL.Query().Get("message")}
}

// RepoInfo is a repo with its branches and size.
type RepoInfo struct {
	*meta.Repo
	Branches []string `json:"branches"`
	Size     int64    `json:"size"`
	Files    int64    `json:"files"`
	Head     string   `json:"head,omitempty"`
	Commits  int      `json:"commits"`
}

func (s *Server) repoInfo(r *meta.Repo) RepoInfo {
	info := RepoInfo{Repo: r, Branches: []string{}}
	if bs, err := s.st.Meta.Branches(r.Name); err == nil {
		for _, b := range bs {
			info.Branches = append(info.Branches, b.Name)
		}
	}
	info.Commits, _ = s.st.Meta.CommitCount(r.Name)
	if c, err := s.st.Meta.ResolveFinished(r.Name, meta.DefaultBranch); err == nil {
		info.Size, info.Files, info.Head = c.Size, c.Files, c.ID
	}
	return info
}

// FileInfo describes a file or directory in a commit.
type FileInfo struct {
	Path   string `json:"path"`
	Type   string `json:"type"`
	Mode   uint32 `json:"mode"`
	Size   int64  `json:"size"`
	Files  int64  `json:"files,omitempty"`
	Commit string `json:"commit"`
	Chunks int    `json:"chunks,omitempty"`
}

func fileInfo(c *meta.Commit, p string, e *meta.Entry) FileInfo {
	return FileInfo{Path: p, Type: e.Type.String(), Mode: e.Mode, Size: e.Size, Files: e.Files, Commit: c.ID, Chunks: len(e.Chunks)}
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

func (s *Server) waitCommit(w http.ResponseWriter, r *http.Request) error {
	repo, ref := r.PathValue("repo"), r.PathValue("ref")
	ctx := r.Context()
	if t := r.URL.Query().Get("timeout"); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil {
			return fmt.Errorf("timeout %q: %v: %w", t, err, meta.ErrInvalid)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	c, err := s.st.Meta.Resolve(repo, ref)
	if err != nil {
		return err
	}
	for {
		changed := s.st.Meta.Changed()
		c, err = s.st.Meta.Commit(repo, c.ID)
		if err != nil {
			return err
		}
		if c.State != meta.StateOpen {
			return writeJSON(w, c)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("commit %s@%s is still open: %w", repo, c.ID, ctx.Err())
		}
	}
}

// DiffEntry is one line of a diff.
type DiffEntry struct {
	Path string    `json:"path"`
	Op   string    `json:"op"` // added, removed, modified
	Old  *FileInfo `json:"old,omitempty"`
	New  *FileInfo `json:"new,omitempty"`
}

func (s *Server) diff(w http.ResponseWriter, r *http.Request) error {
	repo, q := r.PathValue("repo"), r.URL.Query()
	to, err := s.st.Meta.ResolveFinished(repo, q.Get("to"))
	if err != nil {
		return err
	}
	fromRoot := meta.EmptyTree
	fromRef := q.Get("from")
	if fromRef == "" && to.Parent != "" {
		fromRef = to.Parent
	}
	var from *meta.Commit
	if fromRef != "" {
		if from, err = s.st.Meta.ResolveFinished(repo, fromRef); err != nil {
			return err
		}
		fromRoot = from.Root
	}
	out := []DiffEntry{}
	err = s.st.Meta.DiffTrees(fromRoot, to.Root, func(d meta.Diff) error {
		de := DiffEntry{Path: d.Path}
		switch {
		case d.Old == nil:
			de.Op = "added"
		case d.New == nil:
			de.Op = "removed"
		default:
			de.Op = "modified"
		}
		if d.Old != nil {
			fi := fileInfo(from, d.Path, d.Old)
			de.Old = &fi
		}
		if d.New != nil {
			fi := fileInfo(to, d.Path, d.New)
			de.New = &fi
		}
		out = append(out, de)
		return nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, out)
}

// FsckLine is one line of the fsck stream: a fault, or the final summary.
type FsckLine struct {
	Fault   *store.Fault `json:"fault,omitempty"`
	Done    bool         `json:"done,omitempty"`
	Commits int          `json:"commits,omitempty"`
	Chunks  int          `json:"chunks,omitempty"`
	Faults  int          `json:"faults,omitempty"`
	Error   string       `json:"error,omitempty"`
}

func (s *Server) fsck(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	faults := 0
	commits, chunks, err := s.st.Fsck(r.Context(), func(f store.Fault) {
		faults++
		enc.Encode(FsckLine{Fault: &f})
	})
	end := FsckLine{Done: true, Commits: commits, Chunks: chunks, Faults: faults}
	if err != nil {
		end.Error = err.Error()
	}
	return enc.Encode(end)
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("request body: %v: %w", err, meta.ErrInvalid)
	}
	return nil
}

func writeError(w http.ResponseWriter, err error) {
	code, status := classify(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": strings.TrimSpace(err.Error()), "code": code})
}
