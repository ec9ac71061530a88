package api

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/meta"
	"github.com/strata-data/strata/store"
)

// The content-addressed routes that remote mounts read: trees, chunk
// lists and chunks.

func serveStore(t *testing.T, token string) (*store.Store, *httptest.Server) {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := NewServer(st, slog.New(slog.NewTextHandler(io.Discard, nil)), func() Status { return Status{} })
	hs := httptest.NewServer(srv.Handler(token))
	t.Cleanup(hs.Close)
	return st, hs
}

func randData(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b[:n]
}

// treeFixture: repo r with /small.txt, /dir/sub/big.bin of bigSize bytes
// (72 MiB are enough chunks to need a chunk list) and /dir/empty.
func treeFixture(t *testing.T, st *store.Store, bigSize int) (c *meta.Commit, big []byte) {
	t.Helper()
	ctx := context.Background()
	if _, err := st.Meta.CreateRepo("r", "", ""); err != nil {
		t.Fatal(err)
	}
	big = randData(7, bigSize)
	for p, data := range map[string][]byte{"/small.txt": []byte("small\n"), "/dir/sub/big.bin": big, "/dir/empty": nil} {
		res, err := st.PutFile(ctx, "r", "main", p, bytes.NewReader(data), store.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c = res.Commit
	}
	return c, big
}

func TestTreeRoutes(t *testing.T) {
	st, hs := serveStore(t, "tok")
	c, big := treeFixture(t, st, 72<<20)
	ctx := context.Background()
	cl, _ := NewClient(hs.URL, "tok")

	// Directories: what the metadata holds, entry for entry.
	for _, p := range []string{"/", "/dir", "/dir/sub"} {
		e, err := st.Meta.Lookup(c.Root, p)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := st.Meta.ReadDir(e.Tree)
		got, err := cl.Tree(ctx, e.Tree)
		if err != nil {
			t.Fatalf("tree of %s: %v", p, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("tree of %s:\n got %+v\nwant %+v", p, got, want)
		}
	}
	if es, err := cl.Tree(ctx, meta.EmptyTree); err != nil || len(es) != 0 {
		t.Errorf("empty tree: %v, %v", es, err)
	}

	// Lookups, the root with its totals.
	for _, p := range []string{"/", "/small.txt", "/dir", "/dir/sub/big.bin", "/dir/empty"} {
		want, _ := st.Meta.Lookup(c.Root, p)
		got, err := cl.LookupTree(ctx, c.Root, p)
		if err != nil {
			t.Fatalf("lookup %s: %v", p, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("lookup %s:\n got %+v\nwant %+v", p, got, want)
		}
	}
	if root, _ := cl.LookupTree(ctx, c.Root, "/"); root.Size != int64(len(big))+6 || root.Files != 3 {
		t.Errorf("root totals: size %d files %d", root.Size, root.Files)
	}

	// The big file's chunk list, and its chunks make the file.
	e, _ := st.Meta.Lookup(c.Root, "/dir/sub/big.bin")
	if e.List.IsZero() {
		t.Fatalf("big.bin has %d inline refs; the fixture needs a chunk list", len(e.Chunks))
	}
	want, _ := st.Meta.Refs(e)
	refs, err := cl.ChunkList(ctx, e.List)
	if err != nil || !reflect.DeepEqual(refs, want) {
		t.Fatalf("chunk list: %v (%d refs, want %d)", err, len(refs), len(want))
	}
	var all []byte
	for _, r := range refs {
		data, err := cl.Chunk(ctx, r)
		if err != nil {
			t.Fatalf("chunk %s: %v", r.ID, err)
		}
		all = append(all, data...)
	}
	if !bytes.Equal(all, big) {
		t.Errorf("the chunks of big.bin do not make the file")
	}
	small, _ := st.Meta.Lookup(c.Root, "/small.txt")
	if data, err := cl.Chunk(ctx, small.Chunks[0]); err != nil || string(data) != "small\n" {
		t.Errorf("small chunk: %q, %v", data, err)
	}

	// Immutable responses say so.
	for _, u := range []string{"/v1/trees/" + c.Root.String(), "/v1/lists/" + e.List.String(),
		"/v1/chunks/" + refs[0].ID.String() + "?size=" + strconv.FormatUint(uint64(refs[0].Size), 10)} {
		resp := get(t, hs.URL+u, "tok")
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("GET %s: %s, Cache-Control %q", u, resp.Status, resp.Header.Get("Cache-Control"))
		}
	}
}

func get(t *testing.T, url, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestTreeRoutesNotFound(t *testing.T) {
	st, hs := serveStore(t, "")
	c, _ := treeFixture(t, st, 1<<20)
	ctx := context.Background()
	cl, _ := NewClient(hs.URL, "")
	var nowhere meta.Hash
	nowhere[0] = 1
	missing := chunk.Ref{ID: chunk.Sum([]byte("never stored")), Size: 12}

	if _, err := cl.Tree(ctx, nowhere); !errors.Is(err, meta.ErrNotExist) {
		t.Errorf("tree of an unknown hash: %v", err)
	}
	if _, err := cl.LookupTree(ctx, c.Root, "/nope"); !errors.Is(err, meta.ErrNotExist) {
		t.Errorf("lookup of a missing path: %v", err)
	}
	if _, err := cl.LookupTree(ctx, c.Root, "/small.txt/x"); !errors.Is(err, meta.ErrNotDir) {
		t.Errorf("lookup through a file: %v", err)
	}
	if _, err := cl.LookupTree(ctx, meta.EmptyTree, "/x"); !errors.Is(err, meta.ErrNotExist) {
		t.Errorf("lookup in the empty tree: %v", err)
	}
	if _, err := cl.ChunkList(ctx, nowhere); !errors.Is(err, meta.ErrNotExist) {
		t.Errorf("unknown chunk list: %v", err)
	}
	if _, err := cl.Chunk(ctx, missing); !errors.Is(err, meta.ErrNotExist) {
		t.Errorf("unknown chunk: %v", err)
	}

	// On the wire: 404 not_found, 400 invalid.
	for u, want := range map[string]string{
		"/v1/chunks/" + missing.ID.String() + "?size=12":       "404 not_found",
		"/v1/trees/" + nowhere.String():                        "404 not_found",
		"/v1/trees/xyz":                                        "400 invalid",
		"/v1/chunks/" + missing.ID.String():                    "400 invalid", // no size
		"/v1/trees/" + c.Root.String() + "/entry?path=/a/../b": "400 invalid",
	} {
		resp := get(t, hs.URL+u, "")
		var body struct{ Code string }
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if got := strconv.Itoa(resp.StatusCode) + " " + body.Code; got != want {
			t.Errorf("GET %s: %s, want %s", u, got, want)
		}
	}
}

// TestTreeRoutesToken: on TCP the new routes need the token like the rest.
func TestTreeRoutesToken(t *testing.T) {
	st, hs := serveStore(t, "s3cret")
	c, _ := treeFixture(t, st, 1<<20)
	e, _ := st.Meta.Lookup(c.Root, "/small.txt")
	ctx := context.Background()
	for _, tok := range []string{"", "wrong"} {
		cl, _ := NewClient(hs.URL, tok)
		if _, err := cl.Tree(ctx, c.Root); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("token %q: tree: %v", tok, err)
		}
		if _, err := cl.LookupTree(ctx, c.Root, "/"); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("token %q: lookup: %v", tok, err)
		}
		if _, err := cl.Chunk(ctx, e.Chunks[0]); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("token %q: chunk: %v", tok, err)
		}
		if _, err := cl.Storage(ctx); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("token %q: storage: %v", tok, err)
		}
		resp := get(t, hs.URL+"/v1/chunks/"+e.Chunks[0].ID.String()+"?size=6", tok)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("token %q: GET chunk: %s", tok, resp.Status)
		}
	}
	cl, _ := NewClient(hs.URL, "s3cret")
	if data, err := cl.Chunk(ctx, e.Chunks[0]); err != nil || string(data) != "small\n" {
		t.Errorf("with the token: %q, %v", data, err)
	}
}

// TestChunkVerified: the client checks what it receives against the ref.
func TestChunkVerified(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("not what you asked for"))
	}))
	defer hs.Close()
	cl, _ := NewClient(hs.URL, "")
	data := []byte("what you asked for, exactly")
	for _, ref := range []chunk.Ref{
		{ID: chunk.Sum(data), Size: uint32(len(data))},                     // wrong length
		{ID: chunk.Sum(data), Size: uint32(len("not what you asked for"))}, // wrong bytes
	} {
		if _, err := cl.Chunk(context.Background(), ref); !errors.Is(err, chunk.ErrCorrupt) {
			t.Errorf("size %d: %v, want ErrCorrupt", ref.Size, err)
		}
	}
}

// TestStorageRoute: the daemon says where its chunks live, and nothing
// about credentials.
func TestStorageRoute(t *testing.T) {
	_, hs := serveStore(t, "")
	cl, _ := NewClient(hs.URL, "")
	s, err := cl.Storage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := (Storage{SmallLimit: chunk.DefaultSmallLimit, Type: "dir"}); *s != want {
		t.Errorf("storage of a dir store = %+v, want %+v", *s, want)
	}
}
