#!/usr/bin/env bash
# cargo deny over the workspace (deny.toml): licences, bans and sources always; advisories when the RustSec database
# is at hand. Run by scripts/test.sh.
# - cargo-deny is built once into .local/tools (a debug build: a few minutes instead of 10-24 on 2 cores), or taken
#   from PATH when it is the pinned version.
# - The RustSec database is a git repository that this project's machines cannot reach, and none of it is kept in
#   this repository. Where it can be reached, `git clone https://github.com/rustsec/advisory-db` and point
#   OPENMEET_ADVISORY_DB at the clone: the advisories are then checked too (offline, against that clone).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
version=0.20.2
tools=.local/tools/cargo-deny
deny="$tools/bin/cargo-deny"
if [[ ! -x "$deny" ]] || [[ "$("$deny" --version)" != "cargo-deny $version" ]]; then
  if command -v cargo-deny >/dev/null && [[ "$(cargo-deny --version)" == "cargo-deny $version" ]]; then
    deny="$(command -v cargo-deny)"
  else
    echo "[deny] building cargo-deny $version into $tools (once)"
    cargo install --debug --locked --quiet "cargo-deny@$version" --root "$tools"
  fi
fi

checks=(licenses bans sources)
if [[ -n "${OPENMEET_ADVISORY_DB:-}" ]]; then
  # cargo deny's directory for the db-urls entry of deny.toml (its name hashes the URL).
  db=.local/advisory-db/advisory-db-3157b0e258782691
  rm -rf "$db" && mkdir -p "$(dirname "$db")" && cp -r "$OPENMEET_ADVISORY_DB" "$db"
  checks+=(advisories)
else
  echo "[deny] advisories NOT checked: no RustSec database here (set OPENMEET_ADVISORY_DB to a clone of it)"
fi
"$deny" --offline --locked check "${checks[@]}"
