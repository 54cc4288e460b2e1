//! Homeserver operations of the history import: a message-like event sent with its original timestamp (appservice
//! timestamp massaging, `?ts=`), and a member's read markers.

use ruma::api::client::message::send_message_event;
use ruma::api::client::read_marker::set_read_marker;
use ruma::events::{AnyMessageLikeEventContent, MessageLikeEventType};
use ruma::serde::Raw;
use ruma::{MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedTransactionId, UInt};

use super::{Acting, Homeserver, HomeserverError};

impl Homeserver {
    /// Sends `content` as `event_type` with `origin_server_ts` = `ts_ms`. Only an appservice may set the timestamp,
    /// so `acting` must assert a user (masquerade); the transaction id makes a repeat return the first event.
    pub async fn send_at(
        &self,
        room_id: &OwnedRoomId,
        event_type: &str,
        txn_id: &str,
        content: &impl serde::Serialize,
        ts_ms: u64,
        acting: Acting<'_>,
    ) -> Result<OwnedEventId, HomeserverError> {
        let body: Raw<AnyMessageLikeEventContent> = Raw::new(content)
            .map_err(|e| HomeserverError::InvalidResponse(format!("serialising content: {e}")))?
            .cast_unchecked();
        let mut request = send_message_event::v3::Request::new_raw(
            room_id.clone(),
            OwnedTransactionId::from(txn_id),
            MessageLikeEventType::from(event_type),
            body,
        );
        request.timestamp = UInt::new(ts_ms).map(MilliSecondsSinceUnixEpoch);
        Ok(self.send(request, acting).await?.event_id)
    }

    /// Puts the user's fully-read marker and public read receipt at `event_id`.
    pub async fn set_read_markers(
        &self,
        room_id: &OwnedRoomId,
        event_id: &OwnedEventId,
        acting: Acting<'_>,
    ) -> Result<(), HomeserverError> {
        let mut request = set_read_marker::v3::Request::new(room_id.clone());
        request.fully_read = Some(event_id.clone());
        request.read_receipt = Some(event_id.clone());
        self.send(request, acting).await.map(|_| ())
    }
}
