# strata — build, test, lint, bench, demo.
GO      ?= go
BIN     := bin/strata
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/strata-data/strata/api.Version=$(VERSION)

.PHONY: all build test lint bench bench-meta bench-mount bench-pipeline bench-s3 demo clean

all: build

# Static (CGO_ENABLED=0): pipeline workers run this binary inside their
# containers as the per-datum agent, whatever the image's libc.
build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/strata

# Every test, including the end-to-end ones against a real daemon.
test:
	$(GO) test -race -count=1 -timeout 30m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needs to run on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count=1 -run TestLayering ./tests/
	@if command -v staticcheck >/dev/null; then staticcheck ./...; else echo "staticcheck not installed; skipped"; fi

# Ingest/restore against restic (needs restic: apt-get install -y restic),
# then the metadata benchmarks. Prints tables.
bench: build
	$(GO) run ./tests/bench -strata $(BIN)
	$(MAKE) bench-meta

# The /pfs mount next to local disk and tmpfs (root: mounts a tmpfs).
bench-mount: build
	$(GO) run ./tests/bench -mount -strata $(BIN)

# Pipelines: per-datum overhead next to a container per datum, commit → job
# latency, one new file in a 10,000-datum input (root: runs containers;
# needs containerd, runc, ctr and busybox-static).
bench-pipeline: build
	$(GO) run ./tests/bench -pipeline -strata $(BIN)

# Chunks on S3 (a local VersityGW; install it with .ci/versitygw.sh) next
# to the directory backend: ingest, restore, cold read through /pfs (root:
# mounts /pfs and drops the page cache).
bench-s3: build
	$(GO) run ./tests/bench -s3 -strata $(BIN)

bench-meta:
	$(GO) test -run XXX -bench . -benchtime 1x -timeout 60m ./meta/
	$(GO) test -run XXX -bench . -benchtime 3x ./chunk/

# As root on a fresh Debian machine: packages, build, daemon, example data.
demo:
	bash contrib/demo.sh

clean:
	rm -rf bin
