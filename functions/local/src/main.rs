//! `openmeet-local`: one binary, a command group per job (clap derive; conventions.rs: `--json`, exit codes, help):
//!
//! - `stack …` (stack/): the supervisor of the local stack: moto, Synapse, its public entry and the gateway as
//!   background processes (scripts/stack.sh, dev.sh, web.sh and bench-postgres.sh call it);
//! - `serve`, `bootstrap` (serve/): the local gateway, which serves every route of the route table by calling the
//!   same function code Lambda runs (gateway.rs), and the retry worker's poller (worker.rs); the stack starts it;
//! - the demo (demo/): the demo sign-in and the example chat page the local gateway serves (never deployed);
//! - `ops …` (ops/): the operator's one-shot commands against a stack's environment: the self-healing jobs,
//!   redrive, upgrade-rooms, sweep-sessions, metrics.

#[macro_use]
mod conventions;
mod demo;
mod gateway;
mod ops;
mod serve;
mod stack;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
// The gateway reaches the example page as `crate::web`.
use demo::web;

#[derive(Parser, Debug)]
#[command(
    name = "openmeet-local",
    about = "The local stack (supervisor, gateway, demo) and the operator's one-shot commands",
    after_help = after_help!(ops:
        "scripts/stack.sh start                                   # openmeet-local stack start, via the script",
        "openmeet-local ops drift-repair --dry-run --tenant acme",
        "openmeet-local ops redrive --stack openmeet-matrix        # a deployed stack's environment",
    )
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The local stack's supervisor (normally through scripts/stack.sh)
    #[command(subcommand, after_help = after_help!(stack: "scripts/stack.sh status", "openmeet-local stack --help"))]
    Stack(stack::StackCommand),
    /// One-shot operator commands: self-healing jobs, redrive, upgrade-rooms, sweep-sessions, metrics
    #[command(subcommand, after_help = after_help!(ops: "openmeet-local ops sweep-expired --json"))]
    Ops(ops::Ops),
    /// The local gateway and the retry worker's poller (the stack starts it)
    #[command(after_help = after_help!(ops: "set -a; . .local/stack.env; set +a; openmeet-local serve"))]
    Serve,
    /// Creates the emulated AWS resources and exits
    #[command(after_help = after_help!(ops: "set -a; . .local/stack.env; set +a; openmeet-local bootstrap"))]
    Bootstrap,
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        // The supervisor prints for people; its services log JSON themselves.
        Command::Stack(command) => {
            ExitCode::from(u8::try_from(stack::main(command).await).unwrap_or(conventions::FAILED))
        }
        Command::Ops(ops) => {
            shared::app::init_logging();
            ops::main(ops).await
        }
        Command::Serve => {
            shared::app::init_logging();
            exit("serve", serve::serve().await)
        }
        Command::Bootstrap => {
            shared::app::init_logging();
            exit("bootstrap", serve::bootstrap_only().await.map(|_| ()))
        }
    }
}

fn exit(command: &str, result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => conventions::fail(command, conventions::FAILED, &error, false),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, Command};
    use crate::ops::Ops;
    use crate::ops::jobs::{EventRooms, Job};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("openmeet-local").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn arguments_are_checked_per_command() {
        let parsed = parse(&["ops", "drift-repair", "--dry-run", "--tenant", "acme", "--json"]).expect("valid");
        assert!(matches!(
            parsed.command,
            Command::Ops(Ops::Job(Job::DriftRepair { dry_run: true, tenant: Some(_), all: false, .. }))
        ));
        let retention = parse(&["ops", "retention", "--now", "2026-12-01T00:00:00Z"]).expect("valid");
        assert!(matches!(
            retention.command,
            Command::Ops(Ops::Job(Job::Retention { rooms: EventRooms { now: Some(1_796_083_200), .. }, .. }))
        ));
        let reminders = parse(&["ops", "reminders", "--now", "12"]).expect("valid");
        assert!(matches!(
            reminders.command,
            Command::Ops(Ops::Job(Job::Reminders { rooms: EventRooms { now: Some(12), .. }, .. }))
        ));
        let refused = [
            &["ops", "reminders", "--dry-run"][..],
            &["ops", "sweep-expired", "--now", "1"],
            &["ops", "retention", "--now", "tomorrow"],
            &["ops", "drift-repair", "--tenant", "Not A Tenant"],
            &["ops", "drift-repair", "--bogus"],
            &["ops", "redrive", "prod"],
            &["ops", "redrive", "--stack"],
            &["ops", "redrive", "--stack", ""],
            &["ops", "upgrade-rooms", "acme", "globex"],
            &["ops", "sweep-sessions", "Not A Tenant"],
            &["stack", "deny", "extra"],
            &["stack", "bogus"],
        ];
        for args in refused {
            let error = parse(args).expect_err(&args.join(" "));
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
        assert!(parse(&["ops", "upgrade-rooms", "--stack", "prod", "acme"]).is_ok());
        assert!(parse(&["stack", "token", "alice", "acme", "user", "Alice A"]).is_ok());
        assert!(parse(&["stack", "web", "bench", "200"]).is_ok());
    }

    #[test]
    fn every_scheduled_job_is_a_command_of_its_one_name() {
        for job in shared::jobs::Job::ALL {
            assert!(parse(&["ops", job.name()]).is_ok(), "openmeet-local ops {job}");
        }
    }

    #[test]
    fn every_help_ends_with_examples_exit_codes_and_runbook() {
        let root = Cli::command();
        let mut paths = vec![vec![]];
        for group in root.get_subcommands() {
            paths.push(vec![group.get_name()]);
            paths.extend(group.get_subcommands().map(|command| vec![group.get_name(), command.get_name()]));
        }
        for path in paths {
            let help = parse(&[&path[..], &["--help"]].concat()).expect_err("help").to_string();
            for needle in ["Examples:", "Exit codes:", "Environment", "docs/"] {
                assert!(help.contains(needle), "{path:?} --help lacks {needle:?}");
            }
        }
    }
}
