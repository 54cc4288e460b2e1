//! History import (the Zulip importer's domain calls): placeholders registered once and marked, history sent at
//! its own time on the import device, a reaction the homeserver already has skipped.

use std::collections::HashMap;

use serde_json::json;
use shared::domain::history_import;
use shared::identity::TenantId;

use super::support::{World, body, room_id};

#[tokio::test]
async fn placeholders_are_registered_once_and_marked() {
    let w = World::new("import").await;
    let tenant = TenantId::parse(&w.tenant).expect("a tenant id");
    let user_id = history_import::placeholder_user_id(&w.app, &tenant, 42).expect("a placeholder id").to_string();
    assert!(history_import::is_placeholder(&user_id), "{user_id}");
    w.hs.mock_register().ok(&user_id).up_to_n_times(1).expect(1).mount().await;
    w.hs.mock_register().user_in_use().expect(1).mount().await;
    w.hs.mock_set_profile(&user_id, "displayname").as_user(&user_id).ok().expect(2).mount().await;
    w.hs.mock_admin_create_device(&user_id).ok().expect(2).mount().await;

    for _ in 0..2 {
        let placed = history_import::ensure_placeholder(&w.app, &tenant, 42, "Zoe").await;
        assert_eq!(placed.map(|id| id.to_string()).ok().as_deref(), Some(user_id.as_str()), "{:?}", w.hs.calls().await);
    }
    let named = w.hs.requests("PUT", &format!("/_matrix/client/v3/profile/{user_id}/displayname")).await;
    assert_eq!(body(&named[0]), json!({"displayname": "Zoe (Zulip, imported)"}));
    let devices = w.hs.requests("POST", &format!("/_synapse/admin/v2/users/{user_id}/devices")).await;
    assert_eq!(body(&devices[0]), json!({"device_id": history_import::IMPORT_DEVICE}));
    w.hs.verify().await;
}

#[tokio::test]
async fn history_is_sent_at_its_time_and_a_known_reaction_is_skipped() {
    let w = World::new("import-send").await;
    let room = ruma::OwnedRoomId::try_from(room_id("r")).expect("a room id");
    let sender = ruma::OwnedUserId::try_from(w.mxid("yan")).expect("a user id");
    w.hs.mock_room_send(room.as_str()).as_user(sender.as_str()).ok("$old").expect(1).mount().await;
    w.hs.mock_room_send_type(room.as_str(), "m.reaction").duplicate_annotation().expect(1).mount().await;

    let content = json!({"msgtype": "m.text", "body": "from 2019"});
    let sent = history_import::send(&w.app, &room, &sender, "zulip-1", 1_556_000_000_000, "m.room.message", &content)
        .await
        .expect("sent");
    assert_eq!(sent.map(|id| id.to_string()).as_deref(), Some("$old"));
    let sends = w.hs.requests("PUT", &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/")).await;
    assert!(sends[0].url.path().ends_with("/zulip-1"), "the transaction id: {}", sends[0].url);
    let query: HashMap<_, _> = sends[0].url.query_pairs().into_owned().collect();
    assert_eq!(query.get("ts").map(String::as_str), Some("1556000000000"));
    assert_eq!(query.get("device_id").map(String::as_str), Some(history_import::IMPORT_DEVICE));
    assert_eq!(body(&sends[0]), content);

    let reaction = json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": "$old", "key": "👍"}});
    let again = history_import::send(&w.app, &room, &sender, "zulip-r1", 1_556_000_000_001, "m.reaction", &reaction)
        .await
        .expect("a known reaction is no error");
    assert_eq!(again, None);
    w.hs.verify().await;
}
