package view_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"testing"
	"time"

	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/fs/view"
	"github.com/strata-data/strata/meta"
)

func readRefs(t *testing.T, v *view.FS, refs []chunk.Ref) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := v.Store().Chunks.NewReader(context.Background(), refs).WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDraft(t *testing.T) {
	f := newFixture(t)
	v := f.v
	ctx := context.Background()
	e, err := v.LookupTree(f.c3.Root, "/dir/sub/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	base, err := f.st.Meta.Refs(e)
	if err != nil {
		t.Fatal(err)
	}
	more := randBytes(9, 2<<20)

	for _, tc := range []struct {
		name   string
		base   []chunk.Ref
		ops    func(d *view.Draft) error
		want   []byte
		stream bool
	}{
		{"sequential", nil, func(d *view.Draft) error {
			for off := 0; off < len(more); off += 100000 {
				if _, err := d.WriteAt(more[off:min(off+100000, len(more))], int64(off)); err != nil {
					return err
				}
			}
			return nil
		}, more, true},
		{"append", base, func(d *view.Draft) error {
			_, err := d.WriteAt(more, int64(len(f.big)))
			return err
		}, append(append([]byte{}, f.big...), more...), true},
		{"overwrite middle", base, func(d *view.Draft) error {
			_, err := d.WriteAt([]byte("XYZ"), 1<<20)
			return err
		}, func() []byte {
			b := append([]byte{}, f.big...)
			copy(b[1<<20:], "XYZ")
			return b
		}(), false},
		{"truncate to zero then write", base, func(d *view.Draft) error {
			if err := d.Truncate(0); err != nil {
				return err
			}
			_, err := d.WriteAt([]byte("new"), 0)
			return err
		}, []byte("new"), true},
		{"truncate shorter", base, func(d *view.Draft) error { return d.Truncate(1000) }, f.big[:1000], false},
		{"hole", nil, func(d *view.Draft) error {
			if _, err := d.WriteAt([]byte("a"), 0); err != nil {
				return err
			}
			_, err := d.WriteAt([]byte("b"), 10)
			return err
		}, []byte("a\x00\x00\x00\x00\x00\x00\x00\x00\x00b"), false},
		{"read while streaming", nil, func(d *view.Draft) error {
			if _, err := d.WriteAt([]byte("hello "), 0); err != nil {
				return err
			}
			buf := make([]byte, 10)
			n, err := d.ReadAt(buf, 0)
			if err != io.EOF || string(buf[:n]) != "hello " {
				return errors.New("read back " + string(buf[:n]))
			}
			_, err = d.WriteAt([]byte("world"), 6)
			return err
		}, []byte("hello world"), false},
		{"untouched", base, func(d *view.Draft) error { return nil }, f.big, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := v.NewDraft(tc.base)
			if err := tc.ops(d); err != nil {
				t.Fatal(err)
			}
			if d.Size() != int64(len(tc.want)) {
				t.Errorf("Size() = %d, want %d", d.Size(), len(tc.want))
			}
			if d.Streaming() != tc.stream {
				t.Errorf("Streaming() = %v, want %v", d.Streaming(), tc.stream)
			}
			refs, size, err := d.Close()
			if err != nil {
				t.Fatal(err)
			}
			if size != int64(len(tc.want)) {
				t.Errorf("Close size %d, want %d", size, len(tc.want))
			}
			if got := readRefs(t, v, refs); !bytes.Equal(got, tc.want) {
				t.Errorf("content: %d bytes, want %d (equal prefix? %v)", len(got), len(tc.want), bytes.HasPrefix(tc.want, got))
			}
			if _, err := d.WriteAt([]byte("x"), 0); !errors.Is(err, fs.ErrClosed) {
				t.Errorf("write after Close: %v, want ErrClosed", err)
			}
		})
	}
	// Chunk boundaries do not depend on how the bytes were written.
	d := v.NewDraft(nil)
	for off := 0; off < len(f.big); off += 4096 {
		d.WriteAt(f.big[off:min(off+4096, len(f.big))], int64(off))
	}
	refs, _, err := d.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != len(base) || refs[0] != base[0] || refs[len(refs)-1] != base[len(base)-1] {
		t.Errorf("streamed refs differ from a put of the same bytes: %d vs %d refs", len(refs), len(base))
	}
	_ = ctx
}

func TestWriterOpenCommit(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	w, err := f.v.Writer("data", "main")
	if err != nil {
		t.Fatal(err)
	}
	if w2, _ := f.v.Writer("data", "main"); w2 != w {
		t.Error("Writer is not shared per branch")
	}
	c1, err := w.Apply(ctx, []meta.Change{{Op: meta.OpMkdir, Path: "/new"}})
	if err != nil {
		t.Fatal(err)
	}
	if c1.State != meta.StateOpen || c1.Parent != f.c3.ID {
		t.Fatalf("first write made %s commit with parent %s; want an open commit on %s", c1.State, c1.Parent, f.c3.ID)
	}
	c2, err := w.Apply(ctx, []meta.Change{{Op: meta.OpMkdir, Path: "/new2"}})
	if err != nil {
		t.Fatal(err)
	}
	if c2.ID != c1.ID {
		t.Errorf("second write went to %s, want the open commit %s", c2.ID, c1.ID)
	}
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// A change that fails fails alone, and leaves the open commit.
	if _, err := w.Apply(ctx, []meta.Change{{Op: meta.OpPut, Path: "/new", Entry: meta.Entry{Type: meta.TypeFile}}}); !errors.Is(err, meta.ErrIsDir) {
		t.Errorf("file over a directory: %v, want ErrIsDir", err)
	}
	if w.Pending() != c1.ID {
		t.Errorf("pending commit %q after a failed apply, want %s", w.Pending(), c1.ID)
	}
	// Readers of the branch see the writes at once.
	if _, err := fs.Stat(f.v, "data/new2"); err != nil {
		t.Errorf("branch view does not show the open commit's write: %v", err)
	}
	// Finished from outside (strata commit finish): the next write starts a
	// new commit.
	if _, err := f.st.Meta.FinishCommit("data", "main", ""); err != nil {
		t.Fatal(err)
	}
	c3, err := w.Apply(ctx, []meta.Change{{Op: meta.OpMkdir, Path: "/new3"}})
	if err != nil {
		t.Fatal(err)
	}
	if c3.ID == c1.ID || c3.Parent != c1.ID || c3.State != meta.StateOpen {
		t.Errorf("write after an outside finish went to %s (parent %s, %s)", c3.ID, c3.Parent, c3.State)
	}
	if err := f.v.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := f.st.Meta.Commit("data", c3.ID)
	if err != nil || c.State != meta.StateFinished {
		t.Errorf("Close left commit %s %v, %v", c3.ID, c.State, err)
	}
	if _, err := w.Apply(ctx, []meta.Change{{Op: meta.OpMkdir, Path: "/late"}}); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("write after Close: %v, want ErrClosed", err)
	}
}

// The first write to a branch with no commits starts its first commit.
func TestWriterEmptyBranch(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.st.Meta.CreateRepo("fresh", "", ""); err != nil {
		t.Fatal(err)
	}
	w, err := f.v.Writer("fresh", "main")
	if err != nil {
		t.Fatal(err)
	}
	c, err := w.Apply(ctx, []meta.Change{{Op: meta.OpMkdir, Path: "/d"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.State != meta.StateOpen || c.Parent != "" || c.Files != 0 {
		t.Errorf("first write made %s commit with parent %q", c.State, c.Parent)
	}
	if err := f.v.Close(); err != nil {
		t.Fatal(err)
	}
	if c, err = f.st.Meta.Commit("fresh", c.ID); err != nil || c.State != meta.StateFinished {
		t.Errorf("Close left commit %v, %v", c, err)
	}
}

func TestWriterIdleFinish(t *testing.T) {
	f := newFixture(t)
	idle := 200 * time.Millisecond
	v := view.New(f.st, view.Options{Idle: idle})
	ctx := context.Background()
	w, err := v.Writer("data", "main")
	if err != nil {
		t.Fatal(err)
	}
	release := w.Hold()
	c, err := w.Apply(ctx, []meta.Change{{Op: meta.OpMkdir, Path: "/x"}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * idle)
	if got, _ := f.st.Meta.Commit("data", c.ID); got.State != meta.StateOpen {
		t.Fatalf("commit finished while a draft was held")
	}
	start := time.Now()
	release()
	for {
		got, err := f.st.Meta.Commit("data", c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == meta.StateFinished {
			break
		}
		if time.Since(start) > 10*idle {
			t.Fatalf("commit still %s %v after the last write", got.State, time.Since(start))
		}
		time.Sleep(idle / 10)
	}
	if el := time.Since(start); el < idle {
		t.Errorf("finished after %v, before the idle period %v", el, idle)
	}
	if w.Pending() != "" {
		t.Errorf("Pending() = %q after idle finish", w.Pending())
	}
}

func TestWriterGroupsConcurrentApplies(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	w, err := f.v.Writer("data", "main")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := f.st.Chunks.Put(ctx, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	file := meta.Entry{Type: meta.TypeFile, Size: 1, Chunks: []chunk.Ref{ref}}
	errs := make(chan error, 200)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				p := fmt.Sprintf("/g%d/f%02d", g, i)
				if i == 7 && g == 3 {
					// A bad change fails alone: /dir is a directory.
					if _, err := w.Apply(ctx, []meta.Change{{Op: meta.OpPut, Path: "/dir", Entry: file}}); !errors.Is(err, meta.ErrIsDir) {
						errs <- fmt.Errorf("file over a directory: %v, want ErrIsDir", err)
					}
				}
				if _, err := w.Apply(ctx, []meta.Change{{Op: meta.OpPut, Path: p, Entry: file}}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c := f.st.Meta
	head, _ := c.Resolve("data", "main")
	if head.Files != f.c3.Files+200 {
		t.Errorf("open commit has %d files, want %d", head.Files, f.c3.Files+200)
	}
}
