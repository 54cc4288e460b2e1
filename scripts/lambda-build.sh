#!/usr/bin/env bash
# Builds the Lambda artifacts exactly as they are deployed: `cargo lambda build --release --arm64` (Graviton,
# provided.al2023), cross-compiled with zig; one target/lambda/<binary>/bootstrap per function of template.yaml.
# Installs what it needs on a fresh machine: the aarch64 Rust target (rustup) and cargo-lambda + zig (PyPI, into
# the project's venv). Run by scripts/test.sh; `sam build` runs the same cargo-lambda build per function.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
ensure_venv
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  rustup target add aarch64-unknown-linux-gnu
fi
# cargo-zigbuild finds zig as `python3 -m ziglang` of the venv.
export PATH="$VENV_DIR/bin:$PATH"
binaries=(provisioning rooms membership messages retry-worker)
cargo lambda build --release --arm64 --locked \
  -p openmeet-provisioning -p openmeet-rooms -p openmeet-membership -p openmeet-messages -p openmeet-retry-worker
for binary in "${binaries[@]}"; do
  artifact="target/lambda/$binary/bootstrap"
  [[ -f "$artifact" ]] || die "$artifact was not built"
  # ELF e_machine (offset 18) 183 is EM_AARCH64.
  [[ "$(od -An -tu2 -j18 -N2 "$artifact" | tr -d ' ')" == 183 ]] || die "$artifact is not an arm64 executable"
  printf '  %-14s %s bytes\n' "$binary" "$(stat -c %s "$artifact")"
done
