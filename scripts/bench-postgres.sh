#!/usr/bin/env bash
# The cutover benchmark on Synapse with PostgreSQL, as production runs it: sets up and starts a PostgreSQL cluster
# in .local/pg (Debian's postgresql; psycopg2-binary into the stack's venv), a second Synapse on it (port 8009,
# same appservice and secrets as the local stack's, fresh database each time), makes the platform user its admin,
# runs bench_cutover against it, then stops both. The local stack (moto, DynamoDB table) must be running.
#
#   scripts/bench-postgres.sh [USERS GROUPS EVENTS MEMBERSHIPS CONCURRENCY]
#   BENCH=bench_zulip scripts/bench-postgres.sh [MESSAGES STREAMS CONCURRENCY]   # the Zulip import's benchmark
# Run by `openmeet-local stack bench-postgres` (functions/local/src/stack/bench_postgres.rs).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exec_stack bench-postgres "$@"
