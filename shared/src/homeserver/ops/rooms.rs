//! Rooms: creation, the alias directory, the server-wide room directory.

use ruma::api::client::alias::{delete_alias, get_alias};
use ruma::api::client::directory::{get_room_visibility, set_room_visibility};
use ruma::api::client::room::{aliases, create_room};
use ruma::events::AnyInitialStateEvent;
use ruma::serde::Raw;
use ruma::{OwnedRoomAliasId, OwnedRoomId, OwnedUserId, RoomAliasId, RoomId, RoomVersionId};
use serde::Deserialize;
use serde_json::Value;

use super::raw;
use crate::homeserver::{Acting, Homeserver, HomeserverError};

pub use ruma::api::client::room::Visibility;

/// A `createRoom` body as the room policy writes it (`room_policy::creation_body`), read into ruma's request. The
/// contents stay raw: the initial state holds our own event types, the power levels keys ruma does not model.
#[derive(Deserialize)]
struct CreationBody {
    #[serde(default)]
    creation_content: Option<Value>,
    #[serde(default)]
    initial_state: Vec<Value>,
    #[serde(default)]
    invite: Vec<OwnedUserId>,
    #[serde(default)]
    is_direct: bool,
    name: Option<String>,
    power_level_content_override: Option<Value>,
    preset: Option<create_room::v3::RoomPreset>,
    room_alias_name: Option<String>,
    room_version: Option<RoomVersionId>,
    topic: Option<String>,
    #[serde(default)]
    visibility: Visibility,
}

impl Homeserver {
    /// Creates a room as the platform with a `createRoom` body; returns its id. `M_ROOM_IN_USE`: the alias is taken.
    pub async fn create_room(&self, body: &Value) -> Result<OwnedRoomId, HomeserverError> {
        let body: CreationBody = serde_json::from_value(body.clone())
            .map_err(|e| HomeserverError::InvalidResponse(format!("createRoom body: {e}")))?;
        let mut request = create_room::v3::Request::new();
        request.creation_content = body.creation_content.as_ref().map(raw).transpose()?;
        request.initial_state =
            body.initial_state.iter().map(raw::<AnyInitialStateEvent>).collect::<Result<Vec<Raw<_>>, _>>()?;
        request.invite = body.invite;
        request.is_direct = body.is_direct;
        request.name = body.name;
        request.power_level_content_override = body.power_level_content_override.as_ref().map(raw).transpose()?;
        request.preset = body.preset;
        request.room_alias_name = body.room_alias_name;
        request.room_version = body.room_version;
        request.topic = body.topic;
        request.visibility = body.visibility;
        Ok(self.send(request, Acting::Platform).await?.room_id)
    }

    /// The room an alias points at; `None` when the alias is not taken.
    pub async fn resolve_alias(&self, alias: &RoomAliasId) -> Result<Option<OwnedRoomId>, HomeserverError> {
        match self.send(get_alias::v3::Request::new(alias.to_owned()), Acting::Platform).await {
            Ok(response) => Ok(Some(response.room_id)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The local aliases of a room, read as the platform.
    pub async fn room_aliases(&self, room_id: &RoomId) -> Result<Vec<OwnedRoomAliasId>, HomeserverError> {
        Ok(self.send(aliases::v3::Request::new(room_id.to_owned()), Acting::Platform).await?.aliases)
    }

    /// Removes an alias from the directory; `false` when it was already gone.
    pub async fn delete_alias(&self, alias: &RoomAliasId) -> Result<bool, HomeserverError> {
        match self.send(delete_alias::v3::Request::new(alias.to_owned()), Acting::Platform).await {
            Ok(_) => Ok(true),
            Err(error) if error.is_not_found() => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Whether the room is listed in the server-wide room directory.
    pub async fn directory_visibility(&self, room_id: &RoomId) -> Result<Visibility, HomeserverError> {
        let request = get_room_visibility::v3::Request::new(room_id.to_owned());
        Ok(self.send(request, Acting::Platform).await?.visibility)
    }

    pub async fn set_directory_visibility(
        &self,
        room_id: &RoomId,
        visibility: Visibility,
    ) -> Result<(), HomeserverError> {
        self.send(set_room_visibility::v3::Request::new(room_id.to_owned(), visibility), Acting::Platform).await?;
        Ok(())
    }
}
