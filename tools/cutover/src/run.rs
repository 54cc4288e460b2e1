//! `run`: users, then groups (with their spaces), then events, then every room's member list, each through the
//! domain entry points of `shared::domain::cutover`, `--concurrency` at a time. Before an entity is first changed,
//! its state is recorded ([`CutoverEntry::Before`], typed in [`crate::before`]); once it matches the snapshot it is
//! marked `Done` with the fingerprint of its snapshot input, and a re-run of the same snapshot skips it.
//!
//! Stages: `--until users|rooms` stops after that phase and leaves the run `staged`; the next run of the snapshot
//! continues it. Delta: a run of a new snapshot takes a base run ([`crate::delta`]) and skips, without a homeserver
//! call, every entity whose fingerprint the base recorded as done; users gone from the snapshot are deactivated.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use shared::App;
use shared::aws::cutover_runs::{RunMeta, RunState, milliseconds};
use shared::aws::keys::{CutoverEntity, CutoverEntry};
use shared::domain::DomainError;
use shared::domain::cutover;
use shared::identity::RoomKind;

use crate::before::{Before, MembersBefore, RoomBefore};
use crate::calls;
use crate::delta::{self, Base};
use crate::exec::{Progress, for_each, with_retries};
use crate::record::{self, Recorder};
use crate::snapshot::{self, Invalid, MemberBuckets, RoomMembers, Summary};

/// One phase of a run, as reported and as stored in the run's summary (`status` reads it back).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PhaseReport {
    pub phase: String,
    pub items: u64,
    /// Unchanged since the base run (same fingerprint): skipped without a homeserver call.
    pub unchanged: u64,
    pub applied: u64,
    /// Of the applied: users or rooms created; memberships: members added.
    pub created: u64,
    /// Users deactivated (the `removals` phase); memberships: members removed.
    pub removed: u64,
    /// Already done by this run before it was continued.
    pub skipped: u64,
    pub failed: u64,
    /// Homeserver calls the phase made.
    pub calls: u64,
    /// Memberships (or users, rooms) the phase covered, for the rate.
    pub units: u64,
    pub seconds: f64,
    pub per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub entity: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub run_id: String,
    pub continued: bool,
    /// `complete`, `staged` (stopped by `--until`; the next run of the snapshot continues) or `failed`.
    pub state: RunState,
    /// The run whose fingerprints this one compared with (a delta); none: every entity was read.
    pub base: Option<String>,
    /// Rooms the base run had that the snapshot no longer lists: left as they are (deleting needs an operator).
    pub rooms_left: Vec<String>,
    /// Homeserver calls the whole run made.
    pub homeserver_calls: u64,
    pub snapshot: Summary,
    pub phases: Vec<PhaseReport>,
    pub users_created: u64,
    pub rooms_created: u64,
    pub failures: Vec<Failure>,
    pub seconds: f64,
}

/// What every task of a run shares.
pub(crate) struct Run {
    pub(crate) app: &'static App,
    recorder: Recorder,
    recorded: HashSet<String>,
    done: HashSet<String>,
    /// The base run's done entities with their fingerprints (empty without a base).
    base: HashMap<String, String>,
    progress: Progress,
    members_added: AtomicU64,
    members_removed: AtomicU64,
}

pub(crate) enum Outcome {
    Applied { entity: CutoverEntity, created: bool, units: u64 },
    Unchanged { units: u64 },
    Skipped { units: u64 },
    Failed { entity: String, error: String, units: u64 },
}

impl Run {
    /// Records `before` (once per run) and applies; marks the entity done (with `fingerprint`) or failed. `apply`
    /// is given the state read first on its first attempt, `None` on later ones (which read it again). An entity
    /// whose fingerprint the base run recorded is done without a call.
    pub(crate) async fn step<B, S, A, AF>(
        &self,
        entity: CutoverEntity,
        fingerprint: Option<String>,
        units: u64,
        read: S,
        apply: A,
    ) -> Outcome
    where
        B: Before,
        S: Future<Output = Result<B, DomainError>>,
        A: Fn(Option<B>) -> AF,
        AF: Future<Output = Result<bool, DomainError>>,
    {
        let key = entity.to_string();
        if self.done.contains(&key) {
            self.progress.add(units);
            return Outcome::Skipped { units };
        }
        if let Some(print) = &fingerprint
            && self.base.get(&key) == Some(print)
        {
            self.recorder.done_with(&entity, print);
            self.progress.add(units);
            return Outcome::Unchanged { units };
        }
        let result = async {
            let before = read.await?;
            // Created by this run: absent when first read (a retry's own result cannot tell after a partial attempt).
            let absent = before.absent();
            if !self.recorded.contains(&key) {
                self.recorder.before(&entity, &before).await.map_err(|error| {
                    tracing::error!(%error, "could not record the state before a change");
                    DomainError::Backend(shared::error::BackendError::Unavailable {
                        service: "run record",
                        detail: "see the log".into(),
                    })
                })?;
            }
            let first = Mutex::new(Some(before));
            with_retries(|| {
                // Later attempts start from the homeserver's state again (read inside `apply`).
                apply(first.lock().ok().and_then(|mut f| f.take()))
            })
            .await
            .map(|_| absent)
        }
        .await;
        self.progress.add(units);
        match result {
            Ok(created) => {
                match &fingerprint {
                    Some(print) => self.recorder.done_with(&entity, print),
                    None => self.recorder.done(&entity),
                }
                Outcome::Applied { entity, created, units }
            }
            Err(error) => {
                let error = error.to_string();
                self.recorder.failed(&entity, &error);
                Outcome::Failed { entity: key, error, units }
            }
        }
    }
}

/// The last phase a staged run does (`run --until`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    Users,
    Rooms,
}

/// How a run goes: `--concurrency`, `--until`, `--base`/`--full`.
#[derive(Debug, Clone)]
pub struct Options {
    pub concurrency: usize,
    pub quiet: bool,
    pub until: Option<Until>,
    pub base: Base,
}

/// Runs (or continues) the run of this snapshot, every phase, with the newest base.
pub async fn run(
    app: &'static App,
    path: &Path,
    summary: Summary,
    concurrency: usize,
    quiet: bool,
) -> Result<RunReport, Invalid> {
    run_with(app, path, summary, &Options { concurrency, quiet, until: None, base: Base::Newest }).await
}

/// Runs (or continues) the run of this snapshot as `options` say.
pub async fn run_with(
    app: &'static App,
    path: &Path,
    summary: Summary,
    options: &Options,
) -> Result<RunReport, Invalid> {
    let (concurrency, quiet) = (options.concurrency, options.quiet);
    let started = Instant::now();
    let calls_at_start = calls::count();
    let backend = |e: record::Error| Invalid(format!("the run record (DynamoDB) is unavailable: {e}"));
    let chosen = delta::choose(&app.store, &summary, &options.base).await?;
    let (run_id, meta, continued) =
        record::open_run(&app.store, &path.display().to_string(), &summary.digest, &summary.tenants, chosen.as_deref())
            .await
            .map_err(backend)?;
    // A continued run keeps the base it started with.
    let base_id = if continued { meta.base.clone() } else { chosen };
    let base = match &base_id {
        Some(base) => record::fingerprints(&app.store, base).await.map_err(backend)?,
        None => HashMap::new(),
    };
    let recorded = record::keys(&app.store, &run_id, CutoverEntry::Before).await.map_err(backend)?;
    let done = record::keys(&app.store, &run_id, CutoverEntry::Done).await.map_err(backend)?;
    // Rooms an earlier part of this run created (a staged run continued): their members need no read either.
    let mut created_rooms =
        if continued { delta::created_rooms(app, &run_id).await.map_err(backend)? } else { HashSet::new() };
    let total = summary.users + summary.groups + summary.events + summary.memberships;
    let progress = Progress::new(total, quiet);
    if !quiet {
        let base_note = base_id.as_deref().map(|b| format!(", delta against {b}")).unwrap_or_default();
        eprintln!("run {run_id}{}{base_note}", if continued { " (continuing)" } else { "" });
    }
    let run = Arc::new(Run {
        app,
        recorder: Recorder::start(app.store.clone(), &run_id),
        recorded,
        done,
        base,
        progress,
        members_added: AtomicU64::new(0),
        members_removed: AtomicU64::new(0),
    });
    let mut report = RunReport {
        run_id: run_id.clone(),
        continued,
        state: RunState::Running,
        base: base_id,
        rooms_left: delta::gone_rooms(&run.base, &summary, path)?,
        homeserver_calls: 0,
        snapshot: summary.clone(),
        phases: Vec::new(),
        users_created: 0,
        rooms_created: 0,
        failures: Vec::new(),
        seconds: 0.0,
    };

    run.progress.phase("users");
    let phase = Phase::start("users");
    for tenant in &summary.tenants {
        let tenant = shared::identity::TenantId::parse(tenant).map_err(|e| Invalid(e.to_string()))?;
        // Known from a base or an earlier part of the run: the space exists already.
        let prefix = format!("user:{tenant}:");
        let known = run.base.keys().chain(run.done.iter()).any(|key| key.starts_with(&prefix));
        if known {
            continue;
        }
        if let Err(error) = with_retries(|| cutover::prepare_tenant(app, &tenant)).await {
            let entity = CutoverEntity::Tenant(tenant.clone()).to_string();
            report.failures.push(Failure { entity, error: error.to_string() });
        }
    }
    let users = snapshot::users(path)?;
    let outcomes = collect(users, concurrency, |u| {
        let run = run.clone();
        async move {
            let key = CutoverEntity::User(u.tenant.clone(), u.user.clone());
            let (app, u) = (run.app, &u);
            run.step(
                key,
                Some(u.fingerprint.clone()),
                1,
                cutover::read_user(app, &u.tenant, &u.user),
                |known| async move {
                    let current = match known {
                        Some(current) => current,
                        None => cutover::read_user(app, &u.tenant, &u.user).await?,
                    };
                    cutover::ensure_user(app, &u.tenant, &u.user, &u.display_name, u.avatar_url.as_deref(), &current)
                        .await
                },
            )
            .await
        }
    })
    .await;
    report.users_created = phase.finish(&mut report, outcomes);

    if options.until != Some(Until::Users) {
        for (kind, name) in [(RoomKind::Group, "groups"), (RoomKind::Event, "events")] {
            run.progress.phase(name);
            let phase = Phase::start(name);
            let rooms = snapshot::rooms(path, kind)?;
            let outcomes = collect(rooms, concurrency, |r| {
                let run = run.clone();
                async move {
                    let key = CutoverEntity::Room(r.tenant.clone(), r.kind, r.slug.clone());
                    let (app, r) = (run.app, &r);
                    let alias = app.identities.room_alias(&r.tenant, r.kind, &r.slug);
                    let alias = &alias;
                    run.step(
                        key,
                        Some(r.fingerprint.clone()),
                        1,
                        async { Ok(RoomBefore { state: cutover::read_room(app, alias).await? }) },
                        |known| async move {
                            let current = match known {
                                Some(known) => known.state,
                                None => cutover::read_room(app, alias).await?,
                            };
                            let spec = r.spec.clone();
                            cutover::ensure_room(app, &r.tenant, r.kind, &r.slug, spec, r.lifecycle, current.as_ref())
                                .await
                        },
                    )
                    .await
                }
            })
            .await;
            created_rooms.extend(outcomes.iter().filter_map(|outcome| match outcome {
                Outcome::Applied { entity, created: true, .. } => entity.members_of(),
                _ => None,
            }));
            report.rooms_created += phase.finish(&mut report, outcomes);
        }
    }
    // A room this run created had no members before it: no need to read them for the record.
    let created_rooms = Arc::new(created_rooms);

    if options.until.is_none() {
        run.progress.phase("memberships");
        let phase = Phase::start("memberships");
        let buckets = MemberBuckets::spill(path, summary.memberships, 20_000)?;
        let mut outcomes = Vec::new();
        for index in 0..buckets.count() {
            let rooms = buckets.bucket(index)?;
            outcomes.extend(
                collect(rooms, rooms_at_once(concurrency), |r| {
                    let (run, created_rooms) = (run.clone(), created_rooms.clone());
                    async move { members_step(&run, &created_rooms, &r).await }
                })
                .await,
            );
        }
        phase.finish(&mut report, outcomes);
        let added = run.members_added.load(Ordering::Relaxed);
        let removed = run.members_removed.load(Ordering::Relaxed);
        if let Some(phase) = report.phases.last_mut() {
            (phase.created, phase.removed) = (added, removed);
        }

        // Users the base had and the snapshot no longer lists: deactivated, as OpenMeet's DELETE /v1/users does.
        let gone = delta::gone_users(&run.base, &summary, path)?;
        if !gone.is_empty() || !run.base.is_empty() {
            run.progress.phase("removals");
            let phase = Phase::start("removals");
            let outcomes = delta::remove_users(&run, gone, concurrency).await;
            phase.finish(&mut report, outcomes);
            if let Some(phase) = report.phases.last_mut() {
                phase.removed = phase.applied;
            }
        }
    }
    run.progress.finish();

    let flushed = run.recorder.flush().await;
    report.seconds = started.elapsed().as_secs_f64();
    report.homeserver_calls = calls::count() - calls_at_start;
    report.state = match (report.failures.is_empty() && flushed.is_ok(), options.until) {
        (false, _) => RunState::Failed,
        (true, Some(_)) => RunState::Staged,
        (true, None) => RunState::Complete,
    };
    let phases = serde_json::to_string(&report.phases).unwrap_or_default();
    let summary_update = RunMeta {
        phases: Some(phases),
        total: Some(total),
        failures: Some(report.failures.len() as u64),
        seconds: Some(milliseconds(report.seconds)),
        ..RunMeta::default()
    };
    record::set_meta(&app.store, &run_id, &summary_update).await.map_err(backend)?;
    record::finish(&app.store, &run_id, &summary.digest, report.state).await.map_err(backend)?;
    if let Err(error) = flushed {
        report.failures.push(Failure { entity: "run record".into(), error });
    }
    Ok(report)
}

/// One room's member list: reconciled when its fingerprint changed (or with no base), with the members before.
async fn members_step(run: &Run, created_rooms: &HashSet<CutoverEntity>, r: &RoomMembers) -> Outcome {
    let key = CutoverEntity::Members(r.tenant.clone(), r.kind, r.slug.clone());
    let fresh = created_rooms.contains(&key);
    let app = run.app;
    let alias = app.identities.room_alias(&r.tenant, r.kind, &r.slug);
    let alias = &alias;
    run.step(
        key,
        Some(r.fingerprint()),
        r.members.len() as u64,
        async {
            if fresh {
                return Ok(MembersBefore::default());
            }
            let room = cutover::read_room(app, alias).await?;
            Ok(MembersBefore::of(app, &r.tenant, room.as_ref()))
        },
        |_| async move {
            let diff = cutover::reconcile_members(app, &r.tenant, r.kind, &r.slug, &r.members, false).await?;
            run.members_added.fetch_add(diff.added.len() as u64, Ordering::Relaxed);
            run.members_removed.fetch_add(diff.removed.len() as u64, Ordering::Relaxed);
            Ok(false)
        },
    )
    .await
}

/// Rooms reconciled at once: the bulk reconcile keeps one write in flight per room (Synapse linearises a room's
/// membership changes), so `--concurrency N` is N rooms at once (docs/adr/0011-bulk-memberships.md).
pub fn rooms_at_once(concurrency: usize) -> usize {
    concurrency.max(1)
}

pub(crate) async fn collect<T, F, Fut>(items: impl IntoIterator<Item = T>, concurrency: usize, task: F) -> Vec<Outcome>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let mut outcomes = Vec::new();
    for_each(items, concurrency, task, |outcome| outcomes.push(outcome)).await;
    outcomes
}

struct Phase {
    name: &'static str,
    started: Instant,
    calls: u64,
}

impl Phase {
    fn start(name: &'static str) -> Phase {
        Phase { name, started: Instant::now(), calls: calls::count() }
    }

    /// Adds the phase to the report; returns how many entities it created.
    fn finish(self, report: &mut RunReport, outcomes: Vec<Outcome>) -> u64 {
        let mut phase = PhaseReport { phase: self.name.to_owned(), ..PhaseReport::default() };
        let mut created = 0;
        for outcome in outcomes {
            phase.items += 1;
            match outcome {
                Outcome::Applied { created: now, units, .. } => {
                    phase.applied += 1;
                    phase.units += units;
                    created += u64::from(now);
                    phase.created += u64::from(now);
                }
                Outcome::Skipped { units } => {
                    phase.skipped += 1;
                    phase.units += units;
                }
                Outcome::Unchanged { units } => {
                    phase.unchanged += 1;
                    phase.units += units;
                }
                Outcome::Failed { entity, error, units } => {
                    phase.failed += 1;
                    phase.units += units;
                    report.failures.push(Failure { entity, error });
                }
            }
        }
        phase.seconds = self.started.elapsed().as_secs_f64();
        phase.calls = calls::count() - self.calls;
        phase.per_second = phase.units as f64 / phase.seconds.max(0.001);
        report.phases.push(phase);
        created
    }
}
