//! A member's notification level for a room, kept as their own push rules (there is no admin API for them: we act
//! as the user):
//! - `all`: no rule of ours for the room;
//! - `mentions`: a `room` rule for the room with no actions (only mentions and keywords notify);
//! - `mute`: an `override` rule matching the room's id with no actions (nothing notifies).
//!
//! Both rules are named after the room id, as Matrix clients name them, so a level set in Element reads back here
//! and the other way round. `dont_notify` is accepted by Synapse but ignored: rules carry `[]`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Actor;
use super::room::{self, Identity};
use crate::app::App;
use crate::domain::DomainError;
use crate::domain::rooms::RoomRef;
use crate::homeserver::RoomRule;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    All,
    Mentions,
    Mute,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    pub level: Level,
}

/// Sets the level; setting the one in force changes nothing.
pub async fn put(app: &App, room: &RoomRef, actor: &Actor, level: Level) -> Result<NotificationSettings, DomainError> {
    // The new rule goes in before the old one goes: between the two calls the room is never louder than either.
    match level {
        Level::All => {
            delete_rule(app, actor, room, RoomRule::MentionsOnly).await?;
            delete_rule(app, actor, room, RoomRule::Mute).await?;
        }
        Level::Mentions => {
            put_rule(app, actor, room, RoomRule::MentionsOnly).await?;
            delete_rule(app, actor, room, RoomRule::Mute).await?;
        }
        Level::Mute => {
            put_rule(app, actor, room, RoomRule::Mute).await?;
            delete_rule(app, actor, room, RoomRule::MentionsOnly).await?;
        }
    }
    Ok(NotificationSettings { level })
}

/// Reads the level back from the homeserver.
pub async fn get(app: &App, room: &RoomRef, actor: &Actor) -> Result<NotificationSettings, DomainError> {
    let rules =
        room::act(app, actor, |identity: Identity| async move { app.homeserver.push_rules(identity.acting()).await })
            .await?
            .map_err(room::refusal)?;
    Ok(NotificationSettings { level: level_in(&rules, room.room_id.as_str()) })
}

/// The level the global rule set gives the room.
pub fn level_in(rules: &Value, room_id: &str) -> Level {
    let silent_rule = |kind: &str| {
        rules.get(kind).and_then(Value::as_array).into_iter().flatten().any(|rule| {
            rule.get("rule_id").and_then(Value::as_str) == Some(room_id)
                && rule.get("enabled").and_then(Value::as_bool) != Some(false)
                && rule
                    .get("actions")
                    .and_then(Value::as_array)
                    .is_some_and(|actions| actions.iter().all(|action| action.as_str() == Some("dont_notify")))
        })
    };
    if silent_rule("override") {
        Level::Mute
    } else if silent_rule("room") {
        Level::Mentions
    } else {
        Level::All
    }
}

async fn put_rule(app: &App, actor: &Actor, room: &RoomRef, rule: RoomRule) -> Result<(), DomainError> {
    room::act(app, actor, |identity: Identity| async move {
        app.homeserver.set_room_rule(&room.room_id, rule, identity.acting()).await
    })
    .await?
    .map_err(room::refusal)?;
    Ok(())
}

/// Absent already is success: the level is what was asked.
async fn delete_rule(app: &App, actor: &Actor, room: &RoomRef, rule: RoomRule) -> Result<(), DomainError> {
    room::act(app, actor, |identity: Identity| async move {
        app.homeserver.delete_room_rule(&room.room_id, rule, identity.acting()).await
    })
    .await?
    .map_err(room::refusal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn levels_read_from_rules() {
        let room_id = "!r:l";
        assert_eq!(level_in(&json!({}), room_id), Level::All);
        let mentions = json!({"room": [{"rule_id": room_id, "actions": [], "enabled": true}]});
        assert_eq!(level_in(&mentions, room_id), Level::Mentions);
        let legacy = json!({"room": [{"rule_id": room_id, "actions": ["dont_notify"], "enabled": true}]});
        assert_eq!(level_in(&legacy, room_id), Level::Mentions);
        let mute = json!({"override": [{"rule_id": room_id, "actions": [], "enabled": true}],
                          "room": [{"rule_id": room_id, "actions": []}]});
        assert_eq!(level_in(&mute, room_id), Level::Mute);
        let disabled = json!({"override": [{"rule_id": room_id, "actions": [], "enabled": false}]});
        assert_eq!(level_in(&disabled, room_id), Level::All);
        let loud = json!({"room": [{"rule_id": room_id, "actions": ["notify"]}]});
        assert_eq!(level_in(&loud, room_id), Level::All);
        let other_room = json!({"room": [{"rule_id": "!other:l", "actions": []}]});
        assert_eq!(level_in(&other_room, room_id), Level::All);
    }

    #[test]
    fn settings_are_strict() {
        assert!(serde_json::from_str::<NotificationSettings>(r#"{"level":"mute"}"#).is_ok());
        assert!(serde_json::from_str::<NotificationSettings>(r#"{"level":"loud"}"#).is_err());
        assert!(serde_json::from_str::<NotificationSettings>(r#"{"level":"all","x":1}"#).is_err());
    }
}
