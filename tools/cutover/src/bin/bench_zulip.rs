//! Benchmark of `openmeet-cutover import-zulip` against the raw ceiling of the same homeserver operations, in the
//! same run, on a synthetic export, against the running stack:
//!
//!   set -a; . .local/stack.env; set +a
//!   cargo run --release -p openmeet-cutover --bin bench_zulip -- [MESSAGES STREAMS]
//!
//! Both tenants are staged as the runbook stages them: users and rooms first (`run --until rooms`), the history
//! before anyone is a member. The ceiling sends with `?ts=` as the appservice, one message at a time per room: it
//! is first swept over 1, 2, 4, 8 and 16 rooms at once (capped at STREAMS) on a warm-up slice, then the whole
//! export (senders joined by the admin join before their first message, as the import does; topics as threads,
//! reactions, the read markers at the end) goes at the best; then the import runs at that concurrency. Prints
//! messages/s of both, the ratio, CPU-ms per message of each Synapse process (`/proc`), and the projected time of
//! 1,000,000 messages.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use openmeet_cutover::zulip::export::{self, Realm};
use openmeet_cutover::zulip::generate::{ZulipShape, generate};
use openmeet_cutover::zulip::import;
use ruma::{OwnedRoomId, OwnedUserId};
use serde_json::{Value, json};
use shared::App;
use shared::aws::cutover_runs::RunState;
use shared::domain::history_import::IMPORT_DEVICE;
use shared::homeserver::Acting;
use tokio::sync::Semaphore;

mod bench_support;
use bench_support::{cpu_line, sweep, synapse_cpu_ms};

struct Paths {
    tenant: String,
    export: std::path::PathBuf,
    mapping: std::path::PathBuf,
    snapshot: std::path::PathBuf,
}

fn paths(tenant: &str) -> Paths {
    let dir = std::env::temp_dir().join(format!("bench-zulip-{tenant}"));
    Paths {
        tenant: tenant.to_owned(),
        export: dir.join("export"),
        mapping: dir.join("mapping.json"),
        snapshot: dir.join("snapshot.jsonl"),
    }
}

/// Stages the tenant's users and rooms with the cutover, no memberships yet (not timed).
async fn provision(app: &'static App, p: &Paths, concurrency: usize) {
    use openmeet_cutover::run::{Options, Until, run_with};
    let summary = openmeet_cutover::snapshot::validate(&p.snapshot).expect("snapshot");
    let options =
        Options { concurrency, quiet: true, until: Some(Until::Rooms), base: openmeet_cutover::delta::Base::Full };
    let report = run_with(app, &p.snapshot, summary, &options).await.expect("run");
    assert!(report.failures.is_empty(), "provisioning failed: {:?}", report.failures);
}

async fn retried(
    app: &App,
    room: &OwnedRoomId,
    user: &OwnedUserId,
    txn: &str,
    ts: u64,
    kind: &str,
    content: &Value,
) -> String {
    let device = ruma::OwnedDeviceId::from(IMPORT_DEVICE);
    let acting = Acting::Masquerade { user, device: Some(&device) };
    let send = || async {
        app.homeserver.send_at(room, kind, txn, content, ts, acting).await.map_err(shared::domain::DomainError::from)
    };
    openmeet_cutover::exec::with_retries(send).await.map(|e| e.to_string()).unwrap_or_else(|e| panic!("send: {e}"))
}

/// The same messages sent directly: per room in order, a topic's first message as the root, the rest as thread
/// replies, reactions after their message, then each member's read marker.
async fn baseline(app: &'static App, p: &Paths, concurrency: usize) -> (u64, f64) {
    let realm = Arc::new(export::load(&p.export).expect("export"));
    let mapping: Value = serde_json::from_slice(&std::fs::read(&p.mapping).expect("mapping")).expect("mapping json");
    let tenant = shared::identity::TenantId::parse(&p.tenant).expect("tenant");
    let mut senders: HashMap<i64, OwnedUserId> = HashMap::new();
    for user in realm.users.values() {
        if let Some(slug) = mapping["users"][Realm::email_of(user)].as_str() {
            let slug = shared::identity::UserSlug::parse(slug).expect("slug");
            let user_id = app.identities.matrix_user_id(&tenant, &slug);
            shared::credentials::ensure_device(&app.homeserver, &user_id, IMPORT_DEVICE).await.expect("device");
            senders.insert(user.id, user_id);
        }
    }
    let senders = Arc::new(senders);
    let mut rooms: HashMap<i64, OwnedRoomId> = HashMap::new();
    for (stream, target) in mapping["streams"].as_object().expect("streams") {
        let slug = shared::identity::Slug::parse(target["slug"].as_str().expect("slug")).expect("slug");
        let room = shared::domain::rooms::resolve(app, &tenant, shared::identity::RoomKind::Group, &slug).await;
        let id = realm.stream_by_name(stream).expect("stream").id;
        rooms.insert(id, room.expect("room").room_id);
    }
    let permits = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut channels = HashMap::new();
    let mut workers = Vec::new();
    for (stream, room) in rooms {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<export::Message>(512);
        channels.insert(stream, tx);
        let (realm, senders, permits) = (realm.clone(), senders.clone(), permits.clone());
        workers.push(tokio::spawn(async move {
            let mut joined: HashSet<OwnedUserId> = HashSet::new();
            let mut roots: HashMap<String, String> = HashMap::new();
            let mut last = HashMap::new();
            let mut sent = 0u64;
            let mut newest = None;
            while let Some(m) = rx.recv().await {
                let _permit = permits.acquire().await;
                let sender = &senders[&m.sender];
                if joined.insert(sender.clone()) {
                    app.homeserver.admin_join(room.as_str(), sender.as_str()).await.expect("sender join");
                }
                let topic = m.subject.to_lowercase();
                let mut content = json!({"msgtype": "m.text", "body": m.content, "m.mentions": {}});
                if let Some(root) = roots.get(&topic) {
                    let reply: &String = last.get(&topic).unwrap_or(root);
                    content["m.relates_to"] = json!({"rel_type": "m.thread", "event_id": root, "is_falling_back": true,
                                                     "m.in_reply_to": {"event_id": reply}});
                }
                let txn = format!("base{}-{}", room, m.id);
                let event = retried(app, &room, sender, &txn, m.ts_ms(), "m.room.message", &content).await;
                roots.entry(topic.clone()).or_insert_with(|| event.clone());
                for r in realm.reactions.get(&m.id).into_iter().flatten() {
                    if joined.insert(senders[&r.user_profile].clone()) {
                        let reactor = &senders[&r.user_profile];
                        app.homeserver.admin_join(room.as_str(), reactor.as_str()).await.expect("reactor join");
                    }
                    let key = shared::domain::history_import::emoji::reaction_key(
                        &r.reaction_type,
                        &r.emoji_code,
                        &r.emoji_name,
                    );
                    let content = json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": event, "key": key}});
                    let txn = format!("base{}-{}-{}-{}", room, m.id, r.user_profile, r.emoji_code);
                    retried(app, &room, &senders[&r.user_profile], &txn, m.ts_ms(), "m.reaction", &content).await;
                }
                last.insert(topic, event.clone());
                newest = Some(event);
                sent += 1;
            }
            if let Some(event) = newest.and_then(|e| ruma::OwnedEventId::try_from(e).ok()) {
                let _permit = permits.acquire().await;
                for user in &joined {
                    let acting = Acting::Masquerade { user, device: None };
                    let _ = app.homeserver.set_read_markers(&room, &event, acting).await;
                }
            }
            sent
        }));
    }
    for path in &realm.message_files {
        for m in export::read_messages(path).expect("messages") {
            if let Some(stream) = realm.stream_of_recipient.get(&m.recipient)
                && let Some(tx) = channels.get(stream)
            {
                tx.send(m).await.expect("worker");
            }
        }
    }
    drop(channels);
    let mut sent = 0;
    for worker in workers {
        sent += worker.await.expect("worker");
    }
    (sent, started.elapsed().as_secs_f64())
}

/// The raw ceiling's warm-up: `per_room` messages with `?ts=` from one sender into each of `c` rooms, one at a
/// time per room.
async fn sweep_slice(app: &'static App, rooms: &[OwnedRoomId], sender: &OwnedUserId, c: usize, step: usize) -> u64 {
    let per_room = 15;
    let mut running = tokio::task::JoinSet::new();
    for room in rooms.iter().take(c) {
        let (room, sender) = (room.clone(), sender.clone());
        running.spawn(async move {
            for n in 0..per_room {
                let content = json!({"msgtype": "m.text", "body": format!("warm-up {n}"), "m.mentions": {}});
                let txn = format!("warm{room}-{step}-{n}");
                retried(app, &room, &sender, &txn, 1_500_000_000_000, "m.room.message", &content).await;
            }
        });
    }
    let mut sent = 0;
    while let Some(done) = running.join_next().await {
        sent += u64::from(done.is_ok()) * per_room;
    }
    sent
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let arg = |i: usize, default: u64| args.get(i).copied().unwrap_or(default);
    let (messages, streams) = (arg(0, 2000), arg(1, 16));
    shared::metrics::off_stdout(false);
    let app = openmeet_cutover::app().await.expect("configuration: export .local/stack.env");
    let stamp = uuid::Uuid::new_v4().simple().to_string();
    let all = [paths(&format!("benchz{}", &stamp[..8])), paths(&format!("basez{}", &stamp[..8]))];
    for p in &all {
        let shape = ZulipShape {
            tenant: p.tenant.clone(),
            users: 20,
            ghosts: 0,
            streams,
            topics: 10,
            messages,
            upload_every: 0,
            seed: 7,
        };
        generate(&shape, &p.export, &p.mapping, &p.snapshot).expect("generate");
        provision(app, p, 8).await;
    }
    // The sweep's rooms: the ceiling tenant's, one sender joined to each first (not timed).
    let tenant = shared::identity::TenantId::parse(&all[1].tenant).expect("tenant");
    let mapping: Value = serde_json::from_slice(&std::fs::read(&all[1].mapping).expect("mapping")).expect("mapping");
    let mut rooms = Vec::new();
    for target in mapping["streams"].as_object().expect("streams").values() {
        let slug = shared::identity::Slug::parse(target["slug"].as_str().expect("slug")).expect("slug");
        let room = shared::domain::rooms::resolve(app, &tenant, shared::identity::RoomKind::Group, &slug).await;
        rooms.push(room.expect("room").room_id);
    }
    let first = mapping["users"].as_object().and_then(|users| users.values().next()?.as_str()).expect("a user");
    let sender = app.identities.matrix_user_id(&tenant, &shared::identity::UserSlug::parse(first).expect("slug"));
    shared::credentials::ensure_device(&app.homeserver, &sender, IMPORT_DEVICE).await.expect("device");
    for room in &rooms {
        app.homeserver.admin_join(room.as_str(), sender.as_str()).await.expect("join");
    }
    let levels: Vec<usize> = [1, 2, 4, 8, 16].into_iter().filter(|c| *c <= rooms.len()).collect();
    let step = std::sync::atomic::AtomicUsize::new(0);
    let (best, rates) = sweep("sends", &levels, |c| {
        let n = step.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (rooms, sender) = (&rooms, &sender);
        async move { sweep_slice(app, rooms, sender, c, n).await }
    })
    .await;

    eprintln!("ceiling: {messages} messages into {streams} rooms, {best} at once");
    let cpu_start = synapse_cpu_ms();
    let (base_sent, base_seconds) = baseline(app, &all[1], best).await;
    let cpu_base = cpu_line(&cpu_start, &synapse_cpu_ms(), base_sent, "message");
    eprintln!("import: the same export for another tenant");
    let prepared = import::prepare(&all[0].export, &all[0].mapping).expect("valid export");
    let cpu_start = synapse_cpu_ms();
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let report = import::import(app, prepared, &all[0].export, best, true, stop).await.expect("import");
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(report.state, RunState::Complete, "{}", import::render(&report));
    let imported = report.imported_now;
    let cpu_import = cpu_line(&cpu_start, &synapse_cpu_ms(), imported, "message");
    let (rate, base_rate) = (imported as f64 / seconds, base_sent as f64 / base_seconds);
    let shown = rates.iter().map(|(c, r)| format!("{c}:{r:.1}")).collect::<Vec<_>>().join(" ");
    println!("zulip import vs the raw ceiling, {streams} rooms, same homeserver, same run");
    println!("sweep sends/s by rooms at once: {shown}  (best {best})");
    println!(
        "import   {imported:6} messages in {seconds:6.1}s: {rate:7.1} messages/s (reactions and read markers included)"
    );
    println!("ceiling  {base_sent:6} messages in {base_seconds:6.1}s: {base_rate:7.1} messages/s");
    println!("ratio import/ceiling {:.2}", rate / base_rate);
    println!("ceiling {cpu_base}");
    println!("import  {cpu_import}");
    println!("projected for 1,000,000 messages: {:.1} h", 1_000_000.0 / rate / 3600.0);
    for p in &all {
        let _ = std::fs::remove_dir_all(p.export.parent().expect("dir"));
    }
}
