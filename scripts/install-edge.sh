#!/usr/bin/env bash
# Install the livecam edge on a Raspberry Pi (Raspberry Pi OS 64-bit) or any Debian box:
#
#   curl -fsSL https://cams.example.com/install-edge.sh | sudo bash -s -- \
#       --server https://cams.example.com --code ABCD-EFGH-JKLM
#
# Steps: Debian packages, the `livecam` system user, the edge code (downloaded from the
# server, so it matches the server's version), a venv, enrollment with the one-time code,
# the systemd unit (enabled and started). Re-running is safe: every step checks whether
# it is already done, and an enrolled camera is never enrolled again. --dry-run prints
# every step and changes nothing.
set -euo pipefail

# Every path this script touches sits under LIVECAM_ROOT (empty on a real install); the
# tests point it at a scratch directory and put stub commands first on PATH.
ROOT="${LIVECAM_ROOT:-}"
PREFIX="$ROOT/opt/livecam-edge"
ETC="$ROOT/etc/livecam-edge"
STATE="$ROOT/var/lib/livecam-edge"
UNIT_DIR="$ROOT/etc/systemd/system"
UNIT="livecam-edge.service"
USER_NAME="livecam"
PYTHON="${PYTHON:-python3}"
SOURCES="picamera2 rpicam v4l2 rtsp file synthetic"

SERVER=""
CODE=""
SOURCE="picamera2"
BUNDLE=""
DRY_RUN=0
NO_START=0

usage() {
  cat <<'USAGE'
Usage: install-edge.sh --server URL --code CODE [options]

  --server URL     the livecam server, as the browser uses it (https://cams.example.com)
  --code CODE      the one-time enrollment code from the dashboard's "Add camera"
  --source KIND    camera source: picamera2 (default), rpicam, v4l2, rtsp, file, synthetic
  --bundle PATH    use this edge code (a .tar.gz or a livecam checkout) instead of
                   downloading it from the server
  --no-start       install and enable the service, but do not start it
  --dry-run        print every step; change nothing
  -h, --help       this text

An enrolled machine keeps its credential: re-running updates the code and the unit and
skips enrollment (--code is then not needed).
USAGE
}

say() { printf '==> %s\n' "$*"; }
done_already() { printf '    already done: %s\n' "$*"; }
die() {
  printf 'install-edge: error: %s\n' "$*" >&2
  exit 2
}

# Runs a command, or only prints it under --dry-run.
run() {
  if [ "$DRY_RUN" -eq 1 ]; then
    printf '    would run: %s\n' "$*"
  else
    printf '    run: %s\n' "$*"
    "$@"
  fi
}

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --server) [ $# -ge 2 ] || die "--server needs a URL"; SERVER="$2"; shift 2 ;;
      --code) [ $# -ge 2 ] || die "--code needs the enrollment code"; CODE="$2"; shift 2 ;;
      --source) [ $# -ge 2 ] || die "--source needs a kind"; SOURCE="$2"; shift 2 ;;
      --bundle) [ $# -ge 2 ] || die "--bundle needs a path"; BUNDLE="$2"; shift 2 ;;
      --no-start) NO_START=1; shift ;;
      --dry-run) DRY_RUN=1; shift ;;
      -h | --help) usage; exit 0 ;;
      *) die "unknown argument '$1' (see --help)" ;;
    esac
  done
  [ -n "$SERVER" ] || die "--server is required (the https URL of your livecam server)"
  case "$SERVER" in
    http://* | https://*) ;;
    *) die "--server must start with https:// (or http:// on a trusted LAN), got '$SERVER'" ;;
  esac
  SERVER="${SERVER%/}"
  case " $SOURCES " in
    *" $SOURCE "*) ;;
    *) die "--source must be one of: $SOURCES (got '$SOURCE')" ;;
  esac
  if [ -n "$BUNDLE" ] && [ ! -e "$BUNDLE" ]; then
    die "--bundle $BUNDLE does not exist"
  fi
  if ! is_enrolled && [ -z "$CODE" ]; then
    die "--code is required for a machine that is not enrolled yet (the dashboard's Add camera shows it)"
  fi
}

is_enrolled() {
  [ -f "$ETC/edge.toml" ] && grep -q '^\[\[camera\]\]' "$ETC/edge.toml"
}

check_root() {
  if [ "$DRY_RUN" -eq 0 ] && [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (curl ... | sudo bash -s -- ...)"
  fi
}

step_packages() {
  say "Debian packages"
  local wanted=(python3-venv python3-pip ca-certificates curl)
  [ "$SOURCE" = "picamera2" ] && wanted+=(python3-picamera2)
  [ "$SOURCE" = "rpicam" ] && wanted+=(rpicam-apps)
  local missing=()
  local pkg
  for pkg in "${wanted[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    done_already "packages installed (${wanted[*]})"
    return
  fi
  run apt-get update -qq
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

step_user() {
  say "system user $USER_NAME"
  if id "$USER_NAME" >/dev/null 2>&1; then
    done_already "user $USER_NAME exists"
    return
  fi
  # video: /dev/video* and /dev/dma_heap for the Pi camera.
  run useradd --system --home-dir /var/lib/livecam-edge --shell /usr/sbin/nologin \
    --groups video "$USER_NAME"
}

step_code() {
  say "edge code in $PREFIX/app"
  local tarball
  if [ -n "$BUNDLE" ] && [ -d "$BUNDLE" ]; then
    if [ "$DRY_RUN" -eq 1 ]; then
      printf '    would copy edge/, requirements.txt and the unit from %s\n' "$BUNDLE"
      return
    fi
    tarball="$(mktemp)"
    tar -C "$BUNDLE" -czf "$tarball" --exclude=__pycache__ edge requirements.txt \
      systemd/livecam-edge.service
  elif [ -n "$BUNDLE" ]; then
    tarball="$BUNDLE"
  else
    if [ "$DRY_RUN" -eq 1 ]; then
      printf '    would download %s/edge-bundle.tar.gz\n' "$SERVER"
      return
    fi
    tarball="$(mktemp)"
    curl -fsSL --retry 3 -o "$tarball" "$SERVER/edge-bundle.tar.gz" ||
      die "cannot download $SERVER/edge-bundle.tar.gz (is the server URL right and reachable?)"
  fi
  local sum
  sum="$(sha256sum "$tarball" | cut -d' ' -f1)"
  if [ -f "$PREFIX/app/.bundle-sha256" ] && [ "$(cat "$PREFIX/app/.bundle-sha256")" = "$sum" ]; then
    done_already "edge code is current (${sum:0:12})"
    return
  fi
  # Unpack beside, then swap: a failed download or unpack never leaves half a tree.
  run mkdir -p "$PREFIX"
  run rm -rf "$PREFIX/app.new"
  run mkdir -p "$PREFIX/app.new"
  run tar -C "$PREFIX/app.new" -xzf "$tarball"
  if [ "$DRY_RUN" -eq 0 ]; then
    printf '%s\n' "$sum" >"$PREFIX/app.new/.bundle-sha256"
  fi
  run rm -rf "$PREFIX/app.old"
  if [ -d "$PREFIX/app" ]; then run mv "$PREFIX/app" "$PREFIX/app.old"; fi
  run mv "$PREFIX/app.new" "$PREFIX/app"
  run rm -rf "$PREFIX/app.old"
}

step_venv() {
  say "Python environment in $PREFIX/venv"
  local req="$PREFIX/app/requirements.txt"
  if [ ! -x "$PREFIX/venv/bin/python" ]; then
    # System site packages: picamera2 and libcamera come from apt, not from pip.
    run "$PYTHON" -m venv --system-site-packages "$PREFIX/venv"
  fi
  if [ "$DRY_RUN" -eq 1 ] && [ ! -f "$req" ]; then
    printf '    would run: %s\n' "$PREFIX/venv/bin/pip install -r $req"
    return
  fi
  local sum
  sum="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ -f "$PREFIX/venv/.requirements-sha256" ] &&
    [ "$(cat "$PREFIX/venv/.requirements-sha256")" = "$sum" ]; then
    done_already "requirements installed (${sum:0:12})"
    return
  fi
  run "$PREFIX/venv/bin/pip" install -q -r "$req"
  if [ "$DRY_RUN" -eq 0 ]; then printf '%s\n' "$sum" >"$PREFIX/venv/.requirements-sha256"; fi
}

step_enroll() {
  say "enrollment with $SERVER"
  if is_enrolled; then
    done_already "enrolled ($ETC/edge.toml has a camera; its credential is kept)"
    return
  fi
  run mkdir -p "$ETC" "$STATE"
  run env PYTHONPATH="$PREFIX/app" "$PREFIX/venv/bin/python" -m edge enroll --server "$SERVER" --code "$CODE" \
    --config "$ETC/edge.toml" --source "$SOURCE"
  # The service user reads the config and credential; nobody else does.
  run chown -R "root:$USER_NAME" "$ETC"
  run chmod 0750 "$ETC"
  run chown "$USER_NAME:$USER_NAME" "$STATE"
}

step_unit() {
  say "systemd unit $UNIT"
  local src="$PREFIX/app/systemd/$UNIT"
  if [ -f "$src" ] && cmp -s "$src" "$UNIT_DIR/$UNIT"; then
    done_already "unit installed"
  else
    run install -D -m 0644 "$src" "$UNIT_DIR/$UNIT"
    run systemctl daemon-reload
  fi
  if systemctl is-enabled --quiet "$UNIT" 2>/dev/null; then
    done_already "unit enabled"
  else
    run systemctl enable "$UNIT"
  fi
  if [ "$NO_START" -eq 1 ]; then
    say "not starting the service (--no-start)"
  else
    # restart, not start: a re-run picks up new code.
    run systemctl restart "$UNIT"
  fi
}

step_publisher() {
  say "publisher"
  local arch name
  arch="$(uname -m)"
  case "$arch" in
    aarch64 | arm64) name="pionpub-linux-arm64" ;;
    armv6l | armv7l | armv8l) name="pionpub-linux-armv6" ;;
    x86_64 | amd64) name="pionpub-linux-amd64" ;;
    *) name="" ;;
  esac
  # The edge's publisher = "auto" takes bin/$name from the bundle when it is there.
  if [ -n "$name" ] && [ -x "$PREFIX/app/bin/$name" ]; then
    printf '    pion (bin/%s from the server)\n' "$name"
  else
    printf '    libwebrtc (the server has no pionpub build for %s; see README "publisher")\n' "$arch"
  fi
}

main() {
  parse_args "$@"
  check_root
  [ "$DRY_RUN" -eq 1 ] && say "dry run: nothing will be changed"
  step_packages
  step_user
  step_code
  step_venv
  step_publisher
  step_enroll
  step_unit
  if [ "$DRY_RUN" -eq 1 ]; then
    say "dry run finished"
  else
    say "done: 'systemctl status $UNIT' and 'journalctl -u $UNIT -f' show the camera"
  fi
}

main "$@"
