package runtime

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	goruntime "runtime"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultPath is the PATH of images built by ImportDir.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ImportDir builds a single-layer image from the root directory dir (no
// entrypoint, Env PATH=DefaultPath, WorkingDir /), tags it name and unpacks
// it. File owners, modes, symlinks and hard links are kept.
func (r *Runtime) ImportDir(ctx context.Context, name, dir string) (*Image, error) {
	ref, err := NormalizeImageName(name)
	if err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("runtime: import dir: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("runtime: import dir: %s is not a directory", dir)
	}
	ctx = r.ctx(ctx)
	ctx, done, err := r.client.WithLease(ctx)
	if err != nil {
		return nil, fmt.Errorf("runtime: import dir: %w", err)
	}
	defer done(context.WithoutCancel(ctx))
	cs := r.client.ContentStore()

	// The layer is streamed into the content store while both of its
	// digests are computed: the blob's (compressed) and the diff ID
	// (uncompressed), which the config records.
	layer, diffID, err := writeLayerBlob(ctx, cs, dir)
	if err != nil {
		return nil, fmt.Errorf("runtime: import dir %s: %w", dir, err)
	}
	now := time.Now().UTC()
	config := ocispec.Image{
		Created:  &now,
		Platform: ocispec.Platform{OS: "linux", Architecture: goruntime.GOARCH},
		Config: ocispec.ImageConfig{
			Env:        []string{DefaultPath},
			WorkingDir: "/",
		},
		RootFS:  ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
		History: []ocispec.History{{Created: &now, CreatedBy: "strata: import of a root directory"}},
	}
	configDesc, err := writeJSONBlob(ctx, cs, ocispec.MediaTypeImageConfig, config)
	if err != nil {
		return nil, fmt.Errorf("runtime: import dir: config: %w", err)
	}
	manifest := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    []ocispec.Descriptor{layer},
	}
	manifestDesc, err := writeJSONBlob(ctx, cs, ocispec.MediaTypeImageManifest, manifest)
	if err != nil {
		return nil, fmt.Errorf("runtime: import dir: manifest: %w", err)
	}
	return r.register(ctx, ref, manifestDesc)
}

func writeJSONBlob(ctx context.Context, cs content.Ingester, mediaType string, v any) (ocispec.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := content.WriteBlob(ctx, cs, "strata-"+desc.Digest.Encoded(), bytes.NewReader(b), desc); err != nil {
		return ocispec.Descriptor{}, err
	}
	return desc, nil
}

// writeLayerBlob tars and gzips dir straight into the content store.
func writeLayerBlob(ctx context.Context, cs content.Ingester, dir string) (ocispec.Descriptor, digest.Digest, error) {
	var nonce [8]byte
	rand.Read(nonce[:])
	w, err := content.OpenWriter(ctx, cs, content.WithRef("strata-layer-"+hex.EncodeToString(nonce[:])))
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer w.Close()
	// Every write to a remote content writer is a gRPC round trip: send
	// it large chunks.
	buf := bufio.NewWriterSize(w, 1<<20)
	blobDigester := digest.Canonical.Digester()
	counter := &countingWriter{w: io.MultiWriter(buf, blobDigester.Hash())}
	gz := gzip.NewWriter(counter)
	diffDigester := digest.Canonical.Digester()
	if err := writeTar(io.MultiWriter(gz, diffDigester.Hash()), dir); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if err := gz.Close(); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if err := buf.Flush(); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	desc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayerGzip,
		Digest:    blobDigester.Digest(),
		Size:      counter.n,
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil && !errdefs.IsAlreadyExists(err) {
		return ocispec.Descriptor{}, "", fmt.Errorf("committing layer: %w", err)
	}
	return desc, diffDigester.Digest(), nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeTar writes the tree under root as a layer tar: relative names,
// numeric owners only, hard links as links, sockets skipped.
func writeTar(w io.Writer, root string) error {
	tw := tar.NewWriter(w)
	type inode struct{ dev, ino uint64 }
	links := map[inode]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSocket != 0 {
			return nil
		}
		var target string
		if fi.Mode()&fs.ModeSymlink != 0 {
			if target, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, target)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		// Owners by number only: the host's user names mean nothing in
		// the image.
		hdr.Uname, hdr.Gname = "", ""
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		hdr.Format = tar.FormatPAX
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			key := inode{uint64(st.Dev), st.Ino}
			if first, ok := links[key]; ok {
				hdr.Typeflag = tar.TypeLink
				hdr.Linkname = first
				hdr.Size = 0
				return tw.WriteHeader(hdr)
			}
			links[key] = hdr.Name
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			_, err = io.CopyN(tw, f, hdr.Size)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
