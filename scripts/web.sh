#!/usr/bin/env bash
# The example chat page (examples/web): build it, test it in Debian's headless chromium, benchmark it.
#
#   scripts/web.sh build   npm ci + esbuild → examples/web/dist (the local gateway serves it on /web/)
#   scripts/web.sh test    build, then the end-to-end test (node --test) against the running stack
#   scripts/web.sh bench   build, then send → appear latency in a browser: through the API vs direct (p50, p95)
#
# Needs Node.js ≥ 20 with npm, and for test/bench Debian's `chromium` (installed with apt-get when missing and
# running as root). Nothing downloads a browser; every npm package is pinned by examples/web/package-lock.json.
# test and bench need the local stack running (scripts/stack.sh start). Screenshots: .local/test-output/web/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
WEB_DIR=examples/web

say() { printf '[web] %s\n' "$*"; }
die() {
  printf '[web] ERROR: %s\n' "$*" >&2
  exit 1
}

apt_install() {
  ((EUID == 0)) || die "$* missing: install the Debian package(s) with: sudo apt-get install -y $*"
  say "installing $* with apt-get (once)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_node() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install nodejs npm
  fi
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  ((major >= 20)) || die "Node.js $major found; the page's tools need Node.js 20 or newer"
}

ensure_chromium() {
  local missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  # Emoji in reactions render as boxes without a colour emoji font: nicer screenshots, not needed by the test.
  if [[ ! -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]] && ((EUID == 0)); then
    missing+=(fonts-noto-color-emoji)
  fi
  ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
  export CHROMIUM_PATH="${CHROMIUM_PATH:-$(command -v chromium)}"
}

build() {
  ensure_node
  say "npm ci (examples/web/package-lock.json)"
  (cd "$WEB_DIR" && npm ci --no-audit --no-fund --loglevel=error)
  (cd "$WEB_DIR" && node build.mjs)
}

require_stack() {
  scripts/stack.sh status >/dev/null 2>&1 || die "the local stack is not running: scripts/stack.sh start"
}

case "${1:-}" in
  build) build ;;
  test)
    build
    ensure_chromium
    require_stack
    mkdir -p .local/test-output/web
    (cd "$WEB_DIR" && node --test --test-reporter=spec test/unit.test.mjs test/chat.test.mjs)
    say "screenshots in .local/test-output/web/"
    ;;
  bench)
    build
    ensure_chromium
    require_stack
    (cd "$WEB_DIR" && node bench/latency.mjs "${2:-50}")
    ;;
  *)
    sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
