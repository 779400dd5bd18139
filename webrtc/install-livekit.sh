#!/usr/bin/env bash
# Builds the pinned livekit-server from the Go module proxy into the user's cache, once.
# Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail

VERSION="${LIVEKIT_VERSION:-v1.13.5}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/livecam"
DEST="$CACHE/livekit-server-$VERSION"
BIN="$DEST/livekit-server"

if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "${VERSION#v}"; then
  echo "$BIN"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "install-livekit: Go is not installed; livekit-server $VERSION needs Go >= 1.24 (https://go.dev/doc/install)" >&2
  exit 1
fi
go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
if [ "${go_minor:-0}" -lt 24 ]; then
  echo "install-livekit: $(go env GOVERSION) is too old; livekit-server $VERSION needs Go >= 1.24" >&2
  exit 1
fi

echo "install-livekit: building livekit-server $VERSION (takes a few minutes, once)..." >&2
mkdir -p "$DEST"
tmp=$(mktemp -d "$DEST/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
GOBIN="$tmp" GOFLAGS="-trimpath" go install "github.com/livekit/livekit-server/cmd/server@$VERSION" >&2
# Rename atomically so an interrupted build never leaves a half-written binary behind.
mv "$tmp/server" "$BIN"
echo "install-livekit: installed $BIN" >&2
echo "$BIN"
