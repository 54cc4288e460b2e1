#!/usr/bin/env bash
# The example chat page (examples/web), run by `openmeet-local stack web` (functions/local/src/stack/web_page.rs):
#
#   scripts/web.sh build   npm ci + esbuild → examples/web/dist (the local gateway serves it on /web/)
#   scripts/web.sh test    build, then the end-to-end test (node --test) against the running stack
#   scripts/web.sh bench   build, then send → appear latency in a browser: through the API vs direct (p50, p95)
#   scripts/web.sh audit   npm audit --omit=dev --audit-level=high (a high or critical advisory, or a registry that
#                          refuses the advisory endpoint, fails it); not part of `test`: CI's registry answers 405
#
# Needs Node.js ≥ 20 with npm, and for test/bench Debian's `chromium` (installed with apt-get when missing and
# running as root). Nothing downloads a browser; every npm package is pinned by examples/web/package-lock.json.
# test and bench need the local stack running (scripts/stack.sh start). Screenshots: .local/test-output/web/.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exec_stack web "$@"
