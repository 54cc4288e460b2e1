//! The self-healing jobs as commands (the EventBridge schedules run the same domain code in the retry worker):
//!
//! - `repair-drift [--dry-run] [--tenant T] [--all] [--json]`: one drift-repair pass (from the stored cursor,
//!   `OPENMEET_DRIFT_ROOMS_PER_RUN` rooms; `--tenant`/`--all`: every room of the tenant / every room);
//! - `retention [--dry-run] [--tenant T] [--now TIME] [--json]`: archive and purge event rooms that are due;
//! - `reminders [--tenant T] [--now TIME] [--json]`: post the event reminders that are due;
//! - `sweep-expired [--all] [--json]`: delete expired records.
//!
//! `TIME` is RFC 3339 or epoch seconds (tests move time instead of sleeping). With `--json` the report is the last
//! line of stdout. Bad arguments exit 2; a job with failures exits 1.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use shared::App;
use shared::domain::drift::SelfHealSettings;
use shared::domain::drift::repair::{self, PassOptions};
use shared::domain::{housekeeping, reminders, retention};

pub const COMMANDS: [&str; 4] = ["repair-drift", "retention", "reminders", "sweep-expired"];

#[derive(Debug, Default, PartialEq)]
struct Args {
    dry_run: bool,
    all: bool,
    json: bool,
    tenant: Option<String>,
    now: Option<u64>,
}

fn parse_time(value: &str) -> Result<u64, String> {
    if let Ok(secs) = value.parse::<u64>() {
        return Ok(secs);
    }
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
        .ok_or_else(|| format!("--now {value:?} is neither RFC 3339 nor epoch seconds"))
}

fn parse(command: &str, args: &[String]) -> Result<Args, String> {
    let mut parsed = Args::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let allowed = |flag: &str, commands: &[&str]| {
            if commands.contains(&command) { Ok(()) } else { Err(format!("{command} takes no {flag}")) }
        };
        match arg.as_str() {
            "--dry-run" => {
                allowed("--dry-run", &["repair-drift", "retention"])?;
                parsed.dry_run = true;
            }
            "--all" => {
                allowed("--all", &["repair-drift", "sweep-expired"])?;
                parsed.all = true;
            }
            "--json" => parsed.json = true,
            "--tenant" => {
                allowed("--tenant", &["repair-drift", "retention", "reminders"])?;
                let tenant = rest.next().ok_or("--tenant needs a tenant id")?;
                shared::identity::TenantId::parse(tenant).map_err(|_| format!("{tenant:?} is not a tenant id"))?;
                parsed.tenant = Some(tenant.clone());
            }
            "--now" => {
                allowed("--now", &["retention", "reminders"])?;
                parsed.now = Some(parse_time(rest.next().ok_or("--now needs a time")?)?);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(parsed)
}

/// Runs one of [`COMMANDS`]; returns the exit code.
pub async fn main(command: &str, args: &[String]) -> i32 {
    let args = match parse(command, args) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("openmeet-local {command}: {error}");
            return 2;
        }
    };
    let settings = match SelfHealSettings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("openmeet-local {command}: {error}");
            return 2;
        }
    };
    let app = match App::from_env().await {
        Ok(app) => app,
        Err(error) => {
            eprintln!("openmeet-local {command}: {error}");
            return 1;
        }
    };
    match run(&app, &settings, command, &args).await {
        Ok(failures) => i32::from(failures > 0),
        Err(error) => {
            eprintln!("openmeet-local {command}: {error}");
            1
        }
    }
}

fn now_secs() -> u64 {
    shared::aws::store::now_secs()
}

/// Runs the job and prints its report; returns how many rooms or records failed.
async fn run(app: &App, settings: &SelfHealSettings, command: &str, args: &Args) -> Result<usize, String> {
    let now = args.now.unwrap_or_else(now_secs);
    let tenant = args.tenant.as_deref();
    match command {
        "repair-drift" => {
            let options =
                PassOptions { dry_run: args.dry_run, tenant: args.tenant.clone(), all: args.all, deadline: None };
            let report = repair::run(app, settings, &options).await.map_err(|e| e.to_string())?;
            let summary = format!(
                "{} room(s) checked, {} drift found, {} repaired, {} failed, {} unmanaged member(s) left alone, {} homeserver request(s){}",
                report.rooms_checked,
                report.drift_found,
                report.repairs,
                report.failures,
                report.unmanaged_members,
                report.requests,
                if report.dry_run { " (dry run: nothing changed)" } else { "" }
            );
            let lines = report.rooms.iter().map(|room| match &room.error {
                Some(error) => format!("{} ({}): failed: {error}", room.room, room.room_id),
                None => format!("{} ({}): {}", room.room, room.room_id, room.drift.join("; ")),
            });
            print_report(args.json, &report, lines.collect(), &summary);
            Ok(report.failures)
        }
        "retention" => {
            let report = retention::run(app, settings, now, tenant, args.dry_run).await.map_err(|e| e.to_string())?;
            let mut lines: Vec<String> = report.archived.iter().map(|r| format!("archived: {r}")).collect();
            lines.extend(report.purged.iter().map(|r| format!("purged: {r}")));
            lines.extend(report.failed.iter().map(|r| format!("failed: {r}")));
            let summary = format!(
                "{} event room(s): {} archived, {} purged, {} failed{}",
                report.event_rooms,
                report.archived.len(),
                report.purged.len(),
                report.failed.len(),
                if args.dry_run { " (dry run: nothing changed)" } else { "" }
            );
            print_report(args.json, &report, lines, &summary);
            Ok(report.failed.len())
        }
        "reminders" => {
            let report = reminders::run(app, settings, now, tenant).await.map_err(|e| e.to_string())?;
            let mut lines: Vec<String> = report.posted.iter().map(|r| format!("posted: {r}")).collect();
            lines.extend(report.failed.iter().map(|r| format!("failed: {r}")));
            let summary = format!(
                "{} event room(s): {} reminder(s) posted, {} already posted, {} failed",
                report.event_rooms,
                report.posted.len(),
                report.already_posted,
                report.failed.len()
            );
            print_report(args.json, &report, lines, &summary);
            Ok(report.failed.len())
        }
        _ => {
            let report = housekeeping::sweep(app, settings, now_secs(), args.all).await.map_err(|e| e.to_string())?;
            let summary = format!(
                "{} item(s) scanned, {} expired deleted{}",
                report.scanned,
                report.deleted,
                if report.complete { "" } else { " (the next run continues)" }
            );
            print_report(args.json, &report, Vec::new(), &summary);
            Ok(0)
        }
    }
}

fn print_report(json: bool, report: &impl Serialize, lines: Vec<String>, summary: &str) {
    if json {
        println!("{}", serde_json::to_string(report).unwrap_or_default());
        return;
    }
    for line in lines {
        println!("{line}");
    }
    println!("{summary}");
}

/// The local stack's optional timer (`OPENMEET_LOCAL_SELF_HEAL_SECS`, unset: off): every period, reminders, a
/// drift pass, retention and a sweep, as the schedules do in AWS.
pub fn spawn_timer(app: Arc<App>) -> Option<tokio::task::JoinHandle<()>> {
    let period: u64 = std::env::var("OPENMEET_LOCAL_SELF_HEAL_SECS").ok()?.parse().ok().filter(|p| *p > 0)?;
    let settings = SelfHealSettings::from_env().ok()?;
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(period));
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let now = now_secs();
            let outcomes = [
                reminders::run(&app, &settings, now, None).await.err(),
                repair::run(&app, &settings, &PassOptions::default()).await.err(),
                retention::run(&app, &settings, now, None, false).await.err(),
                housekeeping::sweep(&app, &settings, now, false).await.err(),
            ];
            for error in outcomes.into_iter().flatten() {
                tracing::warn!(error = %error, "self-healing timer: a job failed");
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn arguments_are_checked_per_command() {
        let parsed = parse("repair-drift", &args(&["--dry-run", "--tenant", "acme", "--json"])).expect("valid");
        assert_eq!(parsed, Args { dry_run: true, json: true, tenant: Some("acme".into()), ..Args::default() });
        assert_eq!(
            parse("retention", &args(&["--now", "2026-12-01T00:00:00Z"])).expect("valid").now,
            Some(1_796_083_200)
        );
        assert_eq!(parse("reminders", &args(&["--now", "12"])).expect("valid").now, Some(12));
        assert!(parse("reminders", &args(&["--dry-run"])).is_err());
        assert!(parse("sweep-expired", &args(&["--now", "1"])).is_err());
        assert!(parse("retention", &args(&["--now", "tomorrow"])).is_err());
        assert!(parse("repair-drift", &args(&["--tenant", "Not A Tenant"])).is_err());
        assert!(parse("repair-drift", &args(&["--bogus"])).is_err());
    }
}
