//! The local stack's supervisor, `openmeet-local stack start|stop|restart|status|dev|token|env`: moto, Synapse, the
//! homeserver's public entry (nginx, gate.rs) and the gateway (this binary's `serve`) as background processes, pid
//! files in `.local/run/`, logs in `.local/logs/`, configuration for the gateway and the integration tests in
//! `.local/stack.env`. `scripts/stack.sh` and `scripts/dev.sh` call it once the Python venv (Synapse, moto, cfn-lint)
//! is installed.

mod bench_postgres;
mod cmd;
mod deny;
mod dev;
mod env_file;
mod fuzz;
mod gate;
mod lambda_build;
mod process;
mod services;
mod synapse;
mod token;
mod web_page;

use std::path::{Path, PathBuf};

pub use services::Stack;

pub const HOST: &str = "127.0.0.1";
pub const GATEWAY_PORT: u16 = 3000;
pub const SYNAPSE_URL: &str = "http://127.0.0.1:8008";
pub const MOTO_URL: &str = "http://127.0.0.1:5100";
pub const GATEWAY_URL: &str = "http://127.0.0.1:3000";
const DEFAULT_JWT_SECRET: &str = "local-dev-secret-change-me";

const USAGE: &str = "usage: openmeet-local stack COMMAND (normally through scripts/stack.sh)
  start     start what is not running yet; returns once everything is healthy
  stop      stop what `start` (or dev) started
  restart   stop, then start
  status    one line per service; exit status 1 unless all answer
  dev       start, then follow the gateway's log; Ctrl-C stops what this run started
  token SUB TENANT [service|user] [DISPLAY NAME]
            print an HS256 JWT for the local API (valid $TOKEN_TTL s, default 3600)
  env       print the path of .local/stack.env
  web build|test|bench [SENDS]
            the example chat page (scripts/web.sh)
  bench-postgres [ARGS]
            the cutover benchmark on Synapse with PostgreSQL (scripts/bench-postgres.sh)
  deny      cargo deny over the workspace (deny.toml)
  fuzz      schemathesis from openapi.yaml against the running stack, bounded
  lambda-build
            the arm64 Lambda artifacts, as deployed
COMMAND --help tells more about deny, fuzz and lambda-build.";

/// Where everything lives: `<repo>/.local/{venv,run,logs,synapse,stack.env}`.
pub struct Layout {
    pub root: PathBuf,
    pub venv: PathBuf,
    pub run: PathBuf,
    pub logs: PathBuf,
    pub synapse: PathBuf,
    /// The public entry's rendered configuration and nginx's own files.
    pub gate: PathBuf,
    pub env_file: PathBuf,
    pub templates: PathBuf,
}

impl Layout {
    pub fn new(root: PathBuf) -> Layout {
        let local = root.join(".local");
        Layout {
            venv: local.join("venv"),
            run: local.join("run"),
            logs: local.join("logs"),
            synapse: local.join("synapse"),
            gate: local.join("gate"),
            env_file: local.join("stack.env"),
            templates: root.join("scripts/synapse"),
            root,
        }
    }

    /// The repository holding the current directory (`OPENMEET_STACK_ROOT` overrides).
    fn discover() -> Result<Layout, String> {
        if let Ok(root) = std::env::var("OPENMEET_STACK_ROOT") {
            return Ok(Layout::new(PathBuf::from(root)));
        }
        let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
        cwd.ancestors()
            .find(|dir| dir.join("scripts/synapse/homeserver.yaml.tmpl").is_file())
            .map(|dir| Layout::new(dir.to_path_buf()))
            .ok_or_else(|| format!("{} is not inside the openmeet repository", cwd.display()))
    }
}

pub fn say(step: &str, message: &str) {
    println!("[{step}] {message}");
}

/// The end of a log on stderr (for failures).
pub fn show_log_tail(file: &Path, lines: usize) {
    match std::fs::read(file) {
        Ok(bytes) if !bytes.is_empty() => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            eprintln!("----- last {lines} lines of {} -----", file.display());
            for line in &all[all.len().saturating_sub(lines)..] {
                eprintln!("{line}");
            }
            eprintln!("----- end of {} -----", file.display());
        }
        _ => eprintln!("({} is empty or missing)", file.display()),
    }
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

/// Runs a `stack` command; returns the exit status (2: bad usage).
pub async fn main(args: &[String]) -> i32 {
    process::close_inherited_fds();
    // `scripts/stack.sh status | head -1` ends quietly, as a shell tool would, instead of panicking in println!.
    // SAFETY: restoring the default disposition of one signal; children get the default anyway.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let layout = match Layout::discover() {
        Ok(layout) => layout,
        Err(error) => {
            eprintln!("[stack] ERROR: {error}");
            return 1;
        }
    };
    let command = args.first().map(String::as_str).unwrap_or_default();
    let stack = Stack::new(layout);
    let result = match command {
        "start" => stack.start().await,
        "stop" => stack.stop().await,
        "restart" => match stack.stop().await {
            Ok(()) => stack.start().await,
            Err(error) => Err(error),
        },
        "status" => return i32::from(!stack.print_status().await),
        "dev" => dev::run(&stack).await,
        "token" => return token::run(&stack.layout, &args[1..]),
        "bench-postgres" => {
            bench_postgres::main(&stack.layout, &args[1..]).await.map_err(|e| services::Failure::Error("pg", e))
        }
        "web" => web_page::main(&stack, &args[1..]).await.map_err(|e| services::Failure::Error("web", e)),
        "env" => {
            println!("{}", stack.layout.env_file.display());
            Ok(())
        }
        "deny" | "fuzz" | "lambda-build" => return tool(command, &stack, &args[1..]).await,
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            return 0;
        }
        _ => {
            eprintln!("{USAGE}");
            return 2;
        }
    };
    match result {
        Ok(()) => 0,
        Err(services::Failure::Interrupted(code)) => code,
        Err(services::Failure::Error(step, error)) => {
            eprintln!("[{step}] ERROR: {error}");
            1
        }
    }
}

/// The test command's tools: `--help` prints the usage (exit 0); an argument or setting they do not take, exit 2.
async fn tool(command: &str, stack: &Stack, args: &[String]) -> i32 {
    let usage = match command {
        "deny" => deny::USAGE,
        "fuzz" => fuzz::USAGE,
        _ => lambda_build::USAGE,
    };
    match args.first().map(String::as_str) {
        Some("--help" | "-h") => {
            println!("{usage}");
            return 0;
        }
        Some(other) => {
            eprintln!("[{command}] unexpected argument {other:?}\n{usage}");
            return 2;
        }
        None => {}
    }
    let result = match command {
        "deny" => deny::main(&stack.layout).await,
        "fuzz" => fuzz::main(stack).await,
        _ => lambda_build::main(&stack.layout).await,
    };
    match result {
        Ok(()) => 0,
        Err(cmd::ToolError::Usage(error)) => {
            eprintln!("[{command}] {error}\n{usage}");
            2
        }
        Err(cmd::ToolError::Failed(error)) => {
            eprintln!("[{command}] ERROR: {error}");
            1
        }
    }
}
