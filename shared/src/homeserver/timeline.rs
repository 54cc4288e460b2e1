//! Timeline events as the domain reads them (`/messages`, `/relations`, `/event`): ids, sender, type, time, the
//! `m.room.message` content the API shows, the relation (ruma's [`RelationType`]), redaction and the bundled
//! thread summary and latest edit. Parsed leniently, field by field: another client may write anything into a
//! room, and a malformed field reads as absent rather than hiding the event (as ruma's strict event types would).
//!
//! JSON kept on purpose: [`MessageContent::json`], the whole content as sent, because an edit copies the current
//! content into `m.new_content` and keys we do not model (another client's) must survive that write-back.

use ruma::events::TimelineEventType;
use ruma::events::relation::RelationType;
use ruma::{MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedUserId};
use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One event of a room's timeline.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "WireEvent")]
pub struct TimelineEvent {
    pub event_id: OwnedEventId,
    pub event_type: TimelineEventType,
    pub room_id: Option<OwnedRoomId>,
    pub sender: Option<OwnedUserId>,
    pub origin_server_ts: Option<MilliSecondsSinceUnixEpoch>,
    pub content: MessageContent,
    /// Redacted: `redacted_because` in `unsigned` (or, from older servers, at the top level).
    pub redacted: bool,
    /// On a thread root: how many events the thread holds (the bundled `m.thread` summary).
    pub thread_count: Option<u64>,
    /// The newest edit by the sender, bundled by the homeserver (`m.replace`).
    pub latest_edit: Option<Box<TimelineEvent>>,
}

impl TimelineEvent {
    pub fn is_message(&self) -> bool {
        self.event_type == TimelineEventType::RoomMessage
    }

    /// The relation's type (`m.thread`, `m.replace`, `m.annotation`, …), if the content relates to another event.
    pub fn rel_type(&self) -> Option<&RelationType> {
        self.content.relates_to.as_ref()?.rel_type.as_ref()
    }

    /// The content shown now: the latest edit's `m.new_content`, or the event's own.
    pub fn current_content(&self) -> &MessageContent {
        self.latest_edit.as_ref().and_then(|edit| edit.content.new_content.as_deref()).unwrap_or(&self.content)
    }
}

/// The parts of a message content the API reads; [`Self::json`] keeps all of it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(from = "Map<String, Value>")]
pub struct MessageContent {
    pub msgtype: Option<String>,
    pub body: Option<String>,
    pub format: Option<String>,
    pub formatted_body: Option<String>,
    pub url: Option<String>,
    pub filename: Option<String>,
    pub info: Option<MediaInfo>,
    pub mentions: Option<Mentions>,
    pub relates_to: Option<RelatesTo>,
    /// An edit's replacement content.
    pub new_content: Option<Box<MessageContent>>,
    json: Map<String, Value>,
}

impl MessageContent {
    /// The content exactly as the homeserver served it (kept on purpose, see the module's doc).
    pub fn json(&self) -> &Map<String, Value> {
        &self.json
    }
}

/// `info` of a media message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaInfo {
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub mimetype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub w: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub h: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub thumbnail_url: Option<String>,
}

/// `m.mentions`: who a message notifies. The keys of ruma's `Mentions`, but read leniently and written in mention
/// order (ruma's is a sorted set of parsed ids).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mentions {
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "lenient_strings")]
    pub user_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not", deserialize_with = "lenient_true")]
    pub room: bool,
}

/// `m.relates_to`, typed: the relation (ruma's [`RelationType`]), its target, a reply's target and a reaction's key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RelatesTo {
    #[serde(default, deserialize_with = "lenient")]
    pub rel_type: Option<RelationType>,
    #[serde(default, deserialize_with = "lenient")]
    pub event_id: Option<OwnedEventId>,
    #[serde(rename = "m.in_reply_to", default, deserialize_with = "lenient")]
    in_reply_to: Option<InReplyTo>,
    #[serde(default, deserialize_with = "lenient_true")]
    pub is_falling_back: bool,
    /// A reaction's key (`m.annotation`).
    #[serde(default, deserialize_with = "lenient")]
    pub key: Option<String>,
}

impl RelatesTo {
    /// The event this one is a genuine reply to (a thread's fallback reply is not one).
    pub fn reply_to(&self) -> Option<&OwnedEventId> {
        self.in_reply_to.as_ref().filter(|_| !self.is_falling_back)?.event_id.as_ref()
    }

    /// The root of the thread this event is in.
    pub fn thread_root(&self) -> Option<&OwnedEventId> {
        self.event_id.as_ref().filter(|_| self.rel_type == Some(RelationType::Thread))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct InReplyTo {
    #[serde(default, deserialize_with = "lenient")]
    event_id: Option<OwnedEventId>,
}

/// The content's typed fields, each read on its own.
#[derive(Deserialize)]
struct WireContent {
    #[serde(default, deserialize_with = "lenient")]
    msgtype: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    body: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    format: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    formatted_body: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    url: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    filename: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    info: Option<MediaInfo>,
    #[serde(rename = "m.mentions", default, deserialize_with = "lenient")]
    mentions: Option<Mentions>,
    #[serde(rename = "m.relates_to", default, deserialize_with = "lenient")]
    relates_to: Option<RelatesTo>,
    #[serde(rename = "m.new_content", default, deserialize_with = "lenient")]
    new_content: Option<Map<String, Value>>,
}

impl From<Map<String, Value>> for MessageContent {
    fn from(json: Map<String, Value>) -> Self {
        let value = Value::Object(json);
        // Read from a borrow: the content is kept whole besides, not copied first.
        let wire = WireContent::deserialize(&value);
        let json = match value {
            Value::Object(json) => json,
            _ => Map::new(),
        };
        let Ok(wire) = wire else {
            return MessageContent { json, ..MessageContent::default() };
        };
        MessageContent {
            msgtype: wire.msgtype,
            body: wire.body,
            format: wire.format,
            formatted_body: wire.formatted_body,
            url: wire.url,
            filename: wire.filename,
            info: wire.info,
            mentions: wire.mentions,
            relates_to: wire.relates_to,
            new_content: wire.new_content.map(|content| Box::new(MessageContent::from(content))),
            json,
        }
    }
}

#[derive(Deserialize)]
struct WireEvent {
    event_id: OwnedEventId,
    /// Absent reads as no type at all (not a message), as does a bundled edit in an older aggregation format.
    #[serde(rename = "type", default = "no_type")]
    event_type: TimelineEventType,
    #[serde(default, deserialize_with = "lenient")]
    room_id: Option<OwnedRoomId>,
    #[serde(default, deserialize_with = "lenient")]
    sender: Option<OwnedUserId>,
    #[serde(default, deserialize_with = "lenient")]
    origin_server_ts: Option<MilliSecondsSinceUnixEpoch>,
    #[serde(default, deserialize_with = "lenient")]
    content: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "lenient")]
    unsigned: Option<WireUnsigned>,
    #[serde(default, deserialize_with = "present")]
    redacted_because: bool,
}

#[derive(Deserialize)]
struct WireUnsigned {
    #[serde(default, deserialize_with = "present")]
    redacted_because: bool,
    #[serde(rename = "m.relations", default, deserialize_with = "lenient")]
    relations: Option<WireRelations>,
}

#[derive(Deserialize)]
struct WireRelations {
    #[serde(rename = "m.thread", default, deserialize_with = "lenient")]
    thread: Option<WireThread>,
    #[serde(rename = "m.replace", default, deserialize_with = "lenient")]
    replace: Option<Box<TimelineEvent>>,
}

#[derive(Deserialize)]
struct WireThread {
    #[serde(default, deserialize_with = "lenient")]
    count: Option<u64>,
}

impl From<WireEvent> for TimelineEvent {
    fn from(wire: WireEvent) -> Self {
        let (unsigned_redacted, relations) =
            wire.unsigned.map(|unsigned| (unsigned.redacted_because, unsigned.relations)).unwrap_or_default();
        let (thread, replace) = relations.map(|r| (r.thread, r.replace)).unwrap_or_default();
        TimelineEvent {
            event_id: wire.event_id,
            event_type: wire.event_type,
            room_id: wire.room_id,
            sender: wire.sender,
            origin_server_ts: wire.origin_server_ts,
            content: wire.content.map(MessageContent::from).unwrap_or_default(),
            redacted: wire.redacted_because || unsigned_redacted,
            thread_count: thread.and_then(|thread| thread.count),
            latest_edit: replace,
        }
    }
}

fn no_type() -> TimelineEventType {
    TimelineEventType::from("")
}

/// A field of the wrong shape reads as absent (another client wrote it).
pub(crate) fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(deserializer: D) -> Result<Option<T>, D::Error> {
    Ok(serde_json::from_value(Value::deserialize(deserializer)?).ok())
}

/// `true` only for a JSON `true`.
fn lenient_true<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Value::deserialize(deserializer)? == Value::Bool(true))
}

/// The strings of an array; anything else is left out.
fn lenient_strings<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Array(items) => items.into_iter().filter_map(|item| item.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    })
}

/// Present and not `null`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(!Value::deserialize(deserializer)?.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(value: Value) -> TimelineEvent {
        serde_json::from_value(value).expect("an event")
    }

    #[test]
    fn a_message_reads_with_its_relation_edit_and_thread_summary() {
        let message = event(json!({
            "type": "m.room.message", "event_id": "$1", "room_id": "!r:l", "sender": "@a:l",
            "origin_server_ts": 5, "content": {"msgtype": "m.text", "body": "old", "x.custom": 1,
                "m.relates_to": {"m.in_reply_to": {"event_id": "$0"}}},
            "unsigned": {"m.relations": {"m.thread": {"count": 2}, "m.replace": {
                "type": "m.room.message", "event_id": "$2", "origin_server_ts": 6,
                "content": {"body": "* new", "m.new_content": {"body": "new", "y.custom": 2},
                            "m.relates_to": {"rel_type": "m.replace", "event_id": "$1"}}}}}
        }));
        assert!(message.is_message() && !message.redacted);
        assert_eq!(message.rel_type(), None);
        assert_eq!(message.content.relates_to.as_ref().and_then(RelatesTo::reply_to).map(|id| id.as_str()), Some("$0"));
        assert_eq!(message.thread_count, Some(2));
        assert_eq!(message.current_content().body.as_deref(), Some("new"));
        assert_eq!(message.current_content().json()["y.custom"], 2);
        assert_eq!(message.content.json()["x.custom"], 1);
        let edit = message.latest_edit.as_ref().expect("edit");
        assert_eq!(edit.rel_type(), Some(&RelationType::Replacement));
    }

    #[test]
    fn malformed_fields_read_as_absent() {
        let odd = event(json!({
            "type": "m.room.message", "event_id": "$1", "sender": "not a user", "origin_server_ts": -1,
            "content": {"body": 7, "m.mentions": {"user_ids": ["@a:l", 3], "room": "yes"},
                        "m.relates_to": {"rel_type": "m.thread", "event_id": "$r", "is_falling_back": "no",
                                         "m.in_reply_to": {"event_id": "$x"}}},
            "unsigned": {"redacted_because": null}, "redacted_because": {}
        }));
        assert_eq!((odd.sender, odd.origin_server_ts, odd.content.body), (None, None, None));
        assert_eq!(odd.content.mentions, Some(Mentions { user_ids: vec!["@a:l".into()], room: false }));
        let relation = odd.content.relates_to.expect("relation");
        assert_eq!(relation.thread_root().map(|id| id.as_str()), Some("$r"));
        assert_eq!(relation.reply_to().map(|id| id.as_str()), Some("$x"));
        assert!(odd.redacted);
        let reaction = event(json!({"type": "m.reaction", "event_id": "$3", "content": {"m.relates_to": {
            "rel_type": "m.annotation", "event_id": "$1", "key": "👍"}}}));
        assert_eq!(reaction.rel_type(), Some(&RelationType::Annotation));
        assert!(!reaction.is_message());
        assert_eq!(reaction.content.relates_to.and_then(|r| r.key).as_deref(), Some("👍"));
    }
}
