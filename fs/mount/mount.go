package mount

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/strata-data/strata/fs/view"
	"github.com/strata-data/strata/store"
)

// Defaults of Options.
const (
	DefaultCommitTimeout = time.Hour
	DefaultBranchTimeout = time.Second
	DefaultReadAheadKB   = 4096
	DefaultUnmountGrace  = 5 * time.Second
	// Chunks a sequential reader has fetched ahead: enough reads in
	// flight to keep a disk busy, and to cover the round trips of a
	// Source or store that fetches over the network.
	DefaultReadAheadChunks = 6
)

// Options tune Mount. The zero value is the default for every field.
type Options struct {
	// Idle finishes a branch's open commit after this long without writes
	// through the mount (view.DefaultIdle, 30 s, when 0; never when < 0).
	Idle time.Duration
	// CommitTimeout is the kernel's entry and attribute cache time for
	// finished commits (default 1 hour).
	CommitTimeout time.Duration
	// BranchTimeout is the same for views that follow a branch (default
	// 1 s): a new commit shows up within this long.
	BranchTimeout time.Duration
	// ReadAheadKB is the mount's read_ahead_kb (default 4096; < 0 leaves
	// the kernel's 128).
	ReadAheadKB int
	// ReadAheadChunks is how many chunks past the one being read a
	// sequential reader has fetched (default 6).
	ReadAheadChunks int
	// UnmountGrace is how long Unmount waits for open files to be closed
	// before it aborts the connection (default 5 s).
	UnmountGrace time.Duration
	// AllowOther lets other users see the mount (with the kernel checking
	// permissions). It is on by default when running as root.
	AllowOther *bool
	// Debug logs every FUSE request.
	Debug bool
	Log   *slog.Logger
}

func (o *Options) defaults() {
	if o.CommitTimeout == 0 {
		o.CommitTimeout = DefaultCommitTimeout
	}
	if o.BranchTimeout == 0 {
		o.BranchTimeout = DefaultBranchTimeout
	}
	if o.ReadAheadKB == 0 {
		o.ReadAheadKB = DefaultReadAheadKB
	}
	if o.ReadAheadChunks <= 0 {
		o.ReadAheadChunks = DefaultReadAheadChunks
	}
	if o.UnmountGrace == 0 {
		o.UnmountGrace = DefaultUnmountGrace
	}
	if o.AllowOther == nil {
		root := os.Geteuid() == 0
		o.AllowOther = &root
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// Server is a mounted /pfs. Unmount it when done; Wait blocks until it is
// unmounted (by Unmount, fusermount3 -u or umount).
type Server struct {
	dir   string
	o     Options
	log   *slog.Logger
	view  *view.FS
	fuse  *fuse.Server
	uid   uint32
	gid   uint32
	conn  string        // the kernel's connection: "major:minor" of the mount's st_dev
	done  chan struct{} // closed when the kernel connection has ended
	ahead *aheadCache   // every file's chunk getter

	mu       sync.Mutex
	branches map[string]*branch // writable branches by repo@branch

	unmountOnce sync.Once
	unmountErr  error
}

// Mount mounts the tree of st at dir (created if missing) and serves it
// until Unmount. A dead FUSE mount left at dir by a crash is detached
// first; a live mount at dir is an error.
func Mount(dir string, st *store.Store, o Options) (*Server, error) {
	o.defaults()
	s, dir, err := newServer(dir, st, o)
	if err != nil {
		return nil, err
	}
	// Drafts that fell back to temp files are unlinked at once; anything
	// left in tmp/ is from a crash.
	cleanTmp(filepath.Join(st.Dir(), "tmp"))
	if err := s.mount(dir, &rootNode{srv: s}); err != nil {
		return nil, err
	}
	return s, nil
}

// MountSource mounts the tree of src at dir, read-only: writes anywhere
// get EROFS, from the kernel (it is a read-only mount) and from every node.
// It serves until Unmount, like Mount. This is how a process other than the
// daemon mounts /pfs: src reads the daemon's API (package fs/view/remote).
func MountSource(dir string, src view.Source, o Options) (*Server, error) {
	s, dir, err := newSourceServer(dir, src, o)
	if err != nil {
		return nil, err
	}
	if err := s.mount(dir, &rootNode{srv: s}); err != nil {
		return nil, err
	}
	return s, nil
}

// newSourceServer serves src read-only.
func newSourceServer(dir string, src view.Source, o Options) (*Server, string, error) {
	o.defaults()
	return newViewServer(dir, view.NewReadOnly(src, view.Options{Log: o.Log}), o)
}

func newServer(dir string, st *store.Store, o Options) (*Server, string, error) {
	return newViewServer(dir, view.New(st, view.Options{Idle: o.Idle, Log: o.Log}), o)
}

func newViewServer(dir string, v *view.FS, o Options) (*Server, string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", err
	}
	if err := prepare(dir, o.Log); err != nil {
		return nil, "", err
	}
	return &Server{
		dir: dir, o: o, log: o.Log,
		view:     v,
		ahead:    newAheadCache(v.Source().Chunks()),
		uid:      uint32(os.Geteuid()),
		gid:      uint32(os.Getegid()),
		done:     make(chan struct{}),
		branches: make(map[string]*branch),
	}, dir, nil
}

// mount serves root at dir.
func (s *Server) mount(dir string, root fusefs.InodeEmbedder) error {
	o := s.o
	opts := []string{"default_permissions"}
	if s.view.ReadOnly() {
		opts = append(opts, "ro")
	}
	fo := &fusefs.Options{
		MountOptions: fuse.MountOptions{
			FsName:        "strata",
			Name:          "strata",
			AllowOther:    *o.AllowOther,
			Options:       opts,
			MaxWrite:      1 << 20,
			MaxReadAhead:  1 << 20,
			MaxBackground: 32,
			DisableXAttrs: true, // ENOSYS: the kernel stops asking
			DisableSplice: true, // replies are in memory; 1 MiB ones do not fit a pipe
			DirectMount:   true, // mount(2) when root, else fusermount3
			Debug:         o.Debug,
		},
		UID:             s.uid,
		GID:             s.gid,
		NullPermissions: true,
	}
	srv, err := fusefs.Mount(dir, root, fo)
	if err != nil {
		return fmt.Errorf("mount %s: %w", dir, err)
	}
	closeOnExecFuse()
	s.fuse = srv
	go func() {
		srv.Wait()
		close(s.done)
		// Unmounted from outside (strata unmount, fusermount3 -u): the
		// writes through the mount are done, so finish them now.
		s.Unmount()
	}()
	var sb unix.Stat_t
	if err := unix.Stat(dir, &sb); err != nil {
		s.Unmount()
		return fmt.Errorf("mount %s: stat after mount: %w", dir, err)
	}
	s.conn = fmt.Sprintf("%d:%d", unix.Major(uint64(sb.Dev)), unix.Minor(uint64(sb.Dev)))
	if o.ReadAheadKB > 0 {
		ra := "/sys/class/bdi/" + s.conn + "/read_ahead_kb"
		if err := os.WriteFile(ra, []byte(strconv.Itoa(o.ReadAheadKB)), 0o644); err != nil {
			o.Log.Info("pfs: could not raise read-ahead; reads stay at the kernel default", "file", ra, "err", err)
		}
	}
	if s.view.ReadOnly() {
		o.Log.Info("pfs mounted read-only", "dir", dir, "conn", s.conn)
	} else {
		o.Log.Info("pfs mounted", "dir", dir, "conn", s.conn, "idle", s.view.Idle())
	}
	return nil
}

// Dir is the mount point.
func (s *Server) Dir() string { return s.dir }

// View is the tree the mount serves.
func (s *Server) View() *view.FS { return s.view }

// Wait blocks until the mount is gone.
func (s *Server) Wait() { <-s.done }

// Unmount detaches the mount, applies every file still being written and
// finishes the open commits the mount wrote to. With files still open it
// detaches lazily (they keep working) and waits Options.UnmountGrace for
// them to close, then aborts the connection (their next access fails with
// ENOTCONN). It is safe to call more than once and after an outside
// unmount.
func (s *Server) Unmount() error {
	s.unmountOnce.Do(func() { s.unmountErr = s.unmount() })
	return s.unmountErr
}

func (s *Server) unmount() error {
	var errs []error
	select {
	case <-s.done: // unmounted from outside
	default:
		if err := s.fuse.Unmount(); err != nil {
			// Busy: files are open. Detach now; the kernel ends the
			// connection when the last one is closed.
			s.log.Info("pfs: files still open; detaching lazily", "dir", s.dir, "err", strings.TrimSpace(err.Error()))
			if err := lazyUnmount(s.dir); err != nil {
				errs = append(errs, err)
			}
			select {
			case <-s.done:
			case <-time.After(s.o.UnmountGrace):
				s.log.Info("pfs: aborting the connection; open files get ENOTCONN", "dir", s.dir, "after", s.o.UnmountGrace)
				abortConn(s.conn)
				select {
				case <-s.done:
				case <-time.After(10 * time.Second):
					errs = append(errs, fmt.Errorf("unmount %s: the kernel did not end the connection", s.dir))
				}
			}
		}
	}
	// No more requests come; apply what was written.
	s.mu.Lock()
	var pending []*fileNode
	for _, b := range s.branches {
		pending = append(pending, b.dirtyFiles()...)
	}
	s.mu.Unlock()
	for _, f := range pending {
		if err := f.flush(); err != nil {
			errs = append(errs, fmt.Errorf("apply %s: %w", f.describe(), err))
		}
		f.dropDraft()
	}
	s.ahead.stop()
	if err := s.view.Close(); err != nil {
		errs = append(errs, err)
	}
	s.log.Info("pfs unmounted", "dir", s.dir)
	return errors.Join(errs...)
}

// branch is a writable branch: its Writer, the lock that orders
// namespace changes (rename, unlink, rmdir: exclusive) against applies of
// files and mkdirs (shared), and the files being written.
//
// Lock order: branch.mu, then fileNode.mu, then branch.regMu. Nothing
// takes branch.mu while holding a fileNode.mu.
type branch struct {
	w  *view.Writer
	mu sync.RWMutex

	regMu sync.Mutex
	dirty map[*fileNode]struct{} // files with writes not yet applied
}

func (s *Server) branch(repo, name string) (*branch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := repo + "@" + name
	if b := s.branches[k]; b != nil {
		return b, nil
	}
	w, err := s.view.Writer(repo, name)
	if err != nil {
		return nil, err
	}
	b := &branch{w: w, dirty: make(map[*fileNode]struct{})}
	s.branches[k] = b
	return b, nil
}

func (b *branch) setDirty(f *fileNode, dirty bool) {
	b.regMu.Lock()
	defer b.regMu.Unlock()
	if dirty {
		b.dirty[f] = struct{}{}
	} else {
		delete(b.dirty, f)
	}
}

func (b *branch) dirtyFiles() []*fileNode {
	b.regMu.Lock()
	defer b.regMu.Unlock()
	out := make([]*fileNode, 0, len(b.dirty))
	for f := range b.dirty {
		out = append(out, f)
	}
	return out
}

// dirtyAt returns the file being written at path p, through any view of
// the branch (REPO and REPO@BRANCH are two trees of one branch). The
// caller holds b.mu.
func (b *branch) dirtyAt(p string) *fileNode {
	for _, f := range b.dirtyFiles() {
		if !f.deleted.Load() && f.path() == p && f.dirty() {
			return f
		}
	}
	return nil
}

// dirtyIn returns the names of files being written in directory dir.
// The caller holds b.mu.
func (b *branch) dirtyIn(dir string) []string {
	var out []string
	for _, f := range b.dirtyFiles() {
		if !f.deleted.Load() && f.parent.path() == dir && f.dirty() {
			out = append(out, f.name)
		}
	}
	return out
}

// prepare makes dir ready to be mounted on: it exists, and is not a dead
// FUSE mount (its server crashed: requests fail with ENOTCONN, though
// stat may still answer from the kernel's cache) or a live mount.
func prepare(dir string, log *slog.Logger) error {
	var sb unix.Stat_t
	err := unix.Stat(dir, &sb)
	switch {
	case dead(err):
		return detachStale(dir, log)
	case errors.Is(err, unix.ENOENT):
		return os.MkdirAll(dir, 0o755)
	case err != nil:
		return fmt.Errorf("mount point %s: %w", dir, err)
	case sb.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("mount point %s is not a directory", dir)
	}
	var parent unix.Stat_t
	if err := unix.Stat(filepath.Dir(dir), &parent); err != nil || parent.Dev == sb.Dev || dir == "/" {
		return nil // not a mount point
	}
	// A mount point: is anyone serving it?
	f, err := os.Open(dir)
	if err == nil {
		_, err = f.Readdirnames(1)
		f.Close()
	}
	if dead(err) {
		return detachStale(dir, log)
	}
	return fmt.Errorf("%s is already a mount point; unmount it first ('strata unmount %s') or mount elsewhere", dir, dir)
}

func dead(err error) bool { return errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.ECONNABORTED) }

func detachStale(dir string, log *slog.Logger) error {
	log.Info("pfs: detaching a stale mount left by a crash", "dir", dir)
	if err := lazyUnmount(dir); err != nil {
		return fmt.Errorf("stale mount at %s: %w", dir, err)
	}
	return nil
}

// Unmount unmounts the FUSE mount at dir, from any process. With lazy set
// it detaches even while files are open.
func Unmount(dir string, lazy bool) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if lazy {
		return lazyUnmount(dir)
	}
	if err := unix.Unmount(dir, 0); err == nil {
		return nil
	} else if errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("unmount %s: files are open there (see 'fuser -m %s'); close them or detach lazily: %w", dir, dir, err)
	} else if errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount %s: not a mount point: %w", dir, err)
	}
	out, err := exec.Command("fusermount3", "-u", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("unmount %s: %s (%w)", dir, strings.TrimSpace(string(out)), err)
	}
	return nil
}

// lazyUnmount detaches the mount at dir now; the kernel ends it when its
// last open file is closed.
func lazyUnmount(dir string) error {
	err := unix.Unmount(dir, unix.MNT_DETACH)
	if err == nil || errors.Is(err, unix.EINVAL) {
		return nil // EINVAL: not mounted (any more)
	}
	out, ferr := exec.Command("fusermount3", "-u", "-z", dir).CombinedOutput()
	if ferr != nil {
		return fmt.Errorf("detach %s: %v; fusermount3: %s", dir, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// abortConn ends a FUSE connection through fusectl (mounting fusectl if
// needed): every pending and future request fails with ENOTCONN.
func abortConn(conn string) {
	_, minor, ok := strings.Cut(conn, ":")
	if !ok {
		return
	}
	const ctl = "/sys/fs/fuse/connections"
	p := filepath.Join(ctl, minor, "abort")
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		unix.Mount("fusectl", ctl, "fusectl", 0, "")
	}
	os.WriteFile(p, []byte("1"), 0o200)
}

// closeOnExecFuse marks every /dev/fuse descriptor of this process
// close-on-exec. go-fuse's direct mount (mount(2) as root) leaves its
// descriptor inheritable, and a child that inherits it (containerd, and
// through it every container shim) keeps the connection alive after we
// die: the mount then hangs instead of failing with ENOTCONN.
func closeOnExecFuse() {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range es {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == "/dev/fuse" {
			unix.CloseOnExec(fd)
		}
	}
}

func cleanTmp(dir string) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range es {
		if strings.HasPrefix(e.Name(), "draft-") {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// Run mounts the tree of st at dir and serves it until ctx is done or the
// mount is unmounted from outside, then unmounts.
func Run(ctx context.Context, st *store.Store, dir string, o Options) error {
	s, err := Mount(dir, st, o)
	if err != nil {
		return err
	}
	return s.serve(ctx)
}

// RunSource mounts the tree of src at dir, read-only (see MountSource), and
// serves it until ctx is done or the mount is unmounted from outside, then
// unmounts.
func RunSource(ctx context.Context, src view.Source, dir string, o Options) error {
	s, err := MountSource(dir, src, o)
	if err != nil {
		return err
	}
	return s.serve(ctx)
}

func (s *Server) serve(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-s.done:
	}
	return s.Unmount()
}
