//! The self-healing jobs as `openmeet-local ops` commands (the EventBridge schedules run the same domain code in the
//! retry worker): drift-repair, retention, reminders and sweep-expired, each once. `--now TIME` (RFC 3339 or epoch
//! seconds) lets tests move time instead of sleeping. A job with failures exits 1.

use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use shared::App;
use shared::domain::drift::SelfHealSettings;
use shared::domain::drift::repair::{self, PassOptions};
use shared::domain::{housekeeping, reminders, retention};
use shared::identity::TenantId;
use shared::jobs::Job as Name;

use super::{Failure, Output, print_report, tenant};

/// A self-healing job; its command's name is the job's one name (`shared::jobs::Job`, as the schedules say).
#[derive(Subcommand, Debug)]
pub enum Job {
    /// One drift-repair pass (README "Self-healing"; every 10 min in AWS)
    #[command(
        name = Name::DriftRepair.name(),
        after_help = after_help!(ops: "openmeet-local ops drift-repair --dry-run --tenant acme")
    )]
    DriftRepair {
        /// List the drift, change nothing (not even the cursor)
        #[arg(long)]
        dry_run: bool,
        /// Only tenant T's managed rooms
        #[arg(long, value_name = "T", value_parser = tenant)]
        tenant: Option<TenantId>,
        /// Every managed room from the first, however many (no cursor, no per-run budget)
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Archives (and, with OPENMEET_RETENTION_PURGE_DAYS > 0, purges) event rooms past retention; every 6 h
    #[command(
        name = Name::Retention.name(),
        after_help = after_help!(ops: "openmeet-local ops retention --dry-run --now 2031-01-01T00:00:00Z")
    )]
    Retention {
        /// List what is due, change nothing
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        rooms: EventRooms,
        #[command(flatten)]
        output: Output,
    },
    /// Posts the event reminders that are due, each once; every 5 min in AWS
    #[command(
        name = Name::Reminders.name(),
        after_help = after_help!(ops: "openmeet-local ops reminders --tenant acme")
    )]
    Reminders {
        #[command(flatten)]
        rooms: EventRooms,
        #[command(flatten)]
        output: Output,
    },
    /// Deletes expired records TTL has not removed yet (OPENMEET_SWEEP_ITEMS a run, from a cursor); hourly
    #[command(
        name = Name::SweepExpired.name(),
        after_help = after_help!(ops: "openmeet-local ops sweep-expired")
    )]
    SweepExpired {
        /// The whole table in one go, from the start (no cursor, no item budget)
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        output: Output,
    },
}

/// `--tenant T --now TIME`: which event rooms, and when the job believes it is.
#[derive(clap::Args, Debug)]
pub struct EventRooms {
    /// Only tenant T's event rooms
    #[arg(long, value_name = "T", value_parser = tenant)]
    pub tenant: Option<TenantId>,
    /// Pretend it is TIME (RFC 3339 or epoch seconds)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<u64>,
}

fn parse_time(value: &str) -> Result<u64, String> {
    if let Ok(secs) = value.parse::<u64>() {
        return Ok(secs);
    }
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
        .ok_or_else(|| format!("{value:?} is neither RFC 3339 nor epoch seconds"))
}

impl Job {
    pub fn json(&self) -> bool {
        match self {
            Job::DriftRepair { output, .. }
            | Job::Retention { output, .. }
            | Job::Reminders { output, .. }
            | Job::SweepExpired { output, .. } => output.json,
        }
    }

    /// Runs the job once and prints its report; returns how many rooms or records failed.
    pub async fn run(self) -> Result<usize, Failure> {
        let settings = SelfHealSettings::from_env().map_err(|e| Failure::BadInput(e.to_string()))?;
        let app = App::from_env().await.map_err(|e| Failure::Failed(e.to_string()))?;
        run(&app, &settings, self).await.map_err(Failure::Failed)
    }
}

fn now_secs() -> u64 {
    shared::aws::store::now_secs()
}

/// Runs the job and prints its report; returns how many rooms or records failed.
async fn run(app: &App, settings: &SelfHealSettings, job: Job) -> Result<usize, String> {
    match job {
        Job::DriftRepair { dry_run, tenant, all, output } => {
            let tenant = tenant.map(|t| t.as_str().to_owned());
            let options = PassOptions { dry_run, tenant, all, deadline: None };
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
            print_report(output.json, &report, lines.collect(), &summary);
            Ok(report.failures)
        }
        Job::Retention { dry_run, rooms: EventRooms { tenant, now }, output } => {
            let now = now.unwrap_or_else(now_secs);
            let tenant = tenant.as_ref().map(TenantId::as_str);
            let report = retention::run(app, settings, now, tenant, dry_run).await.map_err(|e| e.to_string())?;
            let mut lines: Vec<String> = report.archived.iter().map(|r| format!("archived: {r}")).collect();
            lines.extend(report.purged.iter().map(|r| format!("purged: {r}")));
            lines.extend(report.failed.iter().map(|r| format!("failed: {r}")));
            let summary = format!(
                "{} event room(s): {} archived, {} purged, {} failed{}",
                report.event_rooms,
                report.archived.len(),
                report.purged.len(),
                report.failed.len(),
                if dry_run { " (dry run: nothing changed)" } else { "" }
            );
            print_report(output.json, &report, lines, &summary);
            Ok(report.failed.len())
        }
        Job::Reminders { rooms: EventRooms { tenant, now }, output } => {
            let now = now.unwrap_or_else(now_secs);
            let tenant = tenant.as_ref().map(TenantId::as_str);
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
            print_report(output.json, &report, lines, &summary);
            Ok(report.failed.len())
        }
        Job::SweepExpired { all, output } => {
            let report = housekeeping::sweep(app, settings, now_secs(), all).await.map_err(|e| e.to_string())?;
            let summary = format!(
                "{} item(s) scanned, {} expired deleted{}",
                report.scanned,
                report.deleted,
                if report.complete { "" } else { " (the next run continues)" }
            );
            print_report(output.json, &report, Vec::new(), &summary);
            Ok(0)
        }
    }
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
