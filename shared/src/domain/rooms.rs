//! Rooms of groups and events: found by their canonical alias, the homeserver being the source of truth.

use ruma::events::room::member::MembershipState;
use std::time::Duration;

use ruma::api::error::ErrorCode;
use ruma::{OwnedRoomAliasId, OwnedRoomId};

use crate::app::App;
use crate::aws::aliases::Aliases;
use crate::domain::DomainError;
use crate::homeserver::HomeserverError;
use crate::identity::Caller;
use crate::identity::{RoomKind, Slug, TenantId};

/// A room of a group or event, resolved.
#[derive(Debug, Clone)]
pub struct RoomRef {
    pub kind: RoomKind,
    pub slug: Slug,
    pub alias: OwnedRoomAliasId,
    pub room_id: OwnedRoomId,
}

/// Looks an alias up in the homeserver's directory; `None` when it is not taken.
pub async fn lookup_alias(app: &App, alias: &OwnedRoomAliasId) -> Result<Option<OwnedRoomId>, DomainError> {
    if let Some(room_id) = app.container.rooms.get(alias.as_str()) {
        return Ok(Some(room_id));
    }
    match app.homeserver.resolve_alias(alias).await {
        Ok(Some(room_id)) => {
            if app.container.rooms.get_stale(alias.as_str()).as_ref() != Some(&room_id) {
                remember(app, alias, &room_id).await;
            }
            app.container.rooms.put(alias.as_str(), &room_id);
            Ok(Some(room_id))
        }
        Ok(None) => Ok(None),
        // The homeserver is out: the alias → room mapping almost never changes, so a remembered one serves (a
        // write then queues for that room instead of failing).
        Err(error) if error.is_transient() => match remembered(app, alias).await {
            Some(room_id) => Ok(Some(room_id)),
            None => Err(error.into()),
        },
        Err(error) => Err(error.into()),
    }
}

/// The alias's room from this container's memory, or from the store (written by [`remember`]).
async fn remembered(app: &App, alias: &OwnedRoomAliasId) -> Option<OwnedRoomId> {
    if let Some(room_id) = app.container.rooms.get_stale(alias.as_str()) {
        return Some(room_id);
    }
    let room_id = Aliases(&app.store).room_id(alias.as_str()).await.ok()??;
    let room_id = OwnedRoomId::try_from(room_id).ok()?;
    app.container.rooms.put(alias.as_str(), &room_id);
    Some(room_id)
}

/// Keeps the alias → room mapping in the store too, for containers that start while the homeserver is out. The
/// homeserver stays the source of truth: a lost table is rebuilt from it by the next lookups.
async fn remember(app: &App, alias: &OwnedRoomAliasId, room_id: &OwnedRoomId) {
    if let Err(error) = Aliases(&app.store).remember(alias.as_str(), room_id.as_str()).await {
        tracing::warn!(error = %error, "could not record the alias mapping");
    }
}

/// Forgets an alias everywhere (after a purge).
pub async fn forget_alias(app: &App, alias: &OwnedRoomAliasId) -> Result<(), DomainError> {
    app.container.rooms.forget(alias.as_str());
    Aliases(&app.store).forget(alias.as_str()).await?;
    Ok(())
}

/// The room behind `alias`, created with the `createRoom` request (which names the alias) when it is free.
/// A short creation lock in the store makes parallel requests create one room: the others wait for the alias.
/// `true` when the room was created now.
pub async fn find_or_create(
    app: &App,
    alias: &OwnedRoomAliasId,
    request: ruma::api::client::room::create_room::v3::Request,
) -> Result<(OwnedRoomId, bool), DomainError> {
    if let Some(room_id) = lookup_alias(app, alias).await? {
        return Ok((room_id, false));
    }
    let aliases = Aliases(&app.store);
    if !aliases.lock(alias.as_str(), 30).await? {
        // Someone else is creating it: wait for the alias to appear.
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Some(room_id) = lookup_alias(app, alias).await? {
                return Ok((room_id, false));
            }
        }
        return Err(DomainError::RoomBeingCreated);
    }
    let result = app.homeserver.create_room(request).await;
    crate::metrics::room_created(result.is_ok());
    aliases.unlock(alias.as_str()).await?;
    match result {
        Ok(room_id) => {
            app.container.rooms.put(alias.as_str(), &room_id);
            tracing::info!(room_id = %room_id, alias = %alias, "room created");
            Ok((room_id, true))
        }
        // The alias was taken between our lookup and the creation: the room exists, use it.
        Err(HomeserverError::Rejected { errcode: ErrorCode::RoomInUse, .. }) => lookup_alias(app, alias)
            .await?
            .map(|id| (id, false))
            .ok_or(DomainError::HomeserverAnswer("alias taken but not resolvable")),
        Err(error) => Err(error.into()),
    }
}

/// The existing room of a group or event, or 404 `room_not_found`.
pub async fn resolve(app: &App, tenant: &TenantId, kind: RoomKind, slug: &Slug) -> Result<RoomRef, DomainError> {
    let alias = app.identities.room_alias(tenant, kind, slug);
    match lookup_alias(app, &alias).await? {
        Some(room_id) => Ok(RoomRef { kind, slug: slug.clone(), alias, room_id }),
        None => Err(DomainError::NotFound {
            code: "room_not_found",
            message: format!("the {} {slug} has no room", kind.as_str()),
        }),
    }
}

/// The `{kind}`/`{slug}` path parameters, resolved.
pub async fn resolve_path(app: &App, tenant: &TenantId, kind: &str, slug: &str) -> Result<RoomRef, DomainError> {
    let kind = RoomKind::from_path(kind)?;
    let slug = Slug::parse(slug)?;
    resolve(app, tenant, kind, &slug).await
}

/// A user's membership in a room as the homeserver sees it (`join`, `invite`, `leave`, `ban`), if any.
pub async fn membership_of(
    app: &App,
    room_id: &ruma::RoomId,
    user_id: &str,
) -> Result<Option<MembershipState>, DomainError> {
    let user_id = crate::homeserver::user_id(user_id)?;
    Ok(app.homeserver.membership(room_id, &user_id).await?)
}

/// Services may act on any room of their tenant; users only on rooms they have joined.
pub async fn require_member(app: &App, room: &RoomRef, caller: &Caller) -> Result<(), DomainError> {
    let Some(user) = caller.user() else {
        return Ok(());
    };
    let user_id = app.identities.matrix_user_id(&caller.tenant, user);
    match membership_of(app, &room.room_id, user_id.as_str()).await? {
        Some(MembershipState::Join) => Ok(()),
        _ => Err(DomainError::not_permitted("only members of this room may do that")),
    }
}

/// Joins a local user with the homeserver's admin join (it invites first where the join rules ask for it). Joining
/// someone already joined is success. The tenant-walls module refuses a user of another tenant even here.
pub async fn admin_join(app: &App, room_id: &ruma::RoomId, user_id: &ruma::UserId) -> Result<(), DomainError> {
    app.homeserver.admin_join(room_id.as_str(), user_id.as_str()).await.map_err(DomainError::from)
}
