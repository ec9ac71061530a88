// Package chunk stores file contents as deduplicated, content-defined chunks.
// It is strata's bottom layer and imports nothing else from strata.
//
// # Chunks
//
// A file is cut into chunks where its content says so: a Rabin fingerprint
// of the last 64 bytes, the same as restic's chunker with the store's random
// polynomial, marks a cut, but never before MinSize bytes (512 KiB) and
// always at MaxSize (8 MiB). Chunks average about 1.5 MiB. Because cuts
// depend on content, an insertion or deletion changes only the chunks around
// it, and the rest of the file deduplicates against its earlier version. A
// file shorter than MinSize is one chunk; an empty file has none.
//
// A chunk is named by its ID, the SHA-256 of its plaintext, so equal chunks
// are stored once, in any file or version. A file is the list of its Refs
// (ID and plaintext size) in order; the chunk layer knows nothing of files
// beyond that.
//
// # Stored form
//
// A stored chunk is one codec byte (0 none, 1 s2, 2 zstd) followed by the
// payload and a seal: the CRC-32C of the ID and the blob, flagged by the
// codec byte's top bit. The config names the codec for new chunks; reading
// goes by the byte, so old chunks stay readable when the codec changes. A
// chunk is compressed only if an 8 KiB sample compresses by 10% and the
// whole chunk then shrinks, so incompressible data costs a sample, not a
// compression.
//
// Every read is verified, and a failure is an error wrapping ErrCorrupt.
// A sealed blob from a Local backend is checked by its seal, at a tenth of
// the cost of hashing; any other blob (from S3, from before seals, given
// to Decode) by hashing its plaintext and comparing with its ID, and
// Verify hashes every blob.
//
// # Where chunks live
//
// A Backend is a dumb map from ID to blob: Mem in memory, Dir in a local
// directory (root/ab/abcd..., one file per chunk), others elsewhere. The
// Store is the one place that hashes, compresses, verifies and routes:
// chunks shorter than SmallLimit go to the small backend (a database that
// handles many tiny values well), the rest to the large one; the two may be
// the same.
//
// # Writing and durability
//
// A Writer chunks a stream in the caller's goroutine and hands each chunk to
// the Store's workers (one per CPU) to hash, compress and store, with a
// bounded number of chunks in flight. A chunk the backend already has is
// only touched. Writer.Close returns when every chunk is stored, but a
// stored chunk is durable only after Store.Sync: backends such as Dir do not
// fsync each blob, and Sync flushes them all at once. Callers must Sync
// before recording anything, such as a commit, that refers to new chunks.
//
// # Garbage collection
//
// Chunks are never deleted on the write path. Store.Sweep deletes chunks
// that no live file refers to and that were not put or touched within a
// grace period, which protects chunks of writes still in progress.
package chunk
