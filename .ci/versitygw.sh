#!/usr/bin/env bash
# Installs VersityGW (a real S3 server over a posix directory) for the S3
# tests in chunk/s3 and tests/s3_test.go. Building takes a few minutes; it
# is skipped when versitygw is already on PATH.
set -euo pipefail
export PATH="/usr/local/go/bin:$PATH"
VERSION=v1.8.0
if command -v versitygw >/dev/null 2>&1; then
	exit 0
fi
GOBIN=/usr/local/bin go install "github.com/versity/versitygw/cmd/versitygw@${VERSION}"
versitygw --version
