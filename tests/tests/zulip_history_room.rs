//! `import-zulip --history-room STREAM` (docs/adr/0010-history-before-live.md) against the local stack: a stream
//! whose room is live goes into a linked history room, never into the live room. Proven with raw Matrix calls made
//! with each person's own token (a session from `POST /v1/me/matrix-session`): a member of the live room finds the
//! history room from it (state event, the group's space), joins it, reads the whole history in order, has nothing
//! unread and cannot post; a same-tenant non-member and a member of another tenant can neither join nor read it; a
//! later export (the window's) adds only its newer messages there, after the others, and closes it again; a re-run
//! imports nothing twice; without the option the refusal stays as it was. Passes on the workers profile too
//! (`OPENMEET_STACK_ENV=.local/workers/stack.env`).

use integration_tests::cutover_cli::{ExportShape, ZulipExport, cutover, group_room};
use integration_tests::{encode_path, stack, unique};
use reqwest::Method;
use serde_json::{Value, json};

const ORIGIN: &str = "org.openmeet.zulip";
const LINK: &str = "org.openmeet.history_room";

/// The imported messages of a room as `token` reads them (the platform's when `None`), in timeline order.
async fn imported(room_id: &str, token: Option<&str>) -> (u16, Vec<Value>) {
    let path = format!("/_matrix/client/v3/rooms/{}/messages?dir=f&limit=1000", encode_path(room_id));
    let (status, page) = stack().matrix(Method::GET, &path, token, None).await;
    let events = page["chunk"].as_array().cloned().unwrap_or_default();
    let messages = events.into_iter().filter(|e| e["type"] == "m.room.message" && !e["content"][ORIGIN].is_null());
    (status.as_u16(), messages.collect())
}

async fn state(room_id: &str, event_type: &str, key: &str) -> (u16, Value) {
    let path = format!("/_matrix/client/v3/rooms/{}/state/{event_type}/{}", encode_path(room_id), encode_path(key));
    let (status, body) = stack().matrix(Method::GET, &path, None, None).await;
    (status.as_u16(), body)
}

async fn join(room_id: &str, token: &str) -> (u16, Value) {
    let path = format!("/_matrix/client/v3/join/{}", encode_path(room_id));
    let (status, body) = stack().matrix(Method::POST, &path, Some(token), Some(json!({}))).await;
    (status.as_u16(), body)
}

fn import_with(export: &ZulipExport, streams: &[&str]) -> (i32, Value, String) {
    let (dir, mapping) = (export.dir.display().to_string(), export.mapping.display().to_string());
    let mut args = vec!["import-zulip", "--export", &dir, "--mapping", &mapping, "--json"];
    for stream in streams {
        args.extend(["--history-room", stream]);
    }
    cutover(&args)
}

#[tokio::test]
async fn a_live_rooms_history_goes_into_a_linked_room_its_members_alone_read() {
    let s = stack();
    let export = ZulipExport::provisioned("zhist", ExportShape { users: 4, messages: 24, upload_every: 0, seed: 8 });
    let tenant = export.tenant.clone();
    // The first export holds the older two thirds of the messages; the later one (the window's) all of them.
    let file = "messages-000001.json";
    let full = export.keep_older(file, 2, 3);
    let live = group_room(&tenant, "zs000").await;
    let jwt = s.user_jwt(&tenant, "zu0001", None);
    let body = json!({"body": "we are live already", "format": "plain"});
    let (status, body) = s.api(Method::POST, "/v1/groups/zs000/messages", Some(&jwt), Some(body)).await;
    assert!(status.is_success(), "{status} {body}");

    // Without the option: refused as before, naming the stream, the room and the way out.
    let (code, report, stderr) = export.import();
    assert_eq!(code, 2, "{report} {stderr}");
    assert!(stderr.contains("\"stream-0\"") && stderr.contains(&live) && stderr.contains("--history-room"), "{stderr}");
    let (code, report, stderr) = import_with(&export, &["no-such-stream"]);
    assert_eq!(code, 2, "an unmapped stream name is bad input: {report} {stderr}");

    let (code, report, stderr) = import_with(&export, &["stream-0"]);
    assert_eq!(code, 0, "{report} {stderr}");
    let stream = report["streams"].as_array().expect("streams").iter().find(|s| s["stream"] == "stream-0").cloned();
    let stream = stream.expect("stream-0 reported");
    let history = stream["roomId"].as_str().expect("roomId").to_owned();
    assert_ne!(history, live);
    assert_eq!(stream["historyRoom"]["liveRoomId"], live.as_str(), "{stream}");
    assert_eq!(stream["historyRoom"]["linked"], true, "{stream}");
    let in_export = stream["inExport"].as_u64().expect("inExport");
    assert!(in_export > 0 && stream["messages"] == in_export, "{stream}");
    assert_eq!(stream["historyRoom"]["created"], true, "{stream}");

    // The live room got no imported message; it names its history room; the group's space lists it.
    assert!(imported(&live, None).await.1.is_empty(), "nothing imported into the live room");
    assert_eq!(state(&live, LINK, "").await, (200, json!({"room_id": history})));
    let space_alias = format!("#om_{tenant}.space.zs000:{}", s.var("MATRIX_SERVER_NAME"));
    let (status, space) = s
        .matrix(Method::GET, &format!("/_matrix/client/v3/directory/room/{}", encode_path(&space_alias)), None, None)
        .await;
    assert_eq!(status, 200, "{space}");
    let space = space["room_id"].as_str().expect("space id");
    assert_eq!(state(space, "m.space.child", &history).await.0, 200, "listed in the group's space");
    assert_eq!(state(&history, "m.space.parent", space).await.0, 200, "its parent is the group's space");

    // A member of the live room joins with their own token and reads the whole history, in order.
    let (member, _) = s.session(&tenant, "zu0002", None).await;
    assert_eq!(join(&history, &member).await.0, 200);
    let (status, read) = imported(&history, Some(&member)).await;
    assert_eq!(status, 200);
    let (_, all) = imported(&history, None).await;
    assert_eq!(read.len(), all.len());
    let ids: Vec<i64> = read.iter().filter_map(|e| e["content"][ORIGIN]["messageId"].as_i64()).collect();
    assert!(ids.windows(2).all(|w| w[0] <= w[1]), "in Zulip's order: {ids:?}");
    let times: Vec<i64> = read.iter().filter_map(|e| e["origin_server_ts"].as_i64()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "original times, in order");
    // Read-only: the member cannot post; nothing is unread or highlighted for them.
    let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/h-1", encode_path(&history));
    let (status, body) =
        s.matrix(Method::PUT, &path, Some(&member), Some(json!({"msgtype": "m.text", "body": "x"}))).await;
    assert_eq!(status, 403, "{body}");
    let (status, sync) = s.matrix(Method::GET, "/_matrix/client/v3/sync?timeout=0", Some(&member), None).await;
    assert_eq!(status, 200);
    // They sent some of the history (the import joined them for it, and they left): still nothing unread.
    let own = s.matrix_user_id(&tenant, "zu0002");
    assert!(read.iter().any(|e| e["sender"] == own.as_str()), "zu0002 is one of the senders");
    let unread = &sync["rooms"]["join"][&history]["unread_notifications"];
    assert_eq!(unread["notification_count"].as_u64(), Some(0), "{unread}");
    assert_eq!(unread["highlight_count"].as_u64(), Some(0), "{unread}");

    // A same-tenant user outside the live room, and a user of another tenant: no join, no read.
    s.provision(&tenant, "zoutsider", "Outsider").await;
    let (outsider, _) = s.session(&tenant, "zoutsider", None).await;
    let other_tenant = unique("zother").replace('-', "");
    s.provision(&other_tenant, "zstranger", "Stranger").await;
    let (stranger, _) = s.session(&other_tenant, "zstranger", None).await;
    for token in [&outsider, &stranger] {
        assert_eq!(join(&history, token).await.0, 403);
        assert_eq!(imported(&history, Some(token)).await.0, 403);
    }

    // The window's export: only the newer messages, into the same history room, after the older ones; closed again.
    export.write(file, &full);
    let (code, window, stderr) = import_with(&export, &["stream-0"]);
    assert_eq!(code, 0, "{window} {stderr}");
    let stream = window["streams"].as_array().expect("streams").iter().find(|s| s["stream"] == "stream-0").cloned();
    let stream = stream.expect("stream-0 reported");
    assert_eq!(stream["roomId"], history.as_str(), "{stream}");
    assert_eq!(stream["historyRoom"]["created"], false, "{stream}");
    assert_eq!(stream["historyRoom"]["linked"], true, "{stream}");
    let added = stream["importedNow"].as_u64().expect("importedNow");
    assert!(added > 0, "{stream}");
    let (_, after) = imported(&history, Some(&member)).await;
    let event_ids = |events: &[Value]| events.iter().map(|e| e["event_id"].clone()).collect::<Vec<_>>();
    assert_eq!(event_ids(&after[..all.len()]), event_ids(&all), "the earlier history is untouched, first");
    let ids: Vec<i64> = after.iter().filter_map(|e| e["content"][ORIGIN]["messageId"].as_i64()).collect();
    assert!(ids.windows(2).all(|w| w[0] <= w[1]), "still in Zulip's order: {ids:?}");
    assert_eq!(stream["messages"], stream["inExport"], "{stream}");
    let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/h-2", encode_path(&history));
    let (status, _) =
        s.matrix(Method::PUT, &path, Some(&member), Some(json!({"msgtype": "m.text", "body": "x"}))).await;
    assert_eq!(status, 403, "read-only again");
    let (_, sync) = s.matrix(Method::GET, "/_matrix/client/v3/sync?timeout=0", Some(&member), None).await;
    let unread = &sync["rooms"]["join"][&history]["unread_notifications"];
    assert_eq!(unread["notification_count"].as_u64(), Some(0), "the member in it read up to the end: {unread}");

    // A re-run imports nothing twice.
    let (code, again, stderr) = import_with(&export, &["stream-0"]);
    assert_eq!(code, 0, "{again} {stderr}");
    assert_eq!(again["importedNow"], 0, "{again}");
    assert_eq!(imported(&history, None).await.1.len(), after.len());
    assert!(imported(&live, None).await.1.is_empty());
    let _ = std::fs::remove_dir_all(export.dir.parent().expect("dir"));
}

#[tokio::test]
async fn an_event_rooms_history_room_is_listed_in_its_groups_space_and_admits_the_events_members_only() {
    let s = stack();
    let export = ZulipExport::provisioned("zhevt", ExportShape { users: 4, messages: 12, upload_every: 0, seed: 9 });
    let tenant = export.tenant.clone();
    let service = s.service_jwt(&tenant);
    let body =
        json!({"name": "Hike", "startsAt": "2026-12-05T09:00:00Z", "groupSlug": "zs001", "visibility": "private"});
    let (status, room) = s.api(Method::PUT, "/v1/events/zhike/room", Some(&service), Some(body)).await;
    assert_eq!(status, 201, "{room}");
    let live = room["roomId"].as_str().expect("roomId").to_owned();
    let (status, body) =
        s.api(Method::PUT, "/v1/events/zhike/members/zu0003", Some(&service), Some(json!({"role": "member"}))).await;
    assert_eq!(status, 200, "{body}");
    let jwt = s.user_jwt(&tenant, "zu0003", None);
    let body = json!({"body": "see you at the trailhead", "format": "plain"});
    let (status, body) = s.api(Method::POST, "/v1/events/zhike/messages", Some(&jwt), Some(body)).await;
    assert!(status.is_success(), "{status} {body}");
    let mut mapping: Value = serde_json::from_slice(&std::fs::read(&export.mapping).expect("mapping")).expect("json");
    mapping["streams"]["stream-1"] = json!({"kind": "events", "slug": "zhike"});
    std::fs::write(&export.mapping, mapping.to_string()).expect("mapping");

    let (code, report, stderr) = import_with(&export, &["stream-1"]);
    assert_eq!(code, 0, "{report} {stderr}");
    let stream = report["streams"].as_array().expect("streams").iter().find(|s| s["stream"] == "stream-1").cloned();
    let stream = stream.expect("stream-1 reported");
    let history = stream["roomId"].as_str().expect("roomId").to_owned();
    assert_eq!(stream["historyRoom"]["liveRoomId"], live.as_str(), "{stream}");
    let alias = format!("#om_{tenant}.history.event.zhike:{}", s.var("MATRIX_SERVER_NAME"));
    assert_eq!(stream["historyRoom"]["alias"], alias.as_str(), "{stream}");
    assert!(imported(&live, None).await.1.is_empty());
    assert_eq!(state(&live, LINK, "").await, (200, json!({"room_id": history})));
    let space_alias = format!("#om_{tenant}.space.zs001:{}", s.var("MATRIX_SERVER_NAME"));
    let path = format!("/_matrix/client/v3/directory/room/{}", encode_path(&space_alias));
    let (_, space) = s.matrix(Method::GET, &path, None, None).await;
    let space = space["room_id"].as_str().expect("space id");
    assert_eq!(state(space, "m.space.child", &history).await.0, 200, "listed in the event's group's space");

    // The event's member joins and reads; a member of the group who is not in the (private) event room cannot.
    let (attendee, _) = s.session(&tenant, "zu0003", None).await;
    assert_eq!(join(&history, &attendee).await.0, 200);
    let (status, read) = imported(&history, Some(&attendee)).await;
    assert_eq!((status, read.len() as u64), (200, stream["messages"].as_u64().expect("messages")));
    // A sender of that history outside the event room cannot join (they can read back what they were in the room
    // for while the import sent as them: their own Zulip stream); a group member who sent nothing can do neither.
    let (sender, _) = s.session(&tenant, "zu0002", None).await;
    assert_eq!(join(&history, &sender).await.0, 403);
    s.provision(&tenant, "zgroupie", "Groupie").await;
    let path = "/v1/groups/zs001/members/zgroupie";
    let (status, body) = s.api(Method::PUT, path, Some(&service), Some(json!({"role": "member"}))).await;
    assert_eq!(status, 200, "{body}");
    let (groupie, _) = s.session(&tenant, "zgroupie", None).await;
    assert_eq!(join(&history, &groupie).await.0, 403);
    assert_eq!(imported(&history, Some(&groupie)).await.0, 403);
    let _ = std::fs::remove_dir_all(export.dir.parent().expect("dir"));
}
