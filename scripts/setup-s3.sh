#!/usr/bin/env bash
# Builds the pinned versitygw (an S3-compatible server over a plain directory) from the Go
# module proxy into the user's cache, once. The test suite and bench/media.py start it on
# loopback to test S3 storage and backups against a real S3 implementation, not a mock.
# Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail

VERSION="${VERSITYGW_VERSION:-v1.8.0}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/livecam"
DEST="$CACHE/versitygw-$VERSION"
BIN="$DEST/versitygw"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "setup-s3: Go is not installed; versitygw $VERSION needs Go >= 1.24 (https://go.dev/doc/install)" >&2
  exit 1
fi
echo "setup-s3: building versitygw $VERSION (about a minute, once)..." >&2
mkdir -p "$DEST"
tmp=$(mktemp -d "$DEST/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
GOBIN="$tmp" GOFLAGS="-trimpath" go install "github.com/versity/versitygw/cmd/versitygw@$VERSION" >&2
# Rename atomically so an interrupted build never leaves a half-written binary behind.
mv "$tmp/versitygw" "$BIN"
echo "setup-s3: installed $BIN" >&2
echo "$BIN"
