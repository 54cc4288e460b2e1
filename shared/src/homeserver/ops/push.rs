//! A user's push rules for one room: silencing it (all but mentions, or everything) and reading the rules back.

use ruma::RoomId;
use ruma::api::client::push::{delete_pushrule, set_pushrule};
use ruma::push::{
    EventMatchConditionData, NewConditionalPushRule, NewPushRule, NewSimplePushRule, PushCondition, RuleKind,
};
use serde_json::Value;

use crate::homeserver::{Acting, Homeserver, HomeserverError};

/// How loud a room is left, as a push rule named after the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomRule {
    /// A `room` rule without actions: only mentions (override rules of the default set) notify.
    MentionsOnly,
    /// An `override` rule matching the room without actions: nothing notifies.
    Mute,
}

impl RoomRule {
    fn kind(self) -> RuleKind {
        match self {
            RoomRule::MentionsOnly => RuleKind::Room,
            RoomRule::Mute => RuleKind::Override,
        }
    }
}

impl Homeserver {
    /// Puts the room's rule of this kind (silent: no actions).
    pub async fn set_room_rule(
        &self,
        room_id: &RoomId,
        rule: RoomRule,
        acting: Acting<'_>,
    ) -> Result<(), HomeserverError> {
        let new_rule = match rule {
            RoomRule::MentionsOnly => NewPushRule::Room(NewSimplePushRule::new(room_id.to_owned(), Vec::new())),
            RoomRule::Mute => {
                let condition = EventMatchConditionData::new("room_id".into(), room_id.to_string());
                let conditions = vec![PushCondition::EventMatch(condition)];
                NewPushRule::Override(NewConditionalPushRule::new(room_id.to_string(), conditions, Vec::new()))
            }
        };
        self.send(set_pushrule::v3::Request::new(new_rule), acting).await.map(drop)
    }

    /// Removes the room's rule of this kind; absent already is success.
    pub async fn delete_room_rule(
        &self,
        room_id: &RoomId,
        rule: RoomRule,
        acting: Acting<'_>,
    ) -> Result<(), HomeserverError> {
        let request = delete_pushrule::v3::Request::new(rule.kind(), room_id.to_string());
        match self.send(request, acting).await {
            Err(error) if error.is_not_found() => Ok(()),
            outcome => outcome.map(drop),
        }
    }

    /// The user's global rule set, as the homeserver sent it: a legacy `"dont_notify"` action (which ruma keeps only
    /// as a hidden custom action, and a rule ruma cannot parse it drops) must still read as silent.
    pub async fn push_rules(&self, acting: Acting<'_>) -> Result<Value, HomeserverError> {
        self.call(reqwest::Method::GET, "/_matrix/client/v3/pushrules/global/", acting, None::<&Value>).await
    }
}
