#!/usr/bin/env bash
# The cutover, Zulip import and room/membership integration tests on Synapse on workers (docs/adr/0012-synapse-workers.md):
# starts the default stack when it is not running (its moto is shared), starts the workers profile beside it
# (scripts/stack.sh workers start: PostgreSQL, Redis, Synapse main + 2 event persisters + 2 generic workers, the
# router on :8018, a gateway on :3010), runs the tests with OPENMEET_STACK_ENV=.local/workers/stack.env, then stops
# the profile (KEEP_WORKERS=1 keeps it). The default stack is never touched. CI does not run it (time budget).
#
#   scripts/test-workers.sh            every test file below
#   scripts/test-workers.sh rooms      only these test files
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
started_at=$SECONDS
# Every file that exercises rooms, memberships, the cutover or the import. None is excluded: none of them restarts
# Synapse (the outage tests, which do, stay on the default single-process stack).
TESTS=(rooms membership membership_reconcile cutover cutover_afterwards cutover_staged zulip_import zulip_live_rooms
  zulip_history_room zulip_delta)
if (($#)); then TESTS=("$@"); fi
present=()
for test in "${TESTS[@]}"; do
  if [[ -f "tests/tests/$test.rs" ]]; then present+=("$test"); else echo "[test-workers] no such test file: tests/tests/$test.rs" >&2; exit 2; fi
done
targets=()
for test in "${present[@]}"; do targets+=(--test "$test"); done
echo "[test-workers] building ${present[*]}"
cargo test -p integration-tests "${targets[@]}" --no-run --locked
if ! scripts/stack.sh status >/dev/null 2>&1; then
  flock /tmp/openmeet-stack.lock scripts/stack.sh start
fi
scripts/stack.sh workers start
if [[ "${KEEP_WORKERS:-}" != 1 ]]; then trap 'scripts/stack.sh workers stop' EXIT; fi
export OPENMEET_STACK_ENV="$PWD/.local/workers/stack.env"
failed=()
for test in "${present[@]}"; do
  echo "[test-workers] $test ($((SECONDS - started_at))s)"
  cargo test -p integration-tests --test "$test" --locked || failed+=("$test")
done
echo "[test-workers] done in $((SECONDS - started_at))s"
# The router sends a room's calls to the persister Synapse shards the room to: a persister never forwards an event.
forwarded=$(cat .local/workers/logs/persister*.log | grep -c 'synapse-replication://persister[0-9]*/_synapse/replication/send_events' || true)
echo "[test-workers] events a persister forwarded to another (the router's shard disagreeing with Synapse's): $forwarded"
if ((forwarded > 0)); then failed+=("router-shard"); fi
if ((${#failed[@]})); then
  echo "[test-workers] FAILED on the workers profile: ${failed[*]}" >&2
  exit 1
fi
echo "[test-workers] all passed on the workers profile: ${present[*]}"
