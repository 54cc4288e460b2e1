# shellcheck shell=bash
# What must run before Rust, sourced by the scripts: the Python tools (Synapse, moto, cfn-lint, zig) pinned in
# tools/requirements.txt go into .local/venv, and `exec_stack` builds and runs the stack's supervisor,
# `openmeet-local stack` (functions/local/src/stack/: processes, pid files, logs, Synapse config, stack.env, tokens).

STACK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL_DIR="$STACK_ROOT/.local"
VENV_DIR="$LOCAL_DIR/venv"
LOG_DIR="$LOCAL_DIR/logs"
REQUIREMENTS_FILE="$STACK_ROOT/tools/requirements.txt"

say() { printf '[%s] %s\n' "${STEP:-stack}" "$*"; }
die() { printf '[%s] ERROR: %s\n' "${STEP:-stack}" "$*" >&2; exit 1; }
fail_with_log() { tail -n 40 "$1" >&2; die "$2 (log $1)"; }

# ensure_venv — create .local/venv and install tools/requirements.txt, unless the stamp says it is up to date.
ensure_venv() {
  local STEP="1/8 venv" want stamp="$VENV_DIR/.requirements.sha256" log="$LOG_DIR/venv-install.log"
  command -v python3 >/dev/null || die "python3 is required (apt-get install -y python3)"
  want="$(sha256sum "$REQUIREMENTS_FILE" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$VENV_DIR/bin/python" -c '' 2>/dev/null; then
    say "up to date ($VENV_DIR)"
    return 0
  fi
  mkdir -p "$LOG_DIR"
  if ! "$VENV_DIR/bin/python" -c 'import pip' 2>/dev/null; then
    say "creating $VENV_DIR"
    rm -rf "$VENV_DIR"
    if ! python3 -m venv "$VENV_DIR" >"$LOG_DIR/venv-create.log" 2>&1; then
      # A fresh Debian lacks python3-venv; as root, install it.
      [[ "$(id -u)" == 0 ]] || die "python3 -m venv failed; install python3-venv (apt-get install -y python3-venv)"
      say "python3 -m venv failed: installing python3-venv with apt-get"
      { apt-get install -y -q python3-venv || { apt-get update -q && apt-get install -y -q python3-venv; }; } \
        >>"$LOG_DIR/venv-create.log" 2>&1 || fail_with_log "$LOG_DIR/venv-create.log" "apt-get install python3-venv failed"
      rm -rf "$VENV_DIR"
      python3 -m venv "$VENV_DIR" >>"$LOG_DIR/venv-create.log" 2>&1 || fail_with_log "$LOG_DIR/venv-create.log" "python3 -m venv failed"
    fi
  fi
  say "installing tools/requirements.txt into the venv (log $log; takes a few minutes the first time)"
  rm -f "$stamp"
  "$VENV_DIR/bin/python" -m pip install --disable-pip-version-check --no-input -r "$REQUIREMENTS_FILE" >"$log" 2>&1 ||
    fail_with_log "$log" "pip install -r tools/requirements.txt failed"
  printf '%s\n' "$want" >"$stamp"
}

# exec_stack COMMAND [ARGS] — `openmeet-local stack COMMAND`; start/restart/dev and the test command's tools
# (deny, fuzz, lambda-build: they run tools of the venv) install the venv and build first.
# OPENMEET_LOCAL_BIN=/path/to/openmeet-local serves the gateway from that binary, and nothing is built for it.
exec_stack() {
  cd "$STACK_ROOT" || die "cannot enter $STACK_ROOT"
  local bin="${CARGO_TARGET_DIR:-$STACK_ROOT/target}/debug/openmeet-local" STEP="4/8 build"
  case "${1:-}" in
    env) printf '%s\n' "$LOCAL_DIR/stack.env" && return 0 ;;
    start | restart | dev | deny | fuzz | lambda-build | workers | bench-workers) ensure_venv ;;
  esac
  # Otherwise the binary is used as it is, unless it predates `stack` (so a broken tree can still stop the stack).
  if { [[ -z "${OPENMEET_LOCAL_BIN:-}" && "${1:-}" =~ ^(start|restart|dev|deny|fuzz|lambda-build|workers|bench-workers)$ ]]; } || ! "$bin" stack env >/dev/null 2>&1; then
    command -v cargo >/dev/null || die "cargo is required (https://rustup.rs)"
    say "cargo build -p openmeet-local"
    cargo build -p openmeet-local || die "cargo build -p openmeet-local failed"
  fi
  exec "$bin" stack "$@"
}
