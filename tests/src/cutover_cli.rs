//! The `openmeet-cutover` command as the tests run it: the built binary, configured by the stack's environment.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::{repo_root, stack};

/// Builds the binary once (the tests crate cannot depend on another crate's binary).
pub fn binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--locked", "-p", "openmeet-cutover", "--bin", "openmeet-cutover"])
                .current_dir(repo_root())
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building openmeet-cutover failed");
            let target =
                std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| repo_root().join("target"));
            target.join("debug/openmeet-cutover")
        })
        .clone()
}

/// The command, configured by the stack's environment (as `set -a; . .local/stack.env` would).
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command.args(args).env_remove("RUST_LOG");
    for (key, value) in &stack().env {
        if key != "RUST_LOG" {
            command.env(key, value);
        }
    }
    command
}

/// Runs it; returns the exit code, the `--json` report (Null when stdout is not JSON) and stderr.
pub fn cutover(args: &[&str]) -> (i32, Value, String) {
    let output = command(args).output().expect("openmeet-cutover runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (output.status.code().unwrap_or(-1), report, String::from_utf8_lossy(&output.stderr).into_owned())
}
