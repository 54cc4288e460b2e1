//! Synapse admin-API reads and writes of rooms that the drift repair needs (`/_synapse/admin/v1/rooms/...`):
//! they work without any user's token and see the whole current state, members included.

use ruma::events::StaticEventContent;
use ruma::events::room::member::MembershipState;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::ops::MemberContent;
use super::{Acting, Homeserver, HomeserverError, encode};

/// One current state event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StateEvent {
    #[serde(rename = "type")]
    pub event_type: String,
    pub state_key: String,
    #[serde(default)]
    pub sender: String,
    #[serde(default)]
    pub content: Value,
    /// When the event was sent (ms since the epoch).
    #[serde(default)]
    pub origin_server_ts: u64,
}

impl StateEvent {
    /// The content as ruma's typed content `C`, when the event is of `C`'s type and has its shape.
    pub fn typed<C: StaticEventContent + DeserializeOwned>(&self) -> Option<C> {
        (self.event_type == C::TYPE).then(|| serde_json::from_value(self.content.clone()).ok()).flatten()
    }

    /// The membership of an `m.room.member` event (`None` for any other event, or one without a membership).
    pub fn membership(&self) -> Option<MembershipState> {
        (self.event_type == "m.room.member")
            .then(|| serde_json::from_value::<MemberContent>(self.content.clone()).ok())
            .flatten()
            .map(|member| member.membership)
    }
}

#[derive(Deserialize)]
struct StateAnswer {
    #[serde(default)]
    state: Vec<StateEvent>,
}

/// What the admin room-details endpoint says about a room (the fields used here).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RoomDetails {
    /// Listed in the server-wide room directory.
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub joined_members: u64,
}

impl Homeserver {
    /// The room's whole current state, member events included (one request).
    pub async fn admin_room_state(&self, room_id: &str) -> Result<Vec<StateEvent>, HomeserverError> {
        let path = format!("/_synapse/admin/v1/rooms/{}/state", encode(room_id));
        let answer: StateAnswer = self.call(reqwest::Method::GET, &path, Acting::Platform, None::<&Value>).await?;
        Ok(answer.state)
    }

    /// The room's details: directory publication, member count.
    pub async fn admin_room_details(&self, room_id: &str) -> Result<RoomDetails, HomeserverError> {
        let path = format!("/_synapse/admin/v1/rooms/{}", encode(room_id));
        self.call(reqwest::Method::GET, &path, Acting::Platform, None::<&Value>).await
    }

    /// The joined members of a room.
    pub async fn admin_room_members(&self, room_id: &str) -> Result<Vec<String>, HomeserverError> {
        #[derive(Deserialize)]
        struct Members {
            #[serde(default)]
            members: Vec<String>,
        }
        let path = format!("/_synapse/admin/v1/rooms/{}/members", encode(room_id));
        let answer: Members = self.call(reqwest::Method::GET, &path, Acting::Platform, None::<&Value>).await?;
        Ok(answer.members)
    }

    /// Joins a local user into a room the platform is in (no invite needed, no user token).
    /// Someone already joined is success.
    pub async fn admin_join(&self, room_id: &str, user_id: &str) -> Result<(), HomeserverError> {
        let path = format!("/_synapse/admin/v1/join/{}", encode(room_id));
        let body = json!({"user_id": user_id});
        let outcome = self.call::<Value>(reqwest::Method::POST, &path, Acting::Platform, Some(&body)).await.map(|_| ());
        match (<&ruma::RoomId>::try_from(room_id), <&ruma::UserId>::try_from(user_id)) {
            (Ok(room), Ok(user)) => {
                self.unless_it_holds(outcome, room, user, |m| matches!(m, Some(MembershipState::Join))).await
            }
            _ => outcome,
        }
    }

    /// Takes a room out of the server-wide directory (a no-op when it is not listed).
    pub async fn unlist_room(&self, room_id: &str) -> Result<(), HomeserverError> {
        let path = format!("/_matrix/client/v3/directory/list/room/{}", encode(room_id));
        let body = json!({"visibility": "private"});
        self.call::<Value>(reqwest::Method::PUT, &path, Acting::Platform, Some(&body)).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_answers_parse_with_members_and_defaults() {
        let raw = json!({"state": [
            {"type": "m.room.member", "state_key": "@a:l", "sender": "@b:l", "content": {"membership": "leave"}},
            {"type": "m.room.name", "state_key": "", "content": {"name": "N"}}
        ]});
        let answer: StateAnswer = serde_json::from_value(raw).expect("parses");
        assert_eq!(answer.state.len(), 2);
        assert_eq!(answer.state[0].sender, "@b:l");
        assert_eq!(answer.state[1].sender, "");
        assert_eq!(answer.state[0].membership(), Some(MembershipState::Leave));
        assert_eq!(answer.state[1].membership(), None);
        let name = answer.state[1].typed::<ruma::events::room::name::RoomNameEventContent>().expect("a name");
        assert_eq!(name.name, "N");
        assert!(answer.state[0].typed::<ruma::events::room::name::RoomNameEventContent>().is_none());
        let details: RoomDetails = serde_json::from_value(json!({"public": true, "name": "x"})).expect("parses");
        assert!(details.public);
    }
}
