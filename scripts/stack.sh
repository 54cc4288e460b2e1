#!/usr/bin/env bash
# The local stack in the background: Synapse (127.0.0.1:8008), its public entry (the gate, nginx: 127.0.0.1:8088),
# moto (127.0.0.1:5100) and the OpenMeet gateway (127.0.0.1:3000), supervised by `openmeet-local stack`
# (functions/local/src/stack/). Foreground: scripts/dev.sh.
#
#   scripts/stack.sh start     start what is not running yet; returns once everything is healthy
#   scripts/stack.sh stop      stop what `start` (or dev.sh) started
#   scripts/stack.sh restart   stop, then start
#   scripts/stack.sh status    one line per service (--json: one object); exit status 1 unless all answer
#   scripts/stack.sh token SUB TENANT [service|user] [DISPLAY NAME]
#                              print an HS256 JWT for the local API (valid $TOKEN_TTL s, default 3600)
#   scripts/stack.sh env       print the path of .local/stack.env
# The test command's tools (in Rust too; COMMAND --help):
#   scripts/stack.sh deny      cargo deny over the workspace (deny.toml)
#   scripts/stack.sh fuzz      schemathesis from openapi.yaml against the running stack, bounded
#   scripts/stack.sh lambda-build   the arm64 Lambda artifacts, as deployed
# Synapse on workers, beside the default stack (docs/adr/0012-synapse-workers.md; tests: scripts/test-workers.sh):
#   scripts/stack.sh workers start|stop|restart|status   PostgreSQL, Redis, main + 2 persisters + 2 workers, router :8018
#   scripts/stack.sh bench-workers   cutover and import benchmarks there, CPU-ms per process
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
usage() { sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
case "${1:-}" in
  start | stop | restart | status | token | env | deny | fuzz | lambda-build | workers | bench-workers) exec_stack "$@" ;;
  -h | --help | help) usage ;;
  *) usage >&2 && exit 2 ;;
esac
