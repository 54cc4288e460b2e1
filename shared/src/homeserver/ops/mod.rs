//! Typed homeserver operations: what the domain asks of the homeserver, in Matrix terms (events, state, memberships,
//! power levels, aliases), built on ruma's request types and [`Homeserver::send`]. The domain never builds a path.
//!
//! Event contents stay `serde_json::Value` where the domain writes keys ruma does not model (`m.mentions` with our
//! fallbacks, the `org.openmeet.*` state events) or where unknown keys of a read-modify-write must survive: they go
//! through ruma's `new_raw` constructors. Synapse's admin API, which ruma does not model, is in [`admin`].

mod admin;
mod membership;
mod messages;
mod push;
mod pushers;
mod rooms;
mod state;

use ruma::serde::Raw;
use serde_json::Value;

pub use admin::{AdminDevice, AdminRoom, AdminRoomsPage, AdminUser};
pub use membership::MemberAction;
pub use messages::RoomMember;
pub use push::RoomRule;
pub use pushers::{HttpPusher, PusherEntry};
pub use rooms::Visibility;
pub(crate) use state::MemberContent;
pub use state::{RoomState, StateEntry};

use super::HomeserverError;

/// A JSON content as ruma's raw content of any event type (serialised once, not validated against a schema).
fn raw<T>(content: &Value) -> Result<Raw<T>, HomeserverError> {
    Raw::new(content)
        .map(Raw::cast_unchecked)
        .map_err(|e| HomeserverError::InvalidResponse(format!("serialising content: {e}")))
}

/// An identifier that is not valid Matrix syntax: the homeserver would have refused it the same way.
fn invalid(kind: &str, value: &str) -> HomeserverError {
    HomeserverError::Rejected {
        status: 400,
        errcode: ruma::api::error::ErrorCode::InvalidParam,
        message: format!("not a valid {kind}: {value:?}"),
    }
}

pub(crate) fn room_id(value: &str) -> Result<ruma::OwnedRoomId, HomeserverError> {
    ruma::OwnedRoomId::try_from(value).map_err(|_| invalid("room id", value))
}

pub(crate) fn event_id(value: &str) -> Result<ruma::OwnedEventId, HomeserverError> {
    ruma::OwnedEventId::try_from(value).map_err(|_| invalid("event id", value))
}

pub(crate) fn user_id(value: &str) -> Result<ruma::OwnedUserId, HomeserverError> {
    ruma::OwnedUserId::try_from(value).map_err(|_| invalid("user id", value))
}

/// A raw value read as plain JSON (its bytes came from the homeserver; this cannot fail for valid JSON).
fn json<T>(raw: &Raw<T>) -> Result<Value, HomeserverError> {
    raw.deserialize_as_unchecked::<Value>().map_err(|e| HomeserverError::InvalidResponse(e.to_string()))
}
