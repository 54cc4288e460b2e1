//! `rollback --run ID` and `status [--run ID]`, both from the run record.
//!
//! Rollback restores what the run changed and nothing else, from its `BEFORE#` records: member lists of rooms that
//! existed before go back to their members and roles, rooms it created are purged (a group's space with it),
//! renamed rooms get their name and topic back, users it created are deactivated, changed profiles are restored.

use serde::Serialize;
use serde_json::{Value, json};
use shared::App;
use shared::domain::cutover::{self, RoomState, UserState};
use shared::domain::membership::Role;
use shared::identity::{RoomKind, Slug, TenantId, UserSlug};

use crate::exec::{Progress, for_each, with_retries};
use crate::record;
use crate::snapshot::Invalid;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackReport {
    pub run_id: String,
    pub restored: u64,
    pub failures: Vec<String>,
}

/// `kind:tenant[:groups|events]:slug` of a record key.
fn parse_key(key: &str) -> Option<(&str, TenantId, Option<RoomKind>, String)> {
    let mut parts = key.splitn(4, ':');
    let what = parts.next()?;
    let tenant = TenantId::parse(parts.next()?).ok()?;
    if what == "user" {
        return Some((what, tenant, None, parts.next()?.to_owned()));
    }
    let kind = RoomKind::from_path(parts.next()?).ok()?;
    Some((what, tenant, Some(kind), parts.next()?.to_owned()))
}

async fn restore(app: &'static App, key: &str, before: &Value) -> Result<(), String> {
    let (what, tenant, kind, slug) = parse_key(key).ok_or_else(|| format!("unreadable record key {key}"))?;
    let error = |e: shared::domain::DomainError| e.to_string();
    match (what, kind) {
        ("user", _) => {
            let user = UserSlug::parse(&slug).map_err(|e| e.to_string())?;
            let state: UserState = serde_json::from_value(before.clone()).map_err(|e| e.to_string())?;
            with_retries(|| cutover::restore_user(app, &tenant, &user, &state)).await.map_err(error)
        }
        ("room", Some(kind)) => {
            let slug = Slug::parse(&slug).map_err(|e| e.to_string())?;
            let state: Option<RoomState> = serde_json::from_value(before.get("state").cloned().unwrap_or(Value::Null))
                .map_err(|e| e.to_string())?;
            with_retries(|| cutover::restore_room(app, &tenant, kind, &slug, state.as_ref())).await.map_err(error)
        }
        ("members", Some(kind)) => {
            if before.get("exists") != Some(&json!(true)) {
                // The room is the run's own: purging it (the room record) undoes its members too.
                return Ok(());
            }
            let slug = Slug::parse(&slug).map_err(|e| e.to_string())?;
            let members: Vec<(UserSlug, Role)> = before
                .get("members")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|m| {
                    let user = UserSlug::parse(m.get("userId")?.as_str()?).ok()?;
                    Some((user, serde_json::from_value(m.get("role")?.clone()).ok()?))
                })
                .collect();
            with_retries(|| cutover::reconcile_members(app, &tenant, kind, &slug, &members, false))
                .await
                .map(|_| ())
                .map_err(error)
        }
        _ => Err(format!("unreadable record key {key}")),
    }
}

pub async fn rollback(
    app: &'static App,
    run: &str,
    concurrency: usize,
    quiet: bool,
) -> Result<RollbackReport, Invalid> {
    let backend = |e: record::Error| Invalid(format!("the run record (DynamoDB) is unavailable: {e}"));
    let meta = record::meta(&app.store, run).await.map_err(backend)?;
    let Some(meta) = meta else {
        return Err(Invalid(format!("no run {run}")));
    };
    let before = record::values(&app.store, run, "BEFORE#").await.map_err(backend)?;
    let progress = Progress::new(before.len() as u64, quiet);
    let mut report = RollbackReport { run_id: run.to_owned(), restored: 0, failures: Vec::new() };
    // Members first (while the run's users still exist), then event rooms, then groups (and their spaces), users last.
    let order = ["members:", "room:", "user:"];
    for prefix in order {
        progress.phase(prefix.trim_end_matches(':'));
        let mut items: Vec<(String, Value)> = before.iter().filter(|(k, _)| k.starts_with(prefix)).cloned().collect();
        // Events link to their group's space: purge them before the groups.
        items.sort_by_key(|(k, _)| !k.contains(":events:"));
        for_each(
            items,
            concurrency,
            |(key, value)| async move { (restore(app, &key, &value).await, key) },
            |(outcome, key)| {
                progress.add(1);
                match outcome {
                    Ok(()) => report.restored += 1,
                    Err(error) => report.failures.push(format!("{key}: {error}")),
                }
            },
        )
        .await;
    }
    progress.finish();
    let state = if report.failures.is_empty() { "rolledBack" } else { "rollbackFailed" };
    let digest = meta.digest.unwrap_or_default();
    record::finish(&app.store, run, &digest, state).await.map_err(backend)?;
    Ok(report)
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    pub run_id: String,
    pub state: String,
    pub snapshot: String,
    pub started_at: u64,
    pub finished_at: Option<u64>,
    pub seconds: Option<f64>,
    pub total: Option<u64>,
    pub done: usize,
    pub phases: Value,
    /// Entities whose last attempt failed and that are not done since.
    pub failures: Vec<(String, String)>,
}

pub async fn status(app: &'static App, run: Option<&str>) -> Result<Vec<RunStatus>, Invalid> {
    let backend = |e: record::Error| Invalid(format!("the run record (DynamoDB) is unavailable: {e}"));
    let runs = match run {
        Some(run) => vec![run.to_owned()],
        None => record::runs(&app.store).await.map_err(backend)?,
    };
    let mut statuses = Vec::new();
    for run in runs {
        let Some(meta) = record::meta(&app.store, &run).await.map_err(backend)? else {
            return Err(Invalid(format!("no run {run}")));
        };
        let done = record::keys(&app.store, &run, "DONE#").await.map_err(backend)?;
        let mut failures: Vec<(String, String)> = record::values(&app.store, &run, "FAIL#")
            .await
            .map_err(backend)?
            .into_iter()
            .filter(|(key, _)| !done.contains(key))
            .map(|(key, error)| (key, error.as_str().map(str::to_owned).unwrap_or_else(|| error.to_string())))
            .collect();
        failures.sort();
        statuses.push(RunStatus {
            run_id: run.clone(),
            state: meta.state.unwrap_or_default(),
            snapshot: meta.snapshot.unwrap_or_default(),
            started_at: meta.started_at.unwrap_or(0),
            finished_at: meta.finished_at,
            seconds: meta.seconds,
            total: meta.total,
            done: done.len(),
            phases: serde_json::from_str(&meta.phases.unwrap_or_default()).unwrap_or(Value::Null),
            failures,
        });
    }
    Ok(statuses)
}
