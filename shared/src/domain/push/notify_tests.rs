use super::*;

/// What Synapse 1.163's HttpPusher posts for a pusher with `format: event_id_only` (synapse/push/httppusher.py:
/// `dispatch_push_event`), plus a `content` a misconfigured homeserver might add.
const EVENT_ID_ONLY: &str = r#"{"notification": {
    "event_id": "$e1:localhost", "room_id": "!r:localhost", "prio": "high", "counts": {"unread": 3},
    "content": {"msgtype": "m.text", "body": "secret plans"}, "sender_display_name": "Alice",
    "devices": [{"app_id": "org.openmeet.chat", "pushkey": "abcd", "pushkey_ts": 1764892800,
                 "data": {"format": "event_id_only", "org.openmeet.user": "@om_acme.bob:localhost"}}]
}}"#;

#[test]
fn an_event_id_only_notify_parses_and_drops_everything_else() {
    let request = parse(EVENT_ID_ONLY.as_bytes()).expect("parses");
    let notification = request.notification;
    assert_eq!(notification.event_id.as_deref(), Some("$e1:localhost"));
    assert_eq!(notification.room_id.as_deref(), Some("!r:localhost"));
    assert_eq!(notification.counts, Counts { unread: 3, missed_calls: 0 });
    assert_eq!(notification.prio.as_deref(), Some("high"));
    assert_eq!(notification.devices.len(), 1);
    assert_eq!(notification.devices[0].app_id, APP_ID);
    let data = notification.devices[0].data.as_ref().expect("data");
    assert_eq!(data.user.as_deref(), Some("@om_acme.bob:localhost"));
    // The field's name is the one the platform writes.
    assert_eq!(super::super::DATA_USER, "org.openmeet.user");
    let printed = format!("{notification:?}");
    assert!(!printed.contains("secret plans") && !printed.contains("abcd"), "{printed}");
}

#[test]
fn a_badge_only_update_and_missed_calls_parse() {
    let badge = r#"{"notification": {"id": "", "type": null, "sender": "", "counts": {"unread": 0, "missed_calls": 2},
        "devices": [{"app_id": "a", "pushkey": "k", "pushkey_ts": null}]}}"#;
    let notification = parse(badge.as_bytes()).expect("parses").notification;
    assert_eq!(notification.event_id, None);
    assert_eq!(notification.counts.missed_calls, 2);
}

#[test]
fn what_is_not_a_notify_is_invalid() {
    for bad in ["", "{}", "[]", r#"{"notification": {"devices": [{"app_id": 1}]}}"#, "not json"] {
        let error = parse(bad.as_bytes()).err().map(|e| e.code());
        assert_eq!(error, Some("invalid_body"), "{bad}");
    }
}

#[test]
fn the_event_carries_ids_and_counts_only() {
    let event = ChatNotification {
        tenant: "acme".into(),
        user: "bob".into(),
        room: RoomOf { room_id: "!r:localhost".into(), kind: Some("group".into()), slug: Some("chess".into()) },
        event_id: "$e1:localhost".into(),
        sender: Sender { matrix_user_id: "@om_acme.alice:localhost".into(), user: Some("alice".into()) },
        counts: Counts { unread: 3, missed_calls: 0 },
        priority: "high".into(),
    };
    let value = serde_json::to_value(&event).expect("json");
    assert_eq!(
        value,
        serde_json::json!({
            "tenant": "acme", "user": "bob",
            "room": {"roomId": "!r:localhost", "kind": "group", "slug": "chess"},
            "eventId": "$e1:localhost",
            "sender": {"matrixUserId": "@om_acme.alice:localhost", "user": "alice"},
            "counts": {"unread": 3, "missedCalls": 0},
            "priority": "high"
        })
    );
    let text = value.to_string();
    for field in ["body", "content", "formatted_body", "msgtype"] {
        assert!(!text.contains(field), "{field} in {text}");
    }
}

#[test]
fn kind_and_slug_come_from_the_tenants_alias_only() {
    let acme = TenantId::parse("acme").expect("tenant");
    let of = |alias: &str| kind_and_slug(alias, "om_", "localhost", &acme);
    assert_eq!(of("#om_acme.group.chess-club:localhost"), Some(("group".into(), "chess-club".into())));
    assert_eq!(of("#om_acme.event.e.1:localhost"), Some(("event".into(), "e.1".into())));
    assert_eq!(of("#om_acme.direct.alice=bob:localhost"), Some(("direct".into(), "alice=bob".into())));
    assert_eq!(of("#om_acme.tenant:localhost"), Some(("tenant".into(), String::new())));
    assert_eq!(of("#om_other.group.chess:localhost"), None);
    assert_eq!(of("#om_acmex.group.chess:localhost"), None);
    assert_eq!(of("#om_acme.group.chess:evil.example"), None);
    assert_eq!(of("#random:localhost"), None);
}
