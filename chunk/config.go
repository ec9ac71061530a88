package chunk

import (
	"fmt"

	"github.com/restic/chunker"
)

// Config is kept in the store's config file. It is chosen once per store:
// the polynomial and the size bounds decide where files are cut, so changing
// them stops new files from deduplicating against old ones. Codec only
// affects chunks written from then on.
type Config struct {
	Polynomial chunker.Pol `json:"polynomial"`  // irreducible, degree at most 53
	Hash       string      `json:"hash"`        // "sha256", the only one for now
	Codec      string      `json:"codec"`       // "s2", "zstd" or "none": the codec for new chunks
	MinSize    uint        `json:"min_size"`    // no cut before this many bytes
	MaxSize    uint        `json:"max_size"`    // always a cut after this many bytes
	SmallLimit int         `json:"small_limit"` // chunks shorter than this go to the small backend
}

// Default chunking parameters: those of restic, so ~1.5 MiB chunks on average.
const (
	DefaultMinSize    = chunker.MinSize
	DefaultMaxSize    = chunker.MaxSize
	DefaultSmallLimit = 128 << 10
)

// maxMaxSize caps MaxSize: every chunk in flight is a buffer of MaxSize bytes.
const maxMaxSize = 64 << 20

// NewConfig returns the default config with a fresh random polynomial, so
// chunk boundaries (and thus chunk sizes) of one store say nothing about
// another store's data.
func NewConfig() (Config, error) {
	pol, err := chunker.RandomPolynomial()
	if err != nil {
		return Config{}, fmt.Errorf("chunk config: %w", err)
	}
	return Config{
		Polynomial: pol,
		Hash:       "sha256",
		Codec:      "s2",
		MinSize:    DefaultMinSize,
		MaxSize:    DefaultMaxSize,
		SmallLimit: DefaultSmallLimit,
	}, nil
}

// Validate reports whether c describes a store this package can read and write.
func (c Config) Validate() error {
	switch {
	case c.Polynomial.Deg() < 9 || c.Polynomial.Deg() > 53 || !c.Polynomial.Irreducible():
		return fmt.Errorf("chunk config: polynomial %v is not irreducible of degree 9 to 53", c.Polynomial)
	case c.Hash != "sha256":
		return fmt.Errorf("chunk config: unknown hash %q", c.Hash)
	case c.MinSize < window || c.MinSize > c.MaxSize || c.MaxSize > maxMaxSize:
		return fmt.Errorf("chunk config: want %d <= min_size (%d) <= max_size (%d) <= %d",
			window, c.MinSize, c.MaxSize, maxMaxSize)
	case c.SmallLimit < 0:
		return fmt.Errorf("chunk config: negative small_limit %d", c.SmallLimit)
	}
	if _, ok := codecs[c.Codec]; !ok {
		return fmt.Errorf("chunk config: unknown codec %q", c.Codec)
	}
	return nil
}
