//! `run`: users, then groups (with their spaces), then events, then every room's member list, each through the
//! domain entry points of `shared::domain::cutover`, `--concurrency` at a time. Before an entity is first changed,
//! its state is recorded ([`CutoverEntry::Before`], typed in [`crate::before`]); once it matches the snapshot it is
//! marked `Done`, and a re-run of the same snapshot skips it.

use std::collections::HashSet;
use std::path::Path;
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
use crate::exec::{Progress, for_each, with_retries};
use crate::record::{self, Recorder};
use crate::snapshot::{self, Invalid, MemberBuckets, Summary};

/// One phase of a run, as reported and as stored in the run's summary (`status` reads it back).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PhaseReport {
    pub phase: String,
    pub items: u64,
    pub applied: u64,
    pub skipped: u64,
    pub failed: u64,
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
    pub snapshot: Summary,
    pub phases: Vec<PhaseReport>,
    pub users_created: u64,
    pub rooms_created: u64,
    pub failures: Vec<Failure>,
    pub seconds: f64,
}

/// What every task of a run shares.
struct Run {
    app: &'static App,
    recorder: Recorder,
    recorded: HashSet<String>,
    done: HashSet<String>,
    progress: Progress,
}

enum Outcome {
    Applied { entity: CutoverEntity, created: bool, units: u64 },
    Skipped { units: u64 },
    Failed { entity: String, error: String, units: u64 },
}

impl Run {
    /// Records `before` (once per run) and applies; marks the entity done or failed. `apply` is given the state
    /// read first on its first attempt, `None` on later ones (which read it again).
    async fn step<B, S, A, AF>(&self, entity: CutoverEntity, units: u64, read: S, apply: A) -> Outcome
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
                self.recorder.done(&entity);
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

/// Runs (or continues) the run of this snapshot.
pub async fn run(
    app: &'static App,
    path: &Path,
    summary: Summary,
    concurrency: usize,
    quiet: bool,
) -> Result<RunReport, Invalid> {
    let started = Instant::now();
    let backend = |e: record::Error| Invalid(format!("the run record (DynamoDB) is unavailable: {e}"));
    let (run_id, _, continued) =
        record::open_run(&app.store, &path.display().to_string(), &summary.digest).await.map_err(backend)?;
    let recorded = record::keys(&app.store, &run_id, CutoverEntry::Before).await.map_err(backend)?;
    let done = record::keys(&app.store, &run_id, CutoverEntry::Done).await.map_err(backend)?;
    let total = summary.users + summary.groups + summary.events + summary.memberships;
    let progress = Progress::new(total, quiet);
    if !quiet {
        eprintln!("run {run_id}{}", if continued { " (continuing)" } else { "" });
    }
    let run = Arc::new(Run { app, recorder: Recorder::start(app.store.clone(), &run_id), recorded, done, progress });
    let mut report = RunReport {
        run_id: run_id.clone(),
        continued,
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
            run.step(key, 1, cutover::read_user(app, &u.tenant, &u.user), |known| async move {
                let current = match known {
                    Some(current) => current,
                    None => cutover::read_user(app, &u.tenant, &u.user).await?,
                };
                cutover::ensure_user(app, &u.tenant, &u.user, &u.display_name, u.avatar_url.as_deref(), &current).await
            })
            .await
        }
    })
    .await;
    report.users_created = phase.finish(&mut report, outcomes);

    let mut created_rooms = HashSet::new();
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
                    1,
                    async { Ok(RoomBefore { state: cutover::read_room(app, alias).await? }) },
                    |known| async move {
                        let current = match known {
                            Some(known) => known.state,
                            None => cutover::read_room(app, alias).await?,
                        };
                        let spec = r.spec.clone();
                        cutover::ensure_room(app, &r.tenant, r.kind, &r.slug, spec, r.lifecycle, current.as_ref()).await
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
    // A room this run created had no members before it: no need to read them for the record.
    let created_rooms = Arc::new(created_rooms);

    run.progress.phase("memberships");
    let phase = Phase::start("memberships");
    let buckets = MemberBuckets::spill(path, summary.memberships, 20_000)?;
    let mut outcomes = Vec::new();
    for index in 0..buckets.count() {
        let rooms = buckets.bucket(index)?;
        outcomes.extend(
            collect(rooms, rooms_at_once(concurrency), |r| {
                let (run, created_rooms) = (run.clone(), created_rooms.clone());
                async move {
                    let key = CutoverEntity::Members(r.tenant.clone(), r.kind, r.slug.clone());
                    let fresh = created_rooms.contains(&key);
                    let (app, r) = (run.app, &r);
                    let alias = app.identities.room_alias(&r.tenant, r.kind, &r.slug);
                    let alias = &alias;
                    run.step(
                        key,
                        r.members.len() as u64,
                        async {
                            if fresh {
                                return Ok(MembersBefore::default());
                            }
                            let room = cutover::read_room(app, alias).await?;
                            Ok(MembersBefore::of(app, &r.tenant, room.as_ref()))
                        },
                        |_| async move {
                            cutover::reconcile_members(app, &r.tenant, r.kind, &r.slug, &r.members, false).await?;
                            Ok(false)
                        },
                    )
                    .await
                }
            })
            .await,
        );
    }
    phase.finish(&mut report, outcomes);
    run.progress.finish();

    let flushed = run.recorder.flush().await;
    report.seconds = started.elapsed().as_secs_f64();
    let state = if report.failures.is_empty() && flushed.is_ok() { RunState::Complete } else { RunState::Failed };
    let phases = serde_json::to_string(&report.phases).unwrap_or_default();
    let summary_update = RunMeta {
        phases: Some(phases),
        total: Some(total),
        failures: Some(report.failures.len() as u64),
        seconds: Some(milliseconds(report.seconds)),
        ..RunMeta::default()
    };
    record::set_meta(&app.store, &run_id, &summary_update).await.map_err(backend)?;
    record::finish(&app.store, &run_id, &summary.digest, state).await.map_err(backend)?;
    if let Err(error) = flushed {
        report.failures.push(Failure { entity: "run record".into(), error });
    }
    Ok(report)
}

/// Rooms reconciled at once: each reconcile joins up to 8 members at a time itself (the domain's bound), so
/// `--concurrency N` keeps about N joins in flight with N/4 rooms (at least one).
pub fn rooms_at_once(concurrency: usize) -> usize {
    (concurrency / 4).max(1)
}

async fn collect<T, F, Fut>(items: impl IntoIterator<Item = T>, concurrency: usize, task: F) -> Vec<Outcome>
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
}

impl Phase {
    fn start(name: &'static str) -> Phase {
        Phase { name, started: Instant::now() }
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
                }
                Outcome::Skipped { units } => {
                    phase.skipped += 1;
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
        phase.per_second = phase.units as f64 / phase.seconds.max(0.001);
        report.phases.push(phase);
        created
    }
}
