//! A member's notification level for a room, kept as their own push rules (there is no admin API for them: we act
//! as the user):
//! - `all`: no rule of ours for the room;
//! - `mentions`: a `room` rule for the room with no actions (only mentions and keywords notify);
//! - `mute`: an `override` rule matching the room's id with no actions (nothing notifies).
//!
//! Both rules are named after the room id, as Matrix clients name them, so a level set in Element reads back here
//! and the other way round. `dont_notify` is accepted by Synapse but ignored: rules carry `[]`.

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Actor;
use super::room::{self, Identity};
use crate::app::App;
use crate::domain::DomainError;
use crate::domain::rooms::RoomRef;
use crate::homeserver::RoomRule;
use crate::homeserver::timeline::lenient;

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
    Ok(NotificationSettings { level: level_in(&Ruleset::read(rules), room.room_id.as_str()) })
}

/// The parts of the user's global rule set (as the homeserver serves it) that hold a room's level. Read leniently
/// and not as ruma's `Ruleset`, which drops a rule it cannot parse and keeps the legacy `dont_notify` only hidden.
#[derive(Debug, Default, Deserialize)]
pub struct Ruleset {
    #[serde(rename = "override", default)]
    overrides: Vec<Rule>,
    #[serde(default)]
    room: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
struct Rule {
    #[serde(default, deserialize_with = "lenient")]
    rule_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    actions: Option<Vec<Action>>,
}

/// An action: a plain name (`notify`, the legacy `dont_notify`) or a tweak (an object).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Action {
    Name(String),
    Other(IgnoredAny),
}

impl Ruleset {
    /// A rule set of an unexpected shape holds no rule of ours.
    pub fn read(rules: Value) -> Ruleset {
        serde_json::from_value(rules).unwrap_or_default()
    }
}

impl Rule {
    /// Ours for the room: named after it, enabled, and notifying nothing.
    fn silences(&self, room_id: &str) -> bool {
        self.rule_id.as_deref() == Some(room_id)
            && self.enabled != Some(false)
            && self.actions.as_ref().is_some_and(|actions| {
                actions.iter().all(|action| matches!(action, Action::Name(name) if name == "dont_notify"))
            })
    }
}

/// The level the global rule set gives the room.
pub fn level_in(rules: &Ruleset, room_id: &str) -> Level {
    if rules.overrides.iter().any(|rule| rule.silences(room_id)) {
        Level::Mute
    } else if rules.room.iter().any(|rule| rule.silences(room_id)) {
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
        assert_eq!(level_in(&Ruleset::read(json!({})), room_id), Level::All);
        let mentions = json!({"room": [{"rule_id": room_id, "actions": [], "enabled": true}]});
        assert_eq!(level_in(&Ruleset::read(mentions), room_id), Level::Mentions);
        let legacy = json!({"room": [{"rule_id": room_id, "actions": ["dont_notify"], "enabled": true}]});
        assert_eq!(level_in(&Ruleset::read(legacy), room_id), Level::Mentions);
        let mute = json!({"override": [{"rule_id": room_id, "actions": [], "enabled": true}],
                          "room": [{"rule_id": room_id, "actions": []}]});
        assert_eq!(level_in(&Ruleset::read(mute), room_id), Level::Mute);
        let disabled = json!({"override": [{"rule_id": room_id, "actions": [], "enabled": false}]});
        assert_eq!(level_in(&Ruleset::read(disabled), room_id), Level::All);
        let loud = json!({"room": [{"rule_id": room_id, "actions": ["notify"]}]});
        assert_eq!(level_in(&Ruleset::read(loud), room_id), Level::All);
        let other_room = json!({"room": [{"rule_id": "!other:l", "actions": []}]});
        assert_eq!(level_in(&Ruleset::read(other_room), room_id), Level::All);
    }

    #[test]
    fn settings_are_strict() {
        assert!(serde_json::from_str::<NotificationSettings>(r#"{"level":"mute"}"#).is_ok());
        assert!(serde_json::from_str::<NotificationSettings>(r#"{"level":"loud"}"#).is_err());
        assert!(serde_json::from_str::<NotificationSettings>(r#"{"level":"all","x":1}"#).is_err());
    }
}
