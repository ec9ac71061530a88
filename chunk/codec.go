package chunk

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// A stored chunk is one codec byte followed by the payload. The byte, not
// the config, says how to decode, so a store can change codecs over time.
const (
	codecNone byte = 0
	codecS2   byte = 1
	codecZstd byte = 2
)

var codecs = map[string]byte{"none": codecNone, "s2": codecS2, "zstd": codecZstd}

// A sealed blob has flagSealed set on its codec byte and ends with a
// checksum: the CRC-32C (Castagnoli) of the chunk's ID followed by its
// plaintext, little-endian. Reads from a Local backend check that instead
// of hashing the plaintext, at a tenth of SHA-256's cost. Summing the
// plaintext, not the stored bytes, also catches a codec that went wrong;
// the ID in the sum catches a blob stored under another chunk's name.
// Blobs from before sealing have no checksum and are always verified by
// their hash.
const (
	flagSealed byte = 0x80
	sealLen         = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// plainSum is a sealed blob's checksum of the chunk id with plaintext data.
func plainSum(id ID, data []byte) uint32 {
	return crc32.Update(crc32.Checksum(id[:], castagnoli), castagnoli, data)
}

// seal marks blob, the stored form of data, as sealed and appends its
// checksum, in place when blob has the capacity.
func seal(id ID, blob, data []byte) []byte {
	sum := plainSum(id, data) // first: data may alias blob
	blob[0] |= flagSealed
	return binary.LittleEndian.AppendUint32(blob, sum)
}

// unseal returns blob without its checksum, and the checksum if it is
// sealed.
func unseal(blob []byte) (body []byte, sum uint32, sealed bool, err error) {
	if len(blob) == 0 || blob[0]&flagSealed == 0 {
		return blob, 0, false, nil
	}
	if len(blob) < 1+sealLen {
		return nil, 0, true, fmt.Errorf("sealed blob of %d bytes", len(blob))
	}
	body = blob[:len(blob)-sealLen]
	return body, binary.LittleEndian.Uint32(blob[len(body):]), true, nil
}

// sampleSize is how much of a chunk is test-compressed before deciding
// whether to compress it at all: incompressible data (media, archives,
// encrypted files) then costs almost nothing.
const sampleSize = 8 << 10

var (
	zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(0))
		if err != nil {
			panic(err) // only for bad options
		}
		return e
	})
	zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(math.MaxUint32))
		if err != nil {
			panic(err)
		}
		return d
	})
)

// compressible reports whether a sample from the middle of data shrinks by
// at least 10% under s2's fastest estimate.
func compressible(data []byte) bool {
	sample := data
	if len(data) > sampleSize {
		mid := (len(data) - sampleSize) / 2
		sample = data[mid : mid+sampleSize]
	}
	n := s2.EstimateBlockSize(sample)
	return n > 0 && n < len(sample)*9/10
}

// compress returns the stored form of data under codec, in dst if it is
// large enough, or nil if that is not smaller than storing data raw.
func compress(codec byte, data, dst []byte) []byte {
	var blob []byte
	switch codec {
	case codecS2:
		if n := 1 + s2.MaxEncodedLen(len(data)) + sealLen; cap(dst) < n {
			dst = make([]byte, n)
		}
		blob = dst[:1+len(s2.Encode(dst[1:cap(dst)], data))]
	case codecZstd:
		blob = zstdEncoder().EncodeAll(data, append(dst[:0], 0))
	default:
		return nil
	}
	if len(blob) > len(data) {
		return nil
	}
	blob[0] = codec
	return blob
}

// decode returns the plaintext of blob, unsealed, which must not exceed
// limit bytes. It may alias blob.
func decode(blob []byte, limit int) ([]byte, error) {
	if len(blob) == 0 {
		return nil, fmt.Errorf("empty blob")
	}
	payload := blob[1:]
	switch blob[0] &^ flagSealed {
	case codecNone:
		return payload, nil
	case codecS2:
		n, err := s2.DecodedLen(payload)
		if err != nil {
			return nil, err
		}
		if n > limit {
			return nil, fmt.Errorf("s2: %d bytes, want at most %d", n, limit)
		}
		return s2.Decode(make([]byte, n), payload)
	case codecZstd:
		data, err := zstdDecoder().DecodeAll(payload, nil)
		if err == nil && len(data) > limit {
			err = fmt.Errorf("zstd: %d bytes, want at most %d", len(data), limit)
		}
		return data, err
	}
	return nil, fmt.Errorf("unknown codec %d", blob[0]&^flagSealed)
}
