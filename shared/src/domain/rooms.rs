//! Rooms of groups and events: found by their canonical alias, the homeserver being the source of truth.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ruma::{OwnedRoomAliasId, OwnedRoomId};
use serde_json::Value;

use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::homeserver::{Acting, encode};
use crate::identity::{RoomKind, Slug, TenantId};

/// A room of a group or event, resolved.
#[derive(Debug, Clone)]
pub struct RoomRef {
    pub kind: RoomKind,
    pub slug: Slug,
    pub alias: OwnedRoomAliasId,
    pub room_id: OwnedRoomId,
}

/// Alias → room id, per container. Short-lived: a purge elsewhere must not be hidden for long.
#[derive(Default)]
pub struct RoomCache(Mutex<HashMap<String, (OwnedRoomId, Instant)>>);

const ROOM_CACHE_TTL: Duration = Duration::from_secs(60);

impl RoomCache {
    fn get(&self, alias: &str) -> Option<OwnedRoomId> {
        let cache = self.0.lock().ok()?;
        cache.get(alias).filter(|(_, at)| at.elapsed() < ROOM_CACHE_TTL).map(|(id, _)| id.clone())
    }

    pub fn put(&self, alias: &str, room_id: &OwnedRoomId) {
        if let Ok(mut cache) = self.0.lock() {
            cache.retain(|_, (_, at)| at.elapsed() < ROOM_CACHE_TTL);
            cache.insert(alias.to_owned(), (room_id.clone(), Instant::now()));
        }
    }

    pub fn forget(&self, alias: &str) {
        if let Ok(mut cache) = self.0.lock() {
            cache.remove(alias);
        }
    }
}

/// Looks an alias up in the homeserver's directory; `None` when it is not taken.
pub async fn lookup_alias(app: &App, alias: &OwnedRoomAliasId) -> Result<Option<OwnedRoomId>, ApiError> {
    if let Some(room_id) = app.rooms.get(alias.as_str()) {
        return Ok(Some(room_id));
    }
    let path = format!("/_matrix/client/v3/directory/room/{}", encode(alias.as_str()));
    match app.homeserver.call::<Value>(reqwest::Method::GET, &path, Acting::Platform, None::<&Value>).await {
        Ok(body) => {
            let room_id = body
                .get("room_id")
                .and_then(Value::as_str)
                .and_then(|id| OwnedRoomId::try_from(id).ok())
                .ok_or(ApiError::HomeserverRejected("alias lookup returned no room id".into()))?;
            app.rooms.put(alias.as_str(), &room_id);
            Ok(Some(room_id))
        }
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The existing room of a group or event, or 404 `room_not_found`.
pub async fn resolve(app: &App, tenant: &TenantId, kind: RoomKind, slug: &Slug) -> Result<RoomRef, ApiError> {
    let alias = app.identities.room_alias(tenant, kind, slug);
    match lookup_alias(app, &alias).await? {
        Some(room_id) => Ok(RoomRef { kind, slug: slug.clone(), alias, room_id }),
        None => Err(ApiError::NotFound {
            code: "room_not_found",
            message: format!("the {} {slug} has no room", kind.as_str()),
        }),
    }
}

/// The `{kind}`/`{slug}` path parameters, resolved.
pub async fn resolve_path(app: &App, tenant: &TenantId, kind: &str, slug: &str) -> Result<RoomRef, ApiError> {
    let kind = RoomKind::from_path(kind)?;
    let slug = Slug::parse(slug)?;
    resolve(app, tenant, kind, &slug).await
}

/// A user's membership in a room as the homeserver sees it (`join`, `invite`, `leave`, `ban`), if any.
pub async fn membership_of(app: &App, room_id: &OwnedRoomId, user_id: &str) -> Result<Option<String>, ApiError> {
    let path = format!("/_matrix/client/v3/rooms/{}/state/m.room.member/{}", encode(room_id.as_str()), encode(user_id));
    match app.homeserver.call::<Value>(reqwest::Method::GET, &path, Acting::Platform, None::<&Value>).await {
        Ok(content) => Ok(content.get("membership").and_then(Value::as_str).map(str::to_owned)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Services may act on any room of their tenant; users only on rooms they have joined.
pub async fn require_member(app: &App, room: &RoomRef, caller: &Caller) -> Result<(), ApiError> {
    let Some(user) = caller.user() else {
        return Ok(());
    };
    let user_id = app.identities.matrix_user_id(&caller.tenant, user);
    match membership_of(app, &room.room_id, user_id.as_str()).await?.as_deref() {
        Some("join") => Ok(()),
        _ => Err(ApiError::forbidden("only members of this room may do that")),
    }
}
