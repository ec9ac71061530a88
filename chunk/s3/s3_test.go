package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/chunk/backendtest"
	"github.com/strata-data/strata/chunk/s3"
	"github.com/strata-data/strata/chunk/s3/s3test"
)

var prefixN atomic.Int64

func config(srv *s3test.Server) s3.Config {
	return s3.Config{
		Bucket: s3test.Bucket, Prefix: fmt.Sprintf("t%d/chunks", prefixN.Add(1)),
		Endpoint: srv.Endpoint, Insecure: true,
		AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey,
	}
}

func TestConformance(t *testing.T) {
	srv := s3test.Start(t)
	backendtest.Run(t, func(t *testing.T) chunk.Backend {
		b, err := s3.New(context.Background(), config(srv))
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestConformanceCached(t *testing.T) {
	srv := s3test.Start(t)
	backendtest.Run(t, func(t *testing.T) chunk.Backend {
		b, err := s3.New(context.Background(), config(srv))
		if err != nil {
			t.Fatal(err)
		}
		c, err := s3.NewCached(b, filepath.Join(t.TempDir(), "cache"), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}

func TestWrongCredentials(t *testing.T) {
	srv := s3test.Start(t)
	cfg := config(srv)
	cfg.SecretKey = "wrong"
	_, err := s3.New(context.Background(), cfg)
	if !errors.Is(err, s3.ErrCredentials) {
		t.Fatalf("New with a wrong secret: %v, want ErrCredentials", err)
	}
	want := fmt.Sprintf("S3 rejected the credentials for bucket %s at %s", s3test.Bucket, srv.Endpoint)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

func TestServerDown(t *testing.T) {
	srv := s3test.Start(t)
	cfg := config(srv)
	cfg.RetryFor = 2 * time.Second
	b, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("some chunk")
	id := chunk.Sum(data)
	srv.Stop()
	start := time.Now()
	err = b.Put(context.Background(), id, data)
	if err == nil {
		t.Fatal("Put with the server down succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Put gave up after %v, want about %v", d, cfg.RetryFor)
	}
	if !strings.Contains(err.Error(), srv.Endpoint) || !strings.Contains(err.Error(), "s3 put") {
		t.Errorf("error %q does not name the operation and endpoint", err)
	}
	t.Logf("error with the server down: %v", err)

	srv.Restart()
	if err := b.Put(context.Background(), id, data); err != nil {
		t.Fatalf("Put after restart: %v", err)
	}
	got, err := b.Get(context.Background(), id)
	if err != nil || string(got) != string(data) {
		t.Fatalf("Get after restart = %q, %v", got, err)
	}
}

// TestRetryAcrossRestart stops the server mid-operation and restarts it
// within the retry window: the Put succeeds.
func TestRetryAcrossRestart(t *testing.T) {
	srv := s3test.Start(t)
	cfg := config(srv)
	cfg.RetryFor = 20 * time.Second
	b, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1<<20)
	id := chunk.Sum(data)
	srv.Stop()
	go func() {
		time.Sleep(time.Second)
		srv.Restart()
	}()
	if err := b.Put(context.Background(), id, data); err != nil {
		t.Fatalf("Put across a restart: %v", err)
	}
	if _, err := b.Stat(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

func TestParseURL(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AK")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "SK")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_ENDPOINT_URL", "https://s3.example.com")
	c, err := s3.ParseURL("s3://bkt/some/prefix/")
	if err != nil {
		t.Fatal(err)
	}
	want := s3.Config{Bucket: "bkt", Prefix: "some/prefix", Endpoint: "s3.example.com", Region: "eu-west-1", AccessKey: "AK", SecretKey: "SK"}
	if c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}
	c, err = s3.ParseURL("s3://bkt?endpoint=127.0.0.1:9000&insecure=1&region=r")
	if err != nil || c.Endpoint != "127.0.0.1:9000" || !c.Insecure || c.Region != "r" || c.Prefix != "" {
		t.Errorf("got %+v, %v", c, err)
	}
	for _, bad := range []string{"http://bkt/x", "s3:///x", "s3://b?insecure=maybe"} {
		if _, err := s3.ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) succeeded", bad)
		}
	}
}

// A cached copy damaged on the local disk (a crash mid-write) heals from
// S3 at the next read, and fsck checks the bucket, not the copies.
func TestCacheHeals(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	b, err := s3.New(ctx, config(srv))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "cache")
	c, err := s3.NewCached(b, dir, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := chunk.NewConfig()
	if err != nil {
		t.Fatal(err)
	}
	st, err := chunk.NewStore(cfg, chunk.NewMem(), c)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{7}).Read(data)
	ref, err := st.Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(dir, ref.ID.String()[:2], ref.ID.String())
	if err := os.Truncate(copyPath, 100); err != nil {
		t.Fatalf("the put left no cached copy: %v", err)
	}
	got, err := st.Get(ctx, ref)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get over a damaged copy: %d bytes, %v", len(got), err)
	}
	if fi, err := os.Stat(copyPath); err == nil && fi.Size() == 100 {
		t.Errorf("the damaged copy is still cached after the heal")
	}
	// fsck reads the bucket: a damaged copy is not a fault there.
	os.Truncate(copyPath, 100)
	faults := 0
	if err := st.Verify(ctx, func(id chunk.ID, err error) {
		if err != nil {
			faults++
		}
	}); err != nil || faults != 0 {
		t.Fatalf("Verify with a damaged cached copy: %d faults, %v", faults, err)
	}
}

// A chunk read from S3 is copied into the cache behind the read, and
// deleting it drops the copy, even one still being written.
func TestCacheFills(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	b, err := s3.New(ctx, config(srv))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "cache")
	c, err := s3.NewCached(b, dir, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	copyOf := func(id chunk.ID) (int64, bool) {
		fi, err := os.Stat(filepath.Join(dir, id.String()[:2], id.String()))
		if err != nil {
			return 0, false
		}
		return fi.Size(), true
	}
	var ids []chunk.ID
	for i := range 20 {
		data := make([]byte, 256<<10)
		rand.NewChaCha8([32]byte{9, byte(i)}).Read(data)
		id := chunk.Sum(data)
		if err := b.Put(ctx, id, data); err != nil { // past the cache
			t.Fatal(err)
		}
		got, err := c.Get(ctx, id)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Get: %d bytes, %v", len(got), err)
		}
		ids = append(ids, id)
	}
	// The first was copied (at most maxFills copies are written at once).
	deadline := time.Now().Add(5 * time.Second)
	for {
		if n, ok := copyOf(ids[0]); ok && n == 256<<10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no whole copy in the cache 5 s after a Get from S3")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, id := range ids {
		if err := c.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // let any copy still being written land
	for _, id := range ids {
		if _, ok := copyOf(id); ok {
			t.Errorf("chunk %s deleted, but its copy is still cached", id)
		}
		if _, err := c.Get(ctx, id); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Get after Delete: %v, want fs.ErrNotExist", err)
		}
	}
}
