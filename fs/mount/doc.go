// Package mount serves the /pfs tree of package view through FUSE. It is
// the only package that imports go-fuse.
//
// # Nodes and caching
//
// Every directory and file the kernel knows is a node that belongs to one
// view: the ref a top-level name resolved to (see view.Ref). A pinned view
// (a finished commit: REPO@ID, REPO@BRANCH^N, .commits/REPO/ID) never
// changes, so its nodes hold their tree hash and entry and answer with long
// kernel entry and attribute timeouts (Options.CommitTimeout, 1 hour) and
// FOPEN_KEEP_CACHE; its directories are cached by the kernel too. A live
// view (REPO, REPO@BRANCH) answers with short timeouts
// (Options.BranchTimeout, 1 second) and resolves the branch again on every
// lookup, so a new commit is visible within a second. A live node is
// reused for a path only while its content is unchanged, which is what
// makes FOPEN_KEEP_CACHE safe there too: new content is a new inode.
//
// Opening a file reads its chunk refs from metadata, never its chunks;
// each open file reads through its own chunk.Reader, which fetches only
// the chunks a read covers and keeps decoded those the kernel's read-ahead
// window can span. A sequential reader has the next six chunks fetched
// ahead (Options.ReadAheadChunks); a random one fetches nothing extra. The
// kernel's read-ahead for the mount is raised to Options.ReadAheadKB (4
// MiB) and its requests to 1 MiB. A request within one chunk is answered
// from the decoded chunk without a copy, and the handle's Reader reuses
// the chunk's buffer (chunk.Reader.Reuse) once the reply is written.
// Once three files of a directory are read in name order, the chunks of
// the next 64 files under 1 MiB are fetched ahead, four at a time, into a
// cache of at most 32 MiB that every file's Reader takes chunks from
// (ahead.go): reading many small files is otherwise one cold fetch after
// another.
// Extended attributes answer ENOSYS, after which the kernel stops asking
// (`ls -l` of 10,000 files: 0.8 s -> 0.11 s).
//
// # Writing
//
// Under a writable branch view, creating, writing, truncating, renaming
// and removing files and directories go into the branch's open commit
// through a view.Writer. A file's bytes go into a view.Draft while it is
// open for writing and are applied, as one change, when it is closed
// (flush) or fsynced; until then lookups in that directory return the
// node being written, so readers see it at once. Directory changes
// (mkdir, rmdir, unlink, rename, chmod) are applied at once. A rename moves
// a whole subtree in one change. Renames, unlinks and rmdirs of a branch
// are serialized with each other and with applies, so a file closed during
// a rename lands where the rename put it.
//
// Hard links, symlinks and device nodes get EPERM; extended attributes
// ENOTSUP; writes to a read-only view EROFS. No request blocks on anything
// but the store.
//
// # Read-only mounts
//
// MountSource serves the tree of any view.Source read-only (a mount made
// by another process through the daemon's API): the kernel mount is "ro",
// and every node answers writes with EROFS.
//
// # Errors
//
// Every error a node returns goes through Server.errno, the one mapping
// from strata's sentinels to errno values (see errno.go).
//
// # Unmount
//
// Unmount detaches the mount (lazily if files are still open, then waits
// Options.UnmountGrace for them to close before aborting the connection),
// applies every file still being written, and finishes the open commits
// the mount wrote to.
package mount
