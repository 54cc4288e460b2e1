//! The staged cutover against the stack (docs/cutover.md, "Stages"): days before the window, `run --until rooms`
//! (users, rooms), `import-zulip` (history into rooms nobody has joined), `run` (memberships: the staged run
//! continued), and nobody has an unread count or a highlight from the history; in the window, a snapshot with a few
//! changes is planned and run as a delta against the staged run (unchanged entities cost no homeserver call), a
//! later export adds exactly its new messages after the staged ones, `verify` is clean, and a rollback of the
//! window's run restores the staged snapshot but for the one cancellation it cannot undo.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use integration_tests::cutover_cli::{ExportShape, ZulipExport, cutover, group_room};
use integration_tests::{encode_path, remember_session, stack};
use reqwest::Method;
use serde_json::{Value, json};

fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("snapshot");
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("json")).collect()
}

fn write(path: &Path, records: &[Value]) -> String {
    let text: Vec<String> = records.iter().map(Value::to_string).collect();
    std::fs::write(path, text.join("\n")).expect("write");
    path.display().to_string()
}

/// Each room's member list (`kind/slug` → user → role).
fn rosters(records: &[Value]) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut rooms: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for r in records {
        match r["type"].as_str() {
            Some("group") => drop(rooms.entry(format!("groups/{}", r["slug"].as_str().expect("slug"))).or_default()),
            Some("event") => drop(rooms.entry(format!("events/{}", r["slug"].as_str().expect("slug"))).or_default()),
            Some("member") => {
                let room = format!("{}/{}", r["kind"].as_str().expect("kind"), r["slug"].as_str().expect("slug"));
                let (user, role) = (r["userId"].as_str().expect("user"), r["role"].as_str().expect("role"));
                rooms.entry(room).or_default().insert(user.to_owned(), role.to_owned());
            }
            _ => {}
        }
    }
    rooms
}

fn ok(args: &[&str]) -> Value {
    let (code, report, stderr) = cutover(args);
    assert_eq!(code, 0, "{args:?}: {report} {stderr}");
    report
}

fn phase<'a>(report: &'a Value, name: &str) -> &'a Value {
    let phases = report["phases"].as_array().expect("phases");
    phases.iter().find(|p| p["phase"] == name).unwrap_or_else(|| panic!("no phase {name}: {report}"))
}

fn counts(phase: &Value) -> [u64; 4] {
    ["applied", "unchanged", "removed", "failed"].map(|field| phase[field].as_u64().unwrap_or(0))
}

/// S: the export's users and streams, plus a community of 40 users, 4 groups and 6 events.
fn staged_snapshot(export: &ZulipExport, zulip_snapshot: &Path) -> (PathBuf, Vec<Value>) {
    let dir = zulip_snapshot.parent().expect("dir").to_path_buf();
    let community = dir.join("community.jsonl").display().to_string();
    let tenant = export.tenant.as_str();
    let shape = ["--users", "40", "--groups", "4", "--events", "6", "--memberships", "120", "--seed", "5"];
    ok(&[&["generate", "--tenant", tenant, "--out", &community][..], &shape[..]].concat());
    let mut records = lines(zulip_snapshot);
    records.extend(lines(Path::new(&community)));
    let path = dir.join("s.jsonl");
    write(&path, &records);
    (path, records)
}

/// The slugs of the snapshot's active events (the generator makes some cancelled or archived).
fn active_events(records: &[Value]) -> Vec<String> {
    let active = records.iter().filter(|r| r["type"] == "event" && r["status"] == "active");
    active.filter_map(|r| r["slug"].as_str().map(str::to_owned)).collect()
}

/// S2: two users added (members of g0000 and the second active event), u000005 removed with their memberships, one
/// member of g0001 promoted, g0002 renamed, the first active event cancelled.
fn window_snapshot(tenant: &str, records: &[Value]) -> Vec<Value> {
    let events = active_events(records);
    let (cancelled, joined) = (events[0].as_str(), events[1].as_str());
    let mut promoted = false;
    let mut next = Vec::new();
    for record in records {
        let mut record = record.clone();
        let slug = record["slug"].as_str().unwrap_or_default().to_owned();
        match record["type"].as_str() {
            Some("user" | "member") if record["userId"] == "u000005" => continue,
            Some("group") if slug == "g0002" => record["name"] = json!("Rust club, renamed"),
            Some("event") if slug == cancelled => record["status"] = json!("cancelled"),
            Some("member") if slug == "g0001" && record["role"] == "member" && !promoted => {
                promoted = true;
                record["role"] = json!("moderator");
            }
            _ => {}
        }
        next.push(record);
    }
    assert!(promoted, "g0001 has no plain member");
    for user in ["n000001", "n000002"] {
        next.push(
            json!({"type": "user", "tenant": tenant, "userId": user, "displayName": "Newcomer", "avatarUrl": null}),
        );
        for (kind, slug) in [("groups", "g0000"), ("events", joined)] {
            next.push(json!({"type": "member", "tenant": tenant, "kind": kind, "slug": slug, "userId": user, "role": "member"}));
        }
    }
    next
}

/// E2: E plus three newer messages in stream-0 (two in a staged topic, one in a new topic) and one edit of a staged
/// message; returns the directory and the new messages' texts in order.
fn window_export(export: &ZulipExport) -> (PathBuf, Vec<String>) {
    let dir = export.dir.parent().expect("dir").join("export2");
    let copied = std::process::Command::new("cp").arg("-r").arg(&export.dir).arg(&dir).status().expect("cp");
    assert!(copied.success());
    let name = "messages-000001.json";
    let mut file: Value = serde_json::from_slice(&std::fs::read(dir.join(name)).expect(name)).expect("json");
    let messages = file["zerver_message"].as_array_mut().expect("messages");
    let first = messages.iter().find(|m| m["recipient"] == 200).expect("a stream-0 message").clone();
    let last_id = messages.iter().filter_map(|m| m["id"].as_i64()).max().expect("ids");
    let last_time = messages.iter().filter_map(|m| m["date_sent"].as_f64()).fold(0.0, f64::max);
    if let Some(edited) = messages.iter_mut().find(|m| m["id"] == first["id"]) {
        edited["content"] = json!("Edited after staging.");
        edited["last_edit_time"] = json!(last_time + 30.0);
    }
    let texts: Vec<String> = (1..=3).map(|i| format!("Window message {i}")).collect();
    for (i, text) in texts.iter().enumerate() {
        let mut message = first.clone();
        message["id"] = json!(last_id + 1 + i as i64);
        message["date_sent"] = json!(last_time + 60.0 * (i as f64 + 1.0));
        message["content"] = json!(text);
        message["edit_history"] = Value::Null;
        message["last_edit_time"] = Value::Null;
        message["subject"] = json!(if i == 2 { "A topic opened after staging" } else { "Topic 0" });
        messages.push(message);
    }
    std::fs::write(dir.join(name), file.to_string()).expect(name);
    (dir, texts)
}

/// A member's own view: the unread and highlight counts of `rooms` in their initial sync. The session's token
/// carries the member's name as OpenMeet has it (a session sets the profile from the token).
async fn unread(tenant: &str, user: &str, name: &str, rooms: &[String]) -> Vec<(String, u64, u64)> {
    let s = stack();
    let jwt = s.user_jwt(tenant, user, Some(name));
    let (status, session) = s.api(Method::POST, "/v1/me/matrix-session", Some(&jwt), Some(json!({}))).await;
    assert_eq!(status, 200, "session for {user}: {session}");
    let token = remember_session(&session);
    let (status, sync) = s.matrix(Method::GET, "/_matrix/client/v3/sync?timeout=0", Some(&token), None).await;
    assert_eq!(status, 200, "{sync}");
    rooms
        .iter()
        .map(|room| {
            let joined = &sync["rooms"]["join"][room];
            assert!(joined.is_object(), "{user} is not in {room}");
            let counts = &joined["unread_notifications"];
            let count = |field: &str| counts[field].as_u64().unwrap_or(0);
            (user.to_owned(), count("notification_count"), count("highlight_count"))
        })
        .collect()
}

#[tokio::test]
async fn a_staged_community_takes_only_its_delta_in_the_window() {
    let shape = ExportShape { users: 4, messages: 16, upload_every: 0, seed: 3 };
    let (export, zulip_snapshot) = ZulipExport::generated("stage", shape);
    let tenant = export.tenant.clone();
    let (s_path, s_records) = staged_snapshot(&export, &zulip_snapshot);
    let s_file = s_path.display().to_string();

    // Days before the window: users and rooms, staged.
    let staged = ok(&["run", "--snapshot", &s_file, "--until", "rooms", "--json"]);
    assert_eq!(staged["state"], "staged", "{staged}");
    assert!(staged["phases"].as_array().expect("phases").iter().all(|p| p["phase"] != "memberships"), "{staged}");
    let run_id = staged["runId"].as_str().expect("runId").to_owned();
    let status = ok(&["status", "--run", &run_id, "--json"]);
    assert_eq!(status[0]["state"], "staged", "{status}");

    // The history, into rooms nobody has joined yet.
    let (code, imported, stderr) = export.import();
    assert_eq!(code, 0, "{imported} {stderr}");

    // Memberships: the same snapshot continues the staged run.
    let members = ok(&["run", "--snapshot", &s_file, "--json"]);
    assert_eq!((members["runId"].as_str(), &members["continued"]), (Some(run_id.as_str()), &json!(true)));
    assert_eq!(members["state"], "complete", "{members}");
    ok(&["verify", "--snapshot", &s_file, "--json"]);
    eprintln!(
        "staging: users+rooms {:.2}s, import {:.2}s, memberships {:.2}s; {} homeserver calls",
        staged["seconds"].as_f64().unwrap_or(0.0),
        imported["seconds"].as_f64().unwrap_or(0.0),
        members["seconds"].as_f64().unwrap_or(0.0),
        staged["homeserverCalls"].as_u64().unwrap_or(0) + members["homeserverCalls"].as_u64().unwrap_or(0),
    );

    // Nobody's unread, no highlight, even for the member an imported message mentions (zu0000).
    let streams = [group_room(&tenant, "zs000").await, group_room(&tenant, "zs001").await];
    for (user, name) in [("zu0000", "Member 0"), ("zu0001", "Member 1"), ("zu0002", "Member 2"), ("zu0003", "Member 3")]
    {
        for (who, notifications, highlights) in unread(&tenant, user, name, &streams).await {
            assert_eq!((notifications, highlights), (0, 0), "{who} has unread history");
        }
    }
    let before_window = stack().text_bodies(&streams[0], None).await;

    // The window: a fresh snapshot, planned as a delta.
    let s2_records = window_snapshot(&tenant, &s_records);
    let s2_file = write(&s_path.with_file_name("s2.jsonl"), &s2_records);
    let (before, after) = (rosters(&s_records), rosters(&s2_records));
    let changed_rosters = after.iter().filter(|(room, list)| before.get(*room) != Some(list)).count() as u64;
    let gone_user = format!("user:{tenant}:u000005");
    let started = std::time::Instant::now();
    let plan = ok(&["plan", "--snapshot", &s2_file, "--json"]);
    eprintln!("window plan: {:.2}s", started.elapsed().as_secs_f64());
    assert_eq!(plan["base"].as_str(), Some(run_id.as_str()), "{plan}");
    let names = |list: &Value| -> BTreeSet<String> {
        list.as_array().expect("list").iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
    };
    assert_eq!(plan["users"]["create"].as_array().map(Vec::len), Some(2), "{plan}");
    assert_eq!(names(&plan["users"]["remove"]), BTreeSet::from([gone_user.clone()]), "{plan}");
    assert_eq!(plan["rooms"]["change"].as_array().map(Vec::len), Some(2), "{plan}");
    assert_eq!(plan["rooms"]["create"].as_array().map(Vec::len), Some(0), "{plan}");
    let users = s_records.iter().filter(|r| r["type"] == "user").count() as u64;
    assert_eq!(plan["users"]["unchanged"].as_u64(), Some(users - 1), "{plan}");
    let member_changes = names(&plan["memberships"]["create"]).len() + names(&plan["memberships"]["change"]).len();
    assert_eq!(member_changes, 5, "2 newcomers in 2 rooms and one promotion: {plan}");
    assert!(
        names(&plan["memberships"]["remove"]).iter().all(|m| m.ends_with(":u000005")),
        "only the removed user leaves rooms: {plan}"
    );

    // The window's run touches only the changes.
    let window = ok(&["run", "--snapshot", &s2_file, "--json"]);
    assert_eq!((window["base"].as_str(), &window["state"]), (Some(run_id.as_str()), &json!("complete")));
    assert_eq!(counts(phase(&window, "users")), [2, users - 1, 0, 0], "{window}");
    assert_eq!(counts(phase(&window, "groups")), [1, 5, 0, 0], "{window}");
    assert_eq!(counts(phase(&window, "events")), [1, 5, 0, 0], "{window}");
    let rooms = after.len() as u64;
    assert_eq!(counts(phase(&window, "memberships"))[..2], [changed_rosters, rooms - changed_rosters], "{window}");
    assert_eq!(counts(phase(&window, "removals")), [1, 0, 1, 0], "{window}");
    let changes = 2 + 1 + 2 + changed_rosters;
    let calls = window["homeserverCalls"].as_u64().expect("homeserverCalls");
    let full = staged["homeserverCalls"].as_u64().unwrap_or(0) + members["homeserverCalls"].as_u64().unwrap_or(0);
    eprintln!(
        "window delta: {changes} changed entities of {}, {calls} homeserver calls ({:.1}/change; staging made {full}), \
         {:.2}s",
        users + 2 + rooms * 2,
        calls as f64 / changes as f64,
        window["seconds"].as_f64().unwrap_or(0.0)
    );
    assert!(calls <= 40 * changes, "{calls} calls for {changes} changes: {window}");
    assert!(calls * 3 < full, "the delta ({calls} calls) cost as much as staging ({full})");

    // The window's import adds exactly the new messages, in order, after the staged ones.
    let (e2, texts) = window_export(&export);
    let (code, imported, stderr) = export.import_from(&e2);
    assert_eq!(code, 0, "{imported} {stderr}");
    let after_window = stack().text_bodies(&streams[0], None).await;
    let new: Vec<&String> = after_window.iter().filter(|b| b.contains("Window message")).collect();
    assert_eq!(new.len(), texts.len(), "{after_window:?}");
    for (body, text) in new.iter().zip(&texts) {
        assert!(body.contains(text.as_str()), "out of order: {after_window:?}");
    }
    let first_new = after_window.iter().position(|b| b.contains("Window message")).expect("new");
    let staged_last = after_window.iter().rposition(|b| before_window.contains(b)).expect("staged");
    assert!(staged_last < first_new, "a staged message after a new one: {after_window:?}");
    ok(&["verify", "--snapshot", &s2_file, "--json"]);

    // Rolling the window back restores S, but for the cancellation (its notice was posted).
    let window_id = window["runId"].as_str().expect("runId");
    let started = std::time::Instant::now();
    let rolled = ok(&["rollback", "--run", window_id, "--json"]);
    eprintln!("window rollback: {:.2}s {rolled}", started.elapsed().as_secs_f64());
    let (code, verified, stderr) = cutover(&["verify", "--snapshot", &s_file, "--json"]);
    let found: Vec<&str> =
        verified["discrepancies"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    assert_eq!(code, 1, "{verified} {stderr}");
    assert_eq!(found.len(), 1, "{found:?}");
    let cancelled = &active_events(&s_records)[0];
    assert!(found[0].contains(cancelled.as_str()) && found[0].contains("Cancelled"), "{found:?}");
    let gone = stack().matrix_user_id(&tenant, "u000005");
    let path = format!("/_synapse/admin/v2/users/{}", encode_path(&gone));
    let (_, user) = stack().matrix(Method::GET, &path, None, None).await;
    assert_eq!(user["deactivated"], false, "the removed user is back: {user}");
}
