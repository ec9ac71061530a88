package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/store"
)

func serve(t *testing.T, token string) *httptest.Server {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := NewServer(st, slog.New(slog.NewTextHandler(io.Discard, nil)), func() Status { return Status{} })
	hs := httptest.NewServer(srv.Handler(token))
	t.Cleanup(hs.Close)
	return hs
}

// TestTokenRequired: a TCP listener refuses requests without the token,
// and the client turns the refusal into ErrUnauthorized.
func TestTokenRequired(t *testing.T) {
	hs := serve(t, "s3cret")
	ctx := context.Background()
	for _, tok := range []string{"", "wrong"} {
		cl, err := NewClient(hs.URL, tok)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Repos(ctx); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("token %q: %v, want ErrUnauthorized", tok, err)
		}
	}
	cl, _ := NewClient(hs.URL, "s3cret")
	if _, err := cl.CreateRepo(ctx, "r", ""); err != nil {
		t.Fatal(err)
	}
}

// TestErrorsCrossTheWire: each sentinel survives the HTTP round trip.
func TestErrorsCrossTheWire(t *testing.T) {
	hs := serve(t, "")
	ctx := context.Background()
	cl, _ := NewClient(hs.URL, "")
	cl.CreateRepo(ctx, "r", "")
	if _, err := cl.CreateRepo(ctx, "r", ""); !errors.Is(err, meta.ErrExist) {
		t.Errorf("create twice: %v", err)
	}
	if _, err := cl.Stat(ctx, "r", "main", "/x"); !errors.Is(err, meta.ErrNotExist) {
		t.Errorf("stat on empty branch: %v", err)
	}
	if _, err := cl.CreateRepo(ctx, "bad name", ""); !errors.Is(err, meta.ErrInvalid) {
		t.Errorf("bad name: %v", err)
	}
	if _, err := cl.PutFile(ctx, "r", "main", "/a/../b", strings.NewReader("x"), false, 0, ""); !errors.Is(err, meta.ErrInvalid) {
		t.Errorf("put with ..: %v", err)
	}
	cl.StartCommit(ctx, "r", "main", "")
	if _, err := cl.StartCommit(ctx, "r", "main", ""); !errors.Is(err, meta.ErrConflict) {
		t.Errorf("second open commit: %v", err)
	}
	if _, err := NewClient("ftp://x", ""); !errors.Is(err, meta.ErrInvalid) {
		t.Errorf("bad address: %v", err)
	}
	dead, _ := NewClient("unix:///nonexistent/strata.sock", "")
	if _, err := dead.Repos(ctx); !errors.Is(err, ErrUnreachable) {
		t.Errorf("no daemon: %v", err)
	}
}

// TestRangeRead reads part of a file with an HTTP range.
func TestRangeRead(t *testing.T) {
	hs := serve(t, "")
	ctx := context.Background()
	cl, _ := NewClient(hs.URL, "")
	cl.CreateRepo(ctx, "r", "")
	if _, err := cl.PutFile(ctx, "r", "main", "/f", strings.NewReader("0123456789"), false, 0, ""); err != nil {
		t.Fatal(err)
	}
	rc, err := cl.OpenFile(ctx, "r", "main", "/f", 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "3456" {
		t.Fatalf("range read = %q, want 3456", b)
	}
}
