//! `stack web build|test|bench [N]` (scripts/web.sh): the example chat page (examples/web), built with npm ci and
//! esbuild, tested and benchmarked in Debian's headless chromium against the running stack. Node.js ≥ 20, npm and
//! chromium are installed with apt-get when missing and running as root; nothing downloads a browser.

use std::path::PathBuf;

use super::cmd::which;
use super::say;
use super::services::Stack;

fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

async fn run(program: &str, args: &[&str], dir: &PathBuf, envs: &[(&str, String)]) -> Result<(), String> {
    let status = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .status()
        .await
        .map_err(|e| format!("{program}: {e}"))?;
    status.success().then_some(()).ok_or_else(|| format!("{program} {} failed ({status})", args.join(" ")))
}

pub(super) async fn apt_install(packages: &[&str]) -> Result<(), String> {
    let list = packages.join(" ");
    if !is_root() {
        return Err(format!("{list} missing: install the Debian package(s) with: sudo apt-get install -y {list}"));
    }
    say("web", &format!("installing {list} with apt-get (once)"));
    let root = PathBuf::from("/");
    run("apt-get", &["update", "-qq"], &root, &[]).await?;
    let args: Vec<&str> = ["install", "-y", "-qq"].into_iter().chain(packages.iter().copied()).collect();
    run("apt-get", &args, &root, &[("DEBIAN_FRONTEND", "noninteractive".to_owned())]).await
}

async fn build(web: &PathBuf) -> Result<(), String> {
    if which("node").is_none() || which("npm").is_none() {
        apt_install(&["nodejs", "npm"]).await?;
    }
    let out = tokio::process::Command::new("node").args(["-p", "process.versions.node.split('.')[0]"]).output().await;
    let major: u32 = out.ok().and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(0);
    if major < 20 {
        return Err(format!("Node.js {major} found; the page's tools need Node.js 20 or newer"));
    }
    say("web", "npm ci (examples/web/package-lock.json)");
    run("npm", &["ci", "--no-audit", "--no-fund", "--loglevel=error"], web, &[]).await?;
    run("node", &["build.mjs"], web, &[]).await
}

/// The browser the tests drive (`CHROMIUM_PATH` overrides).
async fn chromium() -> Result<String, String> {
    let mut missing = Vec::new();
    if which("chromium").is_none() {
        missing.push("chromium");
    }
    // Emoji in reactions render as boxes without a colour emoji font: nicer screenshots, not needed by the test.
    if !std::path::Path::new("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf").exists() && is_root() {
        missing.push("fonts-noto-color-emoji");
    }
    if !missing.is_empty() {
        apt_install(&missing).await?;
    }
    match std::env::var("CHROMIUM_PATH") {
        Ok(path) if !path.is_empty() => Ok(path),
        _ => which("chromium").map(|p| p.display().to_string()).ok_or_else(|| "chromium is not on PATH".to_owned()),
    }
}

pub async fn main(stack: &Stack, args: &[String]) -> Result<(), String> {
    let web = stack.layout.root.join("examples/web");
    let command = args.first().map(String::as_str).unwrap_or_default();
    if !matches!(command, "build" | "test" | "bench" | "audit") {
        return Err("usage: scripts/web.sh build|test|bench [SENDS]|audit".to_owned());
    }
    build(&web).await?;
    if command == "build" {
        return Ok(());
    }
    if command == "audit" {
        // The page's runtime dependencies against the registry's advisories: a high or critical one fails, and so
        // does an advisory service that cannot be asked (nothing is taken as clean unchecked). Its own command, not
        // part of `test`: some registries (this project's CI among them) refuse the advisory endpoint with 405.
        say("web", "npm audit --omit=dev --audit-level=high");
        return run("npm", &["audit", "--omit=dev", "--audit-level=high"], &web, &[]).await;
    }
    let browser = [("CHROMIUM_PATH", chromium().await?)];
    if !stack.healthy().await {
        return Err("the local stack is not running: scripts/stack.sh start".to_owned());
    }
    if command == "test" {
        std::fs::create_dir_all(stack.layout.root.join(".local/test-output/web")).map_err(|e| e.to_string())?;
        let test = ["--test", "--test-reporter=spec", "test/unit.test.mjs", "test/chat.test.mjs"];
        run("node", &test, &web, &browser).await?;
        say("web", "screenshots in .local/test-output/web/");
        return Ok(());
    }
    let sends = args.get(1).map_or("50", String::as_str);
    run("node", &["bench/latency.mjs", sends], &web, &browser).await
}
