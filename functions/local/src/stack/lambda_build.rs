//! `stack lambda-build` (run by scripts/test.sh): builds the Lambda artifacts exactly as they are deployed,
//! `cargo lambda build --release --arm64` (Graviton, provided.al2023) cross-compiled with zig; one
//! target/lambda/<binary>/bootstrap per function of template.yaml (`sam build` runs the same build per function).
//! Installs what it needs on a fresh machine: the aarch64 Rust target (rustup); cargo-lambda and zig come from PyPI
//! into the venv (tools/requirements.txt, installed by scripts/lib.sh before this runs).

use std::ffi::OsString;

use super::Layout;
use super::cmd::{ToolError, run, stdout_of};

const TARGET: &str = "aarch64-unknown-linux-gnu";
/// (binary of template.yaml's BuildProperties, its package)
const FUNCTIONS: [(&str, &str); 6] = [
    ("provisioning", "openmeet-provisioning"),
    ("rooms", "openmeet-rooms"),
    ("membership", "openmeet-membership"),
    ("messages", "openmeet-messages"),
    ("retry-worker", "openmeet-retry-worker"),
    ("push-gateway", "openmeet-push-gateway"),
];
/// ELF e_machine of arm64 (EM_AARCH64), a little-endian u16 at offset 18.
const EM_AARCH64: u16 = 183;

fn is_arm64(elf: &[u8]) -> bool {
    elf.starts_with(b"\x7fELF") && elf.get(18..20).is_some_and(|m| u16::from_le_bytes([m[0], m[1]]) == EM_AARCH64)
}

pub async fn main(layout: &Layout) -> Result<(), ToolError> {
    let root = layout.root.as_path();
    let installed = stdout_of("rustup", &["target", "list", "--installed"])
        .await
        .ok_or_else(|| "rustup target list failed".to_owned())?;
    if !installed.lines().any(|line| line.trim() == TARGET) {
        run("rustup", &["target", "add", TARGET], root, &[]).await?;
    }
    // cargo-zigbuild finds zig as `python3 -m ziglang` of the venv.
    let mut path = OsString::from(layout.venv.join("bin"));
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    let mut args = vec!["lambda", "build", "--release", "--arm64", "--locked"];
    for (_, package) in FUNCTIONS {
        args.extend(["-p", package]);
    }
    run("cargo", &args, root, &[("PATH", &path)]).await?;
    for (binary, _) in FUNCTIONS {
        let artifact = root.join("target/lambda").join(binary).join("bootstrap");
        let bytes = std::fs::read(&artifact).map_err(|e| format!("{} was not built: {e}", artifact.display()))?;
        if !is_arm64(&bytes) {
            return Err(ToolError::Failed(format!("{} is not an arm64 executable", artifact.display())));
        }
        println!("  {binary:<14} {} bytes", bytes.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_arm64;

    #[test]
    fn only_an_arm64_elf_passes() {
        let mut elf = b"\x7fELF".to_vec();
        elf.resize(20, 0);
        elf[18] = 183;
        assert!(is_arm64(&elf));
        elf[18] = 62; // EM_X86_64
        assert!(!is_arm64(&elf));
        assert!(!is_arm64(b"#!/bin/sh"));
    }
}
