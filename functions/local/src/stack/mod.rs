//! The local stack's supervisor, `openmeet-local stack start|stop|restart|status|dev|token|env`: moto, Synapse, the
//! homeserver's public entry (nginx, gate.rs) and the gateway (this binary's `serve`) as background processes, pid
//! files in `.local/run/`, logs in `.local/logs/`, configuration for the gateway and the integration tests in
//! `.local/stack.env`. `scripts/stack.sh` and `scripts/dev.sh` call it once the Python venv (Synapse, moto, cfn-lint)
//! is installed.

mod bench_postgres;
mod bench_workers;
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
mod workers;
mod workers_setup;

use std::path::{Path, PathBuf};

pub use services::Stack;

pub const HOST: &str = "127.0.0.1";
pub const GATEWAY_PORT: u16 = 3000;
pub const SYNAPSE_URL: &str = "http://127.0.0.1:8008";
pub const MOTO_URL: &str = "http://127.0.0.1:5100";
pub const GATEWAY_URL: &str = "http://127.0.0.1:3000";
const DEFAULT_JWT_SECRET: &str = "local-dev-secret-change-me";

/// `openmeet-local stack COMMAND` (normally through scripts/stack.sh, dev.sh, web.sh and bench-postgres.sh).
#[derive(clap::Subcommand, Debug)]
pub enum StackCommand {
    /// Start what is not running yet; returns once everything is healthy
    #[command(after_help = after_help!(stack: "scripts/stack.sh start"))]
    Start,
    /// Stop what `start` (or dev) started
    #[command(after_help = after_help!(stack: "scripts/stack.sh stop"))]
    Stop,
    /// Stop, then start
    #[command(after_help = after_help!(stack: "flock /tmp/openmeet-stack.lock scripts/stack.sh restart"))]
    Restart,
    /// One line per service; exit status 1 unless all answer
    #[command(after_help = after_help!(stack: "scripts/stack.sh status", "scripts/stack.sh status --json"))]
    Status {
        /// The services as one JSON object on stdout (healthy, services: name, pid, url, answering; env, logs)
        #[arg(long)]
        json: bool,
    },
    /// Start, then follow the gateway's log; Ctrl-C stops what this run started
    #[command(after_help = after_help!(stack: "scripts/dev.sh"))]
    Dev,
    /// Print an HS256 JWT for the local API (valid $TOKEN_TTL s, default 3600)
    #[command(after_help = after_help!(stack: "scripts/stack.sh token alice acme user \"Alice A\""))]
    Token {
        /// The token's subject (a user slug for a user token)
        sub: String,
        /// The tenant id
        tenant: String,
        /// service (the default) or user
        role: Option<String>,
        /// The user's display name
        display_name: Option<String>,
    },
    /// Print the path of .local/stack.env
    #[command(after_help = after_help!(stack: "set -a; . \"$(scripts/stack.sh env)\"; set +a"))]
    Env,
    /// The example chat page (scripts/web.sh): build | test | bench [SENDS] | audit
    #[command(after_help = after_help!(stack: "scripts/web.sh test", "scripts/web.sh bench 200"))]
    Web {
        /// build, test, bench [SENDS] or audit
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The cutover benchmark on Synapse with PostgreSQL (scripts/bench-postgres.sh)
    #[command(after_help = after_help!(stack: "scripts/bench-postgres.sh"))]
    BenchPostgres {
        /// Passed to the benchmark
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Synapse on workers beside the default stack (PostgreSQL, Redis, main + 2 event persisters + 2 generic
    /// workers, a router on :8018, a gateway on :3010): start | stop | restart | status
    #[command(after_help = after_help!(stack: "scripts/stack.sh workers start", "scripts/stack.sh workers status --json",
        "scripts/test-workers.sh"))]
    Workers {
        #[command(subcommand)]
        command: workers::WorkersCommand,
    },
    /// The cutover and Zulip import benchmarks on the workers profile, with CPU-ms per process from /proc
    #[command(after_help = after_help!(stack: "scripts/stack.sh bench-workers",
        "scripts/stack.sh bench-workers --cutover \"400 8 8 2000 8\" --zulip \"4000 8 8\""))]
    BenchWorkers(bench_workers::BenchWorkersArgs),
    /// cargo deny check licenses bans sources (deny.toml), offline; advisories too with OPENMEET_ADVISORY_DB
    #[command(after_help = after_help!(stack "OPENMEET_ADVISORY_DB: a clone of the RustSec advisory database.\n";
        "scripts/stack.sh deny"))]
    Deny,
    /// schemathesis from openapi.yaml against the running stack, bounded: no 5xx, no answer outside the contract
    #[command(after_help = after_help!(stack
        "Settings: FUZZ_EXAMPLES (cases per operation, default 12), FUZZ_MAX_TIME (seconds, default 120),\n"
        "  FUZZ_SEED (default 18: the same cases every run), FUZZ_API (default http://127.0.0.1:3000).\n";
        "FUZZ_EXAMPLES=4 scripts/stack.sh fuzz"))]
    Fuzz,
    /// cargo lambda build --release --arm64 of every function; checks each bootstrap is an arm64 executable
    #[command(after_help = after_help!(stack: "scripts/stack.sh lambda-build"))]
    LambdaBuild,
}

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
pub async fn main(command: StackCommand) -> i32 {
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
    let stack = Stack::new(layout);
    let result = match command {
        StackCommand::Start => stack.start().await,
        StackCommand::Stop => stack.stop().await,
        StackCommand::Restart => match stack.stop().await {
            Ok(()) => stack.start().await,
            Err(error) => Err(error),
        },
        StackCommand::Status { json } => return i32::from(!stack.print_status(json).await),
        StackCommand::Dev => dev::run(&stack).await,
        StackCommand::Token { sub, tenant, role, display_name } => {
            let args: Vec<String> = [Some(sub), Some(tenant), role, display_name].into_iter().flatten().collect();
            return token::run(&stack.layout, &args);
        }
        StackCommand::BenchPostgres { args } => {
            bench_postgres::main(&stack.layout, &args).await.map_err(|e| services::Failure::Error("pg", e))
        }
        StackCommand::Workers { command } => return workers::main(stack.layout, command).await,
        StackCommand::BenchWorkers(args) => {
            bench_workers::main(stack.layout, args).await.map_err(|e| services::Failure::Error("bench-workers", e))
        }
        StackCommand::Web { args } => {
            web_page::main(&stack, &args).await.map_err(|e| services::Failure::Error("web", e))
        }
        StackCommand::Env => {
            println!("{}", stack.layout.env_file.display());
            Ok(())
        }
        StackCommand::Deny => return tool("deny", deny::main(&stack.layout).await),
        StackCommand::Fuzz => return tool("fuzz", fuzz::main(&stack).await),
        StackCommand::LambdaBuild => return tool("lambda-build", lambda_build::main(&stack.layout).await),
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

/// The exit status of one of the test command's tools: a setting it does not take, 2; a failure, 1.
fn tool(command: &str, result: Result<(), cmd::ToolError>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(cmd::ToolError::Usage(error)) => {
            eprintln!("[{command}] {error}");
            2
        }
        Err(cmd::ToolError::Failed(error)) => {
            eprintln!("[{command}] ERROR: {error}");
            1
        }
    }
}
