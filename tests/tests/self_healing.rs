//! Self-healing against the real stack (issue 17): drift made by hand with raw Matrix calls is repaired by the next
//! pass and a second pass finds none; rooms the service does not manage are left alone; retention archives event
//! rooms (time moved with `--now`, never slept) and keeps them readable; the sweep removes expired records only;
//! a delete during an outage is queued and redacts once; reminders are posted once.
//!
//! The jobs run as `openmeet-local ops <job> --json` with the stack's environment, as an operator would run them.

use std::process::Command;
use std::time::{Duration, Instant};

use integration_tests::fault::PausedHomeserver;
use integration_tests::{Stack, encode_path, repo_root, stack, unique};
use reqwest::Method;
use serde_json::{Value, json};
use shared::jobs::Job;
use tokio::sync::RwLock;

/// The outage test pauses the homeserver: the others must not run meanwhile.
static HOMESERVER: RwLock<()> = RwLock::const_new(());

/// Runs `openmeet-local ops <job> <args> --json`; its report (the last line of stdout).
fn job(s: &Stack, job: Job, args: &[&str]) -> Value {
    let output = Command::new(repo_root().join("target/debug/openmeet-local"))
        .args(["ops", job.name()])
        .args(args)
        .arg("--json")
        .envs(s.env.iter())
        .env("RUST_LOG", "warn")
        .env("OPENMEET_DRIFT_REQUESTS_PER_SEC", "1000")
        .output()
        .expect("the stack's openmeet-local binary (built by scripts/stack.sh start)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "openmeet-local {job} {args:?}: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{job} report {last:?}: {e}"))
}

fn tenant() -> String {
    unique("it-heal")
}

async fn put_member(s: &Stack, tenant: &str, path: &str, user: &str, role: &str) {
    let (status, body) = s
        .api(Method::PUT, &format!("{path}/members/{user}"), Some(&s.service_jwt(tenant)), Some(json!({"role": role})))
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn membership(s: &Stack, room_id: &str, user_id: &str) -> Option<String> {
    let path =
        format!("/_matrix/client/v3/rooms/{}/state/m.room.member/{}", encode_path(room_id), encode_path(user_id));
    let (status, content) = s.matrix(Method::GET, &path, None, None).await;
    (status == 200).then(|| content["membership"].as_str().unwrap_or_default().to_owned())
}

/// Read with `token` (the platform's by default).
async fn power_levels(s: &Stack, room_id: &str, token: Option<&str>) -> Value {
    let path = format!("/_matrix/client/v3/rooms/{}/state/m.room.power_levels/", encode_path(room_id));
    let (status, content) = s.matrix(Method::GET, &path, token, None).await;
    assert_eq!(status, 200, "{content}");
    content
}

#[tokio::test]
async fn drift_made_by_hand_is_repaired_once_and_unmanaged_rooms_are_left_alone() {
    let _shared = HOMESERVER.read().await;
    let s = stack();
    let t = tenant();
    let (slug, ann, bob, cy) = (unique("heal"), unique("ann"), unique("bob"), unique("cy"));
    let room_id = s.group_room(&t, &slug, &[&bob, &cy]).await;
    put_member(s, &t, &format!("/v1/groups/{slug}"), &ann, "owner").await;
    let (ann_token, _) = s.session(&t, &ann, None).await;
    let (bob_id, cy_id) = (s.matrix_user_id(&t, &bob), s.matrix_user_id(&t, &cy));

    // By hand: the owner kicks Bob with her own token; someone with the platform's token raises Cy.
    let kick = format!("/_matrix/client/v3/rooms/{}/kick", encode_path(&room_id));
    let (status, body) = s.matrix(Method::POST, &kick, Some(&ann_token), Some(json!({"user_id": bob_id}))).await;
    assert_eq!(status, 200, "{body}");
    let mut levels = power_levels(s, &room_id, None).await;
    levels["users"][&cy_id] = json!(50);
    let put_levels = format!("/_matrix/client/v3/rooms/{}/state/m.room.power_levels/", encode_path(&room_id));
    let (status, body) = s.matrix(Method::PUT, &put_levels, None, Some(levels)).await;
    assert_eq!(status, 200, "{body}");

    // A room a user made themselves (not managed), with a level of its own.
    let (status, own) = s
        .matrix(
            Method::POST,
            "/_matrix/client/v3/createRoom",
            Some(&ann_token),
            Some(json!({"name": "mine", "preset": "private_chat"})),
        )
        .await;
    assert_eq!(status, 200, "{own}");
    let own_room = own["room_id"].as_str().expect("room_id").to_owned();
    let own_levels = power_levels(s, &own_room, Some(&ann_token)).await;

    let dry = job(s, Job::DriftRepair, &["--tenant", &t, "--dry-run"]);
    assert_eq!(dry["repairs"], 0, "{dry}");
    assert_eq!(dry["rooms"].as_array().map(Vec::len), Some(1), "only the drifted managed room: {dry}");
    let listed = dry["rooms"][0]["drift"].to_string();
    assert!(listed.contains(&format!("member missing: {bob_id}")) && listed.contains("power levels"), "{dry}");
    assert_eq!(membership(s, &room_id, &bob_id).await.as_deref(), Some("leave"), "a dry run touches nothing");

    let pass = job(s, Job::DriftRepair, &["--tenant", &t]);
    assert_eq!((pass["failures"].as_u64(), pass["repairs"].as_u64()), (Some(0), Some(2)), "{pass}");
    assert_eq!(membership(s, &room_id, &bob_id).await.as_deref(), Some("join"), "Bob is restored");
    assert!(power_levels(s, &room_id, None).await["users"].get(&cy_id).is_none(), "Cy is back at the member level");

    let second = job(s, Job::DriftRepair, &["--tenant", &t]);
    assert_eq!((second["driftFound"].as_u64(), second["repairs"].as_u64()), (Some(0), Some(0)), "{second}");
    assert_eq!(second["roomsChecked"], 1, "{second}");
    assert_eq!(power_levels(s, &own_room, Some(&ann_token)).await, own_levels, "an unmanaged room is untouched");
}

#[tokio::test]
async fn an_event_room_past_retention_is_archived_and_stays_readable_a_cancelled_one_sooner() {
    let _shared = HOMESERVER.read().await;
    let s = stack();
    let t = tenant();
    let service = s.service_jwt(&t);
    let (done, cancelled, ann) = (unique("past"), unique("off"), unique("ann"));
    for slug in [&done, &cancelled] {
        let body = json!({"name": "Walk", "startsAt": "2031-05-01T10:00:00Z", "endsAt": "2031-05-01T12:00:00Z", "visibility": "private"});
        let (status, room) = s.api(Method::PUT, &format!("/v1/events/{slug}/room"), Some(&service), Some(body)).await;
        assert_eq!(status, 201, "{room}");
        put_member(s, &t, &format!("/v1/events/{slug}"), &ann, "member").await;
    }
    let jwt = s.user_jwt(&t, &ann, None);
    let path = format!("/v1/events/{done}/messages");
    let (status, sent) =
        s.api(Method::POST, &path, Some(&jwt), Some(json!({"body": "see you", "format": "plain"}))).await;
    assert_eq!(status, 201, "{sent}");
    let (status, body) =
        s.api(Method::POST, &format!("/v1/events/{cancelled}/room/cancel"), Some(&service), Some(json!({}))).await;
    assert_eq!(status, 200, "{body}");

    // A day later: nothing. Eight days later, only the cancelled one (7 days); 30 days after the end, the other too.
    let tomorrow = (shared_now() + 86_400).to_string();
    let report = job(s, Job::Retention, &["--tenant", &t, "--now", &tomorrow]);
    assert_eq!(report["archived"], json!([]), "{report}");
    let now = shared_now() + 8 * 86_400;
    let report = job(s, Job::Retention, &["--tenant", &t, "--now", &now.to_string()]);
    assert_eq!(report["archived"], json!([format!("{t}/events/{cancelled}")]), "{report}");
    let report = job(s, Job::Retention, &["--tenant", &t, "--now", "2031-06-01T00:00:00Z", "--dry-run"]);
    assert_eq!(report["archived"], json!([format!("{t}/events/{done}")]), "{report}");
    let (_, room) = s.api(Method::GET, &format!("/v1/events/{done}/room"), Some(&service), None).await;
    assert_eq!(room["state"], "active", "a dry run changes nothing");
    let report = job(s, Job::Retention, &["--tenant", &t, "--now", "2031-06-01T00:00:00Z"]);
    assert_eq!(report["archived"], json!([format!("{t}/events/{done}")]), "{report}");
    let (_, room) = s.api(Method::GET, &format!("/v1/events/{done}/room"), Some(&service), None).await;
    assert_eq!(room["state"], "archived", "{room}");

    // The member still reads its history, and can no longer post.
    let (status, page) = s.api(Method::GET, &path, Some(&jwt), None).await;
    assert_eq!(status, 200, "{page}");
    assert!(page["messages"].as_array().expect("messages").iter().any(|m| m["body"] == "see you"), "{page}");
    let (status, _) = s.api(Method::POST, &path, Some(&jwt), Some(json!({"body": "late", "format": "plain"}))).await;
    assert_eq!(status, 409, "archived: read-only");
    let again = job(s, Job::Retention, &["--tenant", &t, "--now", "2031-06-01T00:00:00Z"]);
    assert_eq!((again["archived"].clone(), again["purged"].clone()), (json!([]), json!([])), "{again}");
}

fn shared_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[tokio::test]
async fn the_sweep_deletes_expired_records_and_leaves_live_ones() {
    let _shared = HOMESERVER.read().await;
    let s = stack();
    let db = aws_sdk_dynamodb::Client::new(&s.aws().await);
    let table = s.var("OPENMEET_TABLE");
    let pk = format!("IT-SWEEP#{}", unique("k"));
    let now = shared_now();
    for (sk, expires) in [("expired", Some(now - 10)), ("live", Some(now + 3600)), ("forever", None)] {
        let mut put = db
            .put_item()
            .table_name(table)
            .item("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.clone()))
            .item("sk", aws_sdk_dynamodb::types::AttributeValue::S(sk.into()));
        if let Some(expires) = expires {
            put = put.item("expiresAt", aws_sdk_dynamodb::types::AttributeValue::N(expires.to_string()));
        }
        put.send().await.expect("put");
    }
    let report = job(s, Job::SweepExpired, &["--all"]);
    assert!(report["deleted"].as_u64().is_some_and(|n| n >= 1) && report["complete"] == true, "{report}");
    let items = db
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.clone()))
        .send()
        .await
        .expect("query");
    let mut left: Vec<String> =
        items.items().iter().filter_map(|item| item.get("sk").and_then(|v| v.as_s().ok()).cloned()).collect();
    left.sort();
    assert_eq!(left, ["forever", "live"]);
}

#[tokio::test]
async fn a_reminder_is_posted_once_and_none_for_a_cancelled_or_moved_event() {
    let _shared = HOMESERVER.read().await;
    let s = stack();
    let t = tenant();
    let service = s.service_jwt(&t);
    let (walk, off, moved) = (unique("walk"), unique("off"), unique("moved"));
    let mut rooms = Vec::new();
    for slug in [&walk, &off, &moved] {
        let body = json!({"name": "Ridge walk", "startsAt": "2032-03-01T10:00:00Z", "visibility": "private"});
        let (status, room) = s.api(Method::PUT, &format!("/v1/events/{slug}/room"), Some(&service), Some(body)).await;
        assert_eq!(status, 201, "{room}");
        rooms.push(room["roomId"].as_str().expect("roomId").to_owned());
    }
    let (status, body) =
        s.api(Method::POST, &format!("/v1/events/{off}/room/cancel"), Some(&service), Some(json!({}))).await;
    assert_eq!(status, 200, "{body}");
    let body = json!({"name": "Ridge walk", "startsAt": "2032-03-08T10:00:00Z", "visibility": "private"});
    let (status, room) = s.api(Method::PUT, &format!("/v1/events/{moved}/room"), Some(&service), Some(body)).await;
    assert_eq!(status, 200, "{room}");

    // Half an hour before the (old) start, twice, as a schedule that fires twice.
    for round in 0..2 {
        let report = job(s, Job::Reminders, &["--tenant", &t, "--now", "2032-03-01T09:30:00Z"]);
        let expected = if round == 0 { json!([format!("{t}/events/{walk} soon")]) } else { json!([]) };
        assert_eq!(report["posted"], expected, "round {round}: {report}");
    }
    let report = job(s, Job::Reminders, &["--tenant", &t, "--now", "2032-03-01T10:05:00Z"]);
    assert_eq!(report["posted"], json!([format!("{t}/events/{walk} start")]), "{report}");
    let notices = |bodies: Vec<Value>| {
        bodies
            .iter()
            .filter(|e| e["content"]["msgtype"] == "m.notice")
            .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let read = |room_id: String| async move {
        let path = format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100", encode_path(&room_id));
        let (status, page) = s.matrix(Method::GET, &path, None, None).await;
        assert_eq!(status, 200, "{page}");
        page["chunk"].as_array().cloned().unwrap_or_default()
    };
    let walk_notices = notices(read(rooms[0].clone()).await);
    assert_eq!(walk_notices.iter().filter(|b| b.starts_with("Reminder:")).count(), 1, "{walk_notices:?}");
    assert_eq!(walk_notices.iter().filter(|b| b.contains("starting now")).count(), 1, "{walk_notices:?}");
    for room_id in [&rooms[1], &rooms[2]] {
        let others = notices(read(room_id.clone()).await);
        assert!(!others.iter().any(|b| b.starts_with("Reminder:") || b.contains("starting now")), "{others:?}");
    }
}

/// Waits until the operation has left `queued`; its final view.
async fn settled(s: &Stack, jwt: &str, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let (status, view) = s.api(Method::GET, &format!("/v1/operations/{id}"), Some(jwt), None).await;
        assert_eq!(status, 200, "{view}");
        if view["status"] != "queued" {
            return view;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "still queued: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_delete_during_an_outage_is_queued_and_redacts_once_a_refused_one_fails() {
    let _exclusive = HOMESERVER.write().await;
    let s = stack();
    let t = tenant();
    let (slug, ann, bob) = (unique("out"), unique("ann"), unique("bob"));
    let room_id = s.group_room(&t, &slug, &[&ann, &bob]).await;
    let (ann_jwt, bob_jwt) = (s.user_jwt(&t, &ann, None), s.user_jwt(&t, &bob, None));
    let path = format!("/v1/groups/{slug}/messages");
    let (status, sent) =
        s.api(Method::POST, &path, Some(&ann_jwt), Some(json!({"body": "oops", "format": "plain"}))).await;
    assert_eq!(status, 201, "{sent}");
    let event_id = sent["eventId"].as_str().expect("eventId").to_owned();
    let (status, kept) =
        s.api(Method::POST, &path, Some(&ann_jwt), Some(json!({"body": "keep", "format": "plain"}))).await;
    assert_eq!(status, 201, "{kept}");
    let kept = format!("{path}/{}", encode_path(kept["eventId"].as_str().expect("eventId")));
    let reaction = format!("{path}/{}/reactions/{}", encode_path(&event_id), encode_path("👍"));
    let (status, body) = s.api(Method::PUT, &reaction, Some(&bob_jwt), None).await;
    assert_eq!(status, 204, "{body}");

    let paused = PausedHomeserver::pause(s);
    let message = format!("{path}/{}", encode_path(&event_id));
    let (status, refused) = s.api(Method::DELETE, &kept, Some(&bob_jwt), None).await;
    assert_eq!((status.as_u16(), refused["status"].as_str()), (202, Some("queued")), "{refused}");
    let (status, unreact) = s.api(Method::DELETE, &reaction, Some(&bob_jwt), None).await;
    assert_eq!((status.as_u16(), unreact["status"].as_str()), (202, Some("queued")), "{unreact}");
    let (status, deleted) = s.api(Method::DELETE, &message, Some(&ann_jwt), None).await;
    assert_eq!((status.as_u16(), deleted["status"].as_str()), (202, Some("queued")), "{deleted}");
    paused.resume();

    let refused = settled(s, &bob_jwt, refused["operationId"].as_str().expect("id")).await;
    assert_eq!(refused["status"], "failed", "Bob may not delete Ann's message: {refused}");
    assert!(refused["error"].as_str().is_some_and(|e| e.contains("sender or a moderator")), "{refused}");
    assert_eq!(settled(s, &bob_jwt, unreact["operationId"].as_str().expect("id")).await["status"], "delivered");
    assert_eq!(settled(s, &ann_jwt, deleted["operationId"].as_str().expect("id")).await["status"], "delivered");

    let page_path = format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100", encode_path(&room_id));
    let (status, page) = s.matrix(Method::GET, &page_path, None, None).await;
    assert_eq!(status, 200, "{page}");
    let chunk = page["chunk"].as_array().cloned().unwrap_or_default();
    let redactions_of = |id: &str| {
        chunk
            .iter()
            .filter(|e| e["type"] == "m.room.redaction" && (e["redacts"] == id || e["content"]["redacts"] == id))
            .count()
    };
    assert_eq!(redactions_of(&event_id), 1, "the message is redacted exactly once");
    let reaction_ids: Vec<&str> =
        chunk.iter().filter(|e| e["type"] == "m.reaction").filter_map(|e| e["event_id"].as_str()).collect();
    assert_eq!(reaction_ids.len(), 1);
    assert_eq!(redactions_of(reaction_ids[0]), 1, "the reaction is removed once");
}
