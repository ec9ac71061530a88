package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/store"
)

// ErrUnreachable: no daemon answers at the address.
var ErrUnreachable = errors.New("daemon unreachable")

// Client talks to a daemon. It is safe for concurrent use.
type Client struct {
	addr  string
	base  string
	token string
	hc    *http.Client
}

// DefaultDataDir is /var/lib/strata for root, else ~/.local/share/strata.
func DefaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/strata"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "strata")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "share", "strata")
}

// SocketPath is the daemon's unix socket in a data dir.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, "strata.sock") }

// NewClient connects to addr: "unix:///abs/path.sock" or "http://host:port"
// (token required for TCP). An empty addr means $STRATA_ADDR, else the
// default data dir's socket.
func NewClient(addr, token string) (*Client, error) {
	if addr == "" {
		addr = os.Getenv("STRATA_ADDR")
	}
	if addr == "" {
		addr = "unix://" + SocketPath(DefaultDataDir())
	}
	if token == "" {
		token = os.Getenv("STRATA_TOKEN")
	}
	c := &Client{addr: addr, token: token}
	switch {
	case strings.HasPrefix(addr, "unix://"):
		sock := strings.TrimPrefix(addr, "unix://")
		c.base = "http://strata"
		c.hc = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
			MaxIdleConnsPerHost: 16,
			WriteBufferSize:     256 << 10,
			ReadBufferSize:      256 << 10,
		}}
	case strings.HasPrefix(addr, "http://"), strings.HasPrefix(addr, "https://"):
		c.base = strings.TrimSuffix(addr, "/")
		c.hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, WriteBufferSize: 256 << 10, ReadBufferSize: 256 << 10}}
	default:
		return nil, fmt.Errorf("server address %q: want unix:///path/to/strata.sock or http://host:port: %w", addr, meta.ErrInvalid)
	}
	return c, nil
}

// Addr is the address the client talks to.
func (c *Client) Addr() string { return c.addr }

func (c *Client) url(p string, q url.Values) string {
	u := c.base + p
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

func esc(s string) string { return url.PathEscape(s) }

// do sends a request and returns the response when it succeeded.
func (c *Client) do(ctx context.Context, method, p string, q url.Values, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(p, q), body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("no strata daemon at %s (start one with 'strata up', or set --server / STRATA_ADDR): %v: %w", c.addr, err, ErrUnreachable)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var e struct{ Error, Code string }
		buf, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(buf, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s %s: %s: %s", method, p, resp.Status, bytes.TrimSpace(buf))
		}
		return nil, &remoteError{msg: e.Error, kind: sentinel(e.Code)}
	}
	return resp, nil
}

func (c *Client) call(ctx context.Context, method, p string, q url.Values, in, out any) error {
	var body io.Reader
	ct := ""
	if in != nil {
		buf, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, ct = bytes.NewReader(buf), "application/json"
	}
	resp, err := c.do(ctx, method, p, q, body, ct)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: bad response: %w", method, p, err)
	}
	return nil
}

func repoPath(repo string) string { return "/v1/repos/" + esc(repo) }

func (c *Client) Version(ctx context.Context) (string, error) {
	var v struct{ Version string }
	err := c.call(ctx, "GET", "/v1/version", nil, nil, &v)
	return v.Version, err
}

func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	return &s, c.call(ctx, "GET", "/v1/status", nil, nil, &s)
}

func (c *Client) CreateRepo(ctx context.Context, name, description string) (*RepoInfo, error) {
	var r RepoInfo
	return &r, c.call(ctx, "POST", "/v1/repos", nil, map[string]string{"name": name, "description": description}, &r)
}

func (c *Client) Repos(ctx context.Context) ([]RepoInfo, error) {
	var r []RepoInfo
	return r, c.call(ctx, "GET", "/v1/repos", nil, nil, &r)
}

func (c *Client) Repo(ctx context.Context, name string) (*RepoInfo, error) {
	var r RepoInfo
	return &r, c.call(ctx, "GET", repoPath(name), nil, nil, &r)
}

func (c *Client) DeleteRepo(ctx context.Context, name string, force bool) error {
	return c.call(ctx, "DELETE", repoPath(name), url.Values{"force": {strconv.FormatBool(force)}}, nil, nil)
}

func (c *Client) Branches(ctx context.Context, repo string) ([]meta.Branch, error) {
	var b []meta.Branch
	return b, c.call(ctx, "GET", repoPath(repo)+"/branches", nil, nil, &b)
}

// SetBranch creates a branch or moves it to head ("" for an empty branch).
func (c *Client) SetBranch(ctx context.Context, repo, branch, head string) (*meta.Branch, error) {
	var b meta.Branch
	return &b, c.call(ctx, "PUT", repoPath(repo)+"/branches/"+esc(branch), nil, map[string]string{"head": head}, &b)
}

func (c *Client) DeleteBranch(ctx context.Context, repo, branch string) error {
	return c.call(ctx, "DELETE", repoPath(repo)+"/branches/"+esc(branch), nil, nil, nil)
}

// Commits lists commits newest first (of a branch's history when branch is set).
func (c *Client) Commits(ctx context.Context, repo, branch string, limit int) ([]meta.Commit, error) {
	var cs []meta.Commit
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if branch != "" {
		q.Set("branch", branch)
	}
	return cs, c.call(ctx, "GET", repoPath(repo)+"/commits", q, nil, &cs)
}

func (c *Client) StartCommit(ctx context.Context, repo, branch, message string) (*meta.Commit, error) {
	var cm meta.Commit
	return &cm, c.call(ctx, "POST", repoPath(repo)+"/commits", nil, map[string]string{"branch": branch, "message": message}, &cm)
}

func commitPath(repo, ref string) string { return repoPath(repo) + "/commits/" + esc(ref) }

func (c *Client) Commit(ctx context.Context, repo, ref string) (*meta.Commit, error) {
	var cm meta.Commit
	return &cm, c.call(ctx, "GET", commitPath(repo, ref), nil, nil, &cm)
}

func (c *Client) FinishCommit(ctx context.Context, repo, ref, failure string) (*meta.Commit, error) {
	var cm meta.Commit
	return &cm, c.call(ctx, "POST", commitPath(repo, ref)+"/finish", nil, map[string]string{"error": failure}, &cm)
}

// WaitCommit blocks until the commit is finished (timeout 0: no limit).
func (c *Client) WaitCommit(ctx context.Context, repo, ref string, timeout time.Duration) (*meta.Commit, error) {
	var cm meta.Commit
	var q url.Values
	if timeout > 0 {
		q = url.Values{"timeout": {timeout.String()}}
	}
	return &cm, c.call(ctx, "GET", commitPath(repo, ref)+"/wait", q, nil, &cm)
}

func (c *Client) DeleteCommit(ctx context.Context, repo, ref string) (*meta.Commit, error) {
	var cm meta.Commit
	return &cm, c.call(ctx, "DELETE", commitPath(repo, ref), nil, nil, &cm)
}

func (c *Client) Stat(ctx context.Context, repo, ref, p string) (*FileInfo, error) {
	var fi FileInfo
	return &fi, c.call(ctx, "GET", commitPath(repo, ref)+"/stat", url.Values{"path": {p}}, nil, &fi)
}

// List returns a directory's entries sorted by name (a file lists itself).
func (c *Client) List(ctx context.Context, repo, ref, p string) ([]FileInfo, error) {
	var fs []FileInfo
	return fs, c.call(ctx, "GET", commitPath(repo, ref)+"/list", url.Values{"path": {p}}, nil, &fs)
}

// OpenFile streams a file's bytes from offset (length < 0: to the end).
func (c *Client) OpenFile(ctx context.Context, repo, ref, p string, offset, length int64) (io.ReadCloser, error) {
	resp, err := c.doRange(ctx, commitPath(repo, ref)+"/file", url.Values{"path": {p}}, offset, length)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func (c *Client) doRange(ctx context.Context, p string, q url.Values, offset, length int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.url(p, q), nil)
	if err != nil {
		return nil, err
	}
	if offset > 0 || length >= 0 {
		end := ""
		if length >= 0 {
			end = strconv.FormatInt(offset+length-1, 10)
		}
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%s", offset, end))
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("no strata daemon at %s: %v: %w", c.addr, err, ErrUnreachable)
	}
	if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(nil))
		return resp, nil
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var e struct{ Error, Code string }
		json.NewDecoder(resp.Body).Decode(&e)
		return nil, &remoteError{msg: e.Error, kind: sentinel(e.Code)}
	}
	return resp, nil
}

// GetTar streams the files below p of repo@ref as a tar archive.
func (c *Client) GetTar(ctx context.Context, repo, ref, p string) (io.ReadCloser, error) {
	resp, err := c.do(ctx, "GET", commitPath(repo, ref)+"/tar", url.Values{"path": {p}}, nil, "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// PutFile writes r to repo@branch:p.
func (c *Client) PutFile(ctx context.Context, repo, branch, p string, r io.Reader, appendTo bool, mode uint32, message string) (*meta.WriteResult, error) {
	q := url.Values{"path": {p}, "message": {message}}
	if appendTo {
		q.Set("append", "true")
	}
	if mode != 0 {
		q.Set("mode", strconv.FormatUint(uint64(mode), 8))
	}
	resp, err := c.do(ctx, "PUT", repoPath(repo)+"/branches/"+esc(branch)+"/file", q, r, "application/octet-stream")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var res meta.WriteResult
	return &res, json.NewDecoder(resp.Body).Decode(&res)
}

// PutTar writes every file of a tar stream under p, as one change.
func (c *Client) PutTar(ctx context.Context, repo, branch, p string, r io.Reader, message string) (*meta.WriteResult, error) {
	q := url.Values{"path": {p}, "message": {message}}
	resp, err := c.do(ctx, "POST", repoPath(repo)+"/branches/"+esc(branch)+"/tar", q, r, "application/x-tar")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var res meta.WriteResult
	return &res, json.NewDecoder(resp.Body).Decode(&res)
}

// Delete removes p (recursively) from a branch.
func (c *Client) Delete(ctx context.Context, repo, branch, p, message string) (*meta.WriteResult, error) {
	var res meta.WriteResult
	return &res, c.call(ctx, "DELETE", repoPath(repo)+"/branches/"+esc(branch)+"/file", url.Values{"path": {p}, "message": {message}}, nil, &res)
}

// Diff lists what changed from one ref to another (from "": the parent).
func (c *Client) Diff(ctx context.Context, repo, from, to string) ([]DiffEntry, error) {
	var d []DiffEntry
	return d, c.call(ctx, "GET", repoPath(repo)+"/diff", url.Values{"from": {from}, "to": {to}}, nil, &d)
}

// Fsck runs a full check; fn gets each fault; the summary is returned.
func (c *Client) Fsck(ctx context.Context, fn func(store.Fault)) (*FsckLine, error) {
	resp, err := c.do(ctx, "POST", "/v1/fsck", nil, nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l FsckLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("fsck: bad response line: %w", err)
		}
		if l.Fault != nil {
			fn(*l.Fault)
		}
		if l.Done {
			if l.Error != "" {
				return &l, errors.New("fsck: " + l.Error)
			}
			return &l, nil
		}
	}
	return nil, fmt.Errorf("fsck: stream ended early: %v", sc.Err())
}

// GC removes unreferenced chunks older than grace.
func (c *Client) GC(ctx context.Context, grace time.Duration) (*store.GCResult, error) {
	var r store.GCResult
	return &r, c.call(ctx, "POST", "/v1/gc", url.Values{"grace": {grace.String()}}, nil, &r)
}
