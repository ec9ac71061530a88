package remote

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/chunk/s3"
)

// ObjectStoreOptions override where the daemon says its bucket is, for a
// reader that reaches it by another address.
type ObjectStoreOptions struct {
	Endpoint string // host:port or http(s)://host[:port]; "": the daemon's
	Region   string // "": the daemon's
}

// OpenObjectStore connects to the bucket holding the daemon's large chunks
// with the credentials in the environment (AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY). It returns the store and a line saying where
// chunks will come from; when the daemon keeps its chunks on its own disk,
// there are no credentials, or S3 refuses them, the store is nil and the
// line says why every chunk comes through the daemon.
func OpenObjectStore(ctx context.Context, st *api.Storage, o ObjectStoreOptions) (BlobGetter, string) {
	const daemon = "reading every chunk through the daemon"
	if st.Type != "s3" {
		return nil, daemon + " (it keeps its large chunks on its own disk)"
	}
	cfg := s3.Config{
		Bucket: st.Bucket, Prefix: st.Prefix, Endpoint: st.Endpoint, Region: st.Region, Insecure: st.Insecure,
		AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"), SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
		// A read waits for this at most before falling back to the daemon.
		RetryFor: 10 * time.Second,
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, fmt.Sprintf("%s: no AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to read %s directly", daemon, st.URL)
	}
	if o.Endpoint != "" {
		if err := cfg.SetEndpoint(o.Endpoint); err != nil {
			return nil, fmt.Sprintf("%s: %v", daemon, err)
		}
	}
	if o.Region != "" {
		cfg.Region = o.Region
	}
	b, err := s3.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Sprintf("%s: %v", daemon, err)
	}
	c := b.Config()
	return b, fmt.Sprintf("reading large chunks from %s at %s, small ones and metadata through the daemon", c.URL(), c.Endpoint)
}

// UseObjectStore asks the daemon behind c where its large chunks live
// and, where this host can read them itself (OpenObjectStore), sets
// o.Large and o.SmallLimit. It returns the line saying where chunks will
// come from. It does not fail: without the bucket, every chunk comes
// through the daemon.
func UseObjectStore(ctx context.Context, c *api.Client, o *Options, oo ObjectStoreOptions) string {
	st, err := c.Storage(ctx)
	if err != nil {
		return "reading every chunk through the daemon: it does not say where its chunks live (" + err.Error() + ")"
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	large, msg := OpenObjectStore(ctx, st, oo)
	o.Large, o.SmallLimit = large, st.SmallLimit
	return msg
}
