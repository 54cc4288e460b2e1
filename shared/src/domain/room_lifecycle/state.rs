//! Pure state: the state events a spec asks for, what differs from the room's, the creation requests, and the
//! typed reads of a room's name, topic and metadata.
//!
//! The desired state is compared in its wire form with what the homeserver holds: ruma's typed contents (join
//! rules, space parent) serialised, and, JSON kept on purpose (docs/adr/0007), our own metadata event and the topic
//! with exactly the keys we write (ruma's topic content would add the `m.topic` block, and every ensure would then
//! see a difference). See `room_policy`.

use ruma::api::client::room::create_room::v3::Request as CreateRoom;
use ruma::events::room::canonical_alias::RoomCanonicalAliasEventContent;
use ruma::events::room::guest_access::{GuestAccess, RoomGuestAccessEventContent};
use ruma::events::room::history_visibility::{HistoryVisibility, RoomHistoryVisibilityEventContent};
use ruma::events::room::name::RoomNameEventContent;
use ruma::events::room::topic::RoomTopicEventContent;
use ruma::{OwnedRoomAliasId, OwnedRoomId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::*;
use crate::app::App;
use crate::domain::room_policy::{
    self, Admission, Creation, initial_power_levels, join_rules, space_parent, space_parent_event,
};
use crate::homeserver::RoomState;
use crate::identity::{RoomKind, Slug, TenantId};

/// The state a room should hold, besides power levels.
pub(super) fn desired_state(
    spec: &RoomSpec,
    owner: (&TenantId, RoomKind, &Slug),
    alias: &OwnedRoomAliasId,
    lifecycle: Lifecycle,
    admission: &Admission,
    parent: Option<&OwnedRoomId>,
    server_name: &str,
) -> Vec<(String, String, Value)> {
    let (tenant, kind, slug) = owner;
    let meta = DesiredMeta {
        tenant: tenant.as_str(),
        kind: kind.as_str(),
        slug: slug.as_str(),
        state: lifecycle,
        event: spec.event.as_ref(),
    };
    let mut canonical_alias = RoomCanonicalAliasEventContent::new();
    canonical_alias.alias = Some(alias.clone());
    let mut state = space_state(spec, admission);
    state.extend([
        room_wide("m.room.history_visibility", &RoomHistoryVisibilityEventContent::new(HistoryVisibility::Shared)),
        room_wide("m.room.guest_access", &RoomGuestAccessEventContent::new(GuestAccess::Forbidden)),
        room_wide("m.room.canonical_alias", &canonical_alias),
        room_wide(META_EVENT, &meta),
    ]);
    if let Some(parent) = parent {
        let link = space_parent(server_name).map(|content| as_json(&content)).unwrap_or_default();
        state.push(("m.space.parent".to_owned(), parent.to_string(), link));
    }
    state
}

/// A typed content in the JSON form it is compared in (serialising ruma's contents cannot fail).
fn as_json<C: Serialize>(content: &C) -> Value {
    serde_json::to_value(content).unwrap_or_default()
}

/// A room-wide (empty state key) event of the desired state.
fn room_wide<C: Serialize>(event_type: &str, content: &C) -> (String, String, Value) {
    (event_type.to_owned(), String::new(), as_json(content))
}

/// The metadata event as a room's spec wants it (the room's own may carry more keys, which stay).
#[derive(Serialize)]
struct DesiredMeta<'a> {
    tenant: &'a str,
    kind: &'a str,
    slug: &'a str,
    state: Lifecycle,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a EventDetails>,
}

/// What a group's space shows: the group's name and topic; it admits whom the group's room admits.
pub(super) fn space_state(spec: &RoomSpec, admission: &Admission) -> Vec<(String, String, Value)> {
    vec![
        room_wide("m.room.name", &RoomNameEventContent::new(spec.name.clone())),
        // As written (JSON kept on purpose): ruma's topic content would add the `m.topic` block.
        room_wide("m.room.topic", &json!({"topic": spec.topic.clone().unwrap_or_default()})),
        room_wide("m.room.join_rules", &join_rules(admission)),
    ]
}

/// The state events of `desired` that `current` does not already hold.
pub(super) fn state_changes(
    current: &RoomState,
    desired: Vec<(String, String, Value)>,
) -> Vec<(String, String, Value)> {
    desired.into_iter().filter(|(event_type, key, content)| current.content(event_type, key) != Some(content)).collect()
}

/// What changed for the people of an event, in one sentence; `None` when nothing they care about did.
pub(super) fn describe_change(
    old_name: Option<&str>,
    old: Option<&EventDetails>,
    new_name: &str,
    new: &EventDetails,
) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(old_name) = old_name
        && old_name != new_name
    {
        parts.push(format!("name: {old_name} → {new_name}"));
    }
    let old = old?;
    let show =
        |v: Option<&String>| v.map(|s| s.replace('T', " ").replace('Z', " UTC")).unwrap_or_else(|| "none".into());
    if old.starts_at != new.starts_at {
        parts.push(format!("starts: {} → {}", show(Some(&old.starts_at)), show(Some(&new.starts_at))));
    }
    if old.ends_at != new.ends_at {
        parts.push(format!("ends: {} → {}", show(old.ends_at.as_ref()), show(new.ends_at.as_ref())));
    }
    if old.location != new.location {
        let place = |v: Option<&String>| v.cloned().unwrap_or_else(|| "none".into());
        parts.push(format!("location: {} → {}", place(old.location.as_ref()), place(new.location.as_ref())));
    }
    (!parts.is_empty()).then(|| format!("Event updated — {}", parts.join("; ")))
}

pub(super) fn digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..12])
}

/// The fields of the metadata event read here; the event itself stays JSON (its other keys survive a write-back).
/// A field that does not parse reads as absent, without hiding the other.
#[derive(Default, Deserialize)]
struct MetaFields {
    #[serde(default, deserialize_with = "ruma::serde::default_on_error")]
    state: Option<Lifecycle>,
    #[serde(default, deserialize_with = "ruma::serde::default_on_error")]
    event: Option<EventDetails>,
}

fn meta_fields(state: &RoomState) -> MetaFields {
    state.single(META_EVENT).and_then(|meta| serde_json::from_value(meta.clone()).ok()).unwrap_or_default()
}

pub(super) fn lifecycle_of(state: &RoomState) -> Lifecycle {
    meta_fields(state).state.unwrap_or(Lifecycle::Active)
}

pub(super) fn event_details_of(state: &RoomState) -> Option<EventDetails> {
    meta_fields(state).event
}

/// The room's name (`m.room.name`).
pub(super) fn name_of(state: &RoomState) -> Option<String> {
    state.typed::<RoomNameEventContent>("").map(|content| content.name)
}

/// The room's topic (`m.room.topic`'s plain text).
pub(super) fn topic_of(state: &RoomState) -> Option<String> {
    state.typed::<RoomTopicEventContent>("").map(|content| content.topic)
}

/// The `createRoom` request of a group's or event's chat room: everything [`desired_state`] wants is in it, so a
/// new room needs no further state write.
pub(super) fn room_creation_request(
    alias: &OwnedRoomAliasId,
    spec: &RoomSpec,
    owner: (&TenantId, RoomKind, &Slug),
    admission: &Admission,
    parent: Option<&OwnedRoomId>,
    server_name: &str,
) -> Result<CreateRoom, DomainError> {
    let desired = desired_state(spec, owner, alias, Lifecycle::Active, admission, parent, server_name);
    let meta = desired.into_iter().find(|(t, _, _)| t == META_EVENT).map(|(_, _, c)| c).unwrap_or_default();
    let extra_state = match parent {
        Some(parent) => vec![space_parent_event(parent, server_name)?],
        None => Vec::new(),
    };
    room_policy::creation_request(Creation {
        alias,
        name: &spec.name,
        topic: Some(spec.topic.as_deref().unwrap_or_default()),
        is_space: false,
        admission: admission.clone(),
        meta,
        extra_state,
        power_levels: initial_power_levels(Lifecycle::Active.events_default()),
    })
}

/// The `createRoom` request of a group's space. Nobody posts in a space.
pub(super) fn space_creation_request(
    alias: &OwnedRoomAliasId,
    spec: &RoomSpec,
    tenant: &TenantId,
    slug: &Slug,
    admission: &Admission,
) -> Result<CreateRoom, DomainError> {
    let meta = room_policy::meta(tenant.as_str(), "space", Some(slug.as_str()));
    room_policy::creation_request(Creation {
        alias,
        name: &spec.name,
        topic: Some(spec.topic.as_deref().unwrap_or_default()),
        is_space: true,
        admission: admission.clone(),
        meta,
        extra_state: Vec::new(),
        power_levels: initial_power_levels(Lifecycle::Archived.events_default()),
    })
}

/// Joined members, the platform's user excluded.
pub fn member_count(app: &App, state: &RoomState) -> u64 {
    let platform = app.identities.platform_user_id();
    state.joined().filter(|user| *user != platform.as_str()).count() as u64
}
