//! Unit tests.

use super::*;
use ruma::OwnedRoomAliasId;

fn details(starts: &str, ends: Option<&str>, location: Option<&str>) -> EventDetails {
    EventDetails { starts_at: starts.into(), ends_at: ends.map(Into::into), location: location.map(Into::into) }
}

#[test]
fn unchanged_events_need_no_notice() {
    let d = details("2026-12-01T18:00:00Z", None, Some("Hall"));
    assert_eq!(describe_change(Some("Party"), Some(&d), "Party", &d), None);
}

#[test]
fn a_notice_names_every_change_old_to_new() {
    let old = details("2026-12-01T18:00:00Z", None, Some("Hall"));
    let new = details("2026-12-02T19:30:00Z", Some("2026-12-02T22:00:00Z"), Some("Park"));
    let text = describe_change(Some("Party"), Some(&old), "Big party", &new).expect("a change");
    assert!(text.contains("name: Party → Big party"), "{text}");
    assert!(text.contains("starts: 2026-12-01 18:00:00 UTC → 2026-12-02 19:30:00 UTC"), "{text}");
    assert!(text.contains("ends: none → 2026-12-02 22:00:00 UTC"), "{text}");
    assert!(text.contains("location: Hall → Park"), "{text}");
}

#[test]
fn times_are_normalised_so_equal_instants_compare_equal() {
    let input = |starts: &str| EventRoomInput {
        name: "E".into(),
        topic: None,
        starts_at: starts.into(),
        ends_at: None,
        location: None,
        group_slug: None,
        visibility: Visibility::Public,
    };
    let a = RoomSpec::event(input("2026-12-01T18:00:00Z")).expect("valid");
    let b = RoomSpec::event(input("2026-12-01T19:00:00+01:00")).expect("valid");
    assert_eq!(a.event, b.event);
    assert!(RoomSpec::event(input("tomorrow")).is_err());
}

#[test]
fn an_end_before_the_start_is_refused() {
    let input = EventRoomInput {
        name: "E".into(),
        topic: None,
        starts_at: "2026-12-01T18:00:00Z".into(),
        ends_at: Some("2026-12-01T17:00:00Z".into()),
        location: None,
        group_slug: None,
        visibility: Visibility::Private,
    };
    assert_eq!(RoomSpec::event(input).err().map(|e| e.status()), Some(400));
}

#[test]
fn only_differing_state_is_written() {
    let tenant = TenantId::parse("t").expect("tenant");
    let slug = Slug::parse("s").expect("slug");
    let alias = OwnedRoomAliasId::try_from("#om_t.group.s:localhost").expect("alias");
    let spec = RoomSpec { name: "N".into(), topic: None, visibility: Visibility::Public, event: None, group: None };
    let owner = (&tenant, RoomKind::Group, &slug);
    let desired_for = |spec: &RoomSpec| {
        desired_state(spec, owner, &alias, Lifecycle::Active, &Admission::InviteOnly, None, "localhost")
    };
    let desired = desired_for(&spec);
    let current: RoomState = desired.iter().map(|(t, k, c)| ((t.clone(), k.clone()), c.clone())).collect();
    assert!(state_changes(&current, desired.clone()).is_empty());
    let desired = desired_for(&RoomSpec { name: "M".into(), ..spec });
    let changes = state_changes(&current, desired);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].0, "m.room.name");
}

#[test]
fn lifecycle_only_ever_restricts_posting_further() {
    assert!(Lifecycle::Active.events_default() < Lifecycle::Cancelled.events_default());
    assert!(Lifecycle::Cancelled.events_default() < Lifecycle::Archived.events_default());
    for lifecycle in [Lifecycle::Active, Lifecycle::Cancelled, Lifecycle::Archived] {
        assert_eq!(serde_json::to_value(lifecycle).ok(), Some(serde_json::Value::from(lifecycle.as_str())));
        assert_eq!(Lifecycle::from_name(lifecycle.as_str()), lifecycle);
    }
    assert_eq!(DeleteMode::parse(None).ok(), Some(DeleteMode::Archive));
    assert!(DeleteMode::parse(Some("nuke")).is_err());
}

#[test]
fn desired_state_is_written_as_rooms_made_before_hold_it() {
    // Rooms already made hold exactly these contents: a typed content that serialised otherwise would make every
    // ensure rewrite them.
    let tenant = TenantId::parse("t").expect("tenant");
    let slug = Slug::parse("s").expect("slug");
    let alias = OwnedRoomAliasId::try_from("#om_t.event.s:localhost").expect("alias");
    let parent = ruma::OwnedRoomId::try_from("!space:localhost").expect("room id");
    let details = EventDetails { starts_at: "2030-01-01T10:00:00Z".into(), ends_at: None, location: None };
    let spec = RoomSpec {
        name: "N".into(),
        topic: Some("T".into()),
        visibility: Visibility::Private,
        event: Some(details),
        group: None,
    };
    let owner = (&tenant, RoomKind::Event, &slug);
    let state =
        desired_state(&spec, owner, &alias, Lifecycle::Cancelled, &Admission::InviteOnly, Some(&parent), "localhost");
    let content =
        |event_type: &str| state.iter().find(|(t, _, _)| t == event_type).map(|(_, _, c)| c.clone()).expect(event_type);
    assert_eq!(content("m.room.name"), serde_json::json!({"name": "N"}));
    assert_eq!(content("m.room.topic"), serde_json::json!({"topic": "T"}));
    assert_eq!(content("m.room.join_rules"), serde_json::json!({"join_rule": "invite"}));
    assert_eq!(content("m.room.history_visibility"), serde_json::json!({"history_visibility": "shared"}));
    assert_eq!(content("m.room.guest_access"), serde_json::json!({"guest_access": "forbidden"}));
    assert_eq!(content("m.room.canonical_alias"), serde_json::json!({"alias": "#om_t.event.s:localhost"}));
    assert_eq!(
        content(META_EVENT),
        serde_json::json!({"tenant": "t", "kind": "event", "slug": "s", "state": "cancelled",
            "event": {"startsAt": "2030-01-01T10:00:00Z"}})
    );
    let (_, key, link) = state.iter().find(|(t, _, _)| t == "m.space.parent").expect("a parent link");
    assert_eq!(
        (key.as_str(), link),
        ("!space:localhost", &serde_json::json!({"via": ["localhost"], "canonical": true}))
    );
}
