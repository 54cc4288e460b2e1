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
exec_stack dev
