#!/usr/bin/env bash
# The cutover benchmark on Synapse with PostgreSQL, as production runs it: sets up and starts a PostgreSQL cluster
# in .local/pg (Debian's postgresql; psycopg2-binary into the stack's venv), a second Synapse on it (port 8009,
# same appservice and secrets as the local stack's, fresh database each time), makes the platform user its admin,
# runs bench_cutover against it, then stops both. The local stack (moto, DynamoDB table) must be running.
#
#   scripts/bench-postgres.sh [USERS GROUPS EVENTS MEMBERSHIPS CONCURRENCY]
#   BENCH=bench_zulip scripts/bench-postgres.sh [MESSAGES STREAMS CONCURRENCY]   # the Zulip import's benchmark
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$STACK_ROOT"
SYNAPSE_DIR="$LOCAL_DIR/synapse"
secret() { grep "^$1=" "$SYNAPSE_DIR/secrets.env" | cut -d= -f2-; }

PG_DIR="$LOCAL_DIR/pg"
PG_PORT=5433
HS_PORT=8009
HS_URL="http://127.0.0.1:$HS_PORT"
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
if [[ -z "$pg_bin" ]]; then
  apt-get install -y postgresql >/dev/null
  pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
fi
"$VENV_DIR/bin/python" -c 'import psycopg2' 2>/dev/null || "$VENV_DIR/bin/pip" install -q psycopg2-binary

mkdir -p "$PG_DIR"
chown postgres "$PG_DIR"
as_postgres() { su postgres -s /bin/bash -c "$*"; }
if [[ ! -s "$PG_DIR/data/PG_VERSION" ]]; then
  as_postgres "'$pg_bin/initdb' -D '$PG_DIR/data' -U synapse --auth=trust -E UTF8 --locale=C" >"$PG_DIR/initdb.log"
fi
as_postgres "'$pg_bin/pg_ctl' -D '$PG_DIR/data' -o '-p $PG_PORT -k /tmp -c fsync=off' -l '$PG_DIR/postgres.log' -w start"
synapse_pid=""
cleanup() {
  [[ -n "$synapse_pid" ]] && kill "$synapse_pid" 2>/dev/null && wait "$synapse_pid" 2>/dev/null
  as_postgres "'$pg_bin/pg_ctl' -D '$PG_DIR/data' -m fast stop" >/dev/null || true
}
trap cleanup EXIT
"$pg_bin/dropdb" -h /tmp -p "$PG_PORT" -U synapse --if-exists synapse
"$pg_bin/createdb" -h /tmp -p "$PG_PORT" -U synapse -E UTF8 --locale=C -T template0 synapse

# The local stack's Synapse config, pointed at PostgreSQL, on its own port, media and log.
"$VENV_DIR/bin/python" - "$SYNAPSE_DIR/homeserver.yaml" "$PG_DIR" "$PG_PORT" "$HS_PORT" <<'PY'
import sys, yaml
source, pg_dir, pg_port, hs_port = sys.argv[1:]
config = yaml.safe_load(open(source))
config["database"] = {"name": "psycopg2", "args": {"user": "synapse", "database": "synapse", "host": "/tmp",
                      "port": int(pg_port), "cp_min": 5, "cp_max": 10}}
config["listeners"][0]["port"] = int(hs_port)
config["public_baseurl"] = f"http://127.0.0.1:{hs_port}/"
config["media_store_path"] = f"{pg_dir}/media_store"
log = yaml.safe_load(open(config["log_config"]))
for handler in log.get("handlers", {}).values():
    if "filename" in handler:
        handler["filename"] = f"{pg_dir}/synapse.log"
open(f"{pg_dir}/log.yaml", "w").write(yaml.safe_dump(log))
config["log_config"] = f"{pg_dir}/log.yaml"
open(f"{pg_dir}/homeserver.yaml", "w").write(yaml.safe_dump(config))
PY
(cd "$SYNAPSE_DIR" && exec env PYTHONPATH="$STACK_ROOT/synapse-module" "$VENV_DIR/bin/python" -m synapse.app.homeserver \
  -c "$PG_DIR/homeserver.yaml" >"$PG_DIR/synapse-stdout.log" 2>&1) &
synapse_pid=$!
for _ in $(seq 1 120); do
  curl -fsS "$HS_URL/health" >/dev/null 2>&1 && break
  sleep 1
done
curl -fsS "$HS_URL/health" >/dev/null || { tail -20 "$PG_DIR/synapse-stdout.log"; die "Synapse on PostgreSQL did not start"; }
"$VENV_DIR/bin/python" scripts/synapse/grant_admin.py --homeserver "$HS_URL" \
  --shared-secret "$(secret REGISTRATION_SHARED_SECRET)" --admin-user stack-admin \
  --admin-password "$(secret BOOTSTRAP_ADMIN_PASSWORD)" --platform-user @openmeet:localhost \
  --as-token "$(secret AS_TOKEN)" --prefix "[pg]"

BENCH="${BENCH:-bench_cutover}"
cargo build -q -p openmeet-cutover --bin "$BENCH"
set -a && . "$LOCAL_DIR/stack.env" && set +a
export MATRIX_HOMESERVER_URL="$HS_URL" MATRIX_PUBLIC_URL="$HS_URL"
unset RUST_LOG
echo "Synapse on PostgreSQL ($("$pg_bin/postgres" --version)), $HS_URL"
target/debug/"$BENCH" "$@"
