//! The cutover command (`openmeet-cutover`, tools/cutover) run as a built binary against the local stack: plan
//! changes nothing, run + verify, drift found and repaired, a SIGKILLed run continued without duplicates, rollback,
//! and bad snapshots refused. Each test uses its own tenant.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;

use integration_tests::cutover_cli::{command, cutover};
use integration_tests::{encode_path, stack, unique};
use reqwest::Method;
use serde_json::{Value, json};

fn snapshot_path(tenant: &str) -> PathBuf {
    std::env::temp_dir().join(format!("cutover-{tenant}.jsonl"))
}

fn generate(tenant: &str, users: u64, groups: u64, events: u64, memberships: u64) -> PathBuf {
    let path = snapshot_path(tenant);
    let counts = [users, groups, events, memberships].map(|n| n.to_string());
    let out = path.display().to_string();
    let (code, _, stderr) = cutover(&[
        "generate",
        "--tenant",
        tenant,
        "--users",
        &counts[0],
        "--groups",
        &counts[1],
        "--events",
        &counts[2],
        "--memberships",
        &counts[3],
        "--seed",
        "42",
        "--out",
        &out,
    ]);
    assert_eq!(code, 0, "{stderr}");
    path
}

fn discrepancies(report: &Value) -> Vec<String> {
    report["discrepancies"].as_array().into_iter().flatten().filter_map(|d| d.as_str().map(str::to_owned)).collect()
}

fn run_ok(path: &str) -> Value {
    let (code, report, stderr) = cutover(&["run", "--snapshot", path, "--json"]);
    assert_eq!(code, 0, "run failed: {report} {stderr}");
    report
}

fn verify_clean(path: &str) {
    let (code, report, stderr) = cutover(&["verify", "--snapshot", path, "--json"]);
    assert_eq!((code, discrepancies(&report)), (0, vec![]), "{stderr}");
}

async fn room_id(alias: &str) -> Option<String> {
    let (status, body) = stack()
        .matrix(Method::GET, &format!("/_matrix/client/v3/directory/room/{}", encode_path(alias)), None, None)
        .await;
    (status == 200).then(|| body["room_id"].as_str().expect("room_id").to_owned())
}

fn alias(tenant: &str, kind: &str, slug: &str) -> String {
    format!("#om_{tenant}.{kind}.{slug}:{}", stack().var("MATRIX_SERVER_NAME"))
}

/// Members of a generated room, from the snapshot: (userId, role).
fn members_of(path: &PathBuf, kind: &str, slug: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .expect("snapshot")
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|r| r["type"] == "member" && r["kind"] == kind && r["slug"] == slug)
        .map(|r| {
            (r["userId"].as_str().unwrap_or_default().to_owned(), r["role"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_community_is_planned_provisioned_verified_and_repaired() {
    let s = stack();
    let tenant = unique("cut").replace('-', "");
    // Big enough for a many-member group with plain members to kick and promote; scale is bench_cutover's job
    // (docs/cutover.md): Synapse makes ~3.5 joins/s here, so every 100 memberships cost ~30 s of the test command.
    let (users, groups, events, memberships) = (40, 6, 12, 240);
    let path = generate(&tenant, users, groups, events, memberships);
    let file = path.display().to_string();

    // Plan on a fresh homeserver: everything to create, nothing changed.
    let (code, plan, stderr) = cutover(&["plan", "--snapshot", &file, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let counts = |kind: &str| plan[kind]["create"].as_array().map_or(0, |a| a.len() as u64);
    assert_eq!(
        (counts("users"), counts("rooms"), counts("memberships")),
        (users, groups + events, memberships),
        "{plan}"
    );
    let first_user = s.matrix_user_id(&tenant, "u000000");
    let (status, _) =
        s.matrix(Method::GET, &format!("/_synapse/admin/v2/users/{}", encode_path(&first_user)), None, None).await;
    assert_eq!(status, 404, "plan created a user");
    assert_eq!(room_id(&alias(&tenant, "group", "g0000")).await, None, "plan created a room");

    let report = run_ok(&file);
    assert_eq!(
        (report["usersCreated"].as_u64(), report["roomsCreated"].as_u64()),
        (Some(users), Some(groups + events)),
        "{report}"
    );
    verify_clean(&file);

    // Drift made in Matrix: a member kicked from the biggest group, another member's power level raised.
    let group = room_id(&alias(&tenant, "group", "g0000")).await.expect("group room");
    let members = members_of(&path, "groups", "g0000");
    let (kicked, _) = members.iter().find(|(_, role)| role == "member").expect("a plain member");
    let kicked = s.matrix_user_id(&tenant, kicked);
    let (status, body) = s
        .matrix(
            Method::POST,
            &format!("/_matrix/client/v3/rooms/{}/kick", encode_path(&group)),
            None,
            Some(json!({"user_id": kicked, "reason": "drift"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (raised, _) = members.iter().rev().find(|(_, role)| role == "member").expect("another member");
    let raised = s.matrix_user_id(&tenant, raised);
    let levels_path = format!("/_matrix/client/v3/rooms/{}/state/m.room.power_levels/", encode_path(&group));
    let (_, mut levels) = s.matrix(Method::GET, &levels_path, None, None).await;
    levels["users"][&raised] = json!(100);
    let (status, body) = s.matrix(Method::PUT, &levels_path, None, Some(levels)).await;
    assert_eq!(status, 200, "{body}");

    let (code, report, _) = cutover(&["verify", "--snapshot", &file, "--json"]);
    let found = discrepancies(&report);
    assert_eq!(code, 1, "{report}");
    assert!(found.iter().any(|d| d.contains(&kicked) && d.contains("missing")), "{found:?}");
    assert!(found.iter().any(|d| d.contains(&raised) && d.contains("power level 100")), "{found:?}");

    // A second run repairs both.
    run_ok(&file);
    verify_clean(&file);
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn a_run_killed_mid_way_continues_without_duplicates() {
    let s = stack();
    let tenant = unique("kill").replace('-', "");
    let path = generate(&tenant, 40, 4, 8, 160);
    let file = path.display().to_string();

    // Plain progress lines on stderr (not a terminal): kill -9 once the rooms are being made.
    let mut child =
        command(&["run", "--snapshot", &file]).stderr(Stdio::piped()).stdout(Stdio::null()).spawn().expect("spawns");
    let stderr = child.stderr.take().expect("stderr");
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if line.starts_with("[groups]") || line.starts_with("[events]") || line.starts_with("[memberships]") {
            break;
        }
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();

    let report = run_ok(&file);
    assert_eq!(report["continued"], true, "the re-run started over: {report}");
    let skipped: u64 = report["phases"].as_array().into_iter().flatten().filter_map(|p| p["skipped"].as_u64()).sum();
    assert!(skipped > 0, "nothing of the killed run was kept: {report}");
    verify_clean(&file);

    // One room per alias: the tenant's space, 4 groups with their spaces, 8 events.
    let (status, rooms) = s
        .matrix(Method::GET, &format!("/_synapse/admin/v1/rooms?limit=500&search_term=om_{tenant}."), None, None)
        .await;
    assert_eq!(status, 200, "{rooms}");
    assert_eq!(rooms["total_rooms"].as_u64(), Some(1 + 4 * 2 + 8), "{rooms}");

    let run_id = report["runId"].as_str().expect("runId");
    let (code, status, _) = cutover(&["status", "--run", run_id, "--json"]);
    assert_eq!(code, 0);
    assert_eq!(status[0]["state"], "complete", "{status}");
    assert_eq!(status[0]["failures"], json!([]), "{status}");
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn rollback_restores_exactly_the_state_before_the_run() {
    let tenant = unique("back").replace('-', "");
    let before = generate(&tenant, 20, 2, 3, 60);
    let before_file = before.display().to_string();
    run_ok(&before_file);
    verify_clean(&before_file);

    // The second snapshot renames a group, renames a user, drops one member, promotes another, and adds a new user
    // to an existing room and a new group.
    let text = std::fs::read_to_string(&before).expect("snapshot");
    let mut dropped = false;
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let mut record: Value = serde_json::from_str(line).expect("json");
        match record["type"].as_str() {
            Some("group") if record["slug"] == "g0000" => record["name"] = json!("Renamed club"),
            Some("user") if record["userId"] == "u000001" => record["displayName"] = json!("Someone else"),
            Some("member") if record["slug"] == "g0000" && record["role"] == "member" && !dropped => {
                dropped = true;
                continue;
            }
            Some("member") if record["slug"] == "g0001" && record["role"] == "member" => {
                record["role"] = json!("admin")
            }
            _ => {}
        }
        lines.push(record.to_string());
    }
    assert!(dropped, "the generated group has no plain member");
    for extra in [
        json!({"type": "user", "tenant": tenant, "userId": "newcomer", "displayName": "New", "avatarUrl": null}),
        json!({"type": "group", "tenant": tenant, "slug": "fresh", "name": "Fresh", "topic": null, "visibility": "private"}),
        json!({"type": "member", "tenant": tenant, "kind": "groups", "slug": "fresh", "userId": "newcomer", "role": "owner"}),
        json!({"type": "member", "tenant": tenant, "kind": "groups", "slug": "g0000", "userId": "newcomer", "role": "member"}),
    ] {
        lines.push(extra.to_string());
    }
    let after = snapshot_path(&format!("{tenant}-after"));
    std::fs::write(&after, lines.join("\n")).expect("write");
    let after_file = after.display().to_string();
    let report = run_ok(&after_file);
    verify_clean(&after_file);

    let run_id = report["runId"].as_str().expect("runId");
    let (code, rollback, stderr) = cutover(&["rollback", "--run", run_id, "--json"]);
    assert_eq!(code, 0, "{rollback} {stderr}");
    verify_clean(&before_file);
    assert_eq!(room_id(&alias(&tenant, "group", "fresh")).await, None, "the run's new room survived the rollback");
    let _ = std::fs::remove_file(before);
    let _ = std::fs::remove_file(after);
}

#[tokio::test]
async fn malformed_snapshots_exit_2_naming_the_line_and_change_nothing() {
    let s = stack();
    let tenant = unique("bad").replace('-', "");
    let path = snapshot_path(&tenant);
    let good = json!({"type": "user", "tenant": tenant, "userId": "alice", "displayName": "Alice", "avatarUrl": null});
    let cases = [
        json!({"type": "user", "tenant": tenant, "userId": "bob", "displayName": "Bob", "isAdmin": true}).to_string(),
        "{\"type\":\"user\",".to_owned(),
        json!({"type": "member", "tenant": tenant, "kind": "groups", "slug": "nowhere", "userId": "alice", "role": "owner"})
            .to_string(),
    ];
    for bad in cases {
        std::fs::write(&path, format!("{good}\n{bad}\n")).expect("write");
        for command in ["plan", "run", "verify"] {
            let (code, report, stderr) = cutover(&[command, "--snapshot", &path.display().to_string(), "--json"]);
            assert_eq!(code, 2, "{command} {bad}: {stderr}");
            assert!(stderr.contains("line 2"), "{command} {bad}: {stderr}");
            assert_eq!(report["error"]["code"], "bad_input", "{report}");
        }
    }
    let alice = s.matrix_user_id(&tenant, "alice");
    let (status, _) =
        s.matrix(Method::GET, &format!("/_synapse/admin/v2/users/{}", encode_path(&alice)), None, None).await;
    assert_eq!(status, 404, "a rejected snapshot created a user");
    let (code, _, stderr) = cutover(&["run", "--snapshot", "/nonexistent/snapshot.jsonl"]);
    assert_eq!(code, 2, "{stderr}");
    let _ = std::fs::remove_file(path);
}
