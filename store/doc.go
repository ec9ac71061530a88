// Package store is the versioned store: it joins the chunk store (file
// bytes) and the metadata database (repos, commits, trees) into file-level
// operations: put a file or a whole tar stream into a branch, read a file
// of any commit, check everything (fsck) and collect garbage (gc).
//
// Ordering is what makes it crash safe: a write first stores every chunk,
// then syncs the chunk backends, and only then commits the metadata that
// references them in one synced batch. A crash before the batch leaves
// unreferenced chunks (removed by gc after a grace period), never a commit
// that points at missing data.
//
// Layout of a data directory:
//
//	DATA/meta/     Pebble: metadata and small chunks
//	DATA/chunks/   large chunks, one file each, fanned out by ID prefix
package store
