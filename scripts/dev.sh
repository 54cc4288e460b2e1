#!/usr/bin/env bash
# Run the whole system locally, in the foreground: Synapse (127.0.0.1:8008), moto (127.0.0.1:5100)
# and the OpenMeet gateway (127.0.0.1:3000, every route plus the retry worker), with the gateway's
# log on the terminal. Ctrl-C stops exactly what this run started; services that were already
# running (e.g. from `scripts/stack.sh start`) are reused and left alone.
#
# OPENMEET_JWT_SECRET is honoured when set (default: local-dev-secret-change-me).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$STACK_ROOT"

TAIL_PID=""

cleanup() {
  local rc=$?
  # Only the script itself cleans up, never a subshell that caught the signal mid-fork.
  [[ "$BASHPID" == "$$" ]] || exit "$rc"
  trap - EXIT INT TERM
  if [[ -n "$TAIL_PID" ]]; then
    kill "$TAIL_PID" 2>/dev/null || true
    wait "$TAIL_PID" 2>/dev/null || true
  fi
  if ((${#STACK_STARTED[@]} > 0)); then
    printf '\n[stop] stopping what this run started: %s\n' "${STACK_STARTED[*]}"
    stop_started
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

gateway_log="$LOG_DIR/gateway.log"
mkdir -p "$LOG_DIR"
log_offset=0
[[ -f "$gateway_log" ]] && log_offset="$(stat -c %s "$gateway_log")"

t0=$SECONDS
acquire_lock
stack_up
release_lock
print_summary

step "dev"
reused=()
for name in "${STACK_SERVICES[@]}"; do
  started_by_this_run "$name" || reused+=("$name")
done
say "healthy after $((SECONDS - t0))s"
((${#STACK_STARTED[@]} > 0)) && say "started by this run (Ctrl-C stops them): ${STACK_STARTED[*]}"
((${#reused[@]} > 0)) && say "reused (left running on exit): ${reused[*]}"
say "gateway log follows ($gateway_log); Synapse logs to $LOG_DIR/synapse.log"

# The gateway's output on the terminal as well as in its log file.
if started_by_this_run gateway; then
  tail -c "+$((log_offset + 1))" -F "$gateway_log" 2>/dev/null &
else
  tail -n 20 -F "$gateway_log" 2>/dev/null &
fi
TAIL_PID=$!

# Stay in the foreground until Ctrl-C, or until a service this run started dies.
while true; do
  for name in "${STACK_STARTED[@]}"; do
    if ! service_pid "$name" >/dev/null; then
      case "$name" in
        gateway) logfile="$gateway_log" ;;
        synapse) logfile="$LOG_DIR/synapse-stdout.log" ;;
        *) logfile="$LOG_DIR/$name.log" ;;
      esac
      sleep 0.5 # let tail print the gateway's last words
      step "dev"
      show_log_tail "$logfile" 20
      die "$name exited unexpectedly (log $logfile)"
    fi
  done
  sleep 1
done
