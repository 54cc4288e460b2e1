#!/usr/bin/env bash
# The whole system locally, in the foreground (`openmeet-local stack dev`): moto, Synapse and the gateway with its log
# on the terminal. Ctrl-C stops exactly what this run started; services already running are reused and left alone.
# OPENMEET_JWT_SECRET is honoured when set (default: local-dev-secret-change-me).
# `scripts/dev.sh --help`: its help (the stack's exit codes and runbook).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exec_stack dev "$@"
