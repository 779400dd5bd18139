#!/usr/bin/env bash
# The dashboard's one vendored file: livekit-client from npm (exact version pinned in
# package.json / package-lock.json), copied to assets/vendor/ where the API serves it.
# Nothing comes from a CDN. Idempotent: `npm ci` runs only when package-lock.json changed
# since the last successful install; the copy only when the file differs.
#
#   bash scripts/setup-dashboard.sh      # or: source it and call setup_dashboard [ROOT]

setup_dashboard() {
  local root="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
  local lock="$root/package-lock.json"
  local stamp="$root/node_modules/.livecam-lock.sha256"
  local vendor="$root/assets/vendor"
  local dist="$root/node_modules/livekit-client/dist"
  local want have=""

  command -v npm >/dev/null 2>&1 || {
    echo "setup-dashboard: npm is missing (Debian: apt-get install npm)" >&2
    return 1
  }
  want="$(sha256sum "$lock" | cut -d' ' -f1)" || return 1
  [ -f "$stamp" ] && have="$(cat "$stamp")"
  if [ "$want" != "$have" ] || [ ! -f "$dist/livekit-client.esm.mjs" ]; then
    echo "setup-dashboard: npm ci (package-lock.json changed)" >&2
    (cd "$root" && npm ci --no-audit --no-fund --loglevel=error >&2) || return 1
    echo "$want" >"$stamp"
  fi
  mkdir -p "$vendor"
  local name
  for name in livekit-client.esm.mjs livekit-client.esm.mjs.map; do
    if ! cmp -s "$dist/$name" "$vendor/$name"; then
      cp "$dist/$name" "$vendor/$name.tmp" && mv "$vendor/$name.tmp" "$vendor/$name" || return 1
    fi
  done
}

# Run directly (not sourced): do it now.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  setup_dashboard "$@"
fi
