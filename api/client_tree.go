package api

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/meta"
)

// The client side of the content-addressed routes (server_tree.go).

// Tree returns the entries of the directory node h, sorted by name.
func (c *Client) Tree(ctx context.Context, h meta.Hash) ([]meta.Entry, error) {
	var ts []TreeEntry
	if err := c.call(ctx, "GET", "/v1/trees/"+h.String(), nil, nil, &ts); err != nil {
		return nil, err
	}
	out := make([]meta.Entry, len(ts))
	for i := range ts {
		e, err := ts[i].Entry()
		if err != nil {
			return nil, fmt.Errorf("tree %s: %w", h, err)
		}
		out[i] = e
	}
	return out, nil
}

// LookupTree returns the entry at path p (clean, see meta.CleanPath) below
// the directory node root; "/" is root itself, with its totals.
func (c *Client) LookupTree(ctx context.Context, root meta.Hash, p string) (*meta.Entry, error) {
	var t TreeEntry
	if err := c.call(ctx, "GET", "/v1/trees/"+root.String()+"/entry", url.Values{"path": {p}}, nil, &t); err != nil {
		return nil, err
	}
	e, err := t.Entry()
	if err != nil {
		return nil, fmt.Errorf("tree %s:%s: %w", root, p, err)
	}
	return &e, nil
}

// Storage says where the daemon keeps chunks.
func (c *Client) Storage(ctx context.Context) (*Storage, error) {
	var s Storage
	if err := c.call(ctx, "GET", "/v1/storage", nil, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// ChunkList returns the chunk refs of the chunk list h (meta.Entry.List).
func (c *Client) ChunkList(ctx context.Context, h meta.Hash) ([]chunk.Ref, error) {
	var rs []ChunkRef
	if err := c.call(ctx, "GET", "/v1/lists/"+h.String(), nil, nil, &rs); err != nil {
		return nil, err
	}
	refs, err := parseRefs(rs)
	if err != nil {
		return nil, fmt.Errorf("chunk list %s: %w", h, err)
	}
	return refs, nil
}

// Chunk returns the plaintext of the chunk ref names, verified against its
// length and SHA-256 (chunk.ErrCorrupt if it does not match).
func (c *Client) Chunk(ctx context.Context, ref chunk.Ref) ([]byte, error) {
	resp, err := c.do(ctx, "GET", "/v1/chunks/"+ref.ID.String(), url.Values{"size": {strconv.FormatUint(uint64(ref.Size), 10)}}, nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.ContentLength >= 0 && resp.ContentLength != int64(ref.Size) {
		return nil, fmt.Errorf("chunk %s: the daemon sent %d bytes, the ref says %d: %w", ref.ID, resp.ContentLength, ref.Size, chunk.ErrCorrupt)
	}
	data := make([]byte, ref.Size)
	if _, err := io.ReadFull(resp.Body, data); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("chunk %s: reading the response: %w", ref.ID, err)
	}
	if chunk.Sum(data) != ref.ID {
		return nil, fmt.Errorf("chunk %s: hash mismatch in the daemon's response: %w", ref.ID, chunk.ErrCorrupt)
	}
	return data, nil
}
