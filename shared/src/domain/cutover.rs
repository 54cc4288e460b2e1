//! Thin entry points for the hard cutover (`tools/cutover`): the user, room and membership code the functions run,
//! plus reads of the homeserver's actual state through admin endpoints (no per-user token), so that a run can
//! record what it is about to change and `verify` can compare. Nothing here decides how a room or a membership
//! looks: that stays in [`room_lifecycle`], [`membership`] and [`users`].
//!
//! State contents are read into typed contents: ruma's, or the few fields of our own metadata event.

use std::collections::{BTreeMap, HashMap};

use ruma::events::room::join_rules::RoomJoinRulesEventContent;
use ruma::events::room::name::RoomNameEventContent;
use ruma::events::room::topic::RoomTopicEventContent;
use ruma::{OwnedRoomAliasId, UserId};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::App;
use crate::domain::DomainError;
use crate::domain::membership::{self, ReconcileReport, Reconciled, Role};
use crate::domain::room_lifecycle::{self, CancelInput, DeleteMode, EventDetails, Lifecycle, RoomSpec};
use crate::domain::rooms;
use crate::domain::{platform, tenancy, users};
use crate::homeserver::Acting;
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
    if current.deactivated {
        return Err(DomainError::conflict("user_deleted", "this user was deleted; its Matrix identity is retired"));
    }
    let user_id = app.identities.matrix_user_id(tenant, user);
    let created = !current.exists && users::register(app, tenant, user).await?;
    // A fresh registration carries the localpart as its display name. The profile is set before the user joins
    // anything: afterwards each change would also rewrite their member event in every room.
    let shown = if current.exists { current.display_name.as_deref() } else { None };
    if shown != Some(display_name) {
        set_profile(app, &user_id, "displayname", display_name).await?;
    }
    let avatar_now = if current.exists { current.avatar_url.as_deref() } else { None };
    if avatar_now != avatar_url {
        set_profile(app, &user_id, "avatar_url", avatar_url.unwrap_or("")).await?;
    }
    // Like the reconcile's provisioning (`users::ensure_profile`), a bulk path: the tenant's space is joined at the
    // user's first session (`sessions::create`), since joins into one room are serialised by the homeserver.
    Ok(created)
}

async fn set_profile(app: &App, user_id: &UserId, field: &str, value: &str) -> Result<(), DomainError> {
    let acting = Acting::Masquerade { user: user_id, device: None };
    Ok(app.homeserver.set_profile_field(user_id, field, value, acting).await?)
}

/// Puts a user back as `before` found them: a user who did not exist is deactivated.
pub async fn restore_user(
    app: &App,
    tenant: &TenantId,
    user: &UserSlug,
    before: &UserState,
) -> Result<(), DomainError> {
    if !before.exists {
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
    let mut events: HashMap<String, Value> = HashMap::new();
    let mut parents = Vec::new();
    for event in state {
        if event.event_type == "m.space.parent" {
            // A removed link is an empty content.
            let fields: BTreeMap<String, IgnoredAny> = serde_json::from_value(event.content).unwrap_or_default();
            if !fields.is_empty() {
                parents.push(event.state_key);
            }
        } else if event.state_key.is_empty() {
            events.insert(event.event_type, event.content);
        }
    }
    let power = membership::PowerLevels::from_content(events.get("m.room.power_levels").unwrap_or(&Value::Null));
    let meta: MetaFields = content(&mut events, room_lifecycle::META_EVENT).unwrap_or_default();
    let joined = members.into_iter().filter(|id| *id != platform.as_str()).collect();
    Ok(Some(RoomState {
        room_id: room_id.to_string(),
        name: content::<RoomNameEventContent>(&mut events, "m.room.name").map(|c| c.name),
        topic: content::<RoomTopicEventContent>(&mut events, "m.room.topic").map(|c| c.topic).filter(|t| !t.is_empty()),
        join_rule: content::<RoomJoinRulesEventContent>(&mut events, "m.room.join_rules")
            .map(|c| c.join_rule.as_str().to_owned()),
        lifecycle: meta.state,
        event: meta.event,
        parents,
        joined,
        levels: power.users,
        users_default: power.users_default,
    }))
}

/// The room-wide state event of `event_type` as `T` (`None`: absent, or not a `T`).
fn content<T: DeserializeOwned>(events: &mut HashMap<String, Value>, event_type: &str) -> Option<T> {
    serde_json::from_value(events.remove(event_type)?).ok()
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
    if now == lifecycle && now != Lifecycle::Active {
        // A cancelled or archived room is read-only: there is nothing more to converge.
        return Ok(false);
    }
    if now == Lifecycle::Archived || (now == Lifecycle::Cancelled && lifecycle == Lifecycle::Active) {
        return Err(DomainError::conflict(
            "conflict",
            format!("this room is {} and cannot be reopened", serde_json::to_value(now).unwrap_or_default()),
        ));
    }
    let created =
        if now == Lifecycle::Active { room_lifecycle::ensure(app, tenant, kind, slug, spec).await?.1 } else { false };
    match lifecycle {
        Lifecycle::Active => {}
        Lifecycle::Cancelled => {
            room_lifecycle::cancel(app, tenant, slug, CancelInput::default()).await?;
        }
        Lifecycle::Archived => room_lifecycle::delete(app, tenant, kind, slug, DeleteMode::Archive).await?,
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
        return room_lifecycle::delete(app, tenant, kind, slug, DeleteMode::Purge).await;
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
/// size (the cutover is the background job), and regardless of the last-owner rule (the snapshot is the truth).
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
    match membership::reconcile(app, tenant, &room, wanted, dry_run, true).await? {
        Reconciled::Applied(report) => Ok(report),
        Reconciled::TooLarge(_) => Err(DomainError::conflict(
            "conflict",
            "the reconcile is larger than OPENMEET_RECONCILE_INLINE_CHANGES allows inline",
        )),
    }
}
