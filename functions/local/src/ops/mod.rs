//! `openmeet-local ops`: the operator's one-shot commands, run against the environment the variables describe (the
//! local stack's `.local/stack.env`, or a deployed stack's retry-worker environment with `--stack NAME`): the
//! self-healing jobs (jobs.rs), the DLQ redrive (redrive.rs), the tenant-walls upgrade (upgrade_rooms.rs), the
//! session sweep (sweep.rs) and the metric summary of a log (metrics_summary.rs).

mod deployed;
pub mod jobs;
mod metrics_summary;
mod redrive;
mod sweep;
mod upgrade_rooms;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde::Serialize;
use shared::identity::TenantId;

use crate::conventions::{BAD_INPUT, FAILED, fail};

#[derive(Subcommand, Debug)]
pub enum Ops {
    #[command(flatten)]
    Job(jobs::Job),
    /// Logs out browser devices idle for OPENMEET_SESSION_IDLE_SECS (the hourly sweep, once)
    #[command(after_help = after_help!(ops: "openmeet-local ops sweep-sessions acme"))]
    SweepSessions {
        /// Only this tenant's users (all when absent)
        #[arg(value_parser = tenant)]
        tenant: Option<TenantId>,
        #[command(flatten)]
        output: Output,
    },
    /// Moves the retry DLQ's operations back to the retry queue (each is replayed once)
    #[command(after_help = after_help!(ops: "openmeet-local ops redrive --stack openmeet-matrix"))]
    Redrive {
        #[command(flatten)]
        target: Deployed,
        #[command(flatten)]
        output: Output,
    },
    /// Carries rooms made before the tenant walls over (ADR 0003); safe to repeat: the second run writes nothing
    #[command(after_help = after_help!(ops: "openmeet-local ops upgrade-rooms --stack openmeet-matrix"))]
    UpgradeRooms {
        /// Only this tenant's rooms (all tenants when absent)
        #[arg(value_parser = tenant)]
        tenant: Option<TenantId>,
        #[command(flatten)]
        target: Deployed,
        #[command(flatten)]
        output: Output,
    },
    /// Count and p50/p95/max of every metric line in a log, per metric and dimension set
    #[command(after_help = after_help!(ops: "openmeet-local ops metrics .local/logs/gateway.log"))]
    Metrics {
        /// The log to read
        #[arg(default_value = ".local/logs/gateway.log")]
        log_file: PathBuf,
        #[command(flatten)]
        output: Output,
    },
}

/// `--json`, on every command that reports.
#[derive(clap::Args, Debug, Default)]
pub struct Output {
    /// The report as one JSON line, the last on stdout (a failure: {"error": {"code", "message"}})
    #[arg(long)]
    pub json: bool,
}

/// Where the configuration comes from: the environment, or a deployed stack's.
#[derive(clap::Args, Debug, Default)]
pub struct Deployed {
    /// A deployed stack's configuration (its retry worker's, read with the AWS CLI) instead of the environment's
    #[arg(long, value_name = "STACK_NAME", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub stack: Option<String>,
}

/// Why a command did not finish: bad input (exit 2, nothing changed) or a failure (exit 1).
#[derive(Debug)]
pub enum Failure {
    BadInput(String),
    Failed(String),
}

/// A tenant id argument, checked before anything runs.
pub fn tenant(value: &str) -> Result<TenantId, String> {
    TenantId::parse(value).map_err(|_| format!("{value:?} is not a tenant id"))
}

impl Ops {
    fn json(&self) -> bool {
        match self {
            Ops::Job(job) => job.json(),
            Ops::SweepSessions { output, .. }
            | Ops::Redrive { output, .. }
            | Ops::UpgradeRooms { output, .. }
            | Ops::Metrics { output, .. } => output.json,
        }
    }

    fn deployed_stack(&self) -> Option<&str> {
        match self {
            Ops::Redrive { target, .. } | Ops::UpgradeRooms { target, .. } => target.stack.as_deref(),
            _ => None,
        }
    }

    /// Runs the command; returns how many items failed.
    async fn run(self) -> Result<usize, Failure> {
        match self {
            Ops::Job(job) => job.run().await,
            Ops::SweepSessions { tenant, output } => sweep::sweep_sessions(tenant, output.json).await.map(|()| 0),
            Ops::Redrive { output, .. } => redrive::run(output.json).await.map(|()| 0),
            Ops::UpgradeRooms { tenant, output, .. } => upgrade_rooms::run(tenant, output.json).await,
            Ops::Metrics { log_file, output } => {
                let rows = metrics_summary::summarise(&log_file.to_string_lossy()).map_err(Failure::Failed)?;
                if output.json {
                    println!("{}", serde_json::to_string(&rows).unwrap_or_default());
                } else {
                    print!("{}", metrics_summary::render(&rows));
                }
                Ok(0)
            }
        }
    }
}

/// Runs an `ops` command; the exit code follows the conventions (conventions.rs).
pub async fn main(ops: Ops) -> ExitCode {
    let json = ops.json();
    let outcome = match ops.deployed_stack().map(str::to_owned) {
        // The same command again, with the deployed stack's environment.
        Some(stack) => deployed::rerun(&stack).await,
        None => ops.run().await.map(|failures| ExitCode::from(u8::from(failures > 0))),
    };
    match outcome {
        Ok(code) => code,
        Err(Failure::BadInput(message)) => fail("ops", BAD_INPUT, &message, json),
        Err(Failure::Failed(message)) => fail("ops", FAILED, &message, json),
    }
}

/// The report: one JSON line with `--json`, else its lines and a summary for people.
pub fn print_report(json: bool, report: &impl Serialize, lines: Vec<String>, summary: &str) {
    if json {
        println!("{}", serde_json::to_string(report).unwrap_or_default());
        return;
    }
    for line in lines {
        println!("{line}");
    }
    println!("{summary}");
}

fn app_error(error: impl std::fmt::Display) -> Failure {
    Failure::Failed(error.to_string())
}
