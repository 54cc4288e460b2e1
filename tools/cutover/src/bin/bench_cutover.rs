//! Benchmark of `openmeet-cutover run` beside a baseline that makes the homeserver calls the snapshot needs
//! directly (same client, same concurrency, same run), on a synthetic snapshot against the running stack:
//!
//!   set -a; . .local/stack.env; set +a
//!   cargo run --release -p openmeet-cutover --bin bench_cutover -- [USERS GROUPS EVENTS MEMBERSHIPS CONCURRENCY]
//!
//! Prints users/s, rooms/s and memberships/s of both, the ratio run/baseline per phase, and homeserver calls per
//! item of both (the run's extra calls are its reads: the state it records for rollback, and the domain's checks).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use openmeet_cutover::generate::{Shape, generate};
use openmeet_cutover::snapshot::{self, MemberBuckets};
use serde_json::{Value, json};
use shared::App;
use shared::domain::room_policy;
use shared::homeserver::{Acting, encode};
use shared::identity::RoomKind;
use tokio::task::JoinSet;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Counts the homeserver client's "homeserver call" log events (one per HTTP request).
struct CallCounter(Arc<AtomicU64>);

struct IsCall(bool);

impl tracing::field::Visit for IsCall {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" && format!("{value:?}") == "homeserver call" {
            self.0 = true;
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CallCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut visitor = IsCall(false);
        event.record(&mut visitor);
        if visitor.0 {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

static BASELINE_CALLS: AtomicU64 = AtomicU64::new(0);

/// One direct call, retried as `run` retries (rate limits, outages); "not found" and a refusal (the baseline's
/// joins of someone already in the room) are answers, not failures.
async fn call(app: &App, method: reqwest::Method, path: &str, acting: Acting<'_>, body: Option<Value>) -> Value {
    BASELINE_CALLS.fetch_add(1, Ordering::Relaxed);
    let attempt = || async {
        match app.homeserver.call::<Value>(method.clone(), path, acting, body.as_ref()).await {
            Ok(value) => Ok(value),
            Err(error) if error.is_not_found() || error.is_forbidden() => Ok(Value::Null),
            Err(error) => Err(shared::domain::DomainError::from(error)),
        }
    };
    openmeet_cutover::exec::with_retries(attempt).await.unwrap_or_else(|error| panic!("baseline call {path}: {error}"))
}

async fn create(app: &App, body: Value) -> String {
    let room = call(app, reqwest::Method::POST, "/_matrix/client/v3/createRoom", Acting::Platform, Some(body)).await;
    room["room_id"].as_str().expect("room id").to_owned()
}

/// Resolves an alias (the calls count as the run's alias lookups do).
async fn lookup(app: &'static App, alias: String) -> Option<&'static str> {
    let path = format!("/_matrix/client/v3/directory/room/{}", encode(&alias));
    let found = call(app, reqwest::Method::GET, &path, Acting::Platform, None).await;
    found["room_id"].as_str().map(|id| &*Box::leak(id.to_owned().into_boxed_str()))
}

async fn bounded<T: Send + 'static>(items: Vec<T>, limit: usize, task: impl Fn(T) -> tokio::task::JoinHandle<()>) {
    let mut running: JoinSet<()> = JoinSet::new();
    for item in items {
        while running.len() >= limit {
            let _ = running.join_next().await;
        }
        let handle = task(item);
        running.spawn(async move {
            let _ = handle.await;
        });
    }
    while running.join_next().await.is_some() {}
}

/// The calls the snapshot needs, made directly: per user lookup, register, display name;
/// per room one createRoom with its initial state (and a space for groups, a child link for grouped rooms); per
/// room its joins (8 at a time, as the domain's reconcile does) and one power-levels write.
async fn baseline(app: &'static App, path: &std::path::Path, tenant: &str, concurrency: usize) -> [f64; 3] {
    let server = app.identities.server_name().to_owned();
    let users: Vec<_> = snapshot::users(path).expect("snapshot").collect();
    let started = Instant::now();
    let space = create(
        app,
        json!({"room_alias_name": format!("om_{tenant}.tenant"), "preset": "private_chat",
        "creation_content": {"type": "m.space"}, "room_version": room_policy::ROOM_VERSION}),
    )
    .await;
    let space: &'static str = Box::leak(space.into_boxed_str());
    bounded(users, concurrency, |u| {
        tokio::spawn(async move {
            let user_id = app.identities.matrix_user_id(&u.tenant, &u.user);
            let encoded = encode(user_id.as_str());
            call(app, reqwest::Method::GET, &format!("/_synapse/admin/v2/users/{encoded}"), Acting::Platform, None).await;
            let body = json!({"type": "m.login.application_service", "username": app.identities.localpart(&u.tenant, &u.user), "inhibit_login": true});
            call(app, reqwest::Method::POST, "/_matrix/client/v3/register", Acting::Platform, Some(body)).await;
            let masquerade = Acting::Masquerade { user: &user_id, device: None };
            let name = json!({"displayname": u.display_name});
            call(app, reqwest::Method::PUT, &format!("/_matrix/client/v3/profile/{encoded}/displayname"), masquerade, Some(name)).await;
        })
    })
    .await;
    let users_time = started.elapsed().as_secs_f64();

    let started = Instant::now();
    for kind in [RoomKind::Group, RoomKind::Event] {
        let rooms: Vec<_> = snapshot::rooms(path, kind).expect("snapshot").collect();
        let server = server.clone();
        bounded(rooms, concurrency, move |r| {
            let server = server.clone();
            tokio::spawn(async move {
                let alias = app.identities.room_alias(&r.tenant, r.kind, &r.slug);
                let lookup = format!("/_matrix/client/v3/directory/room/{}", encode(alias.as_str()));
                call(app, reqwest::Method::GET, &lookup, Acting::Platform, None).await;
                let group_space = match (r.kind, &r.spec.group) {
                    (RoomKind::Group, _) => Some(create(app, json!({"room_alias_name": format!("om_{}.space.{}", r.tenant, r.slug),
                        "name": r.spec.name, "preset": "private_chat", "creation_content": {"type": "m.space"},
                        "room_version": room_policy::ROOM_VERSION})).await),
                    (RoomKind::Event, Some(group)) => {
                        let alias = app.identities.space_alias(&r.tenant, group);
                        let found = call(app, reqwest::Method::GET, &format!("/_matrix/client/v3/directory/room/{}", encode(alias.as_str())), Acting::Platform, None).await;
                        found["room_id"].as_str().map(str::to_owned)
                    }
                    _ => None,
                };
                let mut state = vec![json!({"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space}]}})];
                if let Some(parent) = &group_space {
                    state.push(json!({"type": "m.space.parent", "state_key": parent, "content": {"via": [server], "canonical": true}}));
                }
                let room = create(app, json!({"room_alias_name": alias.alias(), "name": r.spec.name, "topic": r.spec.topic.clone().unwrap_or_default(),
                    "preset": "private_chat", "room_version": room_policy::ROOM_VERSION, "initial_state": state,
                    "power_level_content_override": room_policy::initial_power_levels(0)})).await;
                if let Some(parent) = group_space {
                    let path = format!("/_matrix/client/v3/rooms/{}/state/m.space.child/{}", encode(&parent), encode(&room));
                    call(app, reqwest::Method::PUT, &path, Acting::Platform, Some(json!({"via": [server], "suggested": true}))).await;
                }
            })
        })
        .await;
    }
    let rooms_time = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let summary = snapshot::validate(path).expect("snapshot");
    let buckets = MemberBuckets::spill(path, summary.memberships, 20_000).expect("spill");
    for index in 0..buckets.count() {
        let rooms_at_once = openmeet_cutover::run::rooms_at_once(concurrency);
        bounded(buckets.bucket(index).expect("bucket"), rooms_at_once, |r| {
            tokio::spawn(async move {
                let room =
                    lookup(app, app.identities.room_alias(&r.tenant, r.kind, &r.slug).to_string()).await.expect("room");
                // A group's members join its space too (the domain keeps the space's membership with the group's).
                let space = match r.kind {
                    RoomKind::Group => lookup(app, app.identities.space_alias(&r.tenant, &r.slug).to_string()).await,
                    RoomKind::Event => None,
                };
                let user_ids: Vec<String> =
                    r.members.iter().map(|(u, _)| app.identities.matrix_user_id(&r.tenant, u).to_string()).collect();
                bounded(user_ids, 8, |user_id| {
                    tokio::spawn(async move {
                        for target in std::iter::once(room).chain(space) {
                            let path = format!("/_synapse/admin/v1/join/{}", encode(target));
                            let body = Some(json!({"user_id": user_id}));
                            call(app, reqwest::Method::POST, &path, Acting::Platform, body).await;
                        }
                    })
                })
                .await;
                let levels_path = format!("/_matrix/client/v3/rooms/{}/state/m.room.power_levels/", encode(room));
                let mut levels = call(app, reqwest::Method::GET, &levels_path, Acting::Platform, None).await;
                for (user, role) in &r.members {
                    if role.power_level() != 0 {
                        levels["users"][app.identities.matrix_user_id(&r.tenant, user).as_str()] =
                            json!(role.power_level());
                    }
                }
                call(app, reqwest::Method::PUT, &levels_path, Acting::Platform, Some(levels)).await;
            })
        })
        .await;
    }
    [users_time, rooms_time, started.elapsed().as_secs_f64()]
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let arg = |i: usize, default: u64| args.get(i).copied().unwrap_or(default);
    let (users, groups, events, memberships) = (arg(0, 200), arg(1, 30), arg(2, 60), arg(3, 1500));
    let concurrency = arg(4, 8) as usize;
    let counter = Arc::new(AtomicU64::new(0));
    tracing_subscriber::registry().with(CallCounter(counter.clone())).init();
    shared::metrics::off_stdout(false);
    let app = openmeet_cutover::app().await.expect("configuration: export .local/stack.env");
    let stamp = uuid::Uuid::new_v4().simple().to_string();
    let tenants = [format!("bench{}", &stamp[..8]), format!("base{}", &stamp[..8])];
    let paths: Vec<_> = tenants
        .iter()
        .map(|tenant| {
            let path = std::env::temp_dir().join(format!("bench-{tenant}.jsonl"));
            let shape = Shape { tenant: tenant.clone(), users, groups, events, memberships, seed: 7 };
            let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("snapshot file"));
            generate(&shape, &mut file).expect("generate");
            drop(file);
            path
        })
        .collect();
    let summary = snapshot::validate(&paths[0]).expect("valid snapshot");
    let memberships = summary.memberships;
    eprintln!("run: {users} users, {} rooms, {memberships} memberships, concurrency {concurrency}", groups + events);
    let report = openmeet_cutover::run::run(app, &paths[0], summary, concurrency, true).await.expect("run");
    assert!(report.failures.is_empty(), "run failures: {:?}", report.failures);
    let run_calls = counter.load(Ordering::Relaxed);
    let seconds =
        |name: &str| report.phases.iter().filter(|p| p.phase.starts_with(name)).map(|p| p.seconds).sum::<f64>();
    let run_times = [seconds("users"), seconds("groups") + seconds("events"), seconds("memberships")];
    eprintln!("baseline: the same snapshot shape for another tenant");
    let base_times = baseline(app, &paths[1], &tenants[1], concurrency).await;
    let counts = [users as f64, (groups + events) as f64, memberships as f64];
    println!(
        "cutover run vs direct homeserver calls, concurrency {concurrency} ({users} users, {} rooms, {memberships} memberships)",
        groups + events
    );
    for (i, name) in ["users", "rooms", "memberships"].into_iter().enumerate() {
        let (run_rate, base_rate) = (counts[i] / run_times[i], counts[i] / base_times[i]);
        println!(
            "{name:12} run {run_rate:8.1}/s ({:.1}s)  baseline {base_rate:8.1}/s ({:.1}s)  ratio run/baseline {:.2}",
            run_times[i],
            base_times[i],
            run_rate / base_rate
        );
    }
    let (total_run, total_base) = (run_times.iter().sum::<f64>(), base_times.iter().sum::<f64>());
    println!("total        run {total_run:.1}s  baseline {total_base:.1}s  ratio {:.2}", total_base / total_run);
    let items = counts.iter().sum::<f64>();
    println!(
        "homeserver calls: run {run_calls} ({:.2}/item), baseline {} ({:.2}/item)",
        run_calls as f64 / items,
        BASELINE_CALLS.load(Ordering::Relaxed),
        BASELINE_CALLS.load(Ordering::Relaxed) as f64 / items
    );
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
}
