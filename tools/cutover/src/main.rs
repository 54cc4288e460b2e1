//! `openmeet-cutover`: see `docs/cutover.md` (runbook) and `docs/cutover-formats.md` (formats, reports, exit codes).
//! Exit 0: done / clean; 1: some items failed, discrepancies, or a plan with unread entities; 2: bad input or
//! configuration, nothing changed; 3: stopped part-way (changes may have been made: re-run to continue).

mod cli;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command};
use openmeet_cutover::{generate, plan, rollback, run, snapshot, verify, zulip};
use serde::Serialize;
use shared::aws::cutover_runs::RunState;

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
    if logging {
        let _ = tracing_subscriber_init();
    }
    // The functions' metric lines would mix into the report: stderr with the logs, else nowhere.
    shared::metrics::off_stdout(logging);
    let json = cli.json;
    if let Command::Generate { tenant, users, groups, events, memberships, seed, out } = &cli.command {
        if shared::identity::TenantId::parse(tenant).is_err() {
            return bad_input(format!("{tenant:?} is not a tenant id"), json);
        }
        let shape = generate::Shape {
            tenant: tenant.clone(),
            users: *users,
            groups: *groups,
            events: *events,
            memberships: (*memberships).min(users * (groups + events)),
            seed: *seed,
        };
        let written = match out {
            Some(path) => std::fs::File::create(path).map(std::io::BufWriter::new).and_then(|mut file| {
                generate::generate(&shape, &mut file)?;
                file.flush()
            }),
            None => generate::generate(&shape, &mut std::io::stdout().lock()),
        };
        return match written {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => bad_input(format!("writing the snapshot: {error}"), json),
        };
    }
    if let Command::GenerateZulip {
        tenant,
        users,
        ghosts,
        streams,
        topics,
        messages,
        upload_every,
        seed,
        out,
        mapping_out,
        snapshot_out,
    } = &cli.command
    {
        if shared::identity::TenantId::parse(tenant).is_err() {
            return bad_input(format!("{tenant:?} is not a tenant id"), json);
        }
        let shape = zulip::generate::ZulipShape {
            tenant: tenant.clone(),
            users: (*users).max(1),
            ghosts: *ghosts,
            streams: (*streams).max(1),
            topics: (*topics).max(1),
            messages: *messages,
            upload_every: *upload_every,
            seed: *seed,
        };
        return match zulip::generate::generate(&shape, out, mapping_out, snapshot_out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => bad_input(format!("writing the export: {error}"), json),
        };
    }
    // The whole export and mapping are checked before connecting; the rooms and users before anything is sent.
    let zulip_import = match &cli.command {
        Command::ImportZulip { export, mapping, .. } => match zulip::import::prepare(export, mapping) {
            Ok(prepared) => Some(prepared),
            Err(invalid) => return bad_input(invalid, json),
        },
        _ => None,
    };
    // Validate the whole snapshot before touching anything (or even connecting).
    let summary = match &cli.command {
        Command::Plan { snapshot, .. } | Command::Run { snapshot, .. } | Command::Verify { snapshot, .. } => {
            match snapshot::validate(snapshot) {
                Ok(summary) => Some(summary),
                Err(invalid) => return bad_input(format!("{}: {}", snapshot.display(), invalid.0), json),
            }
        }
        _ => None,
    };
    if let Command::Run { via_queue: true, .. } = &cli.command {
        return bad_input("--via-queue is not available yet: run without it (in-process); see docs/cutover.md", json);
    }
    let app = match openmeet_cutover::app().await {
        Ok(app) => app,
        Err(error) => return bad_input(format!("configuration: {error}"), json),
    };
    let quiet = json && !std::io::IsTerminal::is_terminal(&std::io::stderr());
    if let (Command::ImportZulip { export, concurrency, .. }, Some(prepared)) = (&cli.command, zulip_import) {
        let stop = stop_on_signals(quiet);
        return match zulip::import::import(app, prepared, export, *concurrency, quiet, stop).await {
            Ok(report) => {
                emit(json, &report, || zulip::import::render(&report));
                if report.state == RunState::Complete { ExitCode::SUCCESS } else { ExitCode::from(1) }
            }
            // The import refuses before sending anything, except when a room's worker dies mid-run.
            Err(zulip::import::ImportError::Stopped(error)) => stopped(error, json),
            Err(zulip::import::ImportError::Refused(invalid)) => bad_input(invalid, json),
        };
    }
    match (cli.command, summary) {
        (Command::Plan { snapshot, concurrency }, Some(summary)) => {
            match plan::plan(app, &snapshot, summary, concurrency, quiet).await {
                Ok(report) => {
                    emit(json, &report, || plan::render(&report));
                    // A plan with unread entities is incomplete: a script must not take it for "nothing to do".
                    if report.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
                }
                Err(invalid) => bad_input(invalid.0, json),
            }
        }
        (Command::Run { snapshot, concurrency, .. }, Some(summary)) => {
            match run::run(app, &snapshot, summary, concurrency, quiet).await {
                Ok(report) => {
                    emit(json, &report, || run_text(&report));
                    if report.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
                }
                Err(invalid) => stopped(invalid.0, json),
            }
        }
        (Command::Verify { snapshot, concurrency }, Some(summary)) => {
            match verify::verify(app, &snapshot, summary, concurrency, quiet).await {
                Ok(report) => {
                    emit(json, &report, || {
                        let mut text: String = report.discrepancies.iter().map(|d| format!("{d}\n")).collect();
                        text.push_str(&format!(
                            "{} discrepancies ({} items checked)\n",
                            report.discrepancies.len(),
                            report.checked
                        ));
                        text
                    });
                    if report.discrepancies.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
                }
                Err(invalid) => bad_input(invalid.0, json),
            }
        }
        (Command::Rollback { run, concurrency }, _) => match rollback::rollback(app, &run, concurrency, quiet).await {
            Ok(report) => {
                emit(json, &report, || {
                    let mut text: String = report.failures.iter().map(|f| format!("failed: {f}\n")).collect();
                    text.push_str(&format!(
                        "run {}: {} entities restored, {} failed\n",
                        report.run_id,
                        report.restored,
                        report.failures.len()
                    ));
                    text
                });
                if report.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
            }
            // No such run is refused before anything is restored; anything else may come after restoring some.
            Err(rollback::RollbackError::NoRun(message)) => bad_input(message, json),
            Err(rollback::RollbackError::Stopped(invalid)) => stopped(invalid.0, json),
        },
        (Command::Status { run }, _) => match rollback::status(app, run.as_deref()).await {
            Ok(statuses) => {
                emit(json, &statuses, || {
                    statuses
                        .iter()
                        .map(|s| {
                            let mut line = format!(
                                "run {} {} snapshot {} started {} done {}/{} {}\n",
                                s.run_id,
                                s.state,
                                s.snapshot,
                                s.started_at,
                                s.done,
                                s.total.map_or("?".into(), |t| t.to_string()),
                                s.seconds.map_or(String::new(), |t| format!("in {t:.1}s"))
                            );
                            for (entity, error) in &s.failures {
                                line.push_str(&format!("  failed {entity}: {error}\n"));
                            }
                            line
                        })
                        .collect()
                });
                ExitCode::SUCCESS
            }
            Err(invalid) => bad_input(invalid.0, json),
        },
        _ => bad_input("internal: no snapshot summary", json),
    }
}

fn run_text(report: &run::RunReport) -> String {
    let mut text = format!("run {}{}\n", report.run_id, if report.continued { " (continued)" } else { "" });
    for phase in &report.phases {
        text.push_str(&format!(
            "  {:12} {:>7} items: {:>7} applied, {:>7} already done, {:>5} failed; {:.1}s, {:.1}/s\n",
            phase.phase, phase.items, phase.applied, phase.skipped, phase.failed, phase.seconds, phase.per_second
        ));
    }
    text.push_str(&format!(
        "  created {} users and {} rooms in {:.1}s\n",
        report.users_created, report.rooms_created, report.seconds
    ));
    for failure in &report.failures {
        text.push_str(&format!("  failed {}: {}\n", failure.entity, failure.error));
    }
    text
}

/// SIGINT or SIGTERM asks the import to stop: reading ends, the messages in flight finish and are checkpointed.
fn stop_on_signals(quiet: bool) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        let Ok(mut terminate) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
        if !quiet {
            eprintln!("stopping: finishing the messages in flight (run the same command again to continue)");
        }
    });
    stop
}

/// The functions' JSON log lines, on stderr: stdout carries the report.
fn tracing_subscriber_init() -> Result<(), ()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().map_err(|_| ())?;
    tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).try_init().map_err(|_| ())
}
