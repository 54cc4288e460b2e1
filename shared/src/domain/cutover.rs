//! Thin entry points for the hard cutover (`tools/cutover`): the user, room and membership code the functions run,
//! plus reads of the homeserver's actual state through admin endpoints (no per-user token), so that a run can
//! record what it is about to change and `verify` can compare. Nothing here decides how a room or a membership
//! looks: that stays in [`room_lifecycle`], [`membership`] and [`users`].
//!
//! State contents are read into typed contents: ruma's, or the few fields of our own metadata event.

use std::collections::BTreeMap;

use ruma::events::StaticEventContent;
use ruma::events::room::join_rules::RoomJoinRulesEventContent;
use ruma::events::room::name::RoomNameEventContent;
use ruma::events::room::topic::RoomTopicEventContent;
use ruma::{OwnedRoomAliasId, UserId};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::App;
use crate::domain::DomainError;
use crate::domain::drift::intent;
use crate::domain::membership::{self, ReconcileReport, Reconciled, Role};
use crate::domain::operations;
use crate::domain::room_lifecycle::{self, CancelInput, DeleteMode, EventDetails, Lifecycle, RoomSpec};
use crate::domain::rooms;
use crate::domain::{platform, tenancy, users};
use crate::homeserver::Acting;
use crate::homeserver::admin_rooms::StateEvent;
use crate::identity::{RoomKind, Slug, TenantId, UserSlug};

/// A user as the homeserver knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserState {
    pub exists: bool,
    pub deactivated: bool,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
}

/// Reads a user with the admin API (one call; a missing user is `exists: false`).
pub async fn read_user(app: &App, tenant: &TenantId, user: &UserSlug) -> Result<UserState, DomainError> {
    let user_id = app.identities.matrix_user_id(tenant, user);
    let Some(info) = app.homeserver.admin_user(&user_id).await? else {
        return Ok(UserState::default());
    };
    let text = |field: Option<String>| field.filter(|s| !s.is_empty());
    Ok(UserState {
        exists: true,
        deactivated: info.deactivated,
        display_name: text(info.displayname),
        avatar_url: text(info.avatar_url),
    })
}

/// Makes the user exist with this profile through the appservice (register, then the profile as the user by
/// masquerade: no per-user login). `current` is what [`read_user`] returned. `true` when created now.
pub async fn ensure_user(
    app: &App,
    tenant: &TenantId,
    user: &UserSlug,
    display_name: &str,
    avatar_url: Option<&str>,
    current: &UserState,
) -> Result<bool, DomainError> {
    let user_id = app.identities.matrix_user_id(tenant, user);
    // The snapshot lists this user, so OpenMeet holds them: a deactivated Matrix id is one a cutover's rollback
    // retired (the run records it as absent, so that its own rollback deactivates it again), and it comes back.
    if current.deactivated {
        app.homeserver.reactivate_user(&user_id).await?;
    }
    let created = !current.exists && users::register(app, tenant, user).await?;
    // A fresh registration carries the localpart as its display name; a reactivated profile is rewritten whole.
    // The profile is set before the user joins anything: afterwards each change would also rewrite their member
    // event in every room.
    let fresh = !current.exists || current.deactivated;
    let shown = if fresh { None } else { current.display_name.as_deref() };
    if shown != Some(display_name) {
        set_profile(app, &user_id, "displayname", display_name).await?;
    }
    let avatar_now = if fresh { None } else { current.avatar_url.as_deref() };
    if avatar_now != avatar_url {
        set_profile(app, &user_id, "avatar_url", avatar_url.unwrap_or("")).await?;
    }
    // Into the tenant's space now (the first session would do it): every tenant-public room is `restricted` to that
    // space, so each of the user's later joins is then one masquerade join, one event, instead of an admin join's
    // invite and join (docs/adr/0011-bulk-memberships.md). One join per user, into one room, in the users stage.
    if fresh {
        // Registered or reactivated now: in no room, so no read first (`prepare_tenant` settled the space).
        let space = tenancy::tenant_space(app, tenant).await?;
        rooms::admin_join(app, &space, &user_id).await?;
    } else {
        tenancy::admit(app, tenant, &user_id).await?;
    }
    Ok(created)
}

async fn set_profile(app: &App, user_id: &UserId, field: &str, value: &str) -> Result<(), DomainError> {
    let acting = Acting::Masquerade { user: user_id, device: None };
    Ok(app.homeserver.set_profile_field(user_id, field, value, acting).await?)
}

/// Puts a user back as `before` found them: a user who did not exist, or was deactivated, is deactivated.
pub async fn restore_user(
    app: &App,
    tenant: &TenantId,
    user: &UserSlug,
    before: &UserState,
) -> Result<(), DomainError> {
    if !before.exists || before.deactivated {
        return users::delete(app, tenant, user).await;
    }
    let now = read_user(app, tenant, user).await?;
    let user_id = app.identities.matrix_user_id(tenant, user);
    if now.exists && !now.deactivated {
        if now.display_name != before.display_name {
            set_profile(app, &user_id, "displayname", before.display_name.as_deref().unwrap_or(user.as_str())).await?;
        }
        if now.avatar_url != before.avatar_url {
            set_profile(app, &user_id, "avatar_url", before.avatar_url.as_deref().unwrap_or("")).await?;
        }
    }
    Ok(())
}

/// Creates the tenant's space (and waits until its creation has finished) before the rooms that admit its members
/// are made, so that users' first sessions do not race to create it.
pub async fn prepare_tenant(app: &App, tenant: &TenantId) -> Result<(), DomainError> {
    let space = tenancy::tenant_space(app, tenant).await?;
    room_lifecycle::settled_state(app, space.as_str()).await.map(|_| ())
}

/// A managed room as the homeserver's admin API shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomState {
    pub room_id: String,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub join_rule: Option<String>,
    pub lifecycle: Option<Lifecycle>,
    /// The `event` part of the room's metadata.
    pub event: Option<EventDetails>,
    /// Room ids of its `m.space.parent` events.
    pub parents: Vec<String>,
    /// Joined users, the platform excluded.
    pub joined: Vec<String>,
    /// Explicit power-level entries.
    pub levels: BTreeMap<String, i64>,
    pub users_default: i64,
}

impl RoomState {
    pub fn level_of(&self, user_id: &str) -> i64 {
        self.levels.get(user_id).copied().unwrap_or(self.users_default)
    }

    /// The tenant's joined users with the role their level reads as: what a reconcile restores.
    pub fn members(&self, app: &App, tenant: &TenantId) -> Vec<(UserSlug, Role)> {
        self.joined
            .iter()
            .filter_map(|id| {
                let (owner, user) = app.identities.openmeet_user(&UserId::parse(id.as_str()).ok()?)?;
                (owner == *tenant).then(|| (user, Role::from_power_level(self.level_of(id))))
            })
            .collect()
    }
}

/// The fields of a room's metadata event (`org.openmeet.room`) a cutover reads; an unknown lifecycle reads as none.
#[derive(Debug, Default, Deserialize)]
struct MetaFields {
    #[serde(default, deserialize_with = "ruma::serde::default_on_error")]
    state: Option<Lifecycle>,
    #[serde(default, deserialize_with = "ruma::serde::default_on_error")]
    event: Option<EventDetails>,
}

/// A topic exactly as written (not ruma's content, which adds an `m.topic` block on the way back).
#[derive(Serialize)]
struct PlainTopic<'a> {
    topic: &'a str,
}

/// Reads the room behind `alias` (`None` when the alias is free): its state and joined members, through the
/// admin API.
pub async fn read_room(app: &App, alias: &OwnedRoomAliasId) -> Result<Option<RoomState>, DomainError> {
    let Some(room_id) = rooms::lookup_alias(app, alias).await? else {
        return Ok(None);
    };
    let state = match app.homeserver.admin_room_state(room_id.as_str()).await {
        Ok(state) => state,
        // An alias left behind by a purge still in progress.
        Err(error) if error.is_not_found() => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let members = app.homeserver.admin_room_members(room_id.as_str()).await?;
    let platform = app.identities.platform_user_id();
    Ok(Some(RoomState::read(room_id.to_string(), &state, members, platform.as_str())))
}

impl RoomState {
    /// The room as its current state and joined members show it; `platform` is left out of the members.
    pub fn read(room_id: String, state: &[StateEvent], members: Vec<String>, platform: &str) -> RoomState {
        let room_wide = |event_type: &str| state.iter().find(|e| e.event_type == event_type && e.state_key.is_empty());
        let power = membership::PowerLevels::from_content(
            room_wide("m.room.power_levels").map_or(&Value::Null, |event| &event.content),
        );
        let meta: MetaFields = room_wide(room_lifecycle::META_EVENT)
            .and_then(|event| serde_json::from_value(event.content.clone()).ok())
            .unwrap_or_default();
        // A removed link is an empty content.
        let parents = state
            .iter()
            .filter(|event| event.event_type == "m.space.parent")
            .filter(|event| {
                serde_json::from_value::<BTreeMap<String, IgnoredAny>>(event.content.clone())
                    .is_ok_and(|fields| !fields.is_empty())
            })
            .map(|event| event.state_key.clone())
            .collect();
        RoomState {
            room_id,
            name: single::<RoomNameEventContent>(state).map(|c| c.name),
            topic: single::<RoomTopicEventContent>(state).map(|c| c.topic).filter(|t| !t.is_empty()),
            join_rule: single::<RoomJoinRulesEventContent>(state).map(|c| c.join_rule.as_str().to_owned()),
            lifecycle: meta.state,
            event: meta.event,
            parents,
            joined: members.into_iter().filter(|id| id != platform).collect(),
            levels: power.users,
            users_default: power.users_default,
        }
    }
}

/// The room-wide state event of `C`'s type, as `C` (`None`: absent, or not of its shape).
fn single<C: StaticEventContent + DeserializeOwned>(state: &[StateEvent]) -> Option<C> {
    state.iter().filter(|event| event.state_key.is_empty()).find_map(StateEvent::typed)
}

/// Makes the room of a group (with its space) or an event match `spec` and `lifecycle`, through
/// [`room_lifecycle`]. `current` is what [`read_room`] returned. `true` when the room was created now.
pub async fn ensure_room(
    app: &App,
    tenant: &TenantId,
    kind: RoomKind,
    slug: &Slug,
    spec: RoomSpec,
    lifecycle: Lifecycle,
    current: Option<&RoomState>,
) -> Result<bool, DomainError> {
    let now = current.and_then(|room| room.lifecycle).unwrap_or(Lifecycle::Active);
    // Recorded as the API records it (`requests::put_room`), so that drift repair and retention see the room.
    let version = operations::now_version();
    if now == lifecycle && now != Lifecycle::Active {
        // A cancelled or archived room is read-only: there is nothing more to converge (its settings may still
        // be unrecorded, by a run from before they were).
        if let Some(room) = current {
            intent::record_room(app, tenant, kind, slug, &room.room_id, &spec, version).await?;
        }
        return Ok(false);
    }
    if now == Lifecycle::Archived || (now == Lifecycle::Cancelled && lifecycle == Lifecycle::Active) {
        return Err(DomainError::conflict(
            "conflict",
            format!("this room is {} and cannot be reopened", serde_json::to_value(now).unwrap_or_default()),
        ));
    }
    let (room_id, created) = match current {
        Some(room) if now != Lifecycle::Active => (room.room_id.clone(), false),
        _ => {
            let (view, created) = room_lifecycle::ensure(app, tenant, kind, slug, spec.clone()).await?;
            (view.room_id, created)
        }
    };
    intent::record_room(app, tenant, kind, slug, &room_id, &spec, version).await?;
    let at = version / 1000;
    match lifecycle {
        Lifecycle::Active => {}
        Lifecycle::Cancelled => {
            room_lifecycle::cancel(app, tenant, slug, CancelInput::default()).await?;
            intent::record_lifecycle(app, tenant, kind, slug, "cancelled", version, at).await?;
        }
        Lifecycle::Archived => {
            room_lifecycle::delete(app, tenant, kind, slug, DeleteMode::Archive).await?;
            intent::record_lifecycle(app, tenant, kind, slug, "archived", version, at).await?;
        }
    }
    Ok(created)
}

/// Puts a room back as `before` found it: a room that did not exist is purged (a group's space with it); an
/// existing one gets its name and topic back (a lifecycle change is not reversible: its notice was posted).
pub async fn restore_room(
    app: &App,
    tenant: &TenantId,
    kind: RoomKind,
    slug: &Slug,
    before: Option<&RoomState>,
) -> Result<(), DomainError> {
    let Some(before) = before else {
        room_lifecycle::delete(app, tenant, kind, slug, DeleteMode::Purge).await?;
        // A purged room is no longer managed (as `requests::delete_room` records it).
        return intent::forget_room(app, tenant, kind, slug).await;
    };
    let Some(now) = read_room(app, &app.identities.room_alias(tenant, kind, slug)).await? else {
        return Ok(());
    };
    if now.name != before.name {
        let name = RoomNameEventContent::new(before.name.clone().unwrap_or_default());
        let content = serde_json::to_value(name).map_err(|_| DomainError::Internal)?;
        platform::put_state(app, &now.room_id, "m.room.name", "", &content).await?;
    }
    if now.topic != before.topic {
        let topic = PlainTopic { topic: before.topic.as_deref().unwrap_or_default() };
        let content = serde_json::to_value(topic).map_err(|_| DomainError::Internal)?;
        platform::put_state(app, &now.room_id, "m.room.topic", "", &content).await?;
    }
    Ok(())
}

/// Makes the room's members exactly `wanted` through the one reconcile of [`membership`], inline whatever its
/// size (the cutover is the background job), and regardless of the last-owner rule (the snapshot is the truth):
/// its bulk path ([`membership::reconcile_bulk`]: one write per membership, one write in flight in the room).
/// With `dry_run`, only reports.
pub async fn reconcile_members(
    app: &App,
    tenant: &TenantId,
    kind: RoomKind,
    slug: &Slug,
    wanted: &[(UserSlug, Role)],
    dry_run: bool,
) -> Result<ReconcileReport, DomainError> {
    let room = rooms::resolve(app, tenant, kind, slug).await?;
    let version = operations::now_version();
    if dry_run {
        return match membership::reconcile(app, tenant, &room, wanted, true, true).await? {
            Reconciled::Applied(report) | Reconciled::TooLarge(report) => Ok(report),
        };
    }
    let report = membership::reconcile_bulk(app, tenant, &room, wanted, true).await?;
    // The list becomes the room's desired members, as the API's reconcile records it.
    intent::record_roster(app, tenant, kind.path_segment(), slug.as_str(), wanted, version).await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::room_lifecycle::META_EVENT;

    fn state(events: Value) -> Vec<StateEvent> {
        serde_json::from_value(events).expect("state events")
    }

    #[test]
    fn a_room_reads_typed_from_its_state() {
        let events = state(json!([
            {"type": "m.room.name", "state_key": "", "content": {"name": "Chess"}},
            {"type": "m.room.topic", "state_key": "", "content": {"topic": ""}},
            {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "restricted"}},
            {"type": "m.room.power_levels", "state_key": "", "content": {"users": {"@a:x": 50}, "users_default": 0}},
            {"type": META_EVENT, "state_key": "", "content": {"state": "cancelled", "tenant": "t",
                "event": {"startsAt": "2031-01-01T18:00:00Z", "location": "Hall"}}},
            {"type": "m.space.parent", "state_key": "!space:x", "content": {"via": ["x"]}},
            {"type": "m.space.parent", "state_key": "!old:x", "content": {}},
            {"type": "m.room.member", "state_key": "@a:x", "content": {"membership": "join"}}
        ]));
        let members = vec!["@a:x".to_owned(), "@platform:x".to_owned()];
        let room = RoomState::read("!r:x".into(), &events, members, "@platform:x");
        assert_eq!((room.name.as_deref(), room.topic.as_deref()), (Some("Chess"), None));
        assert_eq!(room.join_rule.as_deref(), Some("restricted"));
        assert_eq!(room.lifecycle, Some(Lifecycle::Cancelled));
        let event = room.event.as_ref().expect("event details");
        assert_eq!((event.starts_at.as_str(), event.location.as_deref()), ("2031-01-01T18:00:00Z", Some("Hall")));
        assert_eq!((room.level_of("@a:x"), room.level_of("@b:x")), (50, 0));
        assert_eq!((room.parents, room.joined), (vec!["!space:x".to_owned()], vec!["@a:x".to_owned()]));
    }

    #[test]
    fn unknown_or_missing_state_reads_as_none() {
        let events = state(json!([
            {"type": "m.room.name", "state_key": "other", "content": {"name": "not room-wide"}},
            {"type": META_EVENT, "state_key": "", "content": {"state": "paused", "event": {"startsAt": "x"}}},
            {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock_restricted"}}
        ]));
        let room = RoomState::read("!r:x".into(), &events, Vec::new(), "@platform:x");
        assert_eq!((room.name, room.lifecycle), (None, None));
        assert!(room.event.is_some(), "a lifecycle this version does not know leaves the event details readable");
        assert_eq!(room.join_rule.as_deref(), Some("knock_restricted"));
        assert_eq!(
            RoomState::read("!r:x".into(), &[], Vec::new(), "@p:x"),
            RoomState { room_id: "!r:x".into(), ..RoomState::default() }
        );
    }
}
