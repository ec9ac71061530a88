package view

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/strata-data/strata/chunk"
)

type draftState uint8

const (
	draftBase   draftState = iota // the content is base (or empty after a truncate)
	draftStream                   // sequential writes go straight to the chunker
	draftTemp                     // random access: a temp file
	draftDone                     // closed or aborted
)

// Draft is the content of one file being written. It starts as base (the
// file's content before the write) and streams writes at its end into the
// chunker; any other write, a truncate to a new non-zero length, or a read
// moves it to a temporary file (see the package doc). Its methods must not
// be called concurrently; the caller serializes them.
type Draft struct {
	v      *FS
	ctx    context.Context
	cancel context.CancelFunc

	state   draftState
	base    []chunk.Ref
	size    int64
	changed bool

	cw *chunk.Writer // draftStream
	f  *os.File      // draftTemp
	rd *chunk.Reader // reads of base
}

// NewDraft starts a draft whose content is the file made of base (nil for
// an empty file) until it is written.
func (v *FS) NewDraft(base []chunk.Ref) *Draft {
	ctx, cancel := context.WithCancel(context.Background())
	d := &Draft{v: v, ctx: ctx, cancel: cancel, base: base}
	for _, r := range base {
		d.size += int64(r.Size)
	}
	return d
}

// Size is the length of the content.
func (d *Draft) Size() int64 { return d.size }

// Changed reports whether the content differs from base (a truncate to
// the same length or no write at all leaves it unchanged).
func (d *Draft) Changed() bool { return d.changed }

// Streaming reports whether the draft has not fallen back to a temp file.
func (d *Draft) Streaming() bool { return d.state != draftTemp }

func (d *Draft) errDone() error { return fmt.Errorf("draft: %w", fs.ErrClosed) }

// WriteAt writes p at off. Writing past the end leaves a hole of zeros.
func (d *Draft) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("write at offset %d: %w", off, fs.ErrInvalid)
	}
	if d.v.ReadOnly() {
		return 0, fmt.Errorf("write: the tree is read-only: %w", fs.ErrPermission)
	}
	switch d.state {
	case draftDone:
		return 0, d.errDone()
	case draftBase:
		if off != d.size {
			if err := d.toTemp(); err != nil {
				return 0, err
			}
			break
		}
		if len(d.base) == 0 {
			d.cw = d.v.st.Chunks.NewWriter(d.ctx)
		} else {
			cw, err := d.v.st.Chunks.NewAppendWriter(d.ctx, d.base)
			if err != nil {
				return 0, err
			}
			d.cw = cw
		}
		d.state = draftStream
	case draftStream:
		if off != d.size {
			if err := d.toTemp(); err != nil {
				return 0, err
			}
		}
	}
	d.changed = true
	if d.state == draftStream {
		n, err := d.cw.Write(p)
		d.size += int64(n)
		return n, err
	}
	n, err := d.f.WriteAt(p, off)
	d.size = max(d.size, off+int64(n))
	return n, err
}

// Truncate sets the length. Truncating to 0 drops everything and streams
// again; other lengths move the draft to a temp file.
func (d *Draft) Truncate(size int64) error {
	switch {
	case d.state == draftDone:
		return d.errDone()
	case d.v.ReadOnly():
		return fmt.Errorf("truncate: the tree is read-only: %w", fs.ErrPermission)
	case size < 0:
		return fmt.Errorf("truncate to %d: %w", size, fs.ErrInvalid)
	case size == d.size:
		return nil
	case size == 0:
		d.drop()
		d.state, d.base, d.size, d.rd, d.changed = draftBase, nil, 0, nil, true
		return nil
	}
	if d.state != draftTemp {
		if err := d.toTemp(); err != nil {
			return err
		}
	}
	if err := d.f.Truncate(size); err != nil {
		return err
	}
	d.size, d.changed = size, true
	return nil
}

// ReadAt reads the content at off, as io.ReaderAt. Reading a streaming
// draft moves it to a temp file first.
func (d *Draft) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at offset %d: %w", off, fs.ErrInvalid)
	}
	switch d.state {
	case draftDone:
		return 0, d.errDone()
	case draftStream:
		if err := d.toTemp(); err != nil {
			return 0, err
		}
	case draftBase:
		if d.rd == nil {
			d.rd = d.v.NewReader(d.ctx, d.base)
		}
		return d.rd.ReadAt(p, off)
	}
	if off >= d.size {
		return 0, io.EOF
	}
	want := len(p)
	p = p[:min(int64(len(p)), d.size-off)]
	n, err := d.f.ReadAt(p, off)
	if err == nil && n < want {
		err = io.EOF
	}
	return n, err
}

// toTemp moves the content into a temp file.
func (d *Draft) toTemp() error {
	if err := os.MkdirAll(d.v.o.TmpDir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(d.v.o.TmpDir, "draft-*")
	if err != nil {
		return err
	}
	// Unlinked at once: the file lives while it is open, and a crash
	// leaves nothing behind.
	os.Remove(f.Name())
	refs := d.base
	if d.state == draftStream {
		err := d.cw.Close()
		refs = d.cw.Refs()
		d.cw = nil
		if err != nil {
			f.Close()
			return err
		}
	}
	if _, err := d.v.NewReader(d.ctx, refs).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("copy draft to %s: %w", d.v.o.TmpDir, err)
	}
	d.f, d.state, d.rd = f, draftTemp, nil
	return nil
}

// Close stores the content as chunks and returns its refs and length.
// The chunks are stored but not yet durable: Writer.Apply syncs them.
// After Close the draft is done.
func (d *Draft) Close() ([]chunk.Ref, int64, error) {
	defer d.Abort()
	switch d.state {
	case draftDone:
		return nil, 0, d.errDone()
	case draftBase:
		return d.base, d.size, nil
	case draftStream:
		if err := d.cw.Close(); err != nil {
			return nil, 0, err
		}
		refs := d.cw.Refs()
		d.cw = nil
		return refs, d.size, nil
	}
	cw := d.v.st.Chunks.NewWriter(d.ctx)
	if _, err := cw.ReadFrom(io.NewSectionReader(d.f, 0, d.size)); err != nil {
		cw.Abort()
		return nil, 0, err
	}
	if err := cw.Close(); err != nil {
		return nil, 0, err
	}
	return cw.Refs(), cw.Size(), nil
}

// Abort drops the draft. Chunks it stored stay until gc. It is safe to
// call after Close.
func (d *Draft) Abort() {
	if d.state == draftDone {
		return
	}
	d.drop()
	d.state = draftDone
	d.cancel()
}

func (d *Draft) drop() {
	if d.cw != nil {
		d.cw.Abort()
		d.cw = nil
	}
	if d.f != nil {
		d.f.Close()
		d.f = nil
	}
}
