//! Unit tests of the pure parts.

use crate::aws::BackendError;
use crate::domain::DomainError;
use crate::domain::roles::Role;
use crate::homeserver::HomeserverError;
use crate::identity::UserSlug;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

use super::*;

#[test]
fn operations_round_trip_and_refuse_unknown_fields() {
    let operation = Operation::SendEvent {
        tenant: "t".into(),
        user: Some("u".into()),
        room_id: "!r:localhost".into(),
        event_type: "m.room.message".into(),
        txn_id: "om1".into(),
        content: json!({"body": "hi"}),
    };
    let raw = serde_json::to_string(&operation).expect("serialises");
    assert_eq!(serde_json::from_str::<Operation>(&raw).expect("parses"), operation);
    assert!(serde_json::from_str::<QueuedOperation>(r#"{"operationId":"x","token":"y"}"#).is_err());
    assert_eq!(operation.group(), "!r:localhost");
}

#[test]
fn a_queued_reconcile_keeps_its_list_compactly_and_shares_the_rooms_group() {
    let slug = |user: &str| UserSlug::parse(user).expect("slug");
    let wanted = vec![(slug("ann"), Role::Owner), (slug("bob"), Role::Member), (slug("cy"), Role::Member)];
    let operation = Operation::Reconcile(DeferredReconcile {
        tenant: "t".into(),
        kind: "groups".into(),
        slug: "hikers".into(),
        members: roster(&wanted),
        version: 7,
        force: false,
    });
    let json = serde_json::to_value(&operation).expect("serializes");
    assert_eq!(json["members"], json!({"member": ["bob", "cy"], "owner": ["ann"]}));
    let back: Operation = serde_json::from_value(json).expect("deserializes");
    assert_eq!(back, operation);
    let Operation::Reconcile(DeferredReconcile { members, .. }) = &back else { panic!("not a reconcile") };
    let mut listed = unroster(members).expect("valid users");
    listed.sort();
    let mut expected = wanted.clone();
    expected.sort();
    assert_eq!(listed, expected);
    let member_change = Operation::Membership {
        tenant: "t".into(),
        kind: "groups".into(),
        slug: "hikers".into(),
        user: "bob".into(),
        change: MemberChange::Remove { ban: false },
        version: 8,
        force: false,
    };
    assert_eq!(operation.group(), member_change.group(), "a room's member changes must stay in order");
    assert!(unroster(&BTreeMap::from([(Role::Member, vec!["Not A Slug".to_owned()])])).is_err());
}

#[test]
fn only_outages_are_deferred() {
    let outage = DomainError::Homeserver(HomeserverError::Transient { detail: "connect".into() });
    assert!(outage.is_outage());
    assert!(DomainError::Contended { retry_after: Duration::from_secs(1) }.is_outage());
    assert!(!DomainError::not_permitted("no").is_outage());
    let store_down = BackendError::Unavailable { service: "dynamodb", detail: "timeout".into() };
    assert!(!DomainError::Backend(store_down).is_outage());
}
