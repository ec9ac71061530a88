// Package s3test runs a real S3 server (VersityGW over a temp directory)
// for tests. Tests skip when versitygw is not installed, and fail when
// CI=true (install it with .ci/versitygw.sh).
package s3test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

const (
	AccessKey = "strata-test-access"
	SecretKey = "strata-test-secret-key"
	Bucket    = "strata-test"
)

// Server is a running versitygw.
type Server struct {
	t        *testing.T
	Endpoint string // 127.0.0.1:PORT (plain HTTP)
	Root     string // posix backend directory; buckets are directories
	log      *os.File

	mu  sync.Mutex // Stop and Restart may run on different goroutines
	cmd *exec.Cmd
}

// Start starts versitygw on a free port with a posix backend over a temp
// directory holding the bucket Bucket. It is stopped at the end of the test.
func Start(t *testing.T) *Server {
	t.Helper()
	if _, err := exec.LookPath("versitygw"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("versitygw is not installed (run .ci/versitygw.sh)")
		}
		t.Skip("versitygw is not installed (run .ci/versitygw.sh)")
	}
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, Bucket), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{t: t, Endpoint: "127.0.0.1:" + strconv.Itoa(port), Root: root}
	s.log, err = os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
	if err != nil {
		t.Fatal(err)
	}
	s.Restart()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(s.log.Name())
			t.Logf("versitygw log:\n%s", b)
		}
	})
	return s
}

// Stop kills the server.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// Restart (re)starts the server on the same port and waits until it
// accepts connections.
func (s *Server) Restart() {
	s.Stop()
	cmd := exec.Command("versitygw", "--access", AccessKey, "--secret", SecretKey,
		"--port", s.Endpoint, "posix", s.Root)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		s.t.Error(err)
		return
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Endpoint, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(s.log.Name())
			s.t.Errorf("versitygw did not listen on %s: %v\n%s", s.Endpoint, err, b)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// URL is an s3:// URL for the bucket with the given prefix, pointing at
// this server.
func (s *Server) URL(prefix string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&insecure=1", Bucket, prefix, s.Endpoint)
}
