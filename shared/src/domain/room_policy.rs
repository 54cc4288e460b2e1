//! What every managed room holds so that the rules hold at the homeserver, for any token (docs/adr/0003):
//! power levels that leave the managed state to the platform alone, join rules that keep a room inside its tenant,
//! a pinned room version, and the one `createRoom` request that carries all of it (so a room is right from its first
//! event, and costs one call).
//!
//! The `createRoom` request is ruma's, its initial state ruma's typed contents (join rules, history visibility,
//! guest access, space parent). JSON kept on purpose (docs/adr/0007): the power levels, merged into rooms' current
//! ones whose unknown keys must survive (`converge_power_levels`); the metadata event, our own type; and the topic,
//! written as it is (ruma's typed content would add the `m.topic` block, and every ensure would then see a
//! difference).

use ruma::api::client::room::Visibility;
use ruma::api::client::room::create_room::v3::{CreationContent, Request as CreateRoom, RoomPreset};
use ruma::events::room::guest_access::{GuestAccess, RoomGuestAccessEventContent};
use ruma::events::room::history_visibility::{HistoryVisibility, RoomHistoryVisibilityEventContent};
use ruma::events::room::join_rules::{AllowRule, JoinRule, RoomJoinRulesEventContent};
use ruma::events::space::child::SpaceChildEventContent;
use ruma::events::space::parent::SpaceParentEventContent;
use ruma::events::{AnyInitialStateEvent, InitialStateEvent};
use ruma::room::RoomType;
use ruma::serde::Raw;
use ruma::{OwnedRoomAliasId, OwnedRoomId, OwnedServerName, RoomVersionId};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::domain::DomainError;
use crate::domain::roles::Role;

/// The state event carrying a room's OpenMeet metadata (tenant, kind, slug, lifecycle).
pub const META_EVENT: &str = "org.openmeet.room";

/// Pinned instead of the server's default: restricted join rules need v8+, and in v12 the creator (the platform)
/// holds unlimited power, so no role can lock it out.
pub const ROOM_VERSION: &str = "12";

/// Above every role (owner is 100): only the platform, as the room's creator, reaches it.
pub const PLATFORM_LEVEL: i64 = 150;

/// Moderation (kick, ban, redacting others) starts at moderator.
const MODERATOR_LEVEL: i64 = Role::Moderator.power_level();

/// State that only the platform writes. Every other state type falls to `state_default`, which is the platform's
/// level too; these are listed so that a later change of `state_default` cannot open them.
const MANAGED_STATE: &[&str] = &[
    "m.room.power_levels",
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.canonical_alias",
    "m.room.encryption",
    "m.room.server_acl",
    "m.room.tombstone",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.pinned_events",
    "m.space.child",
    "m.space.parent",
    META_EVENT,
];

/// Message-like events that must not be listed with a level of their own: they take the room's `events_default`,
/// so a room closed to posting (a cancelled or archived room, a space) is closed to them too. Rooms made before
/// listed them at 0, which let any member react in a space (the tenant's space reaches every user of the tenant)
/// or in a read-only room; `converge_power_levels` takes them out.
const FOLLOW_EVENTS_DEFAULT: &[&str] = &["m.reaction", "m.room.redaction"];

/// Who may join a room besides those the platform adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Any member of this space (the tenant's space) may join, with their own token: "tenant-public".
    MembersOf(OwnedRoomId),
    /// Nobody joins on their own: the platform adds members.
    InviteOnly,
}

/// The join rule of an admission: `restricted` to the space's members, or `invite`.
pub fn join_rule(admission: &Admission) -> JoinRule {
    match admission {
        Admission::MembersOf(space) => {
            JoinRule::Restricted(ruma::room::Restricted::new(vec![AllowRule::room_membership(space.clone())]))
        }
        Admission::InviteOnly => JoinRule::Invite,
    }
}

pub fn join_rules(admission: &Admission) -> RoomJoinRulesEventContent {
    RoomJoinRulesEventContent::new(join_rule(admission))
}

/// A room's link up to its space (the group's): the one canonical parent.
pub fn space_parent(server_name: &str) -> Result<SpaceParentEventContent, DomainError> {
    let mut content = SpaceParentEventContent::new(vec![server(server_name)?]);
    content.canonical = true;
    Ok(content)
}

/// A space's link down to a room: suggested to the space's members.
pub fn space_child(server_name: &str) -> Result<SpaceChildEventContent, DomainError> {
    let mut content = SpaceChildEventContent::new(vec![server(server_name)?]);
    content.suggested = true;
    Ok(content)
}

/// Whether a room's link up to its space is the policy's (`space_parent`); keys we do not model do not count.
pub fn is_policy_parent(link: &SpaceParentEventContent, server_name: &str) -> bool {
    via_only(&link.via, server_name) && link.canonical
}

/// Whether a space's link down to a room is the policy's (`space_child`).
pub fn is_policy_child(link: &SpaceChildEventContent, server_name: &str) -> bool {
    via_only(&link.via, server_name) && link.suggested && link.order.is_none()
}

fn via_only(via: &[OwnedServerName], server_name: &str) -> bool {
    matches!(via, [server] if server.as_str() == server_name)
}

fn server(name: &str) -> Result<OwnedServerName, DomainError> {
    OwnedServerName::try_from(name).map_err(|_| DomainError::Internal)
}

/// The power levels every managed room starts with. The platform, as room-version-12 creator, is not listed.
pub fn initial_power_levels(events_default: i64) -> Value {
    let events: Map<String, Value> = MANAGED_STATE.iter().map(|t| ((*t).to_owned(), json!(PLATFORM_LEVEL))).collect();
    json!({
        "users": {},
        "users_default": 0,
        "events_default": events_default,
        "state_default": PLATFORM_LEVEL,
        "invite": PLATFORM_LEVEL,
        "kick": MODERATOR_LEVEL,
        "ban": MODERATOR_LEVEL,
        "redact": MODERATOR_LEVEL,
        "notifications": {"room": MODERATOR_LEVEL},
        "events": events,
    })
}

/// `current` with the platform's part of the power levels brought to policy; `users`, `users_default`,
/// `events_default` (the lifecycle's) and anything else are kept. `None` when nothing differs: rooms made before
/// the tenant walls migrate on their next ensure, and others cost no write.
pub fn converge_power_levels(current: &Value) -> Option<Value> {
    let wanted = initial_power_levels(0);
    let mut merged = if current.is_object() { current.clone() } else { wanted.clone() };
    for key in ["state_default", "invite", "kick", "ban", "redact", "notifications"] {
        merged[key] = wanted[key].clone();
    }
    if !merged.get("events").is_some_and(Value::is_object) {
        merged["events"] = json!({});
    }
    if let (Some(events), Some(wanted_events)) = (merged["events"].as_object_mut(), wanted["events"].as_object()) {
        for (event_type, level) in wanted_events {
            events.insert(event_type.clone(), level.clone());
        }
        for event_type in FOLLOW_EVENTS_DEFAULT {
            events.remove(*event_type);
        }
    }
    (merged != *current).then_some(merged)
}

/// A room's metadata event content: how the tenant-walls module (and anyone reading the homeserver) knows whose
/// room it is.
pub fn meta(tenant: &str, kind: &str, slug: Option<&str>) -> Value {
    #[derive(Serialize)]
    struct Meta<'a> {
        tenant: &'a str,
        kind: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        slug: Option<&'a str>,
    }
    // Serialising three strings cannot fail.
    serde_json::to_value(Meta { tenant, kind, slug }).unwrap_or_default()
}

/// Everything a managed room is created with.
pub struct Creation<'a> {
    pub alias: &'a OwnedRoomAliasId,
    /// Empty: no name (direct rooms).
    pub name: &'a str,
    /// `None`: no topic event at all.
    pub topic: Option<&'a str>,
    pub is_space: bool,
    pub admission: Admission,
    pub meta: Value,
    /// Further state, e.g. `m.space.parent`.
    pub extra_state: Vec<Raw<AnyInitialStateEvent>>,
    pub power_levels: Value,
}

/// A state event whose content is written as it is (our own event type, the topic).
#[derive(Serialize)]
struct AsItIs<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    state_key: &'a str,
    content: &'a Value,
}

/// The `m.space.parent` event of a room created inside a space.
pub fn space_parent_event(parent: &OwnedRoomId, server_name: &str) -> Result<Raw<AnyInitialStateEvent>, DomainError> {
    Ok(InitialStateEvent::new(parent.clone(), space_parent(server_name)?).to_raw_any())
}

fn initial_state_as_is(event_type: &str, content: &Value) -> Result<Raw<AnyInitialStateEvent>, DomainError> {
    let event = AsItIs { event_type, state_key: "", content };
    Raw::new(&event).map(Raw::cast_unchecked).map_err(|_| DomainError::Internal)
}

/// The one `createRoom` request. Never published to the server-wide directory: tenant-public rooms are found
/// through the tenant's space and the API, not by every tenant on the server.
pub fn creation_request(creation: Creation<'_>) -> Result<CreateRoom, DomainError> {
    let mut initial_state = vec![
        InitialStateEvent::with_empty_state_key(join_rules(&creation.admission)).to_raw_any(),
        InitialStateEvent::with_empty_state_key(RoomHistoryVisibilityEventContent::new(HistoryVisibility::Shared))
            .to_raw_any(),
        InitialStateEvent::with_empty_state_key(RoomGuestAccessEventContent::new(GuestAccess::Forbidden)).to_raw_any(),
        initial_state_as_is(META_EVENT, &creation.meta)?,
    ];
    // As state rather than createRoom's `topic`, which Synapse enriches (`m.topic`): the room then holds exactly
    // what ensure wants, and its first ensure writes nothing.
    if let Some(topic) = creation.topic {
        initial_state.push(initial_state_as_is("m.room.topic", &json!({"topic": topic}))?);
    }
    initial_state.extend(creation.extra_state);
    let mut request = CreateRoom::new();
    request.room_version = Some(RoomVersionId::V12);
    request.room_alias_name = Some(creation.alias.alias().to_owned());
    request.preset = Some(RoomPreset::PrivateChat);
    request.visibility = Visibility::Private;
    request.power_level_content_override =
        Some(Raw::new(&creation.power_levels).map(Raw::cast_unchecked).map_err(|_| DomainError::Internal)?);
    request.initial_state = initial_state;
    request.name = (!creation.name.is_empty()).then(|| creation.name.to_owned());
    if creation.is_space {
        let mut content = CreationContent::new();
        content.room_type = Some(RoomType::Space);
        request.creation_content = Some(Raw::new(&content).map_err(|_| DomainError::Internal)?);
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_role_reaches_the_managed_state_or_invites() {
        let levels = initial_power_levels(0);
        let owner = Role::Owner.power_level();
        assert!(levels["invite"].as_i64() > Some(owner));
        assert!(levels["state_default"].as_i64() > Some(owner));
        for event_type in MANAGED_STATE {
            assert!(levels["events"][*event_type].as_i64() > Some(owner), "{event_type}");
        }
        assert_eq!(levels["kick"], Role::Moderator.power_level());
        for event_type in FOLLOW_EVENTS_DEFAULT {
            assert!(levels["events"].get(*event_type).is_none(), "{event_type} must take events_default");
        }
        assert!(levels["users"].as_object().is_some_and(Map::is_empty), "the v12 creator must not be listed");
    }

    #[test]
    fn converging_keeps_members_and_lifecycle_and_is_stable() {
        let old = json!({
            "users": {"@om_t.a:localhost": 100}, "users_default": 0, "events_default": 50, "state_default": 50,
            "invite": 50, "kick": 50, "ban": 50, "redact": 50,
            "events": {"m.room.name": 50, "m.room.join_rules": 100, "com.example.custom": 10},
        });
        let converged = converge_power_levels(&old).expect("an old room changes");
        assert_eq!(converged["users"], old["users"]);
        assert_eq!(converged["events_default"], 50);
        assert_eq!(converged["events"]["com.example.custom"], 10);
        assert_eq!(converged["events"]["m.room.join_rules"], PLATFORM_LEVEL);
        assert_eq!(converged["invite"], PLATFORM_LEVEL);
        assert_eq!(converge_power_levels(&converged), None);
        // Reactions and redactions listed at 0 (rooms made before) go: a closed room is closed to them too.
        let mut open = initial_power_levels(100);
        open["events"]["m.reaction"] = json!(0);
        open["events"]["m.room.redaction"] = json!(0);
        let closed = converge_power_levels(&open).expect("reopened reactions are closed");
        assert!(closed["events"].get("m.reaction").is_none() && closed["events"].get("m.room.redaction").is_none());
        assert_eq!(closed["events_default"], 100);
        assert_eq!(converge_power_levels(&initial_power_levels(100)), None);
    }

    #[test]
    fn tenant_public_rooms_admit_the_tenants_space_only() {
        let space = OwnedRoomId::try_from("!space:localhost").expect("room id");
        // The wire form of the typed contents, as the tenant-walls module and every ensure compare it.
        let rules = serde_json::to_value(join_rules(&Admission::MembersOf(space))).expect("serialises");
        assert_eq!(
            rules,
            json!({"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": "!space:localhost"}]})
        );
        let invite = serde_json::to_value(join_rules(&Admission::InviteOnly)).expect("serialises");
        assert_eq!(invite, json!({"join_rule": "invite"}));
    }

    #[test]
    fn a_room_is_created_complete_and_unpublished() {
        let alias = OwnedRoomAliasId::try_from("#om_t.group.g:localhost").expect("alias");
        let request = creation_request(Creation {
            alias: &alias,
            name: "G",
            topic: Some("T"),
            is_space: false,
            admission: Admission::InviteOnly,
            meta: meta("t", "group", None),
            extra_state: vec![],
            power_levels: initial_power_levels(0),
        })
        .expect("builds");
        assert_eq!(request.room_version.as_ref().map(RoomVersionId::as_str), Some(ROOM_VERSION));
        assert_eq!(request.visibility, Visibility::Private);
        assert_eq!(request.room_alias_name.as_deref(), Some("om_t.group.g"));
        assert_eq!(request.name.as_deref(), Some("G"));
        let state: Vec<Value> =
            request.initial_state.iter().map(|e| e.deserialize_as_unchecked().expect("json")).collect();
        let of_type = |t: &str| state.iter().find(|e| e["type"] == t).map(|e| e["content"].clone());
        assert_eq!(of_type("m.room.join_rules"), Some(json!({"join_rule": "invite"})));
        assert_eq!(of_type("m.room.history_visibility"), Some(json!({"history_visibility": "shared"})));
        assert_eq!(of_type("m.room.guest_access"), Some(json!({"guest_access": "forbidden"})));
        assert_eq!(of_type("m.room.topic"), Some(json!({"topic": "T"})), "exactly the keys ensure compares");
        assert_eq!(of_type(META_EVENT), Some(json!({"tenant": "t", "kind": "group"})));
        assert!(state.iter().all(|e| e["state_key"] == ""));
        assert!(request.creation_content.is_none());
        let levels: Value =
            request.power_level_content_override.expect("levels").deserialize_as_unchecked().expect("json");
        assert_eq!(levels, initial_power_levels(0), "written as the policy has it");
    }
}
