# shellcheck shell=bash
# Helpers for the local stack, sourced by scripts/dev.sh and scripts/stack.sh.
#
# Everything lives under <repo>/.local/:
#   venv/                  Python tools (Synapse, moto, cfn-lint) from tools/requirements.txt
#   synapse/               rendered homeserver config, appservice registration, secrets, SQLite DB, media
#   run/<name>.pid         PIDs of the processes the stack started (each is its own process-group leader)
#   logs/                  synapse.log, synapse-stdout.log, moto.log, gateway.log, venv-install.log
#   stack.env              KEY=VALUE configuration for the Rust processes and the integration tests

STACK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL_DIR="$STACK_ROOT/.local"
VENV_DIR="$LOCAL_DIR/venv"
RUN_DIR="$LOCAL_DIR/run"
LOG_DIR="$LOCAL_DIR/logs"
SYNAPSE_DIR="$LOCAL_DIR/synapse"
STACK_ENV_FILE="$LOCAL_DIR/stack.env"
# Lifetime of browser session tokens in the local Synapse (refreshable_access_token_lifetime).
SESSION_LIFETIME="${OPENMEET_LOCAL_SESSION_LIFETIME:-30s}"
TEMPLATE_DIR="$STACK_ROOT/scripts/synapse"
REQUIREMENTS_FILE="$STACK_ROOT/tools/requirements.txt"

STACK_HOST=127.0.0.1
SYNAPSE_PORT=8008
MOTO_PORT=5100
GATEWAY_PORT=3000
SYNAPSE_URL="http://$STACK_HOST:$SYNAPSE_PORT"
MOTO_URL="http://$STACK_HOST:$MOTO_PORT"
GATEWAY_URL="http://$STACK_HOST:$GATEWAY_PORT"
SERVER_NAME=localhost
PLATFORM_LOCALPART=openmeet
PLATFORM_USER="@$PLATFORM_LOCALPART:$SERVER_NAME"
# A plain server admin, registered once with the shared secret, used only to grant the platform user admin.
BOOTSTRAP_ADMIN=stack-admin
DEFAULT_JWT_SECRET=local-dev-secret-change-me

# Seconds to wait for each service to answer.
MOTO_START_TIMEOUT="${MOTO_START_TIMEOUT:-60}"
SYNAPSE_START_TIMEOUT="${SYNAPSE_START_TIMEOUT:-180}"
GATEWAY_START_TIMEOUT="${GATEWAY_START_TIMEOUT:-120}"
STOP_TIMEOUT="${STOP_TIMEOUT:-20}"

# Services in start order; stop goes in reverse.
STACK_SERVICES=(moto synapse gateway)
# Services started by this run (the ones a trap may stop).
STACK_STARTED=()
STACK_STEP=stack

# ---------------------------------------------------------------------------
# Output

step() { STACK_STEP="$1"; }
say() { printf '[%s] %s\n' "$STACK_STEP" "$*"; }
warn() { printf '[%s] WARNING: %s\n' "$STACK_STEP" "$*" >&2; }
die() {
  printf '[%s] ERROR: %s\n' "$STACK_STEP" "$*" >&2
  exit 1
}

# show_log_tail FILE [LINES] — print the end of a log to stderr (for failures).
show_log_tail() {
  local file="$1" lines="${2:-40}"
  if [[ -s "$file" ]]; then
    printf -- '----- last %s lines of %s -----\n' "$lines" "$file" >&2
    tail -n "$lines" "$file" >&2 || true
    printf -- '----- end of %s -----\n' "$file" >&2
  else
    printf -- '(%s is empty or missing)\n' "$file" >&2
  fi
}

# ---------------------------------------------------------------------------
# One start/stop at a time (file descriptor 9 holds .local/run/stack.lock).

acquire_lock() {
  mkdir -p "$RUN_DIR"
  exec 9>"$RUN_DIR/stack.lock"
  if ! flock -n 9; then
    say "another stack.sh/dev.sh is starting or stopping the stack: waiting for it"
    flock -w 900 9 || die "timed out waiting for $RUN_DIR/stack.lock"
  fi
}

release_lock() {
  flock -u 9 2>/dev/null || true
  exec 9>&-
}

# ---------------------------------------------------------------------------
# HTTP probes

# http_status URL — prints the HTTP status, or 000 when nothing answers. curl when there is one,
# else Python (a fresh Debian has python3 but not necessarily curl).
http_status() {
  if command -v curl >/dev/null; then
    curl -s --noproxy '*' -o /dev/null -w '%{http_code}' --connect-timeout 1 --max-time 3 "$1" 2>/dev/null || true
  else
    python3 -c '
import sys, urllib.request, urllib.error
try:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    print(opener.open(sys.argv[1], timeout=3).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
' "$1" 2>/dev/null || printf '000'
  fi
}

# answers URL — true when something speaks HTTP at URL (any status).
answers() {
  local code
  code="$(http_status "$1")"
  [[ -n "$code" && "$code" != 000 ]]
}

moto_answers() { answers "$MOTO_URL/moto-api/"; }
synapse_answers() { [[ "$(http_status "$SYNAPSE_URL/_matrix/client/versions")" == 200 ]]; }
gateway_answers() { answers "$GATEWAY_URL/v1/health"; }

# ---------------------------------------------------------------------------
# Processes: each service runs as the leader of its own session/process group (setsid),
# its PID in $RUN_DIR/<name>.pid. A pid file is trusted only while that PID is alive
# and its command line still looks like the service (a reused PID does not fool us).

pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }

service_pattern() {
  case "$1" in
    moto) printf '%s' "$VENV_DIR/bin/moto_server" ;;
    synapse) printf '%s' "synapse.app.homeserver -c $SYNAPSE_DIR/homeserver.yaml" ;;
    gateway) printf 'openmeet-local serve' ;;
    *) return 1 ;;
  esac
}

# service_pid NAME — prints the PID of our running NAME; removes a stale pid file and fails otherwise.
service_pid() {
  local name="$1" file pid cmdline pattern
  file="$(pid_file "$name")"
  [[ -f "$file" ]] || return 1
  pid="$(tr -dc '0-9' <"$file")"
  pattern="$(service_pattern "$name")"
  if [[ -n "$pid" && -r "/proc/$pid/cmdline" ]]; then
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    # A zombie has an empty cmdline: treat it as gone.
    if [[ "$cmdline" == *"$pattern"* ]]; then
      printf '%s' "$pid"
      return 0
    fi
  fi
  rm -f "$file" "$RUN_DIR/$name.stamp"
  return 1
}

# start_service NAME LOGFILE CMD... — start CMD in its own session, output appended to LOGFILE.
start_service() {
  local name="$1" logfile="$2" pid
  shift 2
  mkdir -p "$RUN_DIR" "$(dirname "$logfile")"
  printf '\n===== %s: starting %s =====\n' "$(date -Is)" "$name" >>"$logfile"
  # Without job control a background job is not a process-group leader, so setsid(1)
  # calls setsid() and execs in place: $! is the new session's leader and its PGID.
  # fd 9 is the stack lock (acquire_lock): the service must not inherit it. Nor a lock a caller holds
  # (`flock /tmp/openmeet-stack.lock scripts/stack.sh restart`): a service would hold it as long as it runs.
  local fd close=""
  for fd in /proc/$$/fd/*; do
    [[ "$(readlink "$fd" 2>/dev/null)" == *.lock ]] && close+=" ${fd##*/}>&-"
  done
  eval "setsid \"\$@\" >>\"\$logfile\" 2>&1 </dev/null 9>&-$close &"
  pid=$!
  printf '%s\n' "$pid" >"$(pid_file "$name")"
  STACK_STARTED+=("$name")
  say "started $name (pid $pid), log $logfile"
}

# started_by_this_run NAME
started_by_this_run() {
  local s
  for s in "${STACK_STARTED[@]}"; do
    [[ "$s" == "$1" ]] && return 0
  done
  return 1
}

# proc_stat PID — the fields of /proc/PID/stat after "(comm)": state ppid pgrp session ...
proc_stat() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  printf '%s' "${stat##*) }"
}

# alive PID — the process exists and is not a zombie.
alive() {
  local stat
  stat="$(proc_stat "$1")" || return 1
  [[ "${stat%% *}" != Z ]]
}

# stop_service NAME — stop our NAME (its whole process group): TERM, then KILL after $STOP_TIMEOUT s.
stop_service() {
  local name="$1" pid stat pgid="" target i
  if ! pid="$(service_pid "$name")"; then
    return 0
  fi
  if stat="$(proc_stat "$pid")"; then
    read -r _ _ pgid _ <<<"$stat"
  fi
  if [[ "$pgid" == "$pid" ]]; then target="-$pid"; else target="$pid"; fi
  printf '[stop] stopping %s (pid %s)\n' "$name" "$pid"
  kill -TERM -- "$target" 2>/dev/null || true
  # A test may have paused it (SIGSTOP, to simulate an outage): let it handle the TERM.
  kill -CONT -- "$target" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    printf '[stop] %s did not stop within %ss: killing it\n' "$name" "$STOP_TIMEOUT"
    kill -KILL -- "$target" 2>/dev/null || true
    sleep 0.2
  fi
  # Anything left in the group (a child that ignored TERM).
  if [[ "$target" == -* ]]; then kill -KILL -- "$target" 2>/dev/null || true; fi
  # Reap it when it is our child, so it does not linger as a zombie.
  wait "$pid" 2>/dev/null || true
  rm -f "$(pid_file "$name")" "$RUN_DIR/$name.stamp"
}

# stop_started — stop, in reverse order, exactly the services this run started.
stop_started() {
  local i name
  for ((i = ${#STACK_SERVICES[@]} - 1; i >= 0; i--)); do
    name="${STACK_SERVICES[i]}"
    if started_by_this_run "$name"; then
      stop_service "$name"
    fi
  done
  STACK_STARTED=()
}

# stop_all — stop every service that has a live pid file (whoever started it).
stop_all() {
  local i
  for ((i = ${#STACK_SERVICES[@]} - 1; i >= 0; i--)); do
    stop_service "${STACK_SERVICES[i]}"
  done
}

# wait_until NAME TIMEOUT LOGFILE PROBE... — poll PROBE until it succeeds; fail loudly with the
# log's tail on timeout, or as soon as our process for NAME has died.
wait_until() {
  local name="$1" timeout="$2" logfile="$3" pid="" deadline
  shift 3
  if started_by_this_run "$name"; then pid="$(tr -dc '0-9' <"$(pid_file "$name")")"; fi
  deadline=$((SECONDS + timeout))
  until "$@"; do
    if [[ -n "$pid" ]] && ! alive "$pid"; then
      show_log_tail "$logfile"
      die "$name exited during start-up (see $logfile)"
    fi
    if ((SECONDS >= deadline)); then
      show_log_tail "$logfile"
      die "$name did not answer within ${timeout}s (see $logfile)"
    fi
    sleep 0.25
  done
}

# ---------------------------------------------------------------------------
# Step 1: Python venv

ensure_venv() {
  step "1/8 venv"
  command -v python3 >/dev/null || die "python3 is required (apt-get install -y python3)"
  local want stamp="$VENV_DIR/.requirements.sha256" install_log="$LOG_DIR/venv-install.log"
  want="$(sha256sum "$REQUIREMENTS_FILE" | cut -d' ' -f1)"
  if [[ -x "$VENV_DIR/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] &&
    "$VENV_DIR/bin/python" -c '' 2>/dev/null; then
    say "up to date ($VENV_DIR)"
    return 0
  fi
  mkdir -p "$LOG_DIR"
  if ! "$VENV_DIR/bin/python" -c 'import pip' 2>/dev/null; then
    say "creating $VENV_DIR"
    rm -rf "$VENV_DIR"
    if ! python3 -m venv "$VENV_DIR" >"$LOG_DIR/venv-create.log" 2>&1; then
      rm -rf "$VENV_DIR"
      if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        say "python3 -m venv failed: installing python3-venv with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y -q python3-venv >>"$LOG_DIR/venv-create.log" 2>&1; then
          apt-get update -q >>"$LOG_DIR/venv-create.log" 2>&1 || true
          apt-get install -y -q python3-venv >>"$LOG_DIR/venv-create.log" 2>&1 ||
            { show_log_tail "$LOG_DIR/venv-create.log"; die "apt-get install python3-venv failed"; }
        fi
        python3 -m venv "$VENV_DIR" >>"$LOG_DIR/venv-create.log" 2>&1 ||
          { rm -rf "$VENV_DIR"; show_log_tail "$LOG_DIR/venv-create.log"; die "python3 -m venv failed"; }
      else
        show_log_tail "$LOG_DIR/venv-create.log"
        die "python3 -m venv failed; install python3-venv (as root: apt-get install -y python3-venv)"
      fi
    fi
  fi
  say "installing tools/requirements.txt into the venv (log $install_log; takes a few minutes the first time)"
  rm -f "$stamp"
  if ! "$VENV_DIR/bin/python" -m pip install --disable-pip-version-check --no-input \
    -r "$REQUIREMENTS_FILE" >"$install_log" 2>&1; then
    show_log_tail "$install_log"
    die "pip install -r tools/requirements.txt failed"
  fi
  printf '%s\n' "$want" >"$stamp"
  say "venv ready"
}

# ---------------------------------------------------------------------------
# Step 2: Synapse configuration

# read_kv FILE KEY — the value of KEY in a KEY=VALUE file.
read_kv() {
  local line
  while IFS= read -r line || [[ -n "$line" ]]; do
    if [[ "$line" == "$2="* ]]; then
      printf '%s' "${line#*=}"
      return 0
    fi
  done <"$1"
  return 1
}

# Renders the three templates in one Python run; prints "changed" when a rendered file changed.
render_synapse_config() {
  local secrets="$SYNAPSE_DIR/secrets.env"
  SESSION_LIFETIME="$SESSION_LIFETIME" "$VENV_DIR/bin/python" - "$TEMPLATE_DIR" "$SYNAPSE_DIR" "$secrets" "$LOG_DIR" <<'PY'
import json, os, re, sys

template_dir, synapse_dir, secrets_file, log_dir = sys.argv[1:5]
secrets = {}
with open(secrets_file) as f:
    for line in f:
        line = line.strip()
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            secrets[k] = v
values = dict(secrets)
values.update(
    DATABASE=os.path.join(synapse_dir, "homeserver.db"),
    LOG_CONFIG=os.path.join(synapse_dir, "log.yaml"),
    LOG_FILE=os.path.join(log_dir, "synapse.log"),
    MEDIA_STORE=os.path.join(synapse_dir, "media_store"),
    SIGNING_KEY=os.path.join(synapse_dir, "localhost.signing.key"),
    APPSERVICE_CONFIG=os.path.join(synapse_dir, "appservice.yaml"),
    SESSION_LIFETIME=os.environ["SESSION_LIFETIME"],
)
changed = False
for template, target in (
    ("homeserver.yaml.tmpl", "homeserver.yaml"),
    ("log.yaml.tmpl", "log.yaml"),
    ("appservice.yaml.tmpl", "appservice.yaml"),
):
    with open(os.path.join(template_dir, template)) as f:
        text = f.read()

    def sub(m):
        key = m.group(1)
        if key not in values:
            sys.exit(f"{template}: no value for @@{key}@@")
        return json.dumps(values[key])

    text = re.sub(r"@@([A-Z_]+)@@", sub, text)
    path = os.path.join(synapse_dir, target)
    try:
        with open(path) as f:
            if f.read() == text:
                continue
    except FileNotFoundError:
        pass
    tmp = path + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(text)
    os.replace(tmp, path)
    changed = True
print("changed" if changed else "unchanged")
PY
}

# synapse_config_hash — identifies the rendered config a running Synapse was started with.
synapse_config_hash() {
  cat "$SYNAPSE_DIR/homeserver.yaml" "$SYNAPSE_DIR/log.yaml" "$SYNAPSE_DIR/appservice.yaml" \
    "$STACK_ROOT"/synapse-module/*.py | sha256sum | cut -d' ' -f1
}

ensure_synapse_config() {
  step "2/8 synapse-config"
  mkdir -p "$SYNAPSE_DIR/media_store" "$LOG_DIR" "$RUN_DIR"
  local secrets="$SYNAPSE_DIR/secrets.env" result
  if [[ ! -s "$secrets" ]]; then
    say "generating secrets once into $secrets"
    (
      umask 077
      "$VENV_DIR/bin/python" - >"$secrets.tmp" <<'PY'
import secrets
print("# Generated once by scripts/lib.sh. Deleting it invalidates the appservice tokens.")
for key in ("REGISTRATION_SHARED_SECRET", "MACAROON_SECRET_KEY", "FORM_SECRET",
            "AS_TOKEN", "HS_TOKEN", "BOOTSTRAP_ADMIN_PASSWORD"):
    print(f"{key}={secrets.token_hex(32)}")
PY
      mv "$secrets.tmp" "$secrets"
    )
  fi
  result="$(render_synapse_config)" || die "rendering the Synapse config failed"
  say "config $result: $SYNAPSE_DIR/homeserver.yaml, appservice $SYNAPSE_DIR/appservice.yaml"
  if [[ ! -s "$SYNAPSE_DIR/localhost.signing.key" ]]; then
    say "generating the signing key"
    (cd "$SYNAPSE_DIR" && PYTHONPATH="$STACK_ROOT/synapse-module" "$VENV_DIR/bin/python" -m synapse.app.homeserver \
      -c "$SYNAPSE_DIR/homeserver.yaml" --generate-keys >"$LOG_DIR/synapse-keygen.log" 2>&1) ||
      { show_log_tail "$LOG_DIR/synapse-keygen.log"; die "synapse --generate-keys failed"; }
  fi
  AS_TOKEN="$(read_kv "$secrets" AS_TOKEN)" || die "no AS_TOKEN in $secrets"
}

# ---------------------------------------------------------------------------
# Steps 3 and 5: moto and Synapse (launched before the build, waited for after it)

launch_moto() {
  step "3/8 moto"
  if moto_answers; then
    if service_pid moto >/dev/null; then say "already running (ours), $MOTO_URL"; else say "something already answers on $MOTO_URL: reusing it"; fi
    return 0
  fi
  stop_service moto # ours but not answering: replace it
  start_service moto "$LOG_DIR/moto.log" "$VENV_DIR/bin/moto_server" -H "$STACK_HOST" -p "$MOTO_PORT"
}

launch_synapse() {
  step "3/8 synapse"
  local want
  want="$(synapse_config_hash)"
  if synapse_answers; then
    if service_pid synapse >/dev/null; then
      if [[ "$(cat "$RUN_DIR/synapse.stamp" 2>/dev/null)" == "$want" ]]; then
        say "already running (ours), $SYNAPSE_URL"
        return 0
      fi
      say "config changed since it started: restarting"
      stop_service synapse
    else
      say "something already answers on $SYNAPSE_URL: reusing it"
      return 0
    fi
  else
    stop_service synapse # ours but not answering: replace it
  fi
  # The tenant-walls module (synapse-module/) is loaded from the repository itself.
  start_service synapse "$LOG_DIR/synapse-stdout.log" \
    env PYTHONPATH="$STACK_ROOT/synapse-module" \
    "$VENV_DIR/bin/python" -m synapse.app.homeserver -c "$SYNAPSE_DIR/homeserver.yaml"
  printf '%s\n' "$want" >"$RUN_DIR/synapse.stamp"
}

wait_for_moto() {
  step "5/8 moto"
  wait_until moto "$MOTO_START_TIMEOUT" "$LOG_DIR/moto.log" moto_answers
  say "healthy: $MOTO_URL"
}

wait_for_synapse() {
  step "5/8 synapse"
  wait_until synapse "$SYNAPSE_START_TIMEOUT" "$LOG_DIR/synapse-stdout.log" synapse_answers
  say "healthy: $SYNAPSE_URL"
}

# ---------------------------------------------------------------------------
# Step 6: the platform user (@openmeet:localhost, the appservice sender) becomes a server admin

ensure_platform_admin() {
  step "6/8 platform-admin"
  local db="$SYNAPSE_DIR/homeserver.db" stamp="$SYNAPSE_DIR/platform-admin.stamp" db_id
  db_id="$(stat -c '%d:%i:%W' "$db")"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$db_id" ]]; then
    say "$PLATFORM_USER is already a server admin (stamp $stamp)"
    return 0
  fi
  "$VENV_DIR/bin/python" "$TEMPLATE_DIR/grant_admin.py" \
    --homeserver "$SYNAPSE_URL" \
    --shared-secret "$(read_kv "$SYNAPSE_DIR/secrets.env" REGISTRATION_SHARED_SECRET)" \
    --admin-user "$BOOTSTRAP_ADMIN" \
    --admin-password "$(read_kv "$SYNAPSE_DIR/secrets.env" BOOTSTRAP_ADMIN_PASSWORD)" \
    --platform-user "$PLATFORM_USER" \
    --as-token "$AS_TOKEN" --prefix "[$STACK_STEP]" ||
    die "granting $PLATFORM_USER admin failed"
  printf '%s\n' "$db_id" >"$stamp"
}

# ---------------------------------------------------------------------------
# Step 7: stack.env

write_stack_env() {
  step "7/8 stack-env"
  local tmp="$STACK_ENV_FILE.tmp"
  cat >"$tmp" <<EOF
OPENMEET_JWT_SECRET=${OPENMEET_JWT_SECRET:-$DEFAULT_JWT_SECRET}
MATRIX_HOMESERVER_URL=$SYNAPSE_URL
MATRIX_PUBLIC_URL=$SYNAPSE_URL
MATRIX_SERVER_NAME=$SERVER_NAME
MATRIX_AS_TOKEN=$AS_TOKEN
MATRIX_USER_PREFIX=om_
MATRIX_PLATFORM_LOCALPART=$PLATFORM_LOCALPART
OPENMEET_TABLE=openmeet-local
OPENMEET_KMS_KEY_ID=alias/openmeet-local
OPENMEET_QUEUE_NAME=openmeet-local-retry.fifo
# Short timeouts and back-offs locally, so outage tests recover in seconds (AWS uses the defaults).
MATRIX_REQUEST_TIMEOUT_MS=5000
MATRIX_CIRCUIT_THRESHOLD=3
MATRIX_CIRCUIT_COOL_DOWN_MS=5000
OPENMEET_RETRY_BASE_DELAY_MS=250
OPENMEET_RETRY_MAX_DELAY_MS=2000
OPENMEET_RETRY_MAX_ATTEMPTS=20
# Reconciles above 100 joins + kicks are queued (as in AWS); the worker's slices are short so tests see several.
OPENMEET_RECONCILE_INLINE_CHANGES=100
OPENMEET_RECONCILE_SLICE_MS=2000
OPENMEET_AVATAR_HOSTS=127.0.0.1
# API write limits per 60 s window: generous for the test suite; tenants rlt-* (the rate-limit tests) get small
# budgets (user/tenant/service), bench-free* none at all (the benchmark's baseline without the check).
OPENMEET_RATE_USER=1000
OPENMEET_RATE_TENANT=100000
OPENMEET_RATE_SERVICE=1000000
OPENMEET_RATE_OVERRIDES=rlt-*=5/8/20,bench-free*=0/0/0
OPENMEET_MAX_WEB_DEVICES=10
# Browser session tokens expire after this (Synapse's refreshable_access_token_lifetime, rendered from the same value).
MATRIX_SESSION_LIFETIME=$SESSION_LIFETIME
AWS_ENDPOINT_URL=$MOTO_URL
AWS_REGION=us-east-1
AWS_ACCESS_KEY_ID=local
AWS_SECRET_ACCESS_KEY=local
OPENMEET_LISTEN=$STACK_HOST:$GATEWAY_PORT
SYNAPSE_PID_FILE=$(pid_file synapse)
STACK_LOG_DIR=$LOG_DIR
RUST_LOG=${RUST_LOG:-info}
EOF
  chmod 600 "$tmp"
  mv "$tmp" "$STACK_ENV_FILE"
  say "wrote $STACK_ENV_FILE"
}

# export_stack_env — export every KEY=VALUE of stack.env into this shell.
export_stack_env() {
  local line
  while IFS= read -r line || [[ -n "$line" ]]; do
    [[ -z "$line" || "$line" == \#* ]] && continue
    export "${line%%=*}=${line#*=}"
  done <"$STACK_ENV_FILE"
}

# ---------------------------------------------------------------------------
# Steps 4 and 8: the gateway (functions/local: every route, the retry worker, AWS bootstrap)

# OPENMEET_LOCAL_BIN=/path/to/openmeet-local runs that binary instead of building the debug one.
gateway_binary() {
  if [[ -n "${OPENMEET_LOCAL_BIN:-}" ]]; then
    printf '%s' "$OPENMEET_LOCAL_BIN"
  else
    printf '%s/debug/openmeet-local' "${CARGO_TARGET_DIR:-$STACK_ROOT/target}"
  fi
}

build_gateway() {
  step "4/8 build"
  if [[ -n "${OPENMEET_LOCAL_BIN:-}" ]]; then
    [[ -x "$OPENMEET_LOCAL_BIN" ]] || die "OPENMEET_LOCAL_BIN=$OPENMEET_LOCAL_BIN is not an executable"
    say "using OPENMEET_LOCAL_BIN=$OPENMEET_LOCAL_BIN (no cargo build)"
    return 0
  fi
  command -v cargo >/dev/null || die "cargo is required (https://rustup.rs)"
  say "cargo build -p openmeet-local"
  (cd "$STACK_ROOT" && cargo build -p openmeet-local) || die "cargo build -p openmeet-local failed"
  [[ -x "$(gateway_binary)" ]] || die "$(gateway_binary) was not built"
}

# gateway_stamp — what a running gateway depends on: its binary, stack.env, and the moto instance
# (moto keeps everything in memory: a new moto needs the gateway to create its table/key/queues again).
gateway_stamp() {
  {
    stat -c '%Y %s %i' "$(gateway_binary)"
    cat "$STACK_ENV_FILE"
    cat "$(pid_file moto)" 2>/dev/null || echo foreign-moto
  } | sha256sum | cut -d' ' -f1
}

launch_gateway() {
  step "8/8 gateway"
  local want bin
  bin="$(gateway_binary)"
  want="$(gateway_stamp)"
  if service_pid gateway >/dev/null; then
    if [[ "$(cat "$RUN_DIR/gateway.stamp" 2>/dev/null)" == "$want" ]] && gateway_answers; then
      say "already running (ours), $GATEWAY_URL"
      return 0
    fi
    say "binary, stack.env or moto changed (or it stopped answering): restarting"
    stop_service gateway
  elif gateway_answers; then
    warn "something not started by this script already answers on $GATEWAY_URL: reusing it (its binary/config may be stale)"
    return 0
  fi
  local -a vars=()
  mapfile -t vars < <(grep -E '^[A-Za-z_][A-Za-z0-9_]*=' "$STACK_ENV_FILE")
  start_service gateway "$LOG_DIR/gateway.log" env "${vars[@]}" "$bin" serve
  printf '%s\n' "$want" >"$RUN_DIR/gateway.stamp"
  if ! (wait_until gateway "$GATEWAY_START_TIMEOUT" "$LOG_DIR/gateway.log" gateway_answers); then
    die "the gateway did not come up: \`$bin serve\` must serve $GATEWAY_URL/v1/health (OPENMEET_LISTEN)"
  fi
  say "healthy: $GATEWAY_URL/v1/health answers $(http_status "$GATEWAY_URL/v1/health")"
}

# ---------------------------------------------------------------------------
# The whole start sequence (dev.sh and stack.sh start)

stack_up() {
  ensure_venv
  ensure_synapse_config
  launch_moto
  launch_synapse
  # Compile while Synapse and moto boot.
  build_gateway
  wait_for_moto
  wait_for_synapse
  ensure_platform_admin
  write_stack_env
  launch_gateway
}

# mint_token SUB TENANT [ROLE] [NAME] — an HS256 JWT for the local API, valid TOKEN_TTL seconds (default 3600).
mint_token() {
  local secret="${OPENMEET_JWT_SECRET:-}"
  if [[ -z "$secret" && -f "$STACK_ENV_FILE" ]]; then secret="$(read_kv "$STACK_ENV_FILE" OPENMEET_JWT_SECRET || true)"; fi
  secret="${secret:-$DEFAULT_JWT_SECRET}"
  python3 - "$secret" "${TOKEN_TTL:-3600}" "$@" <<'PY'
import base64, hashlib, hmac, json, sys, time

secret, ttl, sub, tenant = sys.argv[1:5]
role = sys.argv[5] if len(sys.argv) > 5 else "service"
name = sys.argv[6] if len(sys.argv) > 6 else None
if role not in ("service", "user"):
    sys.exit("role must be service or user")

def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

claims = {"sub": sub, "tenant": tenant, "role": role, "iat": int(time.time()), "exp": int(time.time()) + int(ttl)}
if name:
    claims["name"] = name
signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode()) + "." + \
    b64(json.dumps(claims, separators=(",", ":")).encode())
signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
print(signing_input + "." + b64(signature))
PY
}

print_summary() {
  step ready
  local secret_note="the local default '$DEFAULT_JWT_SECRET'"
  if [[ -n "${OPENMEET_JWT_SECRET:-}" ]]; then secret_note="from \$OPENMEET_JWT_SECRET"; fi
  cat <<EOF
[ready] The local stack is up:
  API (gateway)     $GATEWAY_URL            (GET /v1/health; every route of the route table)
  Homeserver        $SYNAPSE_URL            server_name $SERVER_NAME, platform user $PLATFORM_USER (server admin)
  AWS (moto)        $MOTO_URL            DynamoDB openmeet-local, KMS alias/openmeet-local, SQS openmeet-local-retry
  Config            $STACK_ENV_FILE   (export it: set -a; . .local/stack.env; set +a)
  Synapse config    $SYNAPSE_DIR/homeserver.yaml
  Logs              $LOG_DIR/{gateway,synapse,synapse-stdout,moto}.log
  PIDs              $RUN_DIR/*.pid
  JWT secret        $secret_note (OPENMEET_JWT_SECRET in stack.env)
  Mint a token      scripts/stack.sh token <sub> <tenant> [service|user] [display name]
                    e.g. curl -H "Authorization: Bearer \$(scripts/stack.sh token openmeet-api acme)" $GATEWAY_URL/v1/users/alice
EOF
}

# print_status — one line per service.
print_status() {
  local name pid url probe state rc=0
  for name in "${STACK_SERVICES[@]}"; do
    case "$name" in
      moto) url="$MOTO_URL" probe=moto_answers ;;
      synapse) url="$SYNAPSE_URL" probe=synapse_answers ;;
      gateway) url="$GATEWAY_URL" probe=gateway_answers ;;
    esac
    if pid="$(service_pid "$name")"; then state="running (pid $pid)"; else state="not started by stack.sh"; fi
    if "$probe"; then
      state="$state, answering on $url"
    else
      state="$state, NOT answering on $url"
      rc=1
    fi
    printf '%-8s %s\n' "$name" "$state"
  done
  [[ -f "$STACK_ENV_FILE" ]] && printf '%-8s %s\n' env "$STACK_ENV_FILE"
  printf '%-8s %s\n' logs "$LOG_DIR"
  return "$rc"
}
