//! One function per `openmeet-cutover` command (main.rs matches the parsed command onto them): each checks its whole
//! input before connecting, prints its report (text, or one JSON line with `--json`) and returns the exit code
//! (`Err`: it stopped early, the reason printed).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use openmeet_cutover::{delta, generate, plan, rollback, run, snapshot, verify, zulip};
use shared::App;
use shared::aws::cutover_runs::RunState;
use shared::identity::TenantId;

use crate::cli::{BaseArgs, Generate, GenerateZulip, Stage};
use crate::{bad_input, emit, stopped};

/// Exit 0 when `clean`, else 1 (some items failed, discrepancies, unread entities).
fn done(clean: bool) -> ExitCode {
    if clean { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// The services, once the input is known good; the second value: whether progress stays quiet.
async fn connect(json: bool) -> Result<(&'static App, bool), ExitCode> {
    let app = openmeet_cutover::app().await.map_err(|error| bad_input(format!("configuration: {error}"), json))?;
    Ok((app, json && !std::io::IsTerminal::is_terminal(&std::io::stderr())))
}

/// The whole snapshot validated before touching anything (or even connecting).
fn validated(path: &Path, json: bool) -> Result<snapshot::Summary, ExitCode> {
    snapshot::validate(path).map_err(|invalid| bad_input(format!("{}: {}", path.display(), invalid.0), json))
}

/// A read-only command's snapshot, validated, and then the services.
async fn read_only(path: &Path, json: bool) -> Result<(snapshot::Summary, (&'static App, bool)), ExitCode> {
    let summary = validated(path, json)?;
    Ok((summary, connect(json).await?))
}

pub fn generate(args: Generate, json: bool) -> ExitCode {
    let Generate { tenant, users, groups, events, memberships, seed, out } = args;
    if TenantId::parse(&tenant).is_err() {
        return bad_input(format!("{tenant:?} is not a tenant id"), json);
    }
    let memberships = memberships.min(users * (groups + events));
    let shape = generate::Shape { tenant, users, groups, events, memberships, seed };
    let written = match out {
        Some(path) => std::fs::File::create(path).map(std::io::BufWriter::new).and_then(|mut file| {
            generate::generate(&shape, &mut file)?;
            file.flush()
        }),
        None => generate::generate(&shape, &mut std::io::stdout().lock()),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => bad_input(format!("writing the snapshot: {error}"), json),
    }
}

pub fn generate_zulip(args: GenerateZulip, json: bool) -> ExitCode {
    let GenerateZulip {
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
    } = args;
    if TenantId::parse(&tenant).is_err() {
        return bad_input(format!("{tenant:?} is not a tenant id"), json);
    }
    let shape = zulip::generate::ZulipShape {
        tenant,
        users: users.max(1),
        ghosts,
        streams: streams.max(1),
        topics: topics.max(1),
        messages,
        upload_every,
        seed,
    };
    match zulip::generate::generate(&shape, &out, &mapping_out, &snapshot_out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => bad_input(format!("writing the export: {error}"), json),
    }
}

pub async fn import_zulip(
    export: &Path,
    mapping: &Path,
    history_rooms: &[String],
    concurrency: usize,
    json: bool,
) -> Result<ExitCode, ExitCode> {
    // The whole export and mapping are checked before connecting; the rooms and users before anything is sent.
    let prepared = zulip::import::prepare(export, mapping)
        .and_then(|prepared| prepared.with_history_rooms(history_rooms))
        .map_err(|invalid| bad_input(invalid, json))?;
    let (app, quiet) = connect(json).await?;
    let stop = stop_on_signals(quiet);
    Ok(match zulip::import::import(app, prepared, export, concurrency, quiet, stop).await {
        Ok(report) => {
            emit(json, &report, || zulip::import::render(&report));
            done(report.state == RunState::Complete)
        }
        // The import refuses before sending anything, except when a room's worker dies mid-run.
        Err(zulip::import::ImportError::Stopped(error)) => stopped(error, json),
        Err(zulip::import::ImportError::Refused(invalid)) => bad_input(invalid, json),
    })
}

/// `--base RUN`, `--full`, or the newest base.
fn base_of(args: BaseArgs) -> delta::Base {
    match (args.base, args.full) {
        (_, true) => delta::Base::Full,
        (Some(run), false) => delta::Base::Run(run),
        (None, false) => delta::Base::Newest,
    }
}

pub async fn plan(path: &Path, concurrency: usize, base: BaseArgs, json: bool) -> Result<ExitCode, ExitCode> {
    let (summary, (app, quiet)) = read_only(path, json).await?;
    Ok(match plan::plan_with(app, path, summary, concurrency, quiet, &base_of(base)).await {
        Ok(report) => {
            emit(json, &report, || plan::render(&report));
            // A plan with unread entities is incomplete: a script must not take it for "nothing to do".
            done(report.errors.is_empty())
        }
        Err(invalid) => bad_input(invalid.0, json),
    })
}

pub async fn run(
    path: &Path,
    concurrency: usize,
    until: Option<Stage>,
    base: BaseArgs,
    via_queue: bool,
    json: bool,
) -> Result<ExitCode, ExitCode> {
    let summary = validated(path, json)?;
    if via_queue {
        return Err(bad_input(
            "--via-queue is not available yet: run without it (in-process); see docs/cutover.md",
            json,
        ));
    }
    let (app, quiet) = connect(json).await?;
    let until = until.map(|stage| match stage {
        Stage::Users => run::Until::Users,
        Stage::Rooms => run::Until::Rooms,
    });
    let options = run::Options { concurrency, quiet, until, base: base_of(base) };
    Ok(match run::run_with(app, path, summary, &options).await {
        Ok(report) => {
            emit(json, &report, || run_text(&report));
            done(report.failures.is_empty())
        }
        Err(invalid) => stopped(invalid.0, json),
    })
}

pub async fn verify(path: &Path, concurrency: usize, json: bool) -> Result<ExitCode, ExitCode> {
    let (summary, (app, quiet)) = read_only(path, json).await?;
    Ok(match verify::verify(app, path, summary, concurrency, quiet).await {
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
            done(report.discrepancies.is_empty())
        }
        Err(invalid) => bad_input(invalid.0, json),
    })
}

pub async fn rollback(run: &str, concurrency: usize, json: bool) -> Result<ExitCode, ExitCode> {
    let (app, quiet) = connect(json).await?;
    Ok(match rollback::rollback(app, run, concurrency, quiet).await {
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
            done(report.failures.is_empty())
        }
        // No such run is refused before anything is restored; anything else may come after restoring some.
        Err(rollback::RollbackError::NoRun(message)) => bad_input(message, json),
        Err(rollback::RollbackError::Stopped(invalid)) => stopped(invalid.0, json),
    })
}

pub async fn status(run: Option<&str>, json: bool) -> Result<ExitCode, ExitCode> {
    let (app, _) = connect(json).await?;
    Ok(match rollback::status(app, run).await {
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
    })
}

fn run_text(report: &run::RunReport) -> String {
    let base = report.base.as_deref().map(|base| format!(", delta against {base}")).unwrap_or_default();
    let continued = if report.continued { " (continued)" } else { "" };
    let mut text = format!("run {} {}{continued}{base}\n", report.run_id, report.state);
    for phase in &report.phases {
        text.push_str(&format!(
            "  {:12} {:>7} items: {:>7} unchanged, {:>7} applied ({} created, {} removed), {:>7} already done, \
             {:>5} failed; {} homeserver calls, {:.1}s, {:.1}/s\n",
            phase.phase,
            phase.items,
            phase.unchanged,
            phase.applied,
            phase.created,
            phase.removed,
            phase.skipped,
            phase.failed,
            phase.calls,
            phase.seconds,
            phase.per_second
        ));
    }
    text.push_str(&format!(
        "  created {} users and {} rooms in {:.1}s; {} homeserver calls\n",
        report.users_created, report.rooms_created, report.seconds, report.homeserver_calls
    ));
    for room in &report.rooms_left {
        text.push_str(&format!("  left {room}: no longer in the snapshot (not deleted: see docs/cutover.md)\n"));
    }
    if report.state == RunState::Staged {
        text.push_str("  staged: run the same snapshot again to continue with the remaining phases\n");
    }
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
