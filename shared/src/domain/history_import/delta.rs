//! What changed in the other chat after a message was imported: an edit is carried as an `m.replace` by the
//! message's original sender (clients only apply a sender's own edits), a deletion as a redaction by the platform,
//! and a read-only room (a cancelled event's) is opened to exactly the import's senders while they send, then put
//! back (`docs/cutover.md`, "Importing the Zulip history").

use ruma::api::client::redact::redact_event;
use ruma::events::relation::RelationType;
use ruma::{OwnedEventId, OwnedRoomId, OwnedTransactionId, OwnedUserId, UserId};
use serde::Serialize;
use serde_json::{Map, Value};

use super::content::ORIGIN_FIELD;
use crate::app::App;
use crate::domain::DomainError;
use crate::domain::platform;
use crate::domain::roles::{PowerLevels, level_value};
use crate::homeserver::Acting;

/// The reason a redaction of a message deleted in Zulip carries.
pub const DELETED_REASON: &str = "deleted in Zulip";

/// The digest of a message's source text the import keeps, to see later whether it was edited.
pub fn digest(source: &str) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(source.as_bytes()))[..16].to_owned()
}

#[derive(Serialize)]
struct Replaces<'a> {
    rel_type: RelationType,
    event_id: &'a str,
}

/// An edit's content: the fallback `* …` at the top level, mentioning nobody (an imported edit notifies no one),
/// and the new content in `m.new_content`.
#[derive(Serialize)]
struct Edit<'a> {
    msgtype: &'a str,
    body: String,
    #[serde(rename = "m.new_content")]
    new_content: Value,
    #[serde(rename = "m.mentions")]
    mentions: Map<String, Value>,
    #[serde(rename = "m.relates_to")]
    relates_to: Replaces<'a>,
    #[serde(rename = "org.openmeet.zulip")]
    origin: &'a Value,
}

/// The `m.replace` of `original` whose new content is `replacement` (a message content as the import builds it:
/// its thread relation is dropped, a replacement never moves a message).
pub fn edit_content(original: &str, replacement: &Value) -> Value {
    let mut new_content = replacement.as_object().cloned().unwrap_or_default();
    new_content.remove("m.relates_to");
    let origin = new_content.remove(ORIGIN_FIELD).unwrap_or(Value::Null);
    let body = new_content.get("body").and_then(Value::as_str).unwrap_or_default().to_owned();
    let msgtype = new_content.get("msgtype").and_then(Value::as_str).unwrap_or("m.text").to_owned();
    let edit = Edit {
        msgtype: &msgtype,
        body: format!("* {body}"),
        new_content: Value::Object(new_content),
        mentions: Map::new(),
        relates_to: Replaces { rel_type: RelationType::Replacement, event_id: original },
        origin: &origin,
    };
    // Plain strings and JSON values always serialise.
    serde_json::to_value(edit).unwrap_or_default()
}

/// Redacts an imported event as the platform (it may redact anyone's event in a managed room) with
/// [`DELETED_REASON`]; the transaction id makes a repeat a no-op, and an event already gone is success.
pub async fn redact_deleted(app: &App, room_id: &OwnedRoomId, event: &str, txn_id: &str) -> Result<(), DomainError> {
    let Ok(event) = OwnedEventId::try_from(event) else { return Ok(()) };
    let mut request = redact_event::v3::Request::new(room_id.clone(), event, OwnedTransactionId::from(txn_id));
    request.reason = Some(DELETED_REASON.to_owned());
    match app.homeserver.send(request, Acting::Platform).await {
        Ok(_) => Ok(()),
        Err(error) if error.is_not_found() => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Who sent an imported event, if the platform can still see it and it was not redacted since.
pub async fn sender_of(app: &App, room_id: &OwnedRoomId, event: &str) -> Result<Option<OwnedUserId>, DomainError> {
    let event = app.homeserver.room_event(room_id, event, Acting::Platform).await?;
    Ok(event.filter(|e| !e.redacted).and_then(|e| e.sender))
}

/// The level a sender needs to post messages and reactions in the room, and the room's power levels.
pub async fn posting_level(app: &App, room_id: &OwnedRoomId) -> Result<(i64, Value), DomainError> {
    let state = platform::room_state(app, room_id.as_str()).await?;
    let levels = state.single("m.room.power_levels").cloned().unwrap_or(Value::Null);
    let events = levels.get("events");
    let mut needed = PowerLevels::from_content(&levels).events_default.unwrap_or(0);
    for event_type in ["m.room.message", "m.reaction"] {
        if let Some(level) = events.and_then(|e| e.get(event_type)).and_then(level_value) {
            needed = needed.max(level);
        }
    }
    Ok((needed, levels))
}

/// Raises `user` to `level` in the room if below it; answers their explicit entry before (`Some(None)`: none),
/// or `None` when nothing was changed.
pub async fn raise(
    app: &App,
    room_id: &OwnedRoomId,
    user: &UserId,
    level: i64,
) -> Result<Option<Option<i64>>, DomainError> {
    let (_, mut levels) = posting_level(app, room_id).await?;
    let current = PowerLevels::from_content(&levels);
    if current.level_of(user.as_str()) >= level {
        return Ok(None);
    }
    let before = current.users.get(user.as_str()).copied();
    set_user(&mut levels, user.as_str(), Some(level));
    platform::put_state(app, room_id.as_str(), "m.room.power_levels", "", &levels).await?;
    Ok(Some(before))
}

/// Puts `user`'s entry back to `before` if it is still the `granted` level the import set (a role given since by
/// the cutover or the API is kept). Safe to repeat.
pub async fn restore(
    app: &App,
    room_id: &OwnedRoomId,
    user: &UserId,
    before: Option<i64>,
    granted: i64,
) -> Result<(), DomainError> {
    let (_, mut levels) = posting_level(app, room_id).await?;
    let now = PowerLevels::from_content(&levels).users.get(user.as_str()).copied();
    if now != Some(granted) || before == Some(granted) {
        return Ok(());
    }
    set_user(&mut levels, user.as_str(), before);
    platform::put_state(app, room_id.as_str(), "m.room.power_levels", "", &levels).await
}

fn set_user(levels: &mut Value, user: &str, level: Option<i64>) {
    if !levels.get("users").is_some_and(Value::is_object) {
        levels["users"] = Value::Object(Map::new());
    }
    if let Some(users) = levels["users"].as_object_mut() {
        match level {
            Some(level) => users.insert(user.to_owned(), Value::from(level)),
            None => users.remove(user),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_replaces_in_place_and_mentions_nobody() {
        let replacement = serde_json::json!({
            "msgtype": "m.text", "body": "new @alice", "m.mentions": {"user_ids": ["@alice:x"]},
            "m.relates_to": {"rel_type": "m.thread", "event_id": "$root"},
            ORIGIN_FIELD: {"messageId": 5, "topic": "t", "part": "message"},
        });
        let edit = edit_content("$orig", &replacement);
        assert_eq!(edit["body"], "* new @alice");
        assert_eq!(edit["m.mentions"], serde_json::json!({}));
        assert_eq!(edit["m.relates_to"], serde_json::json!({"rel_type": "m.replace", "event_id": "$orig"}));
        assert_eq!(edit["m.new_content"]["body"], "new @alice");
        assert!(edit["m.new_content"].get("m.relates_to").is_none(), "{edit}");
        assert_eq!(edit[ORIGIN_FIELD]["messageId"], 5);
        assert_eq!(digest("a"), digest("a"));
        assert_ne!(digest("a"), digest("b"));
    }

    #[test]
    fn a_raised_entry_is_set_and_removed() {
        let mut levels = serde_json::json!({"events_default": 50});
        set_user(&mut levels, "@a:x", Some(50));
        assert_eq!(levels["users"]["@a:x"], 50);
        set_user(&mut levels, "@a:x", None);
        assert!(levels["users"].get("@a:x").is_none());
    }
}
