//! Tools run as child processes by the test command's subcommands: errors name the command and its exit status.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Why a tool subcommand failed: bad arguments (exit 2) or a failed check or step (exit 1).
pub enum ToolError {
    Usage(String),
    Failed(String),
}

impl From<String> for ToolError {
    fn from(error: String) -> ToolError {
        ToolError::Failed(error)
    }
}

/// `program` on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

/// Runs `program` in `cwd` with the output on the terminal; an error unless it exits 0.
pub async fn run(program: impl AsRef<OsStr>, args: &[&str], cwd: &Path, envs: &[(&str, &OsStr)]) -> Result<(), String> {
    let program = program.as_ref();
    let status = tokio::process::Command::new(program)
        .args(args)
        .current_dir(cwd)
        .envs(envs.iter().copied())
        .status()
        .await
        .map_err(|e| format!("{}: {e}", program.to_string_lossy()))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("{} {} failed ({status})", program.to_string_lossy(), args.join(" ")))
}

/// What `program` prints on stdout when it exits 0.
pub async fn stdout_of(program: impl AsRef<OsStr>, args: &[&str]) -> Option<String> {
    let output = tokio::process::Command::new(program).args(args).output().await.ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
