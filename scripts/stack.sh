#!/usr/bin/env bash
# The local stack in the background: Synapse (127.0.0.1:8008), moto (127.0.0.1:5100) and the
# OpenMeet gateway (127.0.0.1:3000). For the foreground variant, see scripts/dev.sh.
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
cd "$STACK_ROOT"

usage() {
  sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

on_start_exit() {
  local rc=$?
  # Only the script itself cleans up, never a subshell that caught the signal mid-fork.
  [[ "$BASHPID" == "$$" ]] || exit "$rc"
  trap - EXIT INT TERM
  if ((rc != 0)) && ((${#STACK_STARTED[@]} > 0)); then
    printf '[start] failed (exit %s): stopping what this run started: %s\n' "$rc" "${STACK_STARTED[*]}" >&2
    stop_started
    printf '[start] logs are in %s\n' "$LOG_DIR" >&2
  fi
  exit "$rc"
}

cmd_start() {
  trap on_start_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  local t0=$SECONDS
  acquire_lock
  stack_up
  release_lock
  print_summary
  step ready
  say "healthy after $((SECONDS - t0))s; stop with: scripts/stack.sh stop"
  trap - EXIT INT TERM
}

cmd_stop() {
  step stop
  acquire_lock
  local name any=0
  for name in "${STACK_SERVICES[@]}"; do
    if service_pid "$name" >/dev/null; then any=1; fi
  done
  if ((any == 0)); then say "nothing started by stack.sh is running"; fi
  stop_all
  moto_answers && warn "something not started by stack.sh still answers on $MOTO_URL"
  synapse_answers && warn "something not started by stack.sh still answers on $SYNAPSE_URL"
  gateway_answers && warn "something not started by stack.sh still answers on $GATEWAY_URL"
  release_lock
  say "stopped"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart)
    cmd_stop
    cmd_start
    ;;
  status) print_status ;;
  token)
    shift
    (($# >= 2)) || usage
    mint_token "$@"
    ;;
  env) printf '%s\n' "$STACK_ENV_FILE" ;;
  *) usage ;;
esac
