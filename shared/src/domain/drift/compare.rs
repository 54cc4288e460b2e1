//! The pure part of drift repair: what a room should hold (its recorded intent) against what the homeserver says,
//! giving the list of differences. Repairing exactly these and comparing again gives nothing (no flapping): every
//! rule below is a function of the intent and of state the repair itself writes. Memberships, join rules, the name
//! and the space links are read as ruma's typed contents. JSON kept on purpose (docs/adr/0007): the power levels,
//! a read-modify-write whose keys we do not model (other tools' entries, newer spec fields) must survive a repair.

use std::collections::{BTreeMap, BTreeSet};

use ruma::events::StaticEventContent;
use ruma::events::room::join_rules::{JoinRule, RoomJoinRulesEventContent};
use ruma::events::room::member::MembershipState;
use ruma::events::room::name::RoomNameEventContent;
use ruma::events::space::child::SpaceChildEventContent;
use ruma::events::space::parent::SpaceParentEventContent;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::domain::membership::{PowerLevels, merge_power_levels};
use crate::domain::room_policy::{converge_power_levels, is_policy_child, is_policy_parent};
use crate::homeserver::admin_rooms::StateEvent;

/// The service's latest word on one member: a power level, or `None` (removed), given at `version` (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intent {
    pub level: Option<i64>,
    pub version: u64,
}

/// What a room should hold, members keyed by Matrix id.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub room_id: String,
    pub name: String,
    pub join_rule: JoinRule,
    pub parent: Option<String>,
    /// The lifecycle's `events_default` (who may post).
    pub events_default: i64,
    pub members: BTreeMap<String, Intent>,
    /// A reconcile gave the whole list: in an invite-only room, anyone else joined is drift.
    pub complete: bool,
    pub server_name: String,
}

/// What the homeserver says.
pub struct Observed<'a> {
    pub state: &'a [StateEvent],
    /// Listed in the server-wide directory.
    pub listed: bool,
    /// The parent space's state, when the room has one.
    pub parent_state: Option<&'a [StateEvent]>,
}

/// Who is never touched.
pub struct Context<'a> {
    pub platform: &'a str,
    /// Configured bots.
    pub keep: &'a BTreeSet<String>,
    /// Whether a Matrix id is a user of the room's tenant.
    pub of_tenant: &'a dyn Fn(&str) -> bool,
}

/// One difference, with what repairs it.
#[derive(Debug, Clone, PartialEq)]
pub enum Drift {
    /// Intended member not joined (kicked, banned by hand, a join that was lost): join them with this level.
    MissingMember {
        user_id: String,
        level: i64,
    },
    /// Joined without the service's intent (a stranger, or someone added by hand to an invite-only room).
    ExtraMember {
        user_id: String,
    },
    /// The power levels to write (users, the platform's policy and the lifecycle's posting level).
    PowerLevels {
        content: Value,
    },
    JoinRules {
        rule: JoinRule,
    },
    Name {
        name: String,
    },
    /// Listed in the server-wide directory.
    Listed,
    /// The room lacks the policy's link up to this space (`room_policy::space_parent`).
    SpaceParent {
        parent: String,
    },
    /// The space lacks the policy's link down to the room (`room_policy::space_child`).
    SpaceChild {
        parent: String,
    },
}

impl Drift {
    /// The metric dimension and log field.
    pub fn kind(&self) -> &'static str {
        match self {
            Drift::MissingMember { .. } => "member_missing",
            Drift::ExtraMember { .. } => "member_extra",
            Drift::PowerLevels { .. } => "power_levels",
            Drift::JoinRules { .. } => "join_rules",
            Drift::Name { .. } => "name",
            Drift::Listed => "directory",
            Drift::SpaceParent { .. } => "space_parent",
            Drift::SpaceChild { .. } => "space_child",
        }
    }

    /// One line for reports (ids only, never content beyond names).
    pub fn describe(&self) -> String {
        match self {
            Drift::MissingMember { user_id, level } => format!("member missing: {user_id} (level {level})"),
            Drift::ExtraMember { user_id } => format!("member not intended: {user_id}"),
            Drift::PowerLevels { .. } => "power levels differ".to_owned(),
            Drift::JoinRules { .. } => "join rules differ".to_owned(),
            Drift::Name { name } => format!("name differs (wanted {name:?})"),
            Drift::Listed => "listed in the server-wide directory".to_owned(),
            Drift::SpaceParent { parent, .. } => format!("space parent link to {parent} missing"),
            Drift::SpaceChild { parent, .. } => format!("space {parent} lacks the child link"),
        }
    }
}

/// The differences, and joined members the service knows nothing about (left alone, listed for the report).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    pub drift: Vec<Drift>,
    pub unmanaged: Vec<String>,
}

struct MemberState<'a> {
    membership: MembershipState,
    sender: &'a str,
    at: u64,
}

fn state_content<'a>(state: &'a [StateEvent], event_type: &str, key: &str) -> Option<&'a Value> {
    state.iter().find(|e| e.event_type == event_type && e.state_key == key).map(|e| &e.content)
}

/// The event of ruma's content type `C` with `key`, typed; `None` when absent or not of the type's shape.
fn typed<C: StaticEventContent + DeserializeOwned>(state: &[StateEvent], key: &str) -> Option<C> {
    state.iter().find(|e| e.event_type == C::TYPE && e.state_key == key).and_then(StateEvent::typed)
}

pub fn compare(desired: &Desired, observed: &Observed<'_>, context: &Context<'_>) -> Comparison {
    let mut comparison = Comparison::default();
    let members: BTreeMap<&str, MemberState<'_>> = observed
        .state
        .iter()
        .filter(|e| e.event_type == "m.room.member")
        .map(|e| {
            let membership = e.membership().unwrap_or(MembershipState::Leave);
            (e.state_key.as_str(), MemberState { membership, sender: &e.sender, at: e.origin_server_ts })
        })
        .collect();
    let invite_only = desired.join_rule == JoinRule::Invite;
    let untouchable = |user: &str| user == context.platform || context.keep.contains(user);

    for (user, intent) in &desired.members {
        if untouchable(user) {
            continue;
        }
        let current = members.get(user.as_str());
        match intent.level {
            Some(level) => {
                let Some(current) = current else {
                    comparison.drift.push(Drift::MissingMember { user_id: user.clone(), level });
                    continue;
                };
                // Their own leave after the intent, or the platform's ban after it: their choice / a later decision.
                let left_later = current.membership == MembershipState::Leave
                    && current.sender == user
                    && current.at > intent.version;
                let banned_later = current.membership == MembershipState::Ban
                    && current.sender == context.platform
                    && current.at > intent.version;
                if current.membership != MembershipState::Join && !left_later && !banned_later {
                    comparison.drift.push(Drift::MissingMember { user_id: user.clone(), level });
                }
            }
            None => {
                // In a tenant-public room, joining again with their own token after the removal is their right.
                if let Some(current) = current
                    && current.membership == MembershipState::Join
                    && (invite_only || current.at <= intent.version)
                {
                    comparison.drift.push(Drift::ExtraMember { user_id: user.clone() });
                }
            }
        }
    }
    for (user, current) in &members {
        if current.membership != MembershipState::Join || untouchable(user) || desired.members.contains_key(*user) {
            continue;
        }
        if !(context.of_tenant)(user) || (desired.complete && invite_only) {
            comparison.drift.push(Drift::ExtraMember { user_id: (*user).to_owned() });
        } else {
            comparison.unmanaged.push((*user).to_owned());
        }
    }

    let current_levels = state_content(observed.state, "m.room.power_levels", "")
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let wanted = wanted_levels(desired, &current_levels, &comparison, context);
    if wanted != current_levels {
        comparison.drift.push(Drift::PowerLevels { content: wanted });
    }
    let rule = typed::<RoomJoinRulesEventContent>(observed.state, "").map(|content| content.join_rule);
    if rule.as_ref() != Some(&desired.join_rule) {
        comparison.drift.push(Drift::JoinRules { rule: desired.join_rule.clone() });
    }
    let name = typed::<RoomNameEventContent>(observed.state, "").map(|content| content.name);
    if name.as_deref() != Some(desired.name.as_str()) {
        comparison.drift.push(Drift::Name { name: desired.name.clone() });
    }
    if observed.listed {
        comparison.drift.push(Drift::Listed);
    }
    if let Some(parent) = &desired.parent {
        let server = desired.server_name.as_str();
        let linked = typed::<SpaceParentEventContent>(observed.state, parent)
            .is_some_and(|link| is_policy_parent(&link, server));
        if !linked {
            comparison.drift.push(Drift::SpaceParent { parent: parent.clone() });
        }
        if let Some(parent_state) = observed.parent_state {
            let linked = typed::<SpaceChildEventContent>(parent_state, &desired.room_id)
                .is_some_and(|link| is_policy_child(&link, server));
            if !linked {
                comparison.drift.push(Drift::SpaceChild { parent: parent.clone() });
            }
        }
    }
    comparison
}

/// The power levels the room should hold: intended members at their level, removed and unintended ones at the
/// default (users the service never named in a room without a complete list keep theirs), the platform's policy and
/// the lifecycle's posting level.
fn wanted_levels(desired: &Desired, current: &Value, comparison: &Comparison, context: &Context<'_>) -> Value {
    let users_default = PowerLevels::from_content(current).users_default;
    let mut wanted: BTreeMap<String, i64> = BTreeMap::new();
    for (user, intent) in &desired.members {
        if user != context.platform && !context.keep.contains(user) {
            wanted.insert(user.clone(), intent.level.unwrap_or(users_default));
        }
    }
    let listed = current.get("users").and_then(Value::as_object).into_iter().flatten();
    for (user, _) in listed {
        let known = desired.members.contains_key(user) || context.keep.contains(user) || user == context.platform;
        let unmanaged = comparison.unmanaged.contains(user) || ((context.of_tenant)(user) && !desired.complete);
        if !known && !unmanaged {
            wanted.insert(user.clone(), users_default);
        }
    }
    let mut content = merge_power_levels(current, &wanted, context.platform).unwrap_or_else(|| current.clone());
    if let Some(converged) = converge_power_levels(&content) {
        content = converged;
    }
    if PowerLevels::from_content(&content).events_default != Some(desired.events_default) {
        content["events_default"] = Value::from(desired.events_default);
    }
    content
}

#[cfg(test)]
#[path = "compare_tests.rs"]
mod tests;
