use ruma::events::room::join_rules::{JoinRule, RoomJoinRulesEventContent as JoinRulesContent};
use serde_json::json;

use super::*;
use crate::domain::room_policy::initial_power_levels;

const PLATFORM: &str = "@openmeet:l";
const ANN: &str = "@om_t.ann:l";
const BOB: &str = "@om_t.bob:l";
const EVE: &str = "@om_x.eve:l";
const BOT: &str = "@bot:l";
const ROOM: &str = "!r:l";
const SPACE: &str = "!s:l";

fn event(event_type: &str, key: &str, sender: &str, content: Value, at: u64) -> StateEvent {
    StateEvent {
        event_type: event_type.into(),
        state_key: key.into(),
        sender: sender.into(),
        content,
        origin_server_ts: at,
    }
}

fn member(user: &str, membership: &str, sender: &str, at: u64) -> StateEvent {
    event("m.room.member", user, sender, json!({"membership": membership}), at)
}

fn desired(members: &[(&str, Option<i64>, u64)], complete: bool, join_rule: JoinRule) -> Desired {
    Desired {
        room_id: ROOM.into(),
        name: "Hikers".into(),
        join_rule,
        parent: Some(SPACE.into()),
        events_default: 0,
        members: members
            .iter()
            .map(|(u, level, version)| ((*u).to_owned(), Intent { level: *level, version: *version }))
            .collect(),
        complete,
        server_name: "l".into(),
    }
}

/// The state a fully repaired room holds for `desired`, with `members` joined.
fn healthy(desired: &Desired, joined: &[&str]) -> Vec<StateEvent> {
    let mut levels = initial_power_levels(desired.events_default);
    for (user, intent) in &desired.members {
        if let Some(level) = intent.level.filter(|level| *level != 0) {
            levels["users"][user] = json!(level);
        }
    }
    let mut state = vec![
        event("m.room.power_levels", "", PLATFORM, levels, 1),
        event(
            "m.room.join_rules",
            "",
            PLATFORM,
            serde_json::to_value(JoinRulesContent::new(desired.join_rule.clone())).expect("json"),
            1,
        ),
        event("m.room.name", "", PLATFORM, json!({"name": desired.name}), 1),
        event("m.space.parent", SPACE, PLATFORM, json!({"via": ["l"], "canonical": true}), 1),
        member(PLATFORM, "join", PLATFORM, 1),
    ];
    state.extend(joined.iter().map(|user| member(user, "join", PLATFORM, 5)));
    state
}

fn space() -> Vec<StateEvent> {
    vec![event("m.space.child", ROOM, PLATFORM, json!({"via": ["l"], "suggested": true}), 1)]
}

fn run(desired: &Desired, state: &[StateEvent], listed: bool) -> Comparison {
    let keep = BTreeSet::from([BOT.to_owned()]);
    let of_tenant = |user: &str| user.starts_with("@om_t.");
    let space = space();
    let observed = Observed { state, listed, parent_state: Some(&space) };
    compare(desired, &observed, &Context { platform: PLATFORM, keep: &keep, of_tenant: &of_tenant })
}

fn kinds(comparison: &Comparison) -> Vec<&'static str> {
    comparison.drift.iter().map(Drift::kind).collect()
}

#[test]
fn a_room_as_intended_has_no_drift() {
    let d = desired(&[(ANN, Some(100), 10), (BOB, Some(0), 10)], true, JoinRule::Invite);
    assert_eq!(run(&d, &healthy(&d, &[ANN, BOB]), false), Comparison::default());
}

#[test]
fn a_kicked_member_is_missing_and_a_voluntary_leave_after_the_intent_is_respected() {
    let d = desired(&[(ANN, Some(100), 10), (BOB, Some(0), 10)], true, JoinRule::Invite);
    let mut state = healthy(&d, &[ANN]);
    state.push(member(BOB, "leave", ANN, 20));
    assert_eq!(run(&d, &state, false).drift, vec![Drift::MissingMember { user_id: BOB.into(), level: 0 }]);
    let last = state.len() - 1;
    state[last] = member(BOB, "leave", BOB, 20);
    assert!(run(&d, &state, false).drift.is_empty(), "left on their own after the intent");
    state[last] = member(BOB, "leave", BOB, 5);
    assert_eq!(kinds(&run(&d, &state, false)), vec!["member_missing"], "the intent is newer than the leave");
}

#[test]
fn a_level_raised_by_hand_is_reset_and_nothing_else_changes() {
    let d = desired(&[(ANN, Some(100), 10), (BOB, Some(0), 10)], true, JoinRule::Invite);
    let mut state = healthy(&d, &[ANN, BOB]);
    state[0].content["users"][BOB] = json!(50);
    let comparison = run(&d, &state, false);
    let [Drift::PowerLevels { content }] = comparison.drift.as_slice() else { panic!("{comparison:?}") };
    assert_eq!(content["users"], json!({ANN: 100}));
    state[0].content = content.clone();
    assert!(run(&d, &state, false).drift.is_empty(), "the repair's own write compares equal");
}

#[test]
fn strangers_go_everywhere_unknown_tenant_users_only_from_complete_invite_only_rooms() {
    let d = desired(&[(ANN, Some(100), 10)], false, JoinRule::Invite);
    let state = healthy(&d, &[ANN, BOB, EVE, BOT]);
    let comparison = run(&d, &state, false);
    assert_eq!(comparison.drift, vec![Drift::ExtraMember { user_id: EVE.into() }]);
    assert_eq!(comparison.unmanaged, vec![BOB.to_owned()]);
    let complete = Desired { complete: true, ..d.clone() };
    assert_eq!(kinds(&run(&complete, &state, false)), vec!["member_extra", "member_extra"]);
    let public = Desired { join_rule: JoinRule::Restricted(Default::default()), ..complete };
    let mut public_state = healthy(&public, &[ANN, BOB]);
    assert!(run(&public, &public_state, false).drift.is_empty(), "a self-joiner of a tenant-public room stays");
    // Removed by the service, then joined again on their own: their right in a public room.
    let removed = Desired {
        members: [
            (ANN.to_owned(), Intent { level: Some(100), version: 10 }),
            (BOB.to_owned(), Intent { level: None, version: 3 }),
        ]
        .into(),
        ..public
    };
    assert!(run(&removed, &public_state, false).drift.is_empty());
    let last = public_state.len() - 1;
    public_state[last].origin_server_ts = 2;
    assert_eq!(kinds(&run(&removed, &public_state, false)), vec!["member_extra"], "the removal never landed");
}

#[test]
fn the_platform_and_bots_are_never_touched() {
    let d = desired(&[(PLATFORM, None, 99), (BOT, None, 99)], true, JoinRule::Invite);
    let mut state = healthy(&d, &[BOT]);
    state[0].content["users"][BOT] = json!(100);
    assert!(run(&d, &state, false).drift.is_empty());
}

#[test]
fn settings_drift_is_found_and_each_kind_once() {
    let d = desired(&[(ANN, Some(100), 10)], true, JoinRule::Invite);
    let mut state = healthy(&d, &[ANN]);
    state[1].content = json!({"join_rule": "public"});
    state[2].content = json!({"name": "renamed"});
    state.retain(|e| e.event_type != "m.space.parent");
    let comparison = run(&d, &state, true);
    assert_eq!(kinds(&comparison), vec!["join_rules", "name", "directory", "space_parent"]);
    let keep = BTreeSet::new();
    let of_tenant = |_: &str| true;
    let observed = Observed { state: &healthy(&d, &[ANN]), listed: false, parent_state: Some(&[]) };
    let context = Context { platform: PLATFORM, keep: &keep, of_tenant: &of_tenant };
    assert_eq!(kinds(&compare(&d, &observed, &context)), vec!["space_child"]);
}

#[test]
fn the_lifecycle_sets_who_may_post() {
    let d = desired(&[(ANN, Some(100), 10)], true, JoinRule::Invite);
    let state = healthy(&d, &[ANN]);
    let archived = Desired { events_default: crate::domain::room_lifecycle::Lifecycle::Archived.events_default(), ..d };
    let comparison = run(&archived, &state, false);
    let [Drift::PowerLevels { content }] = comparison.drift.as_slice() else { panic!("{comparison:?}") };
    assert_eq!(content["events_default"], 100);
}

#[test]
fn space_links_are_compared_typed_and_repaired_to_policy() {
    let d = desired(&[(ANN, Some(100), 10)], true, JoinRule::Invite);
    let mut state = healthy(&d, &[ANN]);
    // A parent link that is not canonical, or routed elsewhere, is drift; one as the policy writes it is not.
    let parent = state.iter().position(|e| e.event_type == "m.space.parent").expect("a parent link");
    state[parent].content = json!({"via": ["l"]});
    assert_eq!(run(&d, &state, false).drift, vec![Drift::SpaceParent { parent: SPACE.into() }]);
    state[parent].content = json!({"via": ["elsewhere"], "canonical": true});
    assert_eq!(kinds(&run(&d, &state, false)), vec!["space_parent"]);
    let policy = crate::domain::room_policy::space_parent("l").expect("a server name");
    state[parent].content = serde_json::to_value(policy).expect("json");
    assert!(run(&d, &state, false).drift.is_empty(), "the repair's own write compares equal");
    // A member event without a membership reads as a leave.
    state.push(event("m.room.member", BOB, BOB, json!({}), 5));
    assert!(run(&d, &state, false).drift.is_empty());
}
