//! What the cutover brings over stays whole afterwards (issue 26, item 4), against the local stack: the run records
//! each room's desired state as the API does, so drift repair knows its rooms and repairs a rename made by hand;
//! a run, its rollback and a second run of the same snapshot end with `verify` clean (the users the rollback
//! deactivated are provisioned again); event rooms that ended years ago keep their imported history through a
//! retention pass a year later (archived, never purged by default). Each test uses its own tenant.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use integration_tests::cutover_cli::{ExportShape, ZulipExport, cutover};
use integration_tests::{encode_path, repo_root, stack, unique};
use reqwest::Method;
use serde_json::{Value, json};

/// A generated snapshot of `users`, 2 groups, 2 events and `memberships` for a fresh tenant.
fn generate(prefix: &str, users: u64, memberships: u64) -> (String, PathBuf) {
    let tenant = unique(prefix).replace('-', "");
    let path = std::env::temp_dir().join(format!("cutover-after-{tenant}.jsonl"));
    let (users, memberships, out) = (users.to_string(), memberships.to_string(), path.display().to_string());
    let args = ["generate", "--tenant", &tenant, "--users", &users, "--groups", "2", "--events", "2"];
    let rest = ["--memberships", &memberships, "--seed", "7", "--out", &out];
    let (code, _, stderr) = cutover(&[&args[..], &rest[..]].concat());
    assert_eq!(code, 0, "{stderr}");
    (tenant, path)
}

fn run_ok(snapshot: &str) -> Value {
    let (code, report, stderr) = cutover(&["run", "--snapshot", snapshot, "--json"]);
    assert_eq!(code, 0, "run failed: {report} {stderr}");
    report
}

fn verify(snapshot: &str) -> (i32, Value) {
    let (code, report, _) = cutover(&["verify", "--snapshot", snapshot, "--json"]);
    (code, report)
}

/// Runs `openmeet-local ops drift-repair --tenant T <args> --json`; its report (the last line of stdout).
fn drift_repair(tenant: &str, args: &[&str]) -> Value {
    let output = Command::new(repo_root().join("target/debug/openmeet-local"))
        .args(["ops", "drift-repair", "--tenant", tenant])
        .args(args)
        .arg("--json")
        .envs(stack().env.iter())
        .env("RUST_LOG", "warn")
        .env("OPENMEET_DRIFT_REQUESTS_PER_SEC", "1000")
        .output()
        .expect("the stack's openmeet-local binary (built by scripts/stack.sh start)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "drift-repair: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("drift-repair report {last:?}: {e}"))
}

async fn room_id(tenant: &str, kind: &str, slug: &str) -> String {
    let alias = format!("#om_{tenant}.{kind}.{slug}:{}", stack().var("MATRIX_SERVER_NAME"));
    let path = format!("/_matrix/client/v3/directory/room/{}", encode_path(&alias));
    let (status, body) = stack().matrix(Method::GET, &path, None, None).await;
    assert_eq!(status, 200, "{alias}: {body}");
    body["room_id"].as_str().expect("room_id").to_owned()
}

async fn room_name(room: &str) -> Value {
    let path = format!("/_matrix/client/v3/rooms/{}/state/m.room.name/", encode_path(room));
    stack().matrix(Method::GET, &path, None, None).await.1["name"].clone()
}

#[tokio::test]
async fn drift_repair_knows_the_cutovers_rooms_and_repairs_a_rename_by_hand() {
    let (tenant, snapshot) = generate("aftdrift", 10, 24);
    let file = snapshot.display().to_string();
    run_ok(&file);

    // The run's rooms (2 groups, 2 events) are managed, and match what it recorded.
    let dry = drift_repair(&tenant, &["--dry-run"]);
    assert_eq!((dry["roomsChecked"].as_u64(), dry["driftFound"].as_u64()), (Some(4), Some(0)), "{dry}");

    let room = room_id(&tenant, "group", "g0000").await;
    let name = room_name(&room).await;
    let path = format!("/_matrix/client/v3/rooms/{}/state/m.room.name/", encode_path(&room));
    let (status, body) = stack().matrix(Method::PUT, &path, None, Some(json!({"name": "by hand"}))).await;
    assert_eq!(status, 200, "{body}");
    let pass = drift_repair(&tenant, &[]);
    assert_eq!((pass["driftFound"].as_u64(), pass["repairs"].as_u64()), (Some(1), Some(1)), "{pass}");
    assert_eq!(room_name(&room).await, name, "the name the snapshot gave is back");
    assert_eq!(verify(&file).0, 0, "the repaired community verifies clean");
    let _ = std::fs::remove_file(snapshot);
}

#[tokio::test]
async fn a_run_its_rollback_and_a_second_run_end_with_verify_clean() {
    let (tenant, snapshot) = generate("aftrerun", 12, 30);
    let file = snapshot.display().to_string();
    let first = run_ok(&file);
    assert_eq!(verify(&file).0, 0);

    let run_id = first["runId"].as_str().expect("runId");
    let started = Instant::now();
    let (code, rollback, stderr) = cutover(&["rollback", "--run", run_id, "--json"]);
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{rollback} {stderr}");
    // The figure docs/cutover.md quotes (12 users, 4 rooms, 30 memberships), printed for the runbook.
    println!("rollback of {tenant}: {seconds:.2} s");
    let (code, report) = verify(&file);
    assert_eq!(code, 1, "after the rollback the community is gone: {report}");
    // Nothing of the tenant is managed any more: the purged rooms were forgotten.
    let gone = drift_repair(&tenant, &["--dry-run"]);
    assert_eq!(gone["roomsChecked"].as_u64(), Some(0), "{gone}");

    // The second run brings the deactivated users back and makes the community again.
    let second = run_ok(&file);
    assert_eq!(second["usersCreated"].as_u64(), Some(12), "every retired user is provisioned again: {second}");
    let (code, report) = verify(&file);
    assert_eq!(code, 0, "{report}");

    // A reactivated user opens a session again (their first after the second run).
    let (token, _) = stack().session(&tenant, "u000000", None).await;
    let (status, body) = stack().matrix(Method::GET, "/_matrix/client/v3/account/whoami", Some(&token), None).await;
    assert_eq!(status, 200, "{body}");

    // And its own rollback retires them again: verify sees the community gone.
    let run_id = second["runId"].as_str().expect("runId");
    let (code, rollback, stderr) = cutover(&["rollback", "--run", run_id, "--json"]);
    assert_eq!(code, 0, "{rollback} {stderr}");
    assert_eq!(verify(&file).0, 1);
    let _ = std::fs::remove_file(snapshot);
}

/// Runs `openmeet-local ops retention --tenant T --now NOW --json`; its report.
fn retention(tenant: &str, now: u64) -> Value {
    let output = Command::new(repo_root().join("target/debug/openmeet-local"))
        .args(["ops", "retention", "--tenant", tenant, "--now", &now.to_string(), "--json"])
        .envs(stack().env.iter())
        .env("RUST_LOG", "warn")
        .output()
        .expect("the stack's openmeet-local binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "retention: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("retention report")
}

#[tokio::test]
async fn event_rooms_ended_years_ago_keep_their_imported_history_through_retention() {
    let export = ZulipExport::provisioned("aftret", ExportShape { users: 4, messages: 24, upload_every: 9, seed: 5 });
    let tenant = export.tenant.clone();
    // The provisioned community plus two events that ended in 2020, one cancelled, with the first group's members.
    let group = export.a_group();
    let events = [("past", "active"), ("off", "cancelled")].map(|(slug, status)| {
        json!({"type": "event", "tenant": tenant, "slug": slug, "name": format!("Walk {slug}"),
            "startsAt": "2020-05-01T10:00:00Z", "endsAt": "2020-05-01T12:00:00Z", "location": null,
            "groupSlug": group, "visibility": "private", "status": status})
    });
    let snapshot = export.snapshot_with_events("snapshot-events.jsonl", &group, &events);
    let file = snapshot.display().to_string();
    run_ok(&file);

    // The first mapped stream goes to the past event's room, the other stays in its group's room.
    let mut mapping: Value = serde_json::from_slice(&std::fs::read(&export.mapping).expect("mapping")).expect("json");
    let streams = mapping["streams"].as_object_mut().expect("streams");
    let mut targets = streams.values_mut();
    *targets.next().expect("a mapped stream") = json!({"kind": "events", "slug": "past"});
    let kept = targets.next().expect("a second stream")["slug"].as_str().expect("slug").to_owned();
    std::fs::write(&export.mapping, mapping.to_string()).expect("mapping");
    let (code, report, stderr) = export.import();
    assert_eq!(code, 0, "{report} {stderr}");

    let rooms = [room_id(&tenant, "event", "past").await, room_id(&tenant, "group", &kept).await];
    let mut before = Vec::new();
    for room in &rooms {
        let bodies = stack().text_bodies(room, None).await;
        assert!(bodies.len() > 1, "imported history in {room}: {bodies:?}");
        before.push(bodies);
    }
    // A year from now: both rooms are archived (read-only, kept), none purged; their history is all there.
    let a_year_later =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() + 365 * 86_400;
    let report = retention(&tenant, a_year_later);
    assert_eq!(report["purged"], json!([]), "{report}");
    assert_eq!(report["failed"], json!([]), "{report}");
    assert_eq!(report["eventRooms"].as_u64(), Some(2), "retention sees the cutover's event rooms: {report}");
    for (room, bodies) in rooms.iter().zip(&before) {
        let after = stack().text_bodies(room, None).await;
        assert!(after.len() >= bodies.len() && bodies.iter().all(|b| after.contains(b)), "{room}: {after:?}");
    }
    assert_eq!(retention(&tenant, a_year_later)["purged"], json!([]));
}
