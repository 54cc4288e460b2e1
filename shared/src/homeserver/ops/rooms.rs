//! Rooms: creation, the alias directory, the server-wide room directory.

use ruma::api::client::alias::{delete_alias, get_alias};
use ruma::api::client::directory::{get_room_visibility, set_room_visibility};
use ruma::api::client::room::{aliases, create_room};
use ruma::{OwnedRoomAliasId, OwnedRoomId, RoomAliasId, RoomId};

use crate::homeserver::{Acting, Homeserver, HomeserverError};

pub use ruma::api::client::room::Visibility;

impl Homeserver {
    /// Creates a room as the platform with ruma's `createRoom` request (the room policy builds it); returns its id.
    /// `M_ROOM_IN_USE`: the alias is taken.
    pub async fn create_room(&self, request: create_room::v3::Request) -> Result<OwnedRoomId, HomeserverError> {
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
