//! Whether people already talk in a room: imported history must never land after a live message, because clients
//! order a room by its event graph, not by `origin_server_ts` (docs/adr/0010-history-before-live.md).
//!
//! Read before any write: one page of the room's newest message-like events, as the platform (the rooms' creator,
//! joined to every managed room). An event is the import's own when its content carries
//! [`content::ORIGIN_FIELD`] (every event the import sends has it) or its sender is a placeholder or the platform
//! (neither is a person). Not counted: redacted events (nothing left to see), edits (`m.replace`: not a place in
//! the timeline). A member can forge the field into their own message: that only hides their message from this
//! check, never someone else's.

use ruma::events::TimelineEventType;
use ruma::events::relation::RelationType;
use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId};

use super::content::ORIGIN_FIELD;
use super::is_placeholder;
use crate::app::App;
use crate::domain::DomainError;
use crate::homeserver::{Acting, TimelineEvent};

/// How many of the newest events are read: enough to see past a few edits and platform notices.
const PAGE: u32 = 50;

/// The newest message people posted in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveMessage {
    pub event_id: OwnedEventId,
    pub sender: OwnedUserId,
}

/// The types of events that take a place in the timeline people read.
fn message_types() -> [TimelineEventType; 3] {
    [TimelineEventType::RoomMessage, TimelineEventType::Sticker, TimelineEventType::RoomEncrypted]
}

/// The newest message people posted in the room (among its newest events), if any.
pub async fn newest_live_message(app: &App, room_id: &OwnedRoomId) -> Result<Option<LiveMessage>, DomainError> {
    let (events, _) = app.homeserver.room_messages(room_id, &message_types(), None, PAGE, Acting::Platform).await?;
    let platform = app.identities.platform_user_id();
    Ok(events.iter().find_map(|event| live(event, &platform)))
}

/// The event as a live message, or `None` when the import (or the platform) sent it or it does not count.
fn live(event: &TimelineEvent, platform: &OwnedUserId) -> Option<LiveMessage> {
    let sender = event.sender.as_ref()?;
    let imported = event.content.json().contains_key(ORIGIN_FIELD);
    let edit = event.rel_type() == Some(&RelationType::Replacement);
    if imported || edit || event.redacted || sender == platform || is_placeholder(sender.as_str()) {
        return None;
    }
    Some(LiveMessage { event_id: event.event_id.clone(), sender: sender.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(sender: &str, content: serde_json::Value, unsigned: serde_json::Value) -> TimelineEvent {
        serde_json::from_value(json!({
            "event_id": "$e", "type": "m.room.message", "sender": sender, "origin_server_ts": 1,
            "content": content, "unsigned": unsigned,
        }))
        .expect("a timeline event")
    }

    #[test]
    fn only_messages_people_posted_count() {
        let platform = OwnedUserId::try_from("@openmeet:localhost").expect("user id");
        let text = json!({ "msgtype": "m.text", "body": "hi" });
        let person = event("@om_acme.ada:localhost", text.clone(), json!({}));
        assert_eq!(live(&person, &platform).map(|l| l.sender.to_string()), Some("@om_acme.ada:localhost".into()));

        let imported = json!({ "msgtype": "m.text", "body": "old", ORIGIN_FIELD: { "messageId": 1 } });
        assert_eq!(live(&event("@om_acme.ada:localhost", imported, json!({})), &platform), None);
        assert_eq!(live(&event("@om_acme.zulip=4:localhost", text.clone(), json!({})), &platform), None);
        assert_eq!(live(&event("@openmeet:localhost", text.clone(), json!({})), &platform), None);
        let redacted = json!({ "redacted_because": { "type": "m.room.redaction" } });
        assert_eq!(live(&event("@om_acme.ada:localhost", json!({}), redacted), &platform), None);
        let edit = json!({ "msgtype": "m.text", "body": "* hi", "m.relates_to": { "rel_type": "m.replace", "event_id": "$x" } });
        assert_eq!(live(&event("@om_acme.ada:localhost", edit, json!({})), &platform), None);
    }
}
