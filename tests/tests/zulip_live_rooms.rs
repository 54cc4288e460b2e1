//! History never lands after a live message (docs/adr/0010-history-before-live.md): `import-zulip` against the
//! local stack refuses, exit 2 naming the stream and the room, when people already posted in a stream's room (by the
//! API, or raw with the browser's own Matrix token), and then nothing of the whole import is written; a member's
//! edit or the import's own history does not count as live (a later export continues); a finished import re-run
//! after the rooms opened sends nothing and succeeds.

use integration_tests::cutover_cli::{ExportShape, ZulipExport, group_room};
use integration_tests::{encode_path, stack};
use reqwest::Method;
use serde_json::{Value, json};

const ORIGIN: &str = "org.openmeet.zulip";

/// The room's event ids, in timeline order.
async fn ids(room_id: &str) -> Vec<String> {
    timeline(room_id).await.iter().filter_map(|e| e["event_id"].as_str().map(str::to_owned)).collect()
}

/// The room's events, in timeline order (the platform is in every room).
async fn timeline(room_id: &str) -> Vec<Value> {
    let path = format!("/_matrix/client/v3/rooms/{}/messages?dir=f&limit=1000", encode_path(room_id));
    let (status, page) = stack().matrix(Method::GET, &path, None, None).await;
    assert_eq!(status, 200, "{page}");
    page["chunk"].as_array().cloned().unwrap_or_default()
}

fn imported(events: &[Value]) -> usize {
    events.iter().filter(|e| !e["content"][ORIGIN].is_null()).count()
}

async fn post(tenant: &str, user: &str, slug: &str, text: &str) -> String {
    let s = stack();
    let jwt = s.user_jwt(tenant, user, None);
    let body = json!({"body": text, "format": "plain"});
    let (status, body) = s.api(Method::POST, &format!("/v1/groups/{slug}/messages"), Some(&jwt), Some(body)).await;
    assert!(status.is_success(), "{status} {body}");
    body["eventId"].as_str().expect("eventId").to_owned()
}

#[tokio::test]
async fn a_live_message_refuses_the_whole_import_naming_stream_and_room() {
    let export = ZulipExport::provisioned("zlive", ExportShape { users: 4, messages: 20, upload_every: 9, seed: 5 });
    let tenant = export.tenant.clone();
    let (room0, room1) = (group_room(&tenant, "zs000").await, group_room(&tenant, "zs001").await);
    post(&tenant, "zu0001", "zs000", "hello, we are live").await;
    let (before0, before1) = (ids(&room0).await, ids(&room1).await);

    let (code, report, stderr) = export.import();
    assert_eq!(code, 2, "{report} {stderr}");
    assert_eq!(report["error"]["code"], "bad_input", "{report}");
    assert!(stderr.contains("\"stream-0\"") && stderr.contains(&room0), "names the stream and the room: {stderr}");
    assert!(!stderr.contains("\"stream-1\""), "stream-1's room has no live message: {stderr}");
    // Nothing of the whole import: neither the live room nor the other stream's room changed.
    assert_eq!(ids(&room0).await, before0);
    assert_eq!(ids(&room1).await, before1);
    assert_eq!(imported(&timeline(&room1).await), 0);

    // A message posted raw with the browser's own token is just as live, in the other room.
    let s = stack();
    let (token, _) = s.session(&tenant, "zu0002", None).await;
    let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/live-raw-1", encode_path(&room1));
    let (status, body) =
        s.matrix(Method::PUT, &path, Some(&token), Some(json!({"msgtype": "m.text", "body": "raw and live"}))).await;
    assert_eq!(status, 200, "{body}");
    let (code, report, stderr) = export.import();
    assert_eq!(code, 2, "{report} {stderr}");
    assert!(stderr.contains("\"stream-0\"") && stderr.contains("\"stream-1\"") && stderr.contains(&room1), "{stderr}");
    assert_eq!(imported(&timeline(&room1).await), 0);
    let _ = std::fs::remove_dir_all(export.dir.parent().expect("dir"));
}

#[tokio::test]
async fn the_imports_own_history_and_a_members_edit_are_not_live() {
    let export = ZulipExport::provisioned("zquiet", ExportShape { users: 4, messages: 20, upload_every: 9, seed: 6 });
    let tenant = export.tenant.clone();
    // The first export holds the older half of the messages; the later one all of them.
    let file = "messages-000001.json";
    let full = export.keep_older(file, 1, 2);
    let (code, report, stderr) = export.import();
    assert_eq!(code, 0, "{report} {stderr}");
    let room = group_room(&tenant, "zs000").await;
    let events = timeline(&room).await;
    let first = imported(&events);
    assert!(first > 0, "imported as before");

    // The member who wrote an imported message edits it: an edit takes no place in the timeline.
    let s = stack();
    let prefix = format!("@om_{tenant}.");
    let own = events.iter().find(|e| {
        let sender = e["sender"].as_str().unwrap_or("");
        sender.starts_with(&prefix) && !sender.contains("zulip=") && !e["content"][ORIGIN].is_null()
    });
    let own = own.expect("an imported message by a mapped member");
    let sender = own["sender"].as_str().unwrap_or("");
    let slug = sender.trim_start_matches(&prefix).split(':').next().unwrap_or("");
    let (token, _) = s.session(&tenant, slug, None).await;
    let edit = json!({
        "msgtype": "m.text", "body": "* fixed",
        "m.new_content": {"msgtype": "m.text", "body": "fixed"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": own["event_id"]},
    });
    let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/edit-1", encode_path(&room));
    let (status, body) = s.matrix(Method::PUT, &path, Some(&token), Some(edit)).await;
    assert_eq!(status, 200, "{body}");

    // The later export continues past the edit: only the import's own history is in the room.
    export.write(file, &full);
    let (code, report, stderr) = export.import();
    assert_eq!(code, 0, "{report} {stderr}");
    assert!(report["importedNow"].as_u64() > Some(0), "{report}");

    // Once people talk, a re-run of the finished import has nothing to send: it goes ahead, sending nothing.
    post(&tenant, "zu0002", "zs000", "now we are live").await;
    let before = ids(&room).await;
    let (code, again, stderr) = export.import();
    assert_eq!(code, 0, "{again} {stderr}");
    assert_eq!(again["importedNow"], 0, "{again}");
    assert_eq!(ids(&room).await, before);
    let _ = std::fs::remove_dir_all(export.dir.parent().expect("dir"));
}
