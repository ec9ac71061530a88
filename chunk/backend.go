package chunk

import (
	"context"
	"time"
)

// Info describes a stored blob.
type Info struct {
	Size    int64     // stored (encoded) size in bytes
	ModTime time.Time // last Put or Touch; garbage collection spares recent blobs
}

// Backend stores opaque blobs by chunk ID. It neither hashes, compresses nor
// verifies: the Store does that once for every backend. Implementations must
// be safe for concurrent use.
type Backend interface {
	// Put stores data under id. It is idempotent: putting an existing id
	// again succeeds and refreshes its ModTime. It is atomic: a concurrent or
	// later Get sees either nothing or the whole blob, never a prefix. Put
	// does not retain data after it returns. A Put need not be durable
	// before a later Sync (see Syncer).
	Put(ctx context.Context, id ID, data []byte) error

	// Get returns the blob stored under id, or an error wrapping
	// fs.ErrNotExist if there is none. The caller owns the returned slice.
	Get(ctx context.Context, id ID) ([]byte, error)

	// Stat returns the blob's Info, or an error wrapping fs.ErrNotExist if
	// there is none.
	Stat(ctx context.Context, id ID) (Info, error)

	// Delete removes the blob. Deleting a missing blob is not an error.
	Delete(ctx context.Context, id ID) error

	// List calls fn for every stored blob, in no particular order, from the
	// goroutine that called List and one call at a time. Blobs put or deleted
	// during the walk may or may not be seen. An error from fn stops the walk
	// and List returns it. fn must not call the backend's Delete.
	List(ctx context.Context, fn func(ID, Info) error) error
}

// Toucher is implemented by backends that can refresh a blob's ModTime
// without rewriting it. Touch returns an error wrapping fs.ErrNotExist if the
// blob is missing.
type Toucher interface {
	Touch(ctx context.Context, id ID) error
}

// Syncer is implemented by backends whose Puts are not durable when Put
// returns. Sync returns once every Put that returned before Sync was called
// is durable.
type Syncer interface {
	Sync(ctx context.Context) error
}

// Local is implemented by backends whose blobs are on this machine's own
// disk or in its memory, where Local returns true. The Store checks a
// sealed blob from such a backend by its CRC-32C instead of re-hashing the
// plaintext: the checksum catches what goes wrong on a local disk (bit
// rot, a torn or misplaced file), and whoever could forge a blob there
// could as well rewrite the metadata that names it, so the SHA-256 would
// add no protection. Blobs from any other backend (S3, which others may
// write to) are verified by their hash. Store.Verify (fsck) always hashes.
type Local interface {
	Local() bool
}

// Cache is implemented by backends that keep local copies of blobs held
// elsewhere (a cache in front of S3). The Store verifies every blob it
// reads; when a copy fails that check it calls Evict and reads the blob
// once more, so a copy damaged on the local disk (a crash mid-write, a
// bad sector) heals from the source instead of failing every read.
// Origin returns the backend behind the cache: fsck verifies that, not
// the copies.
type Cache interface {
	Evict(ctx context.Context, id ID) error
	Origin() Backend
}
