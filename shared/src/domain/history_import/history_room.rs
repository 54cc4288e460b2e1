//! The linked history room (docs/adr/0010-history-before-live.md): where a stream's history goes when its room is
//! already live, so that no imported message ever lands after a message people posted.
//!
//! A managed room of the platform, found again by its alias (`#{prefix}{tenant}.history.{kind}.{slug}`), so a
//! resumed or later import reuses it. While an import runs it is *open*: join rule `invite` (nobody joins on their
//! own; the import adds its senders) and `events_default` 0 (the senders post as themselves). When the import of its
//! stream completes it is *closed*: `events_default` at the platform's level (read-only for everybody), join rule
//! `restricted` to members of the live room (they join it with their own token and, with history visibility
//! `shared`, read all of it), and linked: `org.openmeet.history_room` in the live room and `m.space.child` in the
//! live room's space, whose `m.space.parent` the history room carries from its creation.
//!
//! Its alias is no `ManagedRoom` kind: retention and drift repair never see it, so nothing purges imported history.

use ruma::events::EmptyStateKey;
use ruma::events::room::join_rules::{AllowRule, JoinRule, RoomJoinRulesEventContent};
use ruma::events::room::name::RoomNameEventContent;
use ruma::events::space::child::SpaceChildEventContent;
use ruma::events::space::parent::SpaceParentEventContent;
use ruma::room::Restricted;
use ruma::{OwnedRoomAliasId, OwnedRoomId, OwnedServerName};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::App;
use crate::domain::DomainError;
use crate::domain::platform;
use crate::domain::room_lifecycle::settled_state;
use crate::domain::room_policy::{self, Admission, Creation, PLATFORM_LEVEL, initial_power_levels};
use crate::domain::rooms;
use crate::homeserver::RoomState;
use crate::identity::{RoomKind, Slug, TenantId};

/// The state event in the live room naming its history room (state key empty).
pub const LINK_EVENT: &str = "org.openmeet.history_room";

/// The metadata kind of a history room (`org.openmeet.room`).
pub const KIND: &str = "history";

/// `events_default` of a closed history room: only the platform reaches it, so nobody posts, reacts or redacts.
const CLOSED: i64 = PLATFORM_LEVEL;

/// The content of [`LINK_EVENT`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub room_id: OwnedRoomId,
}

/// A live room's history room.
#[derive(Debug, Clone)]
pub struct HistoryRoom {
    pub room_id: OwnedRoomId,
    pub alias: OwnedRoomAliasId,
    pub live_room_id: OwnedRoomId,
    /// Created by this call.
    pub created: bool,
}

/// The history room's alias for the live room of `kind`/`slug`.
pub fn alias(app: &App, tenant: &TenantId, kind: RoomKind, slug: &Slug) -> Result<OwnedRoomAliasId, DomainError> {
    let raw =
        format!("#{}{tenant}.{KIND}.{}.{slug}:{}", app.config.user_prefix, kind.as_str(), app.identities.server_name());
    OwnedRoomAliasId::try_from(raw).map_err(|_| DomainError::Internal)
}

/// The history room, if it exists (a read: nothing is created).
pub async fn find(
    app: &App,
    tenant: &TenantId,
    kind: RoomKind,
    slug: &Slug,
) -> Result<Option<OwnedRoomId>, DomainError> {
    rooms::lookup_alias(app, &alias(app, tenant, kind, slug)?).await
}

/// The join rule of a closed history room: members of the live room, and only they, may join.
pub fn admission(live_room_id: &OwnedRoomId) -> RoomJoinRulesEventContent {
    let rule = Restricted::new(vec![AllowRule::room_membership(live_room_id.clone())]);
    RoomJoinRulesEventContent::new(JoinRule::Restricted(rule))
}

/// The spaces the live room sits in (its `m.space.parent` events).
fn spaces_of(state: &RoomState) -> Vec<OwnedRoomId> {
    state
        .events()
        .filter(|(event_type, _, content)| *event_type == "m.space.parent" && content.get("via").is_some())
        .filter_map(|(_, key, _)| OwnedRoomId::try_from(key).ok())
        .collect()
}

/// Finds or creates the history room and opens it for an import run (see the module's documentation). Writes only
/// what differs from an open room.
pub async fn open(
    app: &App,
    tenant: &TenantId,
    kind: RoomKind,
    slug: &Slug,
    live_room_id: &OwnedRoomId,
) -> Result<HistoryRoom, DomainError> {
    let alias = alias(app, tenant, kind, slug)?;
    let server = app.identities.server_name().to_owned();
    let live = settled_state(app, live_room_id.as_str()).await?;
    let name = live.typed::<RoomNameEventContent>("").map_or_else(|| slug.to_string(), |n| n.name);
    let extra_state = spaces_of(&live)
        .first()
        .map(|space| room_policy::space_parent_event(space, &server))
        .transpose()?
        .into_iter()
        .collect();
    let history_slug = format!("{}.{slug}", kind.as_str());
    let mut meta = room_policy::meta(tenant.as_str(), KIND, Some(&history_slug));
    meta["liveRoom"] = json!(live_room_id);
    let request = room_policy::creation_request(Creation {
        alias: &alias,
        name: &format!("{name} (history)"),
        topic: Some("Messages imported from Zulip, before this room opened. Read-only."),
        is_space: false,
        admission: Admission::InviteOnly,
        meta,
        extra_state,
        power_levels: initial_power_levels(0),
    })?;
    let (room_id, created) = rooms::find_or_create(app, &alias, request).await?;
    if !created {
        let state = settled_state(app, room_id.as_str()).await?;
        set_events_default(app, &room_id, &state, 0).await?;
        if state.typed::<RoomJoinRulesEventContent>("").map(|r| r.join_rule) != Some(JoinRule::Invite) {
            let rules = room_policy::join_rules(&Admission::InviteOnly);
            platform::put_typed_state(app, room_id.as_str(), &EmptyStateKey, &rules).await?;
        }
    }
    Ok(HistoryRoom { room_id, alias, live_room_id: live_room_id.clone(), created })
}

/// Closes the history room (read-only, members of the live room may join) and links it from the live room and its
/// space. Writes only what differs: a second close writes nothing.
pub async fn close(app: &App, room: &HistoryRoom) -> Result<(), DomainError> {
    let state = settled_state(app, room.room_id.as_str()).await?;
    set_events_default(app, &room.room_id, &state, CLOSED).await?;
    let rules = admission(&room.live_room_id);
    if state.typed::<RoomJoinRulesEventContent>("").map(|r| r.join_rule) != Some(rules.join_rule.clone()) {
        platform::put_typed_state(app, room.room_id.as_str(), &EmptyStateKey, &rules).await?;
    }
    let live = platform::room_state(app, room.live_room_id.as_str()).await?;
    let link = Link { room_id: room.room_id.clone() };
    let wanted = serde_json::to_value(&link).map_err(|_| DomainError::Internal)?;
    if live.single(LINK_EVENT) != Some(&wanted) {
        platform::put_state(app, room.live_room_id.as_str(), LINK_EVENT, "", &wanted).await?;
    }
    let server = OwnedServerName::try_from(app.identities.server_name()).map_err(|_| DomainError::Internal)?;
    for space in spaces_of(&live) {
        // Only spaces the history room names as its parent (from its creation) list it as a child.
        if state.typed::<SpaceParentEventContent>(space.as_str()).is_none() {
            continue;
        }
        let space_state = platform::room_state(app, space.as_str()).await?;
        if space_state.typed::<SpaceChildEventContent>(room.room_id.as_str()).is_none() {
            // Not suggested: the live room is; this one is for those who want to read back.
            let child = SpaceChildEventContent::new(vec![server.clone()]);
            platform::put_typed_state(app, space.as_str(), &*room.room_id, &child).await?;
        }
    }
    Ok(())
}

/// Sets `events_default` when it differs (one power-levels write, other keys kept).
async fn set_events_default(
    app: &App,
    room_id: &OwnedRoomId,
    state: &RoomState,
    level: i64,
) -> Result<(), DomainError> {
    let mut levels = state.single("m.room.power_levels").cloned().unwrap_or_else(|| initial_power_levels(level));
    if levels.get("events_default").and_then(Value::as_i64) == Some(level) {
        return Ok(());
    }
    levels["events_default"] = json!(level);
    platform::put_state(app, room_id.as_str(), "m.room.power_levels", "", &levels).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_history_room_admits_members_of_its_live_room_only() {
        let live = OwnedRoomId::try_from("!live:localhost").expect("room id");
        let rules = serde_json::to_value(admission(&live)).expect("serialises");
        assert_eq!(
            rules,
            json!({"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": "!live:localhost"}]})
        );
        let link = serde_json::to_value(Link { room_id: OwnedRoomId::try_from("!h:localhost").expect("id") });
        assert_eq!(link.expect("serialises"), json!({"room_id": "!h:localhost"}));
        assert!(CLOSED > crate::domain::roles::Role::Owner.power_level());
        // No managed kind: the room-wide passes (upgrade, retention by alias) never take it for one of theirs.
        let parse = |alias: &str| crate::domain::tenancy::ManagedRoom::from_alias("om_", "localhost", alias);
        assert_eq!(parse("#om_acme.history.group.chess:localhost"), None);
        assert_eq!(parse("#om_acme.history.event.a.b:localhost"), None);
    }
}
