#!/usr/bin/env bash
# cargo deny over the workspace (deny.toml): advisories, licences, bans, sources. Run by scripts/test.sh.
# - cargo-deny is built once into .local/tools (or taken from PATH when it is the pinned version).
# - The advisories come from the snapshot in tools/advisory-db: the RustSec git repository cannot be reached from
#   this project's machines, and cargo deny reads its database only as a git checkout, so the snapshot is turned into
#   a one-commit repository dated as the snapshot (its staleness is then judged honestly) and checked --offline.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
version=0.20.2
tools=.local/tools/cargo-deny
deny="$tools/bin/cargo-deny"
if [[ ! -x "$deny" ]] || [[ "$("$deny" --version)" != "cargo-deny $version" ]]; then
  if command -v cargo-deny >/dev/null && [[ "$(cargo-deny --version)" == "cargo-deny $version" ]]; then
    deny="$(command -v cargo-deny)"
  else
    echo "[deny] building cargo-deny $version into $tools (once; several minutes on 2 cores)"
    cargo install --locked --quiet "cargo-deny@$version" --root "$tools"
  fi
fi

snapshot=tools/advisory-db
commit="$(sed -n 's/^commit=//p' "$snapshot/SNAPSHOT")"
date="$(sed -n 's/^date=//p' "$snapshot/SNAPSHOT")"
# cargo deny's directory for the db-urls entry of deny.toml (its name hashes the URL).
db=.local/advisory-db/advisory-db-3157b0e258782691
if [[ "$(cat "$db/.snapshot" 2>/dev/null)" != "$commit" ]]; then
  echo "[deny] advisory database: snapshot ${commit:0:12} of $date"
  rm -rf "$db" && mkdir -p "$db"
  cp -r "$snapshot"/. "$db"/
  git -C "$db" init -q
  git -C "$db" add -A
  GIT_AUTHOR_DATE="$date" GIT_COMMITTER_DATE="$date" git -C "$db" -c user.name=snapshot -c user.email=snapshot@localhost \
    commit -q -m "RustSec advisory-db $commit"
  echo "$commit" >"$db/.snapshot"
fi
"$deny" --offline --locked check advisories licenses bans sources
