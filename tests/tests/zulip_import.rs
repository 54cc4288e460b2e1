//! `openmeet-cutover import-zulip` run as a built binary against the local stack, on synthetic exports in Zulip's
//! format (`generate-zulip`), provisioned first with `run`: topics become threads in order with original senders
//! and timestamps, reactions, edits and files come across, an unmapped author is a placeholder, a SIGKILLed import
//! continued leaves every message once, read markers sit at the newest message, a malformed export changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use integration_tests::cutover_cli::{ExportShape, ZulipExport, command, group_room};
use integration_tests::{encode_path, stack};
use reqwest::Method;
use serde_json::Value;

const ORIGIN: &str = "org.openmeet.zulip";

/// The export's stream messages (id, sender, stream name, topic, content, ms), oldest first.
fn messages(export: &ZulipExport) -> Vec<Value> {
    let mut all = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&export.dir)
        .expect("export")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("messages-")))
        .collect();
    files.sort();
    for file in files {
        let batch: Value = serde_json::from_slice(&std::fs::read(file).expect("file")).expect("json");
        all.extend(batch["zerver_message"].as_array().expect("messages").iter().cloned());
    }
    all
}

/// A synthetic export for a fresh tenant whose users and rooms the cutover has provisioned.
fn provisioned(prefix: &str, messages: u64) -> ZulipExport {
    ZulipExport::provisioned(prefix, ExportShape { users: 4, messages, upload_every: 9, seed: 3 })
}

/// Every event of the room, in timeline order (the platform is in every room).
async fn timeline(room_id: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut from = String::new();
    loop {
        let path = format!("/_matrix/client/v3/rooms/{}/messages?dir=f&limit=500{from}", encode_path(room_id));
        let (status, page) = stack().matrix(Method::GET, &path, None, None).await;
        assert_eq!(status, 200, "{page}");
        let chunk = page["chunk"].as_array().cloned().unwrap_or_default();
        events.extend(chunk.iter().cloned());
        match page["end"].as_str() {
            Some(end) if !chunk.is_empty() => from = format!("&from={}", encode_path(end)),
            _ => return events,
        }
    }
}

fn imported<'a>(events: &'a [Value], part: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["content"][ORIGIN]["part"] == part).collect()
}

fn stream_of(realm: &Value, recipient: &Value) -> Option<String> {
    let recipient = realm["zerver_recipient"].as_array()?.iter().find(|r| r["id"] == *recipient && r["type"] == 2)?;
    let stream = realm["zerver_stream"].as_array()?.iter().find(|s| s["id"] == recipient["type_id"])?;
    stream["name"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn an_export_comes_across_as_threads_with_senders_times_reactions_edits_and_files() {
    let s = stack();
    let export = provisioned("zul", 40);
    let (code, report, stderr) = export.import();
    assert_eq!(code, 0, "{report} {stderr}");
    assert_eq!(report["state"], "complete", "{report}");
    assert_eq!(report["sha256"].as_str().map(str::len), Some(64), "{report}");
    assert!(report["unmappedStreams"]["stream-2"].as_u64() > Some(0), "{report}");
    assert!(report["directMessages"].as_u64() > Some(0), "{report}");

    let realm = export.read("realm.json");
    let mapping: Value = serde_json::from_slice(&std::fs::read(&export.mapping).expect("mapping")).expect("json");
    let users = realm["zerver_userprofile"].as_array().expect("users");
    let sender_of = |zulip_id: &Value| -> String {
        let user = users.iter().find(|u| u["id"] == *zulip_id).expect("user");
        match mapping["users"][user["delivery_email"].as_str().expect("email")].as_str() {
            Some(slug) => s.matrix_user_id(&export.tenant, slug),
            None => format!("@om_{}.zulip={}:{}", export.tenant, zulip_id, s.var("MATRIX_SERVER_NAME")),
        }
    };
    let messages = messages(&export);
    for (index, stream) in ["stream-0", "stream-1"].into_iter().enumerate() {
        let room = group_room(&export.tenant, &format!("zs{index:03}")).await;
        let events = timeline(&room).await;
        let texts = imported(&events, "message");
        let expected: Vec<&Value> =
            messages.iter().filter(|m| stream_of(&realm, &m["recipient"]).as_deref() == Some(stream)).collect();
        let ids: Vec<i64> = texts.iter().filter_map(|e| e["content"][ORIGIN]["messageId"].as_i64()).collect();
        let expected_ids: Vec<i64> = expected.iter().filter_map(|m| m["id"].as_i64()).collect();
        // In order, each once.
        assert_eq!(ids, expected_ids, "{stream}");
        let mut roots: HashMap<String, String> = HashMap::new();
        for (event, message) in texts.iter().zip(&expected) {
            assert_eq!(event["sender"].as_str(), Some(sender_of(&message["sender"]).as_str()), "{event}");
            let ts = (message["date_sent"].as_f64().expect("date") * 1000.0).round() as i64;
            assert_eq!(event["origin_server_ts"].as_i64(), Some(ts), "{event}");
            let topic = message["subject"].as_str().expect("topic").to_lowercase();
            let body = event["content"]["body"].as_str().expect("body");
            match roots.get(&topic) {
                None => {
                    assert!(event["content"]["m.relates_to"].is_null(), "a root carries no relation: {event}");
                    assert!(
                        body.starts_with(&format!("**{}**", message["subject"].as_str().expect("topic"))),
                        "{body}"
                    );
                    roots.insert(topic, event["event_id"].as_str().expect("id").to_owned());
                }
                Some(root) => {
                    assert_eq!(event["content"]["m.relates_to"]["rel_type"], "m.thread", "{event}");
                    assert_eq!(event["content"]["m.relates_to"]["event_id"].as_str(), Some(root.as_str()), "{event}");
                }
            }
            if message["content"].as_str().is_some_and(|c| c.contains("(final text)")) {
                assert!(body.contains("(final text)") && !body.contains("first draft"), "{body}");
                assert_eq!(event["content"][ORIGIN]["edited"], true, "{event}");
            }
            if message["content"].as_str().is_some_and(|c| c.contains("@**Member")) {
                assert!(
                    event["content"]["m.mentions"]["user_ids"].as_array().is_some_and(|u| !u.is_empty()),
                    "{event}"
                );
            }
        }
        assert_eq!(roots.len(), 2, "two topics, two threads in {stream}");
        let stream_report = report["streams"].as_array().expect("streams").iter().find(|r| r["stream"] == stream);
        let stream_report = stream_report.expect("stream report");
        assert_eq!(stream_report["messages"].as_u64(), Some(expected.len() as u64), "{stream_report}");
        assert_eq!(stream_report["threads"].as_u64(), Some(2), "{stream_report}");

        // Reactions on the reacted messages: Unicode, and custom emoji as text.
        let reactions = imported(&events, "reaction");
        let wanted = realm["zerver_reaction"]
            .as_array()
            .expect("reactions")
            .iter()
            .filter(|r| expected_ids.contains(&r["message"].as_i64().unwrap_or(0)))
            .count();
        assert_eq!(reactions.len(), wanted, "{stream}");
        assert_eq!(stream_report["reactions"].as_u64(), Some(wanted as u64));
        let keys: Vec<&str> = reactions.iter().filter_map(|r| r["content"]["m.relates_to"]["key"].as_str()).collect();
        assert!(wanted == 0 || keys.contains(&"👍"), "{keys:?}");
        for reaction in &reactions {
            let target = reaction["content"]["m.relates_to"]["event_id"].as_str();
            let message_id = &reaction["content"][ORIGIN]["messageId"];
            assert!(
                texts
                    .iter()
                    .any(|t| t["event_id"].as_str() == target && t["content"][ORIGIN]["messageId"] == *message_id),
                "{reaction}"
            );
        }
        // Files through the media repository, in the message's thread.
        for file in imported(&events, "file") {
            assert!(file["content"]["url"].as_str().is_some_and(|u| u.starts_with("mxc://")), "{file}");
            assert_eq!(file["content"]["m.relates_to"]["rel_type"], "m.thread", "{file}");
            if file["content"]["msgtype"] == "m.image" {
                assert_eq!(
                    (file["content"]["info"]["w"].as_u64(), file["content"]["info"]["mimetype"].as_str()),
                    (Some(2), Some("image/png"))
                );
            }
        }
        assert_eq!(stream_report["files"].as_u64(), Some(imported(&events, "file").len() as u64));

        // Read markers at the newest imported event, for a member.
        // The newest imported message (reactions are annotations: nothing to read).
        let newest = events.iter().rev().find(|e| e["type"] == "m.room.message" && !e["content"][ORIGIN].is_null());
        let newest = newest.expect("an imported message");
        let member = s.matrix_user_id(&export.tenant, "zu0001");
        let path = format!(
            "/_matrix/client/v3/user/{}/rooms/{}/account_data/m.fully_read?user_id={}",
            encode_path(&member),
            encode_path(&room),
            encode_path(&member)
        );
        let (status, marker) = s.matrix(Method::GET, &path, None, None).await;
        assert_eq!((status.as_u16(), marker["event_id"].as_str()), (200, newest["event_id"].as_str()), "{marker}");
    }
    let files: u64 = report["streams"].as_array().expect("streams").iter().filter_map(|r| r["files"].as_u64()).sum();
    assert!(files >= 2, "an image and a text file: {report}");

    // The unmapped author: a placeholder of the tenant, marked, no longer in the room, and no session for it.
    let ghost = users.iter().find(|u| u["full_name"].as_str().is_some_and(|n| n.starts_with("Ghost"))).expect("ghost");
    let placeholder = sender_of(&ghost["id"]);
    let (status, info) =
        s.matrix(Method::GET, &format!("/_synapse/admin/v2/users/{}", encode_path(&placeholder)), None, None).await;
    assert_eq!(status, 200, "{info}");
    assert!(info["displayname"].as_str().is_some_and(|n| n.ends_with("(Zulip, imported)")), "{info}");
    assert_eq!(info["password_hash"].as_str().filter(|h| !h.is_empty()), None, "{info}");
    let room = group_room(&export.tenant, "zs000").await;
    let path =
        format!("/_matrix/client/v3/rooms/{}/state/m.room.member/{}", encode_path(&room), encode_path(&placeholder));
    let (_, member) = s.matrix(Method::GET, &path, None, None).await;
    assert_eq!(member["membership"], "leave", "{member}");
    let localpart = format!("zulip={}", ghost["id"]);
    let jwt = s.user_jwt(&export.tenant, &localpart, None);
    let (status, body) = s.api(Method::POST, "/v1/me/matrix-session", Some(&jwt), Some(serde_json::json!({}))).await;
    assert!(status.is_client_error(), "a placeholder got a session: {status} {body}");

    // A second import sends nothing.
    let before = timeline(&room).await.len();
    let (code, again, stderr) = export.import();
    assert_eq!(code, 0, "{again} {stderr}");
    assert_eq!(again["importedNow"], 0, "{again}");
    assert_eq!(timeline(&room).await.len(), before);
    let _ = std::fs::remove_dir_all(export.dir.parent().expect("dir"));
}

#[tokio::test]
async fn a_killed_import_continues_and_leaves_every_message_once() {
    let export = provisioned("zkill", 240);
    let (dir, mapping) = (export.dir.display().to_string(), export.mapping.display().to_string());
    // Plain progress lines on stderr (not a terminal): SIGKILL once some but not all messages are in.
    let mut child = command(&["import-zulip", "--export", &dir, "--mapping", &mapping, "--concurrency", "2"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawns");
    let stderr = child.stderr.take().expect("stderr");
    let mut killed_at = None;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        let progress =
            line.strip_prefix("[import] ").and_then(|rest| rest.split(' ').next()).and_then(|f| f.split_once('/'));
        if let Some((done, total)) = progress {
            let (done, total): (u64, u64) = (done.parse().unwrap_or(0), total.parse().unwrap_or(0));
            if done > 0 {
                assert!(done < total, "the import finished before it could be killed: {line}");
                killed_at = Some(done);
                break;
            }
        }
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(killed_at.is_some(), "no progress line before the end");

    let (code, report, stderr) = export.import();
    assert_eq!(code, 0, "{report} {stderr}");
    let realm = export.read("realm.json");
    let messages = messages(&export);
    for (index, stream) in ["stream-0", "stream-1"].into_iter().enumerate() {
        let room = group_room(&export.tenant, &format!("zs{index:03}")).await;
        let events = timeline(&room).await;
        let mut seen: BTreeMap<(String, i64, String), u32> = BTreeMap::new();
        for event in events.iter().filter(|e| !e["content"][ORIGIN].is_null()) {
            let origin = &event["content"][ORIGIN];
            let key = (
                origin["part"].as_str().unwrap_or("").to_owned(),
                origin["messageId"].as_i64().unwrap_or(0),
                format!("{}{}", event["sender"], event["content"]["m.relates_to"]["key"]),
            );
            *seen.entry(key).or_default() += 1;
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "imported twice in {stream}: {twice:?}");
        let expected =
            messages.iter().filter(|m| stream_of(&realm, &m["recipient"]).as_deref() == Some(stream)).count();
        let texts = seen.keys().filter(|(part, _, _)| part == "message").count();
        assert_eq!(texts, expected, "{stream}");
        let stream_report =
            report["streams"].as_array().expect("streams").iter().find(|r| r["stream"] == stream).expect("report");
        assert_eq!(stream_report["messages"].as_u64(), Some(expected as u64), "{stream_report}");
    }
    assert!(
        report["importedNow"].as_u64()
            < Some(report["streams"].as_array().map_or(0, |s| s.iter().filter_map(|r| r["messages"].as_u64()).sum())),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(export.dir.parent().expect("dir"));
}

fn corrupt(dir: &Path, name: &str, edit: impl Fn(&str) -> String) {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).expect("file");
    std::fs::write(path, edit(&text)).expect("write");
}

#[tokio::test]
async fn a_malformed_export_exits_2_with_nothing_imported() {
    let export = provisioned("zbad", 20);
    let original = std::fs::read_to_string(export.dir.join("messages-000001.json")).expect("messages");
    type Edit = Box<dyn Fn(&str) -> String>;
    let cases: [(&str, Edit, &str); 3] = [
        ("messages-000001.json", Box::new(|t: &str| t[..t.len() / 2].to_owned()), "messages-000001.json"),
        (
            "messages-000001.json",
            Box::new(|t: &str| t.replacen("\"sender\":10", "\"sender\":999", 1)),
            "unknown sender",
        ),
        ("mapping.json", Box::new(|t: &str| t.replacen("stream-0", "no-such-stream", 1)), "no-such-stream"),
    ];
    for (file, edit, named) in cases {
        let dir =
            if file == "mapping.json" { export.mapping.parent().expect("dir").to_owned() } else { export.dir.clone() };
        let saved = std::fs::read_to_string(dir.join(file)).expect("file");
        corrupt(&dir, file, edit);
        let (code, report, stderr) = export.import();
        assert_eq!(code, 2, "{report} {stderr}");
        assert!(stderr.contains(named), "{stderr}");
        std::fs::write(dir.join(file), saved).expect("restore");
    }
    assert_eq!(std::fs::read_to_string(export.dir.join("messages-000001.json")).expect("messages"), original);
    for slug in ["zs000", "zs001"] {
        let room = group_room(&export.tenant, slug).await;
        let events = timeline(&room).await;
        assert!(events.iter().all(|e| e["content"][ORIGIN].is_null()), "something was imported into {slug}");
    }
    let _ = std::fs::remove_dir_all(export.dir.parent().expect("dir"));
}
