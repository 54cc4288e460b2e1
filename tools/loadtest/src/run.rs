//! One step of a sweep: a fresh world of N people, everyone syncing, then an API phase (posts through the gateway)
//! and a direct phase (the same people's posts straight to Synapse as the appservice), each followed by a drain in
//! which receivers may still see what was sent. Two people (filters before and after) go offline in the API phase.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::metrics::{FilterKind, Metrics, Mode, ModeSummary};
use crate::person::{Ctx, Person};
use crate::procstat::{Sampler, Usage, load_average};
use crate::sync::CatchUp;
use crate::{Scenario, Stack, world};

#[derive(Clone, Serialize)]
pub struct StepReport {
    pub people: usize,
    pub rooms: usize,
    pub largest_room: usize,
    pub memberships: usize,
    /// The API phase's length (longer than the scenario's when people go offline in it), and the drain's.
    pub phase_secs: u64,
    pub drain_secs: u64,
    pub load_average_before: String,
    pub load_average_after: String,
    /// By mode ("api", "direct").
    pub phases: BTreeMap<String, ModeSummary>,
    pub usage: BTreeMap<String, BTreeMap<String, Usage>>,
    /// By mode, then "filter/wire": bytes per person per minute (each filter's own people).
    pub bytes_per_person_minute: BTreeMap<String, BTreeMap<String, f64>>,
    pub catch_ups: Vec<CatchUp>,
}

impl StepReport {
    pub fn phase(&self, mode: Mode) -> Option<&ModeSummary> {
        self.phases.get(mode.name())
    }
}

async fn spawn_all<F, Fut>(people: &[Arc<Person>], ctx: &Arc<Ctx>, f: F) -> Vec<tokio::task::JoinHandle<()>>
where
    F: Fn(Arc<Ctx>, Arc<Person>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    people.iter().map(|p| tokio::spawn(f(ctx.clone(), p.clone()))).collect()
}

/// Runs one step of `n` people; `offline_secs` > 0 takes persons 0 and 1 offline during the API phase.
pub async fn step(stack: &Stack, scenario: &Scenario, n: usize, offline_secs: u64) -> Result<StepReport, String> {
    let load_average_before = load_average();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(scenario.sync_timeout_ms) + Duration::from_secs(20))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let world = world::build(stack, &http, scenario, n).await?;
    let room_index: HashMap<String, usize> = world.rooms.iter().enumerate().map(|(i, r)| (r.id.clone(), i)).collect();
    let ctx = Arc::new(Ctx {
        stack: stack.clone(),
        http,
        world,
        metrics: Metrics::default(),
        scenario: scenario.clone(),
        room_index,
        stop: AtomicBool::new(false),
        catch_ups: Mutex::new(Vec::new()),
        ready: std::sync::atomic::AtomicUsize::new(0),
    });
    let people: Vec<Arc<Person>> = (0..n).map(|i| Person::new(&ctx, i).map(Arc::new)).collect::<Result<_, _>>()?;
    // Sessions as pages open, one after the other (set-up, not measured load).
    for person in &people {
        person.open_session(&ctx).await?;
    }
    let offline_people: Vec<Arc<Person>> = if offline_secs > 0 { people[..2].to_vec() } else { Vec::new() };
    for p in &offline_people {
        ctx.metrics.exclude_from_latency(p.index);
    }
    let mut background = spawn_all(&people, &ctx, |ctx, p| async move { p.keep_session(&ctx).await }).await;
    let window: Arc<crate::sync::Offline> = Arc::default();
    for person in &people {
        let (ctx, person, window) = (ctx.clone(), person.clone(), window.clone());
        let away = offline_people.iter().any(|p| p.index == person.index);
        background.push(tokio::spawn(async move {
            let _ = crate::sync::run(&ctx, &person, away.then_some(&*window)).await;
        }));
    }
    let ready_by = Instant::now() + Duration::from_secs(90);
    while ctx.ready.load(Ordering::Relaxed) < people.len() && Instant::now() < ready_by {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The offline people leave 8 s into the API phase and come back `offline_secs` later.
    let _ = window.set((Instant::now() + Duration::from_secs(8), Duration::from_secs(offline_secs)));

    let mut phases = BTreeMap::new();
    let mut usage = BTreeMap::new();
    for mode in Mode::ALL {
        ctx.metrics.set_phase(mode);
        let mut sampler = Sampler::start(&ctx.stack.run_dir);
        let until = Instant::now() + Duration::from_secs(phase_secs(scenario, mode, offline_secs));
        let actors = spawn_all(&people, &ctx, move |ctx, p| async move { p.act(&ctx, until).await }).await;
        let drained = until + Duration::from_secs(scenario.drain_secs);
        while Instant::now() < drained {
            tokio::time::sleep(Duration::from_secs(1)).await;
            sampler.sample();
        }
        for actor in actors {
            let _ = actor.await;
        }
        usage.insert(mode.name().to_owned(), sampler.finish());
    }
    ctx.stop.store(true, Ordering::Relaxed);
    for task in &background {
        task.abort();
    }
    let mut per_minute = BTreeMap::new();
    for mode in Mode::ALL {
        let minutes = (phase_secs(scenario, mode, offline_secs) + scenario.drain_secs) as f64 / 60.0;
        let summary = ctx.metrics.summary(mode);
        let mut rates = BTreeMap::new();
        for (key, bytes) in &summary.bytes {
            let filter = if key.starts_with("before") { FilterKind::Before } else { FilterKind::After };
            let counted = people.iter().skip(offline_people.len());
            let count = counted.filter(|p| p.filter == filter).count().max(1);
            rates.insert(key.clone(), *bytes as f64 / count as f64 / minutes);
        }
        per_minute.insert(mode.name().to_owned(), rates);
        phases.insert(mode.name().to_owned(), summary);
    }
    let catch_ups = ctx.catch_ups.lock().map(|c| c.clone()).unwrap_or_default();
    Ok(StepReport {
        people: n,
        rooms: ctx.world.rooms.len(),
        largest_room: ctx.world.rooms.iter().map(|r| r.members.len()).max().unwrap_or(0),
        memberships: ctx.world.rooms.iter().map(|r| r.members.len()).sum(),
        phase_secs: phase_secs(scenario, Mode::Api, offline_secs),
        drain_secs: scenario.drain_secs,
        load_average_before,
        load_average_after: load_average(),
        phases,
        usage,
        bytes_per_person_minute: per_minute,
        catch_ups,
    })
}

/// A phase lasts the scenario's `phase_secs`; an API phase with offline people lasts until 15 s after their return.
fn phase_secs(scenario: &Scenario, mode: Mode, offline_secs: u64) -> u64 {
    if mode == Mode::Api && offline_secs > 0 {
        scenario.phase_secs.max(offline_secs + 8 + 15)
    } else {
        scenario.phase_secs
    }
}
