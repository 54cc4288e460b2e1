//! `rollback --run ID` and `status [--run ID]`, both from the run record.
//!
//! Rollback restores what the run changed and nothing else, from its `Before` records: member lists of rooms that
//! existed before go back to their members and roles, rooms it created are purged (a group's space with it),
//! renamed rooms get their name and topic back (and the recorded desired name with it, so drift repair keeps it),
//! users it created are deactivated, users it deactivated (gone from a delta's snapshot) are reactivated first, and
//! changed profiles are restored. A cancellation is not undone: its notice was posted (docs/cutover.md).

use serde::Serialize;
use shared::App;
use shared::aws::cutover_runs::RunState;
use shared::aws::desired_state::{DesiredStates, RoomSettings};
use shared::aws::keys::{CutoverEntity, CutoverEntry};
use shared::domain::cutover::{self, RoomState, UserState};
use shared::domain::drift::intent;
use shared::domain::operations;
use shared::identity::{RoomKind, Slug, TenantId, UserSlug};

use crate::before::{MembersBefore, RoomBefore};
use crate::exec::{Progress, for_each, with_retries};
use crate::record;
use crate::run::PhaseReport;
use crate::snapshot::Invalid;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackReport {
    pub run_id: String,
    pub restored: u64,
    pub failures: Vec<String>,
}

/// A `Before` record: its entity and its value as stored, read as that entity's type when restored.
type Recorded = (CutoverEntity, Option<String>);

/// The recorded value as `T`.
fn read<T: serde::de::DeserializeOwned>(entity: &CutoverEntity, value: &Option<String>) -> Result<T, String> {
    let unreadable = |detail: String| format!("unreadable record of {entity}: {detail}");
    let value = value.as_deref().ok_or_else(|| unreadable("no value".into()))?;
    serde_json::from_str(value).map_err(|e| unreadable(e.to_string()))
}

async fn restore(app: &'static App, (entity, value): &Recorded) -> Result<(), String> {
    let error = |e: shared::domain::DomainError| e.to_string();
    match entity {
        CutoverEntity::User(tenant, user) => {
            let state: UserState = read(entity, value)?;
            if active(&state) {
                // Deactivated by the run (gone from its snapshot): back before their memberships are restored.
                with_retries(|| reinstate(app, tenant, user)).await.map_err(error)?;
            }
            with_retries(|| cutover::restore_user(app, tenant, user, &state)).await.map_err(error)
        }
        CutoverEntity::Room(tenant, kind, slug) => {
            let before: RoomBefore = read(entity, value)?;
            let state = before.state.as_ref();
            with_retries(|| cutover::restore_room(app, tenant, *kind, slug, state)).await.map_err(error)?;
            match state {
                Some(state) => with_retries(|| desired_name(app, tenant, *kind, slug, state)).await.map_err(error),
                None => Ok(()),
            }
        }
        CutoverEntity::Members(tenant, kind, slug) => {
            let before: MembersBefore = read(entity, value)?;
            if !before.exists {
                // The room is the run's own: purging it (the room record) undoes its members too.
                return Ok(());
            }
            let members = before.wanted();
            with_retries(|| cutover::reconcile_members(app, tenant, *kind, slug, &members, false))
                .await
                .map(|_| ())
                .map_err(error)
        }
        other => Err(format!("unreadable record key {other}")),
    }
}

/// Whether a recorded user was there and active before the run (so a deactivation by the run is undone).
fn active(state: &UserState) -> bool {
    state.exists && !state.deactivated
}

/// Reactivates a user the run deactivated (a no-op for one who is active).
async fn reinstate(app: &App, tenant: &TenantId, user: &UserSlug) -> Result<(), shared::domain::DomainError> {
    if cutover::read_user(app, tenant, user).await?.deactivated {
        app.homeserver.reactivate_user(&app.identities.matrix_user_id(tenant, user)).await?;
    }
    Ok(())
}

/// The recorded desired name becomes the restored one (the drift pass would otherwise put the run's name back).
async fn desired_name(
    app: &App,
    tenant: &TenantId,
    kind: RoomKind,
    slug: &Slug,
    before: &RoomState,
) -> Result<(), shared::domain::DomainError> {
    let key = intent::key(tenant, kind.path_segment(), slug.as_str());
    let states = DesiredStates(&app.store);
    let (Some(managed), Some(name)) = (states.room(&key).await?, before.name.clone()) else {
        return Ok(());
    };
    if managed.settings.name != name {
        let settings = RoomSettings { name, ..managed.settings };
        states.put_settings(&key, &settings, operations::now_version()).await?;
    }
    Ok(())
}

/// The order of rollback: users the run deactivated come back first (to be members again), then members (while
/// the run's users still exist), then event rooms (they link to their group's space), then groups (and their
/// spaces), users the run created or changed last.
fn stage((entity, value): &Recorded) -> (&'static str, u8) {
    match entity {
        CutoverEntity::User(..) if read::<UserState>(entity, value).is_ok_and(|state| active(&state)) => {
            ("reinstate", 0)
        }
        CutoverEntity::Members(..) => ("members", 1),
        CutoverEntity::Room(_, RoomKind::Event, _) => ("room", 2),
        CutoverEntity::Room(_, RoomKind::Group, _) => ("room", 3),
        _ => ("user", 4),
    }
}

/// Why a rollback did not finish: no such run (refused, nothing restored: exit 2), or the run record failed, maybe
/// after restoring some (exit 3).
#[derive(Debug)]
pub enum RollbackError {
    NoRun(String),
    Stopped(Invalid),
}

pub async fn rollback(
    app: &'static App,
    run: &str,
    concurrency: usize,
    quiet: bool,
) -> Result<RollbackReport, RollbackError> {
    let backend =
        |e: record::Error| RollbackError::Stopped(Invalid(format!("the run record (DynamoDB) is unavailable: {e}")));
    let meta = record::meta(&app.store, run).await.map_err(backend)?;
    let Some(meta) = meta else {
        return Err(RollbackError::NoRun(format!("no run {run}")));
    };
    let before = record::documents(&app.store, run, CutoverEntry::Before).await.map_err(backend)?;
    let progress = Progress::new(before.len() as u64, quiet);
    let mut report = RollbackReport { run_id: run.to_owned(), restored: 0, failures: Vec::new() };
    let mut recorded: Vec<Recorded> = Vec::new();
    for (key, value) in before {
        match key.parse::<CutoverEntity>() {
            Ok(entity) => recorded.push((entity, value)),
            Err(error) => report.failures.push(format!("{key}: {error}")),
        }
    }
    recorded.sort_by_key(|item| stage(item).1);
    for phase in ["reinstate", "members", "room", "user"] {
        progress.phase(phase);
        let items: Vec<Recorded> = recorded.iter().filter(|item| stage(item).0 == phase).cloned().collect();
        for_each(
            items,
            concurrency,
            |item| async move { (restore(app, &item).await, item.0) },
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
    let state = if report.failures.is_empty() { RunState::RolledBack } else { RunState::RollbackFailed };
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
    /// `None` until the run has finished once.
    pub phases: Option<Vec<PhaseReport>>,
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
        let done = record::keys(&app.store, &run, CutoverEntry::Done).await.map_err(backend)?;
        let mut failures: Vec<(String, String)> = record::values::<String>(&app.store, &run, CutoverEntry::Failed)
            .await
            .map_err(backend)?
            .into_iter()
            .filter(|(key, _)| !done.contains(key))
            .map(|(key, error)| (key, error.unwrap_or_default()))
            .collect();
        failures.sort();
        statuses.push(RunStatus {
            run_id: run.clone(),
            state: meta.state.map(RunState::as_str).unwrap_or_default().to_owned(),
            snapshot: meta.snapshot.unwrap_or_default(),
            started_at: meta.started_at.unwrap_or(0),
            finished_at: meta.finished_at,
            seconds: meta.seconds,
            total: meta.total,
            done: done.len(),
            phases: meta.phases.and_then(|phases| serde_json::from_str(&phases).ok()),
            failures,
        });
    }
    Ok(statuses)
}
