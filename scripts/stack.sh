#!/usr/bin/env bash
# The local stack in the background: Synapse (127.0.0.1:8008), moto (127.0.0.1:5100) and the OpenMeet gateway
# (127.0.0.1:3000), supervised by `openmeet-local stack` (functions/local/src/stack/). Foreground: scripts/dev.sh.
#
#   scripts/stack.sh start     start what is not running yet; returns once everything is healthy
#   scripts/stack.sh stop      stop what `start` (or dev.sh) started
#   scripts/stack.sh restart   stop, then start
#   scripts/stack.sh status    one line per service; exit status 1 unless all answer
#   scripts/stack.sh token SUB TENANT [service|user] [DISPLAY NAME]
#                              print an HS256 JWT for the local API (valid $TOKEN_TTL s, default 3600)
#   scripts/stack.sh env       print the path of .local/stack.env
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
case "${1:-}" in
  start | stop | restart | status | token | env) exec_stack "$@" ;;
  *) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2 && exit 2 ;;
esac
