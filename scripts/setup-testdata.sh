#!/usr/bin/env bash
# Real photographs and video for the detection tests and bench, from Debian packages
# (no root needed: apt-get download + dpkg -x). Idempotent; prints the directory.
#   darknet:    person.jpg (person, dog, horse), dog.jpg (dog, bicycle, car), horses.jpg, ...
#   opencv-doc: vtest.avi (pedestrians, parked vehicles), tree.avi, messi5.jpg, basketball*.png, ...
set -euo pipefail
DEST="${XDG_CACHE_HOME:-$HOME/.cache}/livecam/testdata"
[ -f "$DEST/.complete" ] && { echo "$DEST"; exit 0; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
echo "setup-testdata: fetching darknet and opencv-doc (photos and sample videos)" >&2
if ! apt-get download darknet opencv-doc >&2; then
  echo "setup-testdata: apt-get download failed; if the packages are unknown, run" \
    "'apt-get update' (as root) once and try again" >&2
  exit 1
fi
for deb in ./*.deb; do dpkg -x "$deb" x; done
mkdir -p "$DEST/darknet" "$DEST/opencv"
cp x/usr/share/darknet/data/*.jpg "$DEST/darknet/"
find x/usr/share/doc/opencv-doc/examples/data -maxdepth 1 -type f \
  \( -name '*.jpg' -o -name '*.png' -o -name 'vtest.avi' -o -name 'tree.avi' \) \
  -exec cp {} "$DEST/opencv/" \;
touch "$DEST/.complete"
echo "$DEST"
