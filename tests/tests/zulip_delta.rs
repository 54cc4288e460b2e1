//! The window's import of a newer Zulip export (issue 26, items 1 and 4), against the local stack: staged with an
//! export E, then E2 = E + newer messages (one in a new topic, one mentioning a member), one message edited and one
//! deleted in Zulip since E, one stream renamed. Exactly the new messages are appended in order, the edit shows as the new text, the
//! deleted message is redacted, a re-run sends nothing, and the mentioned member's own /sync shows nothing unread.
//! A cancelled event's room receives its history and is exactly as read-only afterwards. Each test uses its own
//! tenant.

use std::collections::HashMap;

use integration_tests::cutover_cli::{ExportShape, ZulipExport, cutover, group_room};
use integration_tests::{encode_path, stack};
use reqwest::Method;
use serde_json::{Value, json};

const ORIGIN: &str = "org.openmeet.zulip";
/// Zulip's recipient of `stream-0` and `stream-1` in a generated export.
const STREAM_0: i64 = 200;
const STREAM_1: i64 = 201;

fn provisioned(prefix: &str, messages: u64) -> ZulipExport {
    ZulipExport::provisioned(prefix, ExportShape { users: 4, messages, upload_every: 0, seed: 11 })
}

/// All the export's messages, oldest first (the generator writes one file under 1,000 messages).
fn all_messages(export: &ZulipExport) -> Vec<Value> {
    export.read("messages-000001.json")["zerver_message"].as_array().expect("messages").clone()
}

fn write_messages(export: &ZulipExport, messages: &[Value]) {
    export.write("messages-000001.json", &json!({"zerver_message": messages, "zerver_usermessage": []}));
}

/// The room's events oldest first, read backwards from the newest as the platform.
async fn events(room: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut from = String::new();
    loop {
        let path = format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=300{from}", encode_path(room));
        let (status, page) = stack().matrix(Method::GET, &path, None, None).await;
        assert_eq!(status, 200, "{page}");
        let chunk = page["chunk"].as_array().cloned().unwrap_or_default();
        all.extend(chunk.iter().cloned());
        match page["end"].as_str() {
            Some(end) if !chunk.is_empty() => from = format!("&from={}", encode_path(end)),
            _ => break,
        }
    }
    all.reverse();
    all
}

/// Imported messages of the room (their text events, oldest first): Zulip id → event id, and the ids in order.
async fn imported(room: &str) -> (HashMap<i64, String>, Vec<i64>) {
    let mut by_id = HashMap::new();
    let mut order = Vec::new();
    for event in events(room).await.iter().filter(|e| e["content"][ORIGIN]["part"] == "message") {
        let id = event["content"][ORIGIN]["messageId"].as_i64().expect("messageId");
        by_id.insert(id, event["event_id"].as_str().expect("event id").to_owned());
        order.push(id);
    }
    (by_id, order)
}

fn ids_of(messages: &[Value], recipient: i64) -> Vec<i64> {
    messages.iter().filter(|m| m["recipient"] == recipient).filter_map(|m| m["id"].as_i64()).collect()
}

fn stream_report<'a>(report: &'a Value, stream: &str) -> &'a Value {
    let streams = report["streams"].as_array().expect("streams");
    streams.iter().find(|s| s["stream"] == stream).unwrap_or_else(|| panic!("{stream} in {report}"))
}

#[tokio::test]
async fn a_newer_export_appends_new_messages_and_carries_edits_and_deletions_once() {
    let s = stack();
    let export = provisioned("zdel", 60);
    let full = all_messages(&export);
    // E: the first 36 messages, imported while staging.
    let staged: Vec<Value> = full[..36].to_vec();
    write_messages(&export, &staged);
    let (code, report, stderr) = export.import();
    assert_eq!(code, 0, "{report} {stderr}");
    let room = group_room(&export.tenant, "zs000").await;
    let (before, _) = imported(&room).await;
    let stream0 = ids_of(&staged, STREAM_0);
    assert_eq!(before.len(), stream0.len(), "E in stream-0");

    // E2: the whole export, with one staged message edited and one deleted in Zulip since, a new topic, a mention.
    let mut newer = full.clone();
    let (edited, deleted) = (stream0[3], stream0[5]);
    let member = s.matrix_user_id(&export.tenant, "zu0001");
    for message in &mut newer {
        let sent = message["date_sent"].as_f64().expect("date");
        if message["id"] == edited {
            message["content"] = json!("Rewritten after staging.");
            message["last_edit_time"] = json!(sent + 3600.0);
        }
    }
    let fresh: Vec<usize> = (36..newer.len()).filter(|i| newer[*i]["recipient"] == STREAM_0).collect();
    newer[fresh[0]]["subject"] = json!("Brand new topic");
    newer[fresh[1]]["content"] = json!("Ping @**Member 1|11** after staging");
    newer[fresh[1]]["sender"] = json!(10);
    let (new_topic, mentioning) = (newer[fresh[0]]["id"].clone(), newer[fresh[1]]["id"].clone());
    newer.retain(|m| m["id"] != deleted);
    write_messages(&export, &newer);
    // stream-1 was renamed in Zulip: the mapping names it by its new name, its room's import continues.
    let mut realm = export.read("realm.json");
    for stream in realm["zerver_stream"].as_array_mut().expect("streams") {
        if stream["name"] == "stream-1" {
            stream["name"] = json!("stream-1-renamed");
        }
    }
    export.write("realm.json", &realm);
    let mut mapping: Value = serde_json::from_slice(&std::fs::read(&export.mapping).expect("mapping")).expect("json");
    let target = mapping["streams"]["stream-1"].take();
    mapping["streams"]["stream-1-renamed"] = target;
    mapping["streams"].as_object_mut().expect("streams").remove("stream-1");
    std::fs::write(&export.mapping, mapping.to_string()).expect("mapping");
    // The mentioned member holds a browser session before the window's import.
    let (token, _) = s.session(&export.tenant, "zu0001", None).await;

    let (code, report, stderr) = export.import();
    assert_eq!(code, 0, "{report} {stderr}");
    let zero = stream_report(&report, "stream-0");
    let new_in_0 = fresh.len() as u64;
    assert_eq!(zero["importedNow"].as_u64(), Some(new_in_0), "{zero}");
    assert_eq!((zero["editsCarried"].as_u64(), zero["deletionsCarried"].as_u64()), (Some(1), Some(1)), "{zero}");
    let one = stream_report(&report, "stream-1-renamed");
    assert_eq!((one["editsCarried"].as_u64(), one["deletionsCarried"].as_u64()), (Some(0), Some(0)), "{one}");
    let new_in_1 = ids_of(&newer, STREAM_1).len() - ids_of(&staged, STREAM_1).len();
    assert_eq!(one["importedNow"].as_u64(), Some(new_in_1 as u64), "{one}");
    let (_, order_1) = imported(&group_room(&export.tenant, "zs001").await).await;
    assert_eq!(order_1, ids_of(&newer, STREAM_1), "the renamed stream's room: each message once, in order");

    // Exactly E2's messages, in order: the new ones after the staged ones, the deleted one gone.
    let (after, order) = imported(&room).await;
    assert_eq!(order, ids_of(&newer, STREAM_0));
    // The edit: an m.replace by the original sender, bundled with the original as its latest edit.
    let original = &before[&edited];
    let path = format!("/_matrix/client/v3/rooms/{}/event/{}", encode_path(&room), encode_path(original));
    let (status, event) = s.matrix(Method::GET, &path, None, None).await;
    assert_eq!(status, 200, "{event}");
    let replace = &event["unsigned"]["m.relations"]["m.replace"];
    let edit_id = replace["event_id"].as_str().expect("an edit bundled with the original");
    let all = events(&room).await;
    let edit = all.iter().find(|e| e["event_id"] == edit_id).expect("the edit in the timeline");
    assert_eq!(edit["sender"], event["sender"], "{edit}");
    assert_eq!(edit["content"]["m.new_content"]["body"], "Rewritten after staging.", "{edit}");
    assert_eq!(edit["content"]["m.relates_to"]["rel_type"], "m.replace", "{edit}");
    assert_eq!(after[&edited], *original, "the original keeps its place");
    // The deletion: the imported event redacted, with the reason.
    let path = format!("/_matrix/client/v3/rooms/{}/event/{}", encode_path(&room), encode_path(&before[&deleted]));
    let (status, gone) = s.matrix(Method::GET, &path, None, None).await;
    assert_eq!(status, 200, "{gone}");
    assert_eq!(gone["content"], json!({}), "{gone}");
    assert_eq!(gone["unsigned"]["redacted_because"]["content"]["reason"], "deleted in Zulip", "{gone}");
    // The new topic is a thread root of its own.
    let topic = all.iter().find(|e| e["content"][ORIGIN]["messageId"] == new_topic).expect("new topic");
    assert!(topic["content"]["body"].as_str().is_some_and(|b| b.starts_with("**Brand new topic**")), "{topic}");
    assert!(topic["content"]["m.relates_to"].is_null(), "{topic}");
    let mention = all.iter().find(|e| e["content"][ORIGIN]["messageId"] == mentioning).expect("mention");
    let mentioned = mention["content"]["m.mentions"]["user_ids"].as_array().cloned().unwrap_or_default();
    assert!(mentioned.contains(&json!(member)), "{mention}");

    // Nobody is notified by imported history: the mentioned member's own /sync shows nothing unread.
    let (status, sync) = s.matrix(Method::GET, "/_matrix/client/v3/sync?timeout=0", Some(&token), None).await;
    assert_eq!(status, 200, "{sync}");
    let unread = &sync["rooms"]["join"][&room]["unread_notifications"];
    assert_eq!(unread["notification_count"].as_u64(), Some(0), "{unread}");
    assert_eq!(unread["highlight_count"].as_u64(), Some(0), "{unread}");

    // A re-run of E2 sends nothing.
    let count = all.len();
    let (code, again, stderr) = export.import();
    assert_eq!(code, 0, "{again} {stderr}");
    assert_eq!(again["importedNow"], 0, "{again}");
    for stream in again["streams"].as_array().expect("streams") {
        assert_eq!((stream["editsCarried"].as_u64(), stream["deletionsCarried"].as_u64()), (Some(0), Some(0)));
    }
    assert_eq!(events(&room).await.len(), count, "nothing sent by the re-run");
    let _ = std::fs::remove_dir_all(export.dir.parent().expect("dir"));
}

#[tokio::test]
async fn a_cancelled_event_room_receives_its_history_and_stays_read_only() {
    let s = stack();
    let export = provisioned("zcan", 30);
    let tenant = export.tenant.clone();
    // The provisioned community plus an event of the first group, cancelled before the staging, with its members.
    let event = json!({"type": "event", "tenant": tenant, "slug": "off", "name": "Called off",
        "startsAt": "2030-05-01T10:00:00Z", "endsAt": "2030-05-01T12:00:00Z", "location": null,
        "groupSlug": "zs000", "visibility": "private", "status": "cancelled"});
    let snapshot = export.snapshot_with_events("snapshot-cancelled.jsonl", "zs000", &[event]);
    let (code, report, stderr) = cutover(&["run", "--snapshot", &snapshot.display().to_string(), "--json"]);
    assert_eq!(code, 0, "{report} {stderr}");
    let alias = format!("#om_{tenant}.event.off:{}", s.var("MATRIX_SERVER_NAME"));
    let (status, resolved) =
        s.matrix(Method::GET, &format!("/_matrix/client/v3/directory/room/{}", encode_path(&alias)), None, None).await;
    assert_eq!(status, 200, "{resolved}");
    let room = resolved["room_id"].as_str().expect("room id").to_owned();
    let levels_path = format!("/_matrix/client/v3/rooms/{}/state/m.room.power_levels/", encode_path(&room));
    let (_, levels_before) = s.matrix(Method::GET, &levels_path, None, None).await;
    assert!(levels_before["events_default"].as_i64() > Some(0), "cancelled: read-only {levels_before}");

    // stream-1's history goes to the cancelled event's room.
    let mut mapping: Value = serde_json::from_slice(&std::fs::read(&export.mapping).expect("mapping")).expect("json");
    mapping["streams"]["stream-1"] = json!({"kind": "events", "slug": "off"});
    std::fs::write(&export.mapping, mapping.to_string()).expect("mapping");
    let (code, report, stderr) = export.import();
    assert_eq!(code, 0, "{report} {stderr}");
    let (_, order) = imported(&room).await;
    assert_eq!(order, ids_of(&all_messages(&export), STREAM_1), "{report}");

    // Exactly as read-only as before: the same power levels, and a member cannot post with their own token.
    let (_, levels_after) = s.matrix(Method::GET, &levels_path, None, None).await;
    assert_eq!(levels_after, levels_before);
    let (token, _) = s.session(&tenant, "zu0001", None).await;
    let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/after-import", encode_path(&room));
    let body = json!({"msgtype": "m.text", "body": "may I?"});
    let (status, refused) = s.matrix(Method::PUT, &path, Some(&token), Some(body)).await;
    assert_eq!(status, 403, "{refused}");
    // The group's room got the other stream as usual.
    let group = group_room(&tenant, "zs000").await;
    assert_eq!(imported(&group).await.1, ids_of(&all_messages(&export), STREAM_0));
    let _ = std::fs::remove_dir_all(export.dir.parent().expect("dir"));
}
