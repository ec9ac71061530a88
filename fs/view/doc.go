// Package view is the tree that strata shows at /pfs, without the kernel:
// which names exist, what each one shows and when that can change, and how
// a write to a branch becomes part of a commit. The FUSE mount (fs/mount)
// serves this tree; tests and tools can use it directly as an io/fs.FS.
//
// The tree reads through a Source: the store of this process (New, the
// daemon's own /pfs, writable), or any other Source, such as the daemon's
// API seen from another process (NewReadOnly with package fs/view/remote),
// read-only.
//
// # Names
//
// The root lists every repo as REPO (its default branch, main) and every
// branch as REPO@BRANCH. Three more kinds of name resolve on lookup but are
// not listed, so that `ls /pfs` stays short:
//
//	REPO@COMMIT      a commit by full ID or unique prefix (at least 4 hex digits)
//	REPO@BRANCH^N    the N-th finished ancestor of a branch (also ~N; ^ means ^1)
//	REPO@COMMIT^N    the N-th ancestor of a commit
//	.commits/        one directory per repo; .commits/REPO/ lists the repo's
//	                 finished commits newest first (directory order; mtime is
//	                 the commit's finish time, so `ls -t` sorts the same way),
//	                 each a directory named by its full ID showing that commit
//
// A missing repo, branch or commit is fs.ErrNotExist; a prefix that matches
// two commits is an error wrapping meta.ErrAmbiguous.
//
// # What a name shows, and when it changes
//
// A Ref is what a name resolves to at one moment. Its Kind says how it can
// change:
//
//   - Branch (REPO, REPO@BRANCH) follows the branch. It shows the branch's
//     open commit if it has one, because that is where writes through /pfs
//     go and a writer must read its own writes; otherwise its head. A branch
//     with no commits shows an empty directory. A pipeline's output branch
//     is read-only and shows its newest finished commit, never a job's
//     half-written output.
//   - Ancestor (REPO@BRANCH^N) shows a finished commit that never changes,
//     but the name moves to another commit when the branch moves.
//   - Commit (REPO@ID, .commits/REPO/ID) shows one commit forever. A
//     finished commit is immutable: its entries, sizes and modes come from
//     metadata and its mtime is the commit's finish time. (An open commit
//     named by its ID still changes until it is finished.)
//
// # Writing
//
// Only Branch refs of repos that no pipeline owns are writable. A Writer
// (one per branch, shared) applies changes to the branch's open commit,
// starting one on the first write if the branch has none and reusing it
// otherwise, so many files written through /pfs become one commit. The
// commit is finished by `strata commit finish REPO@BRANCH` (the Writer then
// starts a new one on the next write), by Close (the mount calls it on
// unmount), or by the Writer itself after an idle period without writes
// (Options.Idle, 30 s by default) while no file is being written.
//
// A Draft holds the bytes of one file being written. Sequential writes
// from offset 0 (or appends at the end of the existing content) stream
// straight into the chunker, so a file of any size costs one chunk of
// memory. The first write elsewhere, a truncate to a new non-zero length,
// or a read of the draft moves it to a temporary file under DATA/tmp/,
// which is chunked when the draft is closed.
//
// Chunks of a draft are stored before its commit refers to them. Like any
// in-flight write they are protected from `strata gc` only by its grace
// period (one hour by default), so a file held open for writing longer than
// the grace period must not race a gc run with a shorter one.
package view
