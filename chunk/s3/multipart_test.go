package s3

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/chunk/s3/s3test"
)

// TestMultipart pins down how chunks travel: minio-go uploads a body in
// one PUT below its 16 MiB part size and in parts above it. The largest
// chunk (MaxSize 8 MiB plus the codec byte) is therefore always one PUT;
// a multipart ETag ("md5-N") shows where parts were used.
func TestMultipart(t *testing.T) {
	srv := s3test.Start(t)
	b, err := New(context.Background(), Config{Bucket: s3test.Bucket, Prefix: "multipart", Endpoint: srv.Endpoint,
		Insecure: true, AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		size  int
		parts bool
	}{
		{chunk.DefaultMaxSize + 1 + 4, false}, // the largest stored chunk: a codec byte and a seal around it
		{40 << 20, true},
	} {
		data := make([]byte, c.size)
		rand.NewChaCha8([32]byte{byte(c.size)}).Read(data)
		id := chunk.Sum(data)
		if err := b.Put(ctx, id, data); err != nil {
			t.Fatalf("Put %d bytes: %v", c.size, err)
		}
		oi, err := b.cl.StatObject(ctx, s3test.Bucket, b.key(id), minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(oi.ETag, "-"); got != c.parts {
			t.Errorf("%d bytes: ETag %q, multipart %v; want %v", c.size, oi.ETag, got, c.parts)
		}
		got, err := b.Get(ctx, id)
		if err != nil || chunk.Sum(got) != id {
			t.Fatalf("Get %d bytes back: %d bytes, %v", c.size, len(got), err)
		}
		if info, err := b.Stat(ctx, id); err != nil || info.Size != int64(c.size) {
			t.Errorf("Stat %d bytes: %+v, %v", c.size, info, err)
		}
	}
}
