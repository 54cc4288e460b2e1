//! Room events: sending (under a transaction id the homeserver deduplicates), redacting, reading one event, the
//! newest event of a relation, and the joined members. Events read come back typed ([`TimelineEvent`]).

use std::collections::BTreeMap;

use ruma::api::Direction;
use ruma::api::client::membership::joined_members;
use ruma::api::client::message::get_message_events;
use ruma::api::client::redact::redact_event;
use ruma::api::client::relations::{
    get_relating_events_with_rel_type, get_relating_events_with_rel_type_and_event_type,
};
use ruma::api::client::room::get_room_event;
use ruma::events::relation::RelationType;
use ruma::events::{MessageLikeEventType, TimelineEventType};
use ruma::serde::Raw;
use ruma::{OwnedEventId, OwnedTransactionId, OwnedUserId, RoomId, UInt};
use serde_json::Value;

use super::{event_id, raw};
use crate::homeserver::{Acting, Homeserver, HomeserverError, TimelineEvent};

pub use joined_members::v3::RoomMember;

impl Homeserver {
    /// Sends a message-like event; a repeat with the same transaction id (same device) returns the first event.
    /// The content goes as it is: JSON the domain serialised from its typed contents (`domain::messages::content`),
    /// sent at once or carried by the retry queue as it was.
    pub async fn send_message_event(
        &self,
        room_id: &RoomId,
        event_type: &str,
        txn_id: &str,
        content: &Value,
        acting: Acting<'_>,
    ) -> Result<OwnedEventId, HomeserverError> {
        let request = ruma::api::client::message::send_message_event::v3::Request::new_raw(
            room_id.to_owned(),
            OwnedTransactionId::from(txn_id),
            MessageLikeEventType::from(event_type),
            raw(content)?,
        );
        Ok(self.send(request, acting).await?.event_id)
    }

    /// Redacts an event (no reason); the transaction id makes a repeat a no-op.
    pub async fn redact(
        &self,
        room_id: &RoomId,
        event: &str,
        txn_id: &str,
        acting: Acting<'_>,
    ) -> Result<OwnedEventId, HomeserverError> {
        let request =
            redact_event::v3::Request::new(room_id.to_owned(), event_id(event)?, OwnedTransactionId::from(txn_id));
        Ok(self.send(request, acting).await?.event_id)
    }

    /// One event of the room, as the homeserver serves it (with `unsigned`, bundled relations); `None` when the
    /// room has no such event (or `acting` may not see it).
    pub async fn room_event(
        &self,
        room_id: &RoomId,
        event: &str,
        acting: Acting<'_>,
    ) -> Result<Option<TimelineEvent>, HomeserverError> {
        let request = get_room_event::v3::Request::new(room_id.to_owned(), event_id(event)?);
        match self.send(request, acting).await {
            Ok(response) => response
                .event
                .deserialize_as_unchecked::<TimelineEvent>()
                .map(Some)
                .map_err(|e| HomeserverError::InvalidResponse(format!("an event without an id: {e}"))),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The newest event relating to `event` with `rel_type` (a thread's latest message, say).
    pub async fn latest_relation(
        &self,
        room_id: &RoomId,
        event: &str,
        rel_type: RelationType,
        acting: Acting<'_>,
    ) -> Result<Option<OwnedEventId>, HomeserverError> {
        let page = self.relations(room_id, event, rel_type, None, None, 1, acting).await?;
        Ok(page.0.into_iter().next().map(|event| event.event_id))
    }

    /// A page of the events relating to `event` with `rel_type` (and of `event_type`, if given), newest first, and
    /// the token of the next page.
    #[allow(clippy::too_many_arguments)] // each is one query parameter of the endpoint
    pub async fn relations(
        &self,
        room_id: &RoomId,
        event: &str,
        rel_type: RelationType,
        event_type: Option<TimelineEventType>,
        from: Option<&str>,
        limit: u32,
        acting: Acting<'_>,
    ) -> Result<(Vec<TimelineEvent>, Option<String>), HomeserverError> {
        let (room_id, event_id) = (room_id.to_owned(), event_id(event)?);
        let (chunk, next_batch) = match event_type {
            None => {
                let mut request = get_relating_events_with_rel_type::v1::Request::new(room_id, event_id, rel_type);
                request.dir = Direction::Backward;
                request.limit = Some(UInt::from(limit));
                request.from = from.map(str::to_owned);
                let response = self.send(request, acting).await?;
                (response.chunk, response.next_batch)
            }
            Some(event_type) => {
                let mut request = get_relating_events_with_rel_type_and_event_type::v1::Request::new(
                    room_id, event_id, rel_type, event_type,
                );
                request.dir = Direction::Backward;
                request.limit = Some(UInt::from(limit));
                request.from = from.map(str::to_owned);
                let response = self.send(request, acting).await?;
                (response.chunk, response.next_batch)
            }
        };
        Ok((timeline(&chunk), next_batch))
    }

    /// A page of the room's timeline, newest first, holding only events of `types`, and the token of the next page
    /// (`None` at the room's start).
    pub async fn room_messages(
        &self,
        room_id: &RoomId,
        types: &[TimelineEventType],
        from: Option<&str>,
        limit: u32,
        acting: Acting<'_>,
    ) -> Result<(Vec<TimelineEvent>, Option<String>), HomeserverError> {
        let mut request = get_message_events::v3::Request::new(room_id.to_owned(), Direction::Backward);
        request.from = from.map(str::to_owned);
        request.limit = UInt::from(limit);
        request.filter.types = Some(types.iter().map(ToString::to_string).collect());
        let response = self.send(request, acting).await?;
        Ok((timeline(&response.chunk), response.end))
    }

    /// The room's joined members with their profiles, read as `acting`.
    pub async fn joined_members(
        &self,
        room_id: &RoomId,
        acting: Acting<'_>,
    ) -> Result<BTreeMap<OwnedUserId, RoomMember>, HomeserverError> {
        Ok(self.send(joined_members::v3::Request::new(room_id.to_owned()), acting).await?.joined)
    }
}

/// A page of events, typed; one without an id (no homeserver serves one) is left out.
fn timeline<T>(chunk: &[Raw<T>]) -> Vec<TimelineEvent> {
    chunk
        .iter()
        .filter_map(|event| match event.deserialize_as_unchecked::<TimelineEvent>() {
            Ok(event) => Some(event),
            Err(error) => {
                tracing::warn!(%error, "an event without an id: left out");
                None
            }
        })
        .collect()
}
