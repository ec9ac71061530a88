package chunk

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// IDSize is the length of a chunk ID in bytes.
const IDSize = sha256.Size

// ID names a chunk: the SHA-256 of its plaintext. Two chunks with the same
// bytes have the same ID and are stored once.
type ID [IDSize]byte

// Sum returns the ID of data.
func Sum(data []byte) ID { return ID(sha256.Sum256(data)) }

// String returns the ID in lower-case hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero ID (no chunk).
func (id ID) IsZero() bool { return id == ID{} }

// ParseID parses a 64-character hex chunk ID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("chunk id %q: want %d hex digits", s, 2*IDSize)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("chunk id %q: %w", s, err)
	}
	return id, nil
}

// Ref points at one chunk of a file: its ID and its plaintext length.
// A file is the concatenation of its refs' chunks, in order.
type Ref struct {
	ID   ID
	Size uint32
}
