#!/usr/bin/env bash
# Builds edge/pionpub (the edge's pion publisher) into the user's cache, once per source
# version. Prints the binary's path on stdout; progress goes to stderr.
#
#   setup-pionpub.sh                 for this machine
#   setup-pionpub.sh linux/arm64     for a 64-bit Raspberry Pi OS (Pi 3, 4, 5, Zero 2)
#   setup-pionpub.sh linux/armv6     for a 32-bit one (any Pi; armv6 runs on armv7 too)
#
# pionpub is pure Go (CGO off), so any machine with Go builds it for any Pi.
#
# Dependencies come from the Go module proxy and are checked against edge/pionpub/go.sum.
# GOSUMDB is off because the checksum database is not reachable from every machine that
# can reach the proxy; go.sum pins every module's hash, and -mod=readonly refuses any
# module it does not list.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/edge/pionpub"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/livecam"
HASH=$(cat "$SRC/go.mod" "$SRC/go.sum" "$SRC"/*.go | sha256sum | cut -c1-12)
TARGET="${1:-}"
case "$TARGET" in
  "") GOENV=(); SUFFIX="" ;;
  linux/amd64) GOENV=(GOOS=linux GOARCH=amd64); SUFFIX="-linux-amd64" ;;
  linux/arm64) GOENV=(GOOS=linux GOARCH=arm64); SUFFIX="-linux-arm64" ;;
  linux/armv6) GOENV=(GOOS=linux GOARCH=arm GOARM=6); SUFFIX="-linux-armv6" ;;
  *)
    echo "setup-pionpub: unknown target '$TARGET' (linux/amd64, linux/arm64 or linux/armv6)" >&2
    exit 2
    ;;
esac
DEST="$CACHE/pionpub-$HASH$SUFFIX"
BIN="$DEST/pionpub"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "setup-pionpub: Go is not installed; the pion publisher needs Go >= 1.26 (https://go.dev/doc/install)" >&2
  exit 1
fi
need=$(sed -nE 's/^go 1\.([0-9]+).*/\1/p' "$SRC/go.mod")
have=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
if [ "${have:-0}" -lt "${need:-0}" ]; then
  echo "setup-pionpub: $(go env GOVERSION) is too old; edge/pionpub needs Go >= 1.$need" >&2
  exit 1
fi
echo "setup-pionpub: building edge/pionpub${TARGET:+ for $TARGET} (about a minute, once)..." >&2
mkdir -p "$DEST"
tmp=$(mktemp -d "$DEST/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$SRC" && env "${GOENV[@]}" GOSUMDB=off GOFLAGS="-mod=readonly -trimpath -buildvcs=false" \
  CGO_ENABLED=0 go build -o "$tmp/pionpub" .) >&2
# Rename atomically so an interrupted build never leaves a half-written binary behind.
mv "$tmp/pionpub" "$BIN"
echo "setup-pionpub: installed $BIN" >&2
echo "$BIN"
