//! Room state: one state event's content, the whole current state, power levels and memberships, and state writes.

use ruma::api::client::state::{get_state_event_for_key, get_state_events, send_state_event};
use ruma::events::room::member::MembershipState;
use ruma::events::room::power_levels::RoomPowerLevelsEventContent;
use ruma::events::{StateEventContent, StateEventType, StaticEventContent};
use ruma::{OwnedEventId, RoomId, UserId};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{json, raw};
use crate::homeserver::{Acting, Homeserver, HomeserverError};

/// One event of a room's current state.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StateEntry {
    #[serde(rename = "type")]
    pub event_type: String,
    pub state_key: String,
    #[serde(default)]
    pub content: Value,
}

/// A room's current state by (type, state key). Contents stay JSON: they are compared with what we would write and
/// written back with unknown keys intact.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoomState(std::collections::HashMap<(String, String), Value>);

impl RoomState {
    /// The content of the event of `event_type` with `state_key`.
    pub fn content(&self, event_type: &str, state_key: &str) -> Option<&Value> {
        self.0.get(&(event_type.to_owned(), state_key.to_owned()))
    }

    /// The content of the room-wide event of `event_type` (empty state key): name, topic, power levels, …
    pub fn single(&self, event_type: &str) -> Option<&Value> {
        self.content(event_type, "")
    }

    /// The event of ruma's content type `C` with `state_key`, read typed; `None` when the room has none or it does
    /// not have the type's shape.
    pub fn typed<C: StaticEventContent + DeserializeOwned>(&self, state_key: &str) -> Option<C> {
        self.content(C::TYPE, state_key).and_then(|content| serde_json::from_value(content.clone()).ok())
    }

    /// Every event: (type, state key) and content.
    pub fn events(&self) -> impl Iterator<Item = (&str, &str, &Value)> {
        self.0.iter().map(|((event_type, key), content)| (event_type.as_str(), key.as_str(), content))
    }

    /// Every `m.room.member` event's user and membership (events without a readable membership are skipped).
    pub fn memberships(&self) -> impl Iterator<Item = (&str, MembershipState)> {
        self.events().filter(|(event_type, _, _)| *event_type == "m.room.member").filter_map(|(_, user, content)| {
            let member = serde_json::from_value::<MemberContent>(content.clone()).ok()?;
            Some((user, member.membership))
        })
    }

    /// The users whose `m.room.member` membership is `join`.
    pub fn joined(&self) -> impl Iterator<Item = &str> {
        self.memberships().filter(|(_, membership)| *membership == MembershipState::Join).map(|(user, _)| user)
    }
}

impl FromIterator<((String, String), Value)> for RoomState {
    fn from_iter<I: IntoIterator<Item = ((String, String), Value)>>(events: I) -> Self {
        RoomState(events.into_iter().collect())
    }
}

impl FromIterator<StateEntry> for RoomState {
    fn from_iter<I: IntoIterator<Item = StateEntry>>(events: I) -> Self {
        events.into_iter().map(|event| ((event.event_type, event.state_key), event.content)).collect()
    }
}

/// The part of an `m.room.member` content read here.
#[derive(Deserialize)]
pub(crate) struct MemberContent {
    pub membership: MembershipState,
}

impl Homeserver {
    /// The content of the state event `(event_type, state_key)`; `None` when the room has none.
    pub async fn state_content(
        &self,
        room_id: &RoomId,
        event_type: &str,
        state_key: &str,
        acting: Acting<'_>,
    ) -> Result<Option<Value>, HomeserverError> {
        let request = get_state_event_for_key::v3::Request::new(
            room_id.to_owned(),
            StateEventType::from(event_type),
            state_key.to_owned(),
        );
        match self.send(request, acting).await {
            Ok(response) => serde_json::from_str(response.event_or_content.get())
                .map(Some)
                .map_err(|e| HomeserverError::InvalidResponse(format!("state content: {e}"))),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The room's power levels, read as the platform (a room without any has the spec's defaults).
    pub async fn power_levels(&self, room_id: &RoomId) -> Result<RoomPowerLevelsEventContent, HomeserverError> {
        // No power levels event reads as an empty content: every field at the spec's default.
        let content = self.state_content(room_id, "m.room.power_levels", "", Acting::Platform).await?;
        serde_json::from_value(content.unwrap_or_else(|| Value::Object(Default::default())))
            .map_err(|e| HomeserverError::InvalidResponse(format!("power levels: {e}")))
    }

    /// A user's membership in a room as the homeserver sees it; `None` when they never had one.
    pub async fn membership(
        &self,
        room_id: &RoomId,
        user_id: &UserId,
    ) -> Result<Option<MembershipState>, HomeserverError> {
        let content = self.state_content(room_id, "m.room.member", user_id.as_str(), Acting::Platform).await?;
        Ok(content.and_then(|content| serde_json::from_value::<MemberContent>(content).ok()).map(|c| c.membership))
    }

    /// Puts a state event. The content is raw JSON: our own state events, and read-modify-writes whose unknown keys
    /// must survive.
    pub async fn put_state(
        &self,
        room_id: &RoomId,
        event_type: &str,
        state_key: &str,
        content: &Value,
        acting: Acting<'_>,
    ) -> Result<OwnedEventId, HomeserverError> {
        let request = send_state_event::v3::Request::new_raw(
            room_id.to_owned(),
            StateEventType::from(event_type),
            state_key.to_owned(),
            raw(content)?,
        );
        Ok(self.send(request, acting).await?.event_id)
    }

    /// Puts a state event of one of ruma's typed contents.
    pub async fn put_typed_state<C, K>(
        &self,
        room_id: &RoomId,
        state_key: &K,
        content: &C,
        acting: Acting<'_>,
    ) -> Result<OwnedEventId, HomeserverError>
    where
        C: StateEventContent,
        C::StateKey: std::borrow::Borrow<K>,
        K: AsRef<str> + ?Sized,
    {
        let request = send_state_event::v3::Request::new(room_id.to_owned(), state_key, content)
            .map_err(|e| HomeserverError::InvalidResponse(format!("serialising content: {e}")))?;
        Ok(self.send(request, acting).await?.event_id)
    }

    /// The room's whole current state, read as the platform. Events the homeserver sent without a state key or
    /// type are skipped.
    pub async fn room_state(&self, room_id: &RoomId) -> Result<RoomState, HomeserverError> {
        let response = self.send(get_state_events::v3::Request::new(room_id.to_owned()), Acting::Platform).await?;
        Ok(response
            .room_state
            .iter()
            .filter_map(|event| serde_json::from_value::<StateEntry>(json(event).ok()?).ok())
            .collect())
    }
}
