//! Benchmark of `openmeet-cutover run` against the raw ceiling of the same homeserver operations, measured in the
//! same run on the same homeserver, on synthetic snapshots against the running stack:
//!
//!   set -a; . .local/stack.env; set +a
//!   cargo run --release -p openmeet-cutover --bin bench_cutover -- [USERS GROUPS EVENTS MEMBERSHIPS]
//!
//! 1. The ceiling, for another tenant, with the appservice token and no reads: users (register, display name, the
//!    tenant's space); rooms (createRoom with the initial state the tool writes, a group's space and its child
//!    link); memberships (a masquerade join into rooms restricted to the tenant's space, Synapse's admin join into
//!    invite-only ones, a group's space beside its room, one power-levels write per room). Rooms and memberships
//!    are first swept over 1, 4, 8, 16 and 32 rooms at once (one write in flight per room) on warm-up rooms; the
//!    best concurrency then carries the whole snapshot.
//! 2. The tool's `run` of the same shape, at that concurrency.
//!
//! Prints each rate beside its ceiling and the ratio, homeserver calls per item, and CPU-ms per membership of each
//! Synapse process (from `/proc`; `BENCH_SYNAPSE_CONFIG` picks the processes, see `bench_support`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use openmeet_cutover::generate::{Shape, generate};
use openmeet_cutover::snapshot::{self, MemberBuckets, RoomMembers};
use ruma::{OwnedRoomId, OwnedUserId};
use serde_json::{Value, json};
use shared::App;
use shared::domain::room_lifecycle::Visibility;
use shared::domain::room_policy;
use shared::homeserver::{Acting, encode};
use shared::identity::{RoomKind, TenantId};
use tokio::task::JoinSet;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

mod bench_support;
use bench_support::{SWEEP, cpu_line, sweep, synapse_cpu_ms};

static RAW_CALLS: AtomicU64 = AtomicU64::new(0);

/// One raw call, retried as `run` retries (rate limits, outages).
async fn call(app: &App, method: reqwest::Method, path: &str, acting: Acting<'_>, body: Option<Value>) -> Value {
    RAW_CALLS.fetch_add(1, Ordering::Relaxed);
    let attempt = || async {
        app.homeserver
            .call::<Value>(method.clone(), path, acting, body.as_ref())
            .await
            .map_err(shared::domain::DomainError::from)
    };
    openmeet_cutover::exec::with_retries(attempt).await.unwrap_or_else(|error| panic!("raw call {path}: {error}"))
}

/// A createRoom, retried; an alias taken by an earlier attempt whose answer was lost (a timeout on a busy machine)
/// is that attempt's room.
async fn create(app: &App, body: Value) -> OwnedRoomId {
    RAW_CALLS.fetch_add(1, Ordering::Relaxed);
    let path = "/_matrix/client/v3/createRoom";
    let attempt = || async {
        match app.homeserver.call::<Value>(reqwest::Method::POST, path, Acting::Platform, Some(&body)).await {
            Ok(room) => Ok(room["room_id"].as_str().map(str::to_owned)),
            Err(shared::homeserver::HomeserverError::Rejected {
                errcode: ruma::api::error::ErrorCode::RoomInUse,
                ..
            }) => Ok(None),
            Err(error) => Err(shared::domain::DomainError::from(error)),
        }
    };
    let created =
        openmeet_cutover::exec::with_retries(attempt).await.unwrap_or_else(|error| panic!("createRoom: {error}"));
    let id = match created {
        Some(id) => id,
        None => {
            let local = body["room_alias_name"].as_str().expect("alias");
            let alias = format!("#{local}:{}", app.identities.server_name());
            let found = call(
                app,
                reqwest::Method::GET,
                &format!("/_matrix/client/v3/directory/room/{}", encode(&alias)),
                Acting::Platform,
                None,
            )
            .await;
            found["room_id"].as_str().expect("room id").to_owned()
        }
    };
    OwnedRoomId::try_from(id).expect("room id")
}

/// Runs `task` over `items`, `limit` at a time.
async fn bounded<T: Send + 'static, F, Fut>(items: Vec<T>, limit: usize, task: F)
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut running: JoinSet<()> = JoinSet::new();
    for item in items {
        while running.len() >= limit.max(1) {
            let _ = running.join_next().await;
        }
        running.spawn(task(item));
    }
    while running.join_next().await.is_some() {}
}

/// The raw tenant: its space and, per room, what the memberships need.
struct Raw {
    app: &'static App,
    tenant: TenantId,
    space: OwnedRoomId,
    server: String,
}

impl Raw {
    fn join_rule(&self, visibility: Visibility) -> Value {
        match visibility {
            Visibility::Public => json!({"join_rule": "restricted",
                "allow": [{"type": "m.room_membership", "room_id": self.space}]}),
            Visibility::Private => json!({"join_rule": "invite"}),
        }
    }

    /// A room as the tool creates it: its join rule, history visibility, guest access, metadata and topic as
    /// initial state, the platform's power levels, a parent link when in a space.
    async fn create_room(
        &self,
        alias: &str,
        name: &str,
        visibility: Visibility,
        parent: Option<&OwnedRoomId>,
        space: bool,
    ) -> OwnedRoomId {
        let mut state = vec![
            json!({"type": "m.room.join_rules", "state_key": "", "content": self.join_rule(visibility)}),
            json!({"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "shared"}}),
            json!({"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}}),
            json!({"type": room_policy::META_EVENT, "state_key": "", "content": {"tenant": self.tenant.as_str()}}),
            json!({"type": "m.room.topic", "state_key": "", "content": {"topic": ""}}),
        ];
        if let Some(parent) = parent {
            state.push(json!({"type": "m.space.parent", "state_key": parent,
                "content": {"via": [self.server], "canonical": true}}));
        }
        let mut body = json!({"room_alias_name": alias, "name": name, "preset": "private_chat",
            "room_version": room_policy::ROOM_VERSION, "initial_state": state,
            "power_level_content_override": room_policy::initial_power_levels(if space { 100 } else { 0 })});
        if space {
            body["creation_content"] = json!({"type": "m.space"});
        }
        create(self.app, body).await
    }

    async fn link(&self, parent: &OwnedRoomId, child: &OwnedRoomId) {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/m.space.child/{}",
            encode(parent.as_str()),
            encode(child.as_str())
        );
        call(
            self.app,
            reqwest::Method::PUT,
            &path,
            Acting::Platform,
            Some(json!({"via": [self.server], "suggested": true})),
        )
        .await;
    }

    /// One user into one room with one write: masquerade into a room restricted to the tenant's space, the admin
    /// join into an invite-only one.
    async fn join(&self, room: &OwnedRoomId, user: &OwnedUserId, visibility: Visibility) {
        RAW_CALLS.fetch_add(1, Ordering::Relaxed);
        let joined = match visibility {
            Visibility::Public => self.app.homeserver.join(room, Acting::Masquerade { user, device: None }).await,
            Visibility::Private => self.app.homeserver.admin_join(room.as_str(), user.as_str()).await,
        };
        joined.unwrap_or_else(|error| panic!("raw join: {error}"));
    }
}

/// A room of the raw tenant, created, with what its members need.
struct RawRoom {
    room: OwnedRoomId,
    space: Option<OwnedRoomId>,
    visibility: Visibility,
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let arg = |i: usize, default: u64| args.get(i).copied().unwrap_or(default);
    let (users, groups, events, memberships) = (arg(0, 200), arg(1, 30), arg(2, 60), arg(3, 1500));
    tracing_subscriber::registry().with(openmeet_cutover::calls::Counter).init();
    shared::metrics::off_stdout(false);
    let app = openmeet_cutover::app().await.expect("configuration: export .local/stack.env");
    let stamp = uuid::Uuid::new_v4().simple().to_string();
    let tenants = [format!("bench{}", &stamp[..8]), format!("ceil{}", &stamp[..8])];
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
    let rooms = groups + events;

    eprintln!("ceiling: raw appservice calls for tenant {}", tenants[1]);
    let tenant = TenantId::parse(&tenants[1]).expect("tenant");
    let space_alias = app.identities.tenant_space_alias(&tenant).alias().to_owned();
    let warm_alias = |n: u64| {
        let slug = shared::identity::Slug::parse(&format!("zz-warm-{n}")).expect("slug");
        app.identities.room_alias_localpart(&tenant, RoomKind::Group, &slug)
    };
    let space = create(
        app,
        json!({"room_alias_name": space_alias, "preset": "private_chat",
        "creation_content": {"type": "m.space"}, "room_version": room_policy::ROOM_VERSION,
        "power_level_content_override": room_policy::initial_power_levels(100)}),
    )
    .await;
    let raw = Arc::new(Raw { app, tenant: tenant.clone(), space, server: app.identities.server_name().to_owned() });

    // Users: register, display name, into the tenant's space (one room: its joins queue there whatever the
    // concurrency, so 8 at a time).
    let user_list: Vec<_> = snapshot::users(&paths[1]).expect("snapshot").collect();
    let started = Instant::now();
    bounded(user_list, 8, |u| {
        let raw = raw.clone();
        async move {
            let app = raw.app;
            let user_id = app.identities.matrix_user_id(&u.tenant, &u.user);
            let body = json!({"type": "m.login.application_service", "username": app.identities.localpart(&u.tenant, &u.user), "inhibit_login": true});
            call(app, reqwest::Method::POST, "/_matrix/client/v3/register", Acting::Platform, Some(body)).await;
            let path = format!("/_matrix/client/v3/profile/{}/displayname", encode(user_id.as_str()));
            let masquerade = Acting::Masquerade { user: &user_id, device: None };
            call(app, reqwest::Method::PUT, &path, masquerade, Some(json!({"displayname": u.display_name}))).await;
            app.homeserver.admin_join(raw.space.as_str(), user_id.as_str()).await.expect("space join");
        }
    })
    .await;
    let ceiling_users = users as f64 / started.elapsed().as_secs_f64();
    let warm_users: Vec<OwnedUserId> = snapshot::users(&paths[1])
        .expect("snapshot")
        .take(12)
        .map(|u| app.identities.matrix_user_id(&u.tenant, &u.user))
        .collect();

    // Rooms: sweep on warm-up rooms (2 per concurrency step, at least 8), then the snapshot's rooms at the best.
    let warm = AtomicU64::new(0);
    let (room_c, room_sweep) = sweep("rooms", &SWEEP, |c| {
        let raw = raw.clone();
        let names: Vec<String> =
            (0..(2 * c).max(8)).map(|_| warm_alias(warm.fetch_add(1, Ordering::Relaxed))).collect();
        async move {
            let n = names.len() as u64;
            bounded(names, c, move |name| {
                let raw = raw.clone();
                async move {
                    raw.create_room(&name, "warm", Visibility::Public, None, false).await;
                }
            })
            .await;
            n
        }
    })
    .await;
    let mut created: BTreeMap<(&'static str, String), Arc<RawRoom>> = BTreeMap::new();
    let started = Instant::now();
    for kind in [RoomKind::Group, RoomKind::Event] {
        let list: Vec<_> = snapshot::rooms(&paths[1], kind).expect("snapshot").collect();
        let made = Arc::new(tokio::sync::Mutex::new(Vec::new()));
        let spaces: Arc<BTreeMap<String, OwnedRoomId>> =
            Arc::new(created.iter().filter_map(|((_, slug), r)| Some((slug.clone(), r.space.clone()?))).collect());
        bounded(list, room_c, |r| {
            let (raw, made, spaces) = (raw.clone(), made.clone(), spaces.clone());
            async move {
                let app = raw.app;
                let room_alias = app.identities.room_alias_localpart(&r.tenant, r.kind, &r.slug);
                let visibility = r.spec.visibility;
                let parent = match (r.kind, &r.spec.group) {
                    (RoomKind::Group, _) => {
                        let space_alias = app.identities.space_alias(&r.tenant, &r.slug);
                        let local = space_alias.alias().to_owned();
                        Some(raw.create_room(&local, &r.spec.name, visibility, None, true).await)
                    }
                    (RoomKind::Event, Some(group)) => spaces.get(group.as_str()).cloned(),
                    _ => None,
                };
                let room = raw.create_room(&room_alias, &r.spec.name, visibility, parent.as_ref(), false).await;
                if let Some(parent) = &parent {
                    raw.link(parent, &room).await;
                }
                let space = if r.kind == RoomKind::Group { parent } else { None };
                made.lock()
                    .await
                    .push(((r.kind.as_str(), r.slug.to_string()), Arc::new(RawRoom { room, space, visibility })));
            }
        })
        .await;
        created.extend(made.lock().await.drain(..));
    }
    let ceiling_rooms = rooms as f64 / started.elapsed().as_secs_f64();

    // Memberships: sweep on warm-up rooms made first (12 users each, one join at a time per room).
    let mut warm_rooms = Vec::new();
    for c in SWEEP {
        let mut step = Vec::new();
        for _ in 0..c {
            let name = warm_alias(warm.fetch_add(1, Ordering::Relaxed));
            step.push(raw.create_room(&name, "warm", Visibility::Public, None, false).await);
        }
        warm_rooms.push((c, step));
    }
    let warm_users = Arc::new(warm_users);
    let (member_c, member_sweep) = sweep("memberships", &SWEEP, |c| {
        let (raw, warm_users) = (raw.clone(), warm_users.clone());
        let rooms = warm_rooms.iter().find(|(step, _)| *step == c).map(|(_, rooms)| rooms.clone()).unwrap_or_default();
        async move {
            let n = (rooms.len() * warm_users.len()) as u64;
            bounded(rooms, c, move |room| {
                let (raw, warm_users) = (raw.clone(), warm_users.clone());
                async move {
                    for user in warm_users.iter() {
                        raw.join(&room, user, Visibility::Public).await;
                    }
                }
            })
            .await;
            n
        }
    })
    .await;
    let raw_members = raw_members(&raw, &paths[1], &created, member_c).await;

    eprintln!("run: {users} users, {rooms} rooms, {memberships} memberships, concurrency {member_c}");
    let calls_before = openmeet_cutover::calls::count();
    let samples = Arc::new(std::sync::Mutex::new(vec![(Instant::now(), synapse_cpu_ms())]));
    let sampler = {
        let samples = samples.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                if let Ok(mut samples) = samples.lock() {
                    samples.push((Instant::now(), synapse_cpu_ms()));
                }
            }
        })
    };
    let report = openmeet_cutover::run::run(app, &paths[0], summary, member_c, true).await.expect("run");
    let run_end = (Instant::now(), synapse_cpu_ms());
    sampler.abort();
    assert!(report.failures.is_empty(), "run failures: {:?}", report.failures);
    let run_calls = openmeet_cutover::calls::count() - calls_before;
    let phase = |name: &str| report.phases.iter().filter(|p| p.phase.starts_with(name)).map(|p| p.seconds).sum::<f64>();
    let run_rates = [
        users as f64 / phase("users"),
        rooms as f64 / (phase("groups") + phase("events")),
        memberships as f64 / phase("memberships"),
    ];
    // The memberships phase is the run's last: its CPU is from the sample nearest its start to the run's end.
    let phase_start = run_end.0 - std::time::Duration::from_secs_f64(phase("memberships"));
    let cpu_run = samples
        .lock()
        .ok()
        .and_then(|samples| {
            samples
                .iter()
                .min_by_key(|(at, _)| at.max(&phase_start).duration_since(*at.min(&phase_start)))
                .map(|(_, cpu)| cpu.clone())
        })
        .map(|start| cpu_line(&start, &run_end.1, memberships, "membership"))
        .unwrap_or_default();

    println!(
        "cutover run vs the raw ceiling, same homeserver, same run ({users} users, {rooms} rooms, {memberships} memberships)"
    );
    let show = |rates: &[(usize, f64)]| rates.iter().map(|(c, r)| format!("{c}:{r:.1}")).collect::<Vec<_>>().join(" ");
    println!("sweep rooms/s by rooms at once: {}  (best {room_c})", show(&room_sweep));
    println!(
        "sweep memberships/s (12 joins per warm-up room) by rooms at once: {}  (best {member_c})",
        show(&member_sweep)
    );
    let ceilings = [ceiling_users, ceiling_rooms, raw_members.rate];
    for (i, name) in ["users", "rooms", "memberships"].into_iter().enumerate() {
        println!(
            "{name:12} run {:8.1}/s  ceiling {:8.1}/s  ratio {:.2}",
            run_rates[i],
            ceilings[i],
            run_rates[i] / ceilings[i]
        );
    }
    let items = (users + rooms + memberships) as f64;
    println!(
        "homeserver calls: run {run_calls} ({:.2}/item), ceiling {} ({:.2}/item)",
        run_calls as f64 / items,
        RAW_CALLS.load(Ordering::Relaxed),
        RAW_CALLS.load(Ordering::Relaxed) as f64 / items
    );
    println!("ceiling memberships {}", raw_members.cpu);
    println!("run memberships     {cpu_run}");
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
}

struct RawMembers {
    rate: f64,
    cpu: String,
}

/// The snapshot's member lists with raw calls, `c` rooms at once: each room's joins one at a time, a group's space
/// beside its room, one power-levels write per room (no read: the levels the room was created with, plus roles).
async fn raw_members(
    raw: &Arc<Raw>,
    path: &std::path::Path,
    created: &BTreeMap<(&'static str, String), Arc<RawRoom>>,
    c: usize,
) -> RawMembers {
    let summary = snapshot::validate(path).expect("snapshot");
    let buckets = MemberBuckets::spill(path, summary.memberships, 20_000).expect("spill");
    let cpu_before = synapse_cpu_ms();
    let started = Instant::now();
    for index in 0..buckets.count() {
        let lists: Vec<(RoomMembers, Arc<RawRoom>)> = buckets
            .bucket(index)
            .expect("bucket")
            .into_iter()
            .filter_map(|r| {
                let room = created.get(&(r.kind.as_str(), r.slug.to_string()))?.clone();
                Some((r, room))
            })
            .collect();
        bounded(lists, c, |(r, room)| {
            let raw = raw.clone();
            async move {
                let app = raw.app;
                let user_ids: Vec<OwnedUserId> =
                    r.members.iter().map(|(u, _)| app.identities.matrix_user_id(&r.tenant, u)).collect();
                let in_room = async {
                    for user in &user_ids {
                        raw.join(&room.room, user, room.visibility).await;
                    }
                };
                let in_space = async {
                    if let Some(space) = &room.space {
                        for user in &user_ids {
                            raw.join(space, user, room.visibility).await;
                        }
                    }
                };
                tokio::join!(in_room, in_space);
                let mut levels = room_policy::initial_power_levels(0);
                for (user, role) in &r.members {
                    if role.power_level() != 0 {
                        levels["users"][app.identities.matrix_user_id(&r.tenant, user).as_str()] =
                            json!(role.power_level());
                    }
                }
                let path =
                    format!("/_matrix/client/v3/rooms/{}/state/m.room.power_levels/", encode(room.room.as_str()));
                call(app, reqwest::Method::PUT, &path, Acting::Platform, Some(levels)).await;
            }
        })
        .await;
    }
    let seconds = started.elapsed().as_secs_f64();
    RawMembers {
        rate: summary.memberships as f64 / seconds,
        cpu: cpu_line(&cpu_before, &synapse_cpu_ms(), summary.memberships, "membership"),
    }
}
