//! `openmeet-cutover`: see `docs/cutover.md` (runbook) and `docs/cutover-formats.md` (formats, reports, exit codes).
//! Exit 0: done / clean; 1: some items failed, discrepancies, or a plan with unread entities; 2: bad input or
//! configuration, nothing changed; 3: stopped part-way (changes may have been made: re-run to continue).

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command};
use serde::Serialize;

fn bad_input(message: impl std::fmt::Display, json: bool) -> ExitCode {
    if json {
        println!("{}", serde_json::json!({"error": {"code": "bad_input", "message": message.to_string()}}));
    }
    eprintln!("openmeet-cutover: {message}");
    ExitCode::from(2)
}

/// Exit 3: a run or rollback stopped part-way (the run record or a backing service failed after it may have made
/// changes). Exit 2 is kept for "nothing was changed".
fn stopped(message: impl std::fmt::Display, json: bool) -> ExitCode {
    if json {
        println!("{}", serde_json::json!({"error": {"code": "stopped", "message": message.to_string()}}));
    }
    eprintln!("openmeet-cutover: stopped part-way, changes may have been made (run it again to continue): {message}");
    ExitCode::from(3)
}

fn emit<T: Serialize>(json: bool, report: &T, text: impl FnOnce() -> String) {
    if json {
        println!("{}", serde_json::to_string(report).unwrap_or_default());
    } else {
        print!("{}", text());
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Log lines (JSON, as the functions write) go to stderr only when asked for with RUST_LOG.
    let logging = std::env::var_os("RUST_LOG").is_some();
    tracing_subscriber_init(logging);
    // The functions' metric lines would mix into the report: stderr with the logs, else nowhere.
    shared::metrics::off_stdout(logging);
    let json = cli.json;
    let outcome = match cli.command {
        Command::Plan { snapshot, concurrency, base } => commands::plan(&snapshot, concurrency, base, json).await,
        Command::Run { snapshot, concurrency, until, base, via_queue } => {
            commands::run(&snapshot, concurrency, until, base, via_queue, json).await
        }
        Command::Verify { snapshot, concurrency } => commands::verify(&snapshot, concurrency, json).await,
        Command::Rollback { run, concurrency } => commands::rollback(&run, concurrency, json).await,
        Command::Status { run } => commands::status(run.as_deref(), json).await,
        Command::ImportZulip { export, mapping, history_room, concurrency } => {
            commands::import_zulip(&export, &mapping, &history_room, concurrency, json).await
        }
        Command::GenerateZulip(args) => Ok(commands::generate_zulip(args, json)),
        Command::Generate(args) => Ok(commands::generate(args, json)),
    };
    outcome.unwrap_or_else(|stopped_early| stopped_early)
}

/// The functions' JSON log lines on stderr when asked for (stdout carries the report), and always the counter of
/// homeserver calls that the run report states (beside the log filter, so it sees every call).
fn tracing_subscriber_init(logging: bool) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let log = logging
        .then(tracing_subscriber::EnvFilter::try_from_default_env)
        .and_then(Result::ok)
        .map(|filter| tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).with_filter(filter));
    let _ = tracing_subscriber::registry().with(log).with(openmeet_cutover::calls::Counter).try_init();
}
