// Package s3 stores chunks in an S3-compatible object store (AWS S3, MinIO,
// VersityGW, Ceph RGW, ...). Objects live under PREFIX/xx/ID, fanned out by
// the first byte of the ID like chunk.Dir.
//
// Each object is one chunk in its stored form (a codec byte, the payload
// and a 4-byte checksum, see chunk.Decode). minio-go uploads a body in a
// single PUT below its 16 MiB part size and as a multipart upload above it;
// chunks are at most 8 MiB (chunk.DefaultMaxSize) plus 5 bytes, so every
// chunk is one PUT, and a PUT either stores the whole object or nothing
// (TestMultipart pins this down). Multipart is taken only by larger blobs,
// which strata itself does not write.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/strata-data/strata/chunk"
)

// Config locates a bucket and says how to reach it.
type Config struct {
	Bucket    string
	Prefix    string // key prefix without leading or trailing slash; may be empty
	Endpoint  string // host[:port]; "" means s3.amazonaws.com
	Region    string
	AccessKey string
	SecretKey string
	Insecure  bool // plain HTTP instead of TLS
	// RetryFor bounds the total time spent retrying one operation on
	// transient errors (5xx, timeouts, refused connections). 0: 30 s.
	RetryFor time.Duration
}

// mtimeMeta is user metadata holding the Put time with sub-second
// precision; Last-Modified only has whole seconds.
const mtimeMeta = "Strata-Mtime"

// ParseURL parses s3://BUCKET[/PREFIX][?endpoint=host:port&region=R&insecure=1]
// and fills the rest from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_REGION (or AWS_DEFAULT_REGION) and AWS_ENDPOINT_URL.
func ParseURL(s string) (Config, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Config{}, fmt.Errorf("s3 url %q: %w", s, err)
	}
	if u.Scheme != "s3" || u.Host == "" {
		return Config{}, fmt.Errorf("s3 url %q: want s3://BUCKET/PREFIX", s)
	}
	c := Config{
		Bucket:    u.Host,
		Prefix:    strings.Trim(u.Path, "/"),
		AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
		Region:    os.Getenv("AWS_REGION"),
	}
	if c.Region == "" {
		c.Region = os.Getenv("AWS_DEFAULT_REGION")
	}
	if e := os.Getenv("AWS_ENDPOINT_URL"); e != "" {
		if err := c.SetEndpoint(e); err != nil {
			return Config{}, err
		}
	}
	q := u.Query()
	if e := q.Get("endpoint"); e != "" {
		if err := c.SetEndpoint(e); err != nil {
			return Config{}, err
		}
	}
	if r := q.Get("region"); r != "" {
		c.Region = r
	}
	if v := q.Get("insecure"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("s3 url %q: insecure=%q: %w", s, v, err)
		}
		c.Insecure = b
	}
	return c, nil
}

// SetEndpoint sets Endpoint from host:port or an http(s):// URL (http
// implies Insecure).
func (c *Config) SetEndpoint(e string) error {
	if strings.Contains(e, "://") {
		u, err := url.Parse(e)
		if err != nil {
			return fmt.Errorf("s3 endpoint %q: %w", e, err)
		}
		switch u.Scheme {
		case "http":
			c.Insecure = true
		case "https":
			c.Insecure = false
		default:
			return fmt.Errorf("s3 endpoint %q: scheme must be http or https", e)
		}
		c.Endpoint = u.Host
		return nil
	}
	c.Endpoint = e
	return nil
}

// URL is the canonical s3://BUCKET/PREFIX form, without credentials.
func (c Config) URL() string {
	if c.Prefix == "" {
		return "s3://" + c.Bucket
	}
	return "s3://" + c.Bucket + "/" + c.Prefix
}

// Backend is a chunk.Backend on an S3 bucket. Puts are durable when they
// return, so it is not a chunk.Syncer.
type Backend struct {
	cl  *minio.Client
	cfg Config
}

var (
	_ chunk.Backend = (*Backend)(nil)
	_ chunk.Toucher = (*Backend)(nil)
)

// New connects to the bucket and checks that it exists and that the
// credentials are accepted.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3: no bucket")
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = "s3.amazonaws.com"
	}
	if cfg.RetryFor == 0 {
		cfg.RetryFor = 30 * time.Second
	}
	cfg.Prefix = strings.Trim(cfg.Prefix, "/")
	var creds *credentials.Credentials
	if cfg.AccessKey != "" || cfg.SecretKey != "" {
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{&credentials.EnvAWS{}, &credentials.FileAWSCredentials{}, &credentials.IAM{}})
	}
	cl, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:      creds,
		Secure:     !cfg.Insecure,
		Region:     cfg.Region,
		MaxRetries: 1, // we retry ourselves, with a bounded total time
	})
	if err != nil {
		return nil, fmt.Errorf("s3 %s at %s: %w", cfg.Bucket, cfg.Endpoint, err)
	}
	b := &Backend{cl: cl, cfg: cfg}
	var ok bool
	err = b.retry(ctx, func(ctx context.Context) error {
		var err error
		ok, err = cl.BucketExists(ctx, cfg.Bucket)
		return err
	})
	if err != nil {
		return nil, b.wrap("check bucket", err)
	}
	if !ok {
		return nil, fmt.Errorf("s3: bucket %s does not exist at %s", cfg.Bucket, cfg.Endpoint)
	}
	return b, nil
}

// Config returns the configuration the backend was made with.
func (b *Backend) Config() Config { return b.cfg }

func (b *Backend) key(id chunk.ID) string {
	s := id.String()
	if b.cfg.Prefix == "" {
		return s[:2] + "/" + s
	}
	return b.cfg.Prefix + "/" + s[:2] + "/" + s
}

// ErrCredentials is wrapped by errors for rejected credentials.
var ErrCredentials = errors.New("S3 rejected the credentials")

func (b *Backend) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "NoSuchKey":
		return fmt.Errorf("s3 %s: %w", op, fs.ErrNotExist)
	case "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidSecurity", "InvalidToken", "ExpiredToken":
		return fmt.Errorf("%w for bucket %s at %s (%s: %s)", ErrCredentials, b.cfg.Bucket, b.cfg.Endpoint, resp.Code, resp.Message)
	case "NoSuchBucket":
		return fmt.Errorf("s3: bucket %s does not exist at %s", b.cfg.Bucket, b.cfg.Endpoint)
	}
	if resp.StatusCode == 403 {
		return fmt.Errorf("%w for bucket %s at %s: %v", ErrCredentials, b.cfg.Bucket, b.cfg.Endpoint, err)
	}
	return fmt.Errorf("s3 %s (bucket %s at %s): %w", op, b.cfg.Bucket, b.cfg.Endpoint, err)
}

// transient reports whether err is worth retrying.
func transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	resp := minio.ToErrorResponse(err)
	if resp.StatusCode >= 500 || resp.StatusCode == 429 {
		return true
	}
	switch resp.Code {
	case "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "RequestTimeTooSkewed":
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	var ue *url.Error
	return errors.As(err, &ue)
}

// retry runs fn until it succeeds, fails permanently, or RetryFor has
// passed, backing off exponentially from 100 ms to 2 s.
func (b *Backend) retry(ctx context.Context, fn func(context.Context) error) error {
	deadline := time.Now().Add(b.cfg.RetryFor)
	wait := 100 * time.Millisecond
	for {
		err := fn(ctx)
		if !transient(err) || time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func (b *Backend) Put(ctx context.Context, id chunk.ID, data []byte) error {
	now := time.Now()
	err := b.retry(ctx, func(ctx context.Context) error {
		_, err := b.cl.PutObject(ctx, b.cfg.Bucket, b.key(id), bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{
			ContentType:  "application/octet-stream",
			UserMetadata: map[string]string{mtimeMeta: strconv.FormatInt(now.UnixNano(), 10)},
			// Over plain HTTP minio-go would sign the body in 64 KiB
			// pieces: a SHA-256 pass here and another at the server for
			// every chunk, on top of the one that names it. The body
			// still carries a CRC32C the server checks, and every read
			// re-hashes the chunk.
			DisableContentSha256: true,
		})
		return err
	})
	return b.wrap("put "+id.String(), err)
}

func (b *Backend) Get(ctx context.Context, id chunk.ID) ([]byte, error) {
	var data []byte
	err := b.retry(ctx, func(ctx context.Context) error {
		// One GET whose headers give the size, so the buffer is made once
		// rather than grown through a dozen copies. (Client.GetObject's
		// Stat would send a HEAD first: a second round trip per chunk.)
		body, oi, _, err := minio.Core{Client: b.cl}.GetObject(ctx, b.cfg.Bucket, b.key(id), minio.GetObjectOptions{})
		if err != nil {
			return err
		}
		defer body.Close()
		if oi.Size < 0 {
			data, err = io.ReadAll(body)
			return err
		}
		data = make([]byte, oi.Size)
		_, err = io.ReadFull(body, data)
		return err
	})
	if err != nil {
		return nil, b.wrap("get "+id.String(), err)
	}
	return data, nil
}

func info(oi minio.ObjectInfo) chunk.Info {
	mt := oi.LastModified
	for k, v := range oi.UserMetadata {
		if strings.EqualFold(k, mtimeMeta) || strings.EqualFold(k, "X-Amz-Meta-"+mtimeMeta) {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				// Trust our own time only to within a second of the server's.
				if t := time.Unix(0, n); t.Sub(mt).Abs() < 2*time.Second {
					mt = t
				}
			}
		}
	}
	return chunk.Info{Size: oi.Size, ModTime: mt}
}

func (b *Backend) Stat(ctx context.Context, id chunk.ID) (chunk.Info, error) {
	var oi minio.ObjectInfo
	err := b.retry(ctx, func(ctx context.Context) error {
		var err error
		oi, err = b.cl.StatObject(ctx, b.cfg.Bucket, b.key(id), minio.StatObjectOptions{})
		return err
	})
	if err != nil {
		return chunk.Info{}, b.wrap("stat "+id.String(), err)
	}
	return info(oi), nil
}

// Touch refreshes the object's modification time by copying it onto
// itself with new metadata (a server-side copy; no data crosses the
// network).
func (b *Backend) Touch(ctx context.Context, id chunk.ID) error {
	now := time.Now()
	err := b.retry(ctx, func(ctx context.Context) error {
		_, err := b.cl.CopyObject(ctx, minio.CopyDestOptions{
			Bucket:          b.cfg.Bucket,
			Object:          b.key(id),
			ReplaceMetadata: true,
			UserMetadata:    map[string]string{mtimeMeta: strconv.FormatInt(now.UnixNano(), 10)},
		}, minio.CopySrcOptions{Bucket: b.cfg.Bucket, Object: b.key(id)})
		return err
	})
	return b.wrap("touch "+id.String(), err)
}

func (b *Backend) Delete(ctx context.Context, id chunk.ID) error {
	err := b.retry(ctx, func(ctx context.Context) error {
		return b.cl.RemoveObject(ctx, b.cfg.Bucket, b.key(id), minio.RemoveObjectOptions{})
	})
	if errors.Is(b.wrap("", err), fs.ErrNotExist) {
		return nil
	}
	return b.wrap("delete "+id.String(), err)
}

// List walks every object under the prefix. ModTime is the server's
// Last-Modified (whole seconds), which is enough for gc's grace period.
func (b *Backend) List(ctx context.Context, fn func(chunk.ID, chunk.Info) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	prefix := ""
	if b.cfg.Prefix != "" {
		prefix = b.cfg.Prefix + "/"
	}
	for oi := range b.cl.ListObjects(ctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if oi.Err != nil {
			return b.wrap("list", oi.Err)
		}
		name := strings.TrimPrefix(oi.Key, prefix)
		dir, base, ok := strings.Cut(name, "/")
		if !ok || len(dir) != 2 {
			continue
		}
		id, err := chunk.ParseID(base)
		if err != nil || !strings.HasPrefix(base, dir) {
			continue
		}
		if err := fn(id, chunk.Info{Size: oi.Size, ModTime: oi.LastModified}); err != nil {
			return err
		}
	}
	return ctx.Err()
}
