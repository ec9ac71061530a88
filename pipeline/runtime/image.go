package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image describes an image in the strata namespace.
type Image struct {
	// Name is the normalized reference, e.g. docker.io/library/busybox:latest
	// for "busybox".
	Name string
	// Digest is the digest of the image's manifest (or index).
	Digest string
	// Size is the size of the image's content for this platform
	// (compressed layers, config and manifest).
	Size int64
	// Created is the creation time recorded in the image config, or the
	// time the image was added when the config has none.
	Created time.Time
}

// ErrImageNotFound is returned (wrapped) for an image that is not there.
var ErrImageNotFound = errors.New("image not found")

// NormalizeImageName returns the full reference for a familiar name
// ("busybox" → "docker.io/library/busybox:latest"), as images are stored.
func NormalizeImageName(name string) (string, error) {
	ref, err := reference.ParseDockerRef(name)
	if err != nil {
		return "", fmt.Errorf("invalid image name %q: %w", name, err)
	}
	return ref.String(), nil
}

// ImportTar imports an OCI image-layout tarball or a `docker save`
// archive holding one image, tags it name (or, when name is "", the name
// recorded in the archive) and unpacks it for the snapshotter.
func (r *Runtime) ImportTar(ctx context.Context, name string, rd io.Reader) (*Image, error) {
	ctx = r.ctx(ctx)
	ref := ""
	if name != "" {
		var err error
		if ref, err = NormalizeImageName(name); err != nil {
			return nil, fmt.Errorf("runtime: %w", err)
		}
	}
	// The lease keeps the imported content from being collected before an
	// image record refers to it.
	ctx, done, err := r.client.WithLease(ctx)
	if err != nil {
		return nil, fmt.Errorf("runtime: import: %w", err)
	}
	defer done(context.WithoutCancel(ctx))
	cs := r.client.ContentStore()
	indexDesc, err := archive.ImportIndex(ctx, cs, rd)
	if err != nil {
		return nil, fmt.Errorf("runtime: import: reading archive: %w", err)
	}
	blob, err := content.ReadBlob(ctx, cs, indexDesc)
	if err != nil {
		return nil, fmt.Errorf("runtime: import: %w", err)
	}
	var index ocispec.Index
	if err := json.Unmarshal(blob, &index); err != nil {
		return nil, fmt.Errorf("runtime: import: decoding index: %w", err)
	}
	// One image may appear several times (once per tag).
	var (
		target ocispec.Descriptor
		seen   = map[string][]string{}
		order  []string
	)
	for _, m := range index.Manifests {
		if _, ok := m.Annotations[images.AnnotationManifestSubject]; ok {
			continue // a referrer (signature, SBOM), not an image
		}
		d := m.Digest.String()
		if _, ok := seen[d]; !ok {
			order = append(order, d)
			target = m
		}
		if n := archiveImageName(m.Annotations); n != "" {
			seen[d] = append(seen[d], n)
		} else if seen[d] == nil {
			seen[d] = []string{}
		}
	}
	switch {
	case len(order) == 0:
		return nil, errors.New("runtime: import: the archive holds no image")
	case len(order) > 1:
		var names []string
		for _, d := range order {
			names = append(names, fmt.Sprintf("%s %v", d, seen[d]))
		}
		return nil, fmt.Errorf("runtime: import: the archive holds %d images (%s); import one at a time", len(order), strings.Join(names, ", "))
	}
	if ref == "" {
		if names := seen[order[0]]; len(names) > 0 {
			if ref, err = NormalizeImageName(names[0]); err != nil {
				return nil, fmt.Errorf("runtime: import: %w", err)
			}
		} else {
			return nil, errors.New("runtime: import: the archive does not name its image; give it a name")
		}
	}
	target.Annotations = nil
	return r.register(ctx, ref, target)
}

// archiveImageName is the name an archive gives an entry of its index:
// containerd's full-name annotation, or an OCI ref.name that is a full
// reference rather than a bare tag.
func archiveImageName(ann map[string]string) string {
	if n := ann[images.AnnotationImageName]; n != "" {
		return n
	}
	if n := ann[ocispec.AnnotationRefName]; n != "" && strings.ContainsAny(n, "/:") {
		return n
	}
	return ""
}

// register labels the content under target for the garbage collector
// (children of the matching platform), creates or updates the image record
// and unpacks it. ctx must hold a lease covering the content.
func (r *Runtime) register(ctx context.Context, ref string, target ocispec.Descriptor) (*Image, error) {
	cs := r.client.ContentStore()
	handler := images.SetChildrenLabels(cs, images.FilterPlatforms(images.ChildrenHandler(cs), platforms.Default()))
	if err := images.WalkNotEmpty(ctx, handler, target); err != nil {
		return nil, fmt.Errorf("runtime: image %s: %w", ref, err)
	}
	is := r.client.ImageService()
	rec := images.Image{Name: ref, Target: target}
	stored, err := is.Update(ctx, rec, "target")
	if errdefs.IsNotFound(err) {
		stored, err = is.Create(ctx, rec)
	}
	if err != nil {
		return nil, fmt.Errorf("runtime: image %s: %w", ref, err)
	}
	img := containerd.NewImage(r.client, stored)
	if err := img.Unpack(ctx, r.snapshotter); err != nil {
		return nil, fmt.Errorf("runtime: unpacking %s: %w", ref, err)
	}
	return describeImage(ctx, img)
}

// Pull fetches ref from its registry and unpacks it. It needs a reachable
// registry (and, for private ones, credentials, which are not supported).
func (r *Runtime) Pull(ctx context.Context, name string) (*Image, error) {
	ref, err := NormalizeImageName(name)
	if err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	img, err := r.client.Pull(r.ctx(ctx), ref, containerd.WithPullUnpack, containerd.WithPullSnapshotter(r.snapshotter))
	if err != nil {
		return nil, fmt.Errorf("runtime: pulling %s: %w", ref, err)
	}
	return describeImage(r.ctx(ctx), img)
}

// Images lists the images, sorted by name.
func (r *Runtime) Images(ctx context.Context) ([]Image, error) {
	ctx = r.ctx(ctx)
	list, err := r.client.ListImages(ctx)
	if err != nil {
		return nil, fmt.Errorf("runtime: listing images: %w", err)
	}
	out := make([]Image, 0, len(list))
	for _, img := range list {
		d, err := describeImage(ctx, img)
		if err != nil {
			return nil, err
		}
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// LookupImage returns the image called name.
func (r *Runtime) LookupImage(ctx context.Context, name string) (*Image, error) {
	img, err := r.getImage(r.ctx(ctx), name)
	if err != nil {
		return nil, err
	}
	return describeImage(r.ctx(ctx), img)
}

func (r *Runtime) getImage(ctx context.Context, name string) (containerd.Image, error) {
	ref, err := NormalizeImageName(name)
	if err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	img, err := r.client.GetImage(ctx, ref)
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("runtime: %s: %w (import it with `strata image import`, or pull it)", ref, ErrImageNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("runtime: image %s: %w", ref, err)
	}
	return img, nil
}

// DeleteImage removes the image called name; its content and snapshots
// are collected unless another image or a container still uses them.
func (r *Runtime) DeleteImage(ctx context.Context, name string) error {
	ref, err := NormalizeImageName(name)
	if err != nil {
		return fmt.Errorf("runtime: %w", err)
	}
	err = r.client.ImageService().Delete(r.ctx(ctx), ref, images.SynchronousDelete())
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("runtime: %s: %w", ref, ErrImageNotFound)
	}
	if err != nil {
		return fmt.Errorf("runtime: deleting image %s: %w", ref, err)
	}
	return nil
}

func describeImage(ctx context.Context, img containerd.Image) (*Image, error) {
	meta := img.Metadata()
	out := &Image{Name: meta.Name, Digest: meta.Target.Digest.String(), Created: meta.CreatedAt}
	size, err := img.Size(ctx)
	if err != nil {
		return nil, fmt.Errorf("runtime: image %s: size: %w", meta.Name, err)
	}
	out.Size = size
	if spec, err := img.Spec(ctx); err == nil && spec.Created != nil && !spec.Created.IsZero() {
		out.Created = *spec.Created
	}
	return out, nil
}

// ExportImage writes the image called name as an OCI image-layout tarball
// holding this platform's manifest (what ImportTar reads back).
func (r *Runtime) ExportImage(ctx context.Context, name string, w io.Writer) error {
	ctx = r.ctx(ctx)
	img, err := r.getImage(ctx, name)
	if err != nil {
		return err
	}
	is := r.client.ImageService()
	err = r.client.Export(ctx, w,
		archive.WithImage(is, img.Name()),
		archive.WithPlatform(platforms.DefaultStrict()),
		archive.WithSkipMissing(r.client.ContentStore()))
	if err != nil {
		return fmt.Errorf("runtime: export %s: %w", img.Name(), err)
	}
	return nil
}
