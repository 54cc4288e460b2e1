//! The typed answers of each mocked endpoint: what Synapse 1.163 answers (bodies copied from the local stack).

use serde_json::{Value, json};

use super::{Endpoint, Mounted, SERVER_NAME, member_event};

macro_rules! kinds {
    ($($kind:ident),*) => { $(pub struct $kind;)* };
}
kinds!(
    Register,
    Login,
    AdminUser,
    Devices,
    Empty,
    Alias,
    CreateRoom,
    RoomState,
    StateContent,
    EventSent,
    JoinedMembers,
    Members,
    DirectoryVisibility,
    Joined,
    AdminRoomState,
    AdminRoomDetails,
    Timeline
);

impl<'a> Endpoint<'a, Empty> {
    pub fn ok(self) -> Mounted<'a> {
        self.json(200, json!({}))
    }
}

impl<'a> Endpoint<'a, Register> {
    /// `{"user_id", "home_server"}`: the answer to an `inhibit_login` registration.
    pub fn ok(self, user_id: &str) -> Mounted<'a> {
        self.json(200, json!({"user_id": user_id, "home_server": SERVER_NAME}))
    }

    pub fn user_in_use(self) -> Mounted<'a> {
        self.error(400, "M_USER_IN_USE", "User ID already taken.")
    }
}

impl<'a> Endpoint<'a, Login> {
    /// A refreshable session on `device_id` (Synapse's token shapes; 30 s, the local stack's lifetime).
    pub fn ok(self, user_id: &str, device_id: &str) -> Mounted<'a> {
        self.json(
            200,
            json!({
                "user_id": user_id, "access_token": "syt_bW9jaw_mockAccessToken_0000", "home_server": SERVER_NAME,
                "device_id": device_id, "expires_in_ms": 29993, "refresh_token": "syr_bW9jaw_mockRefreshToken_0000",
            }),
        )
    }
}

impl<'a> Endpoint<'a, AdminUser> {
    /// The user as Synapse's admin API shows them.
    pub fn ok(self, user_id: &str, display_name: &str) -> Mounted<'a> {
        self.json(
            200,
            json!({
                "name": user_id, "admin": false, "deactivated": false, "locked": false, "shadow_banned": false,
                "creation_ts": 1796439568, "appservice_id": null, "user_type": null, "is_guest": false,
                "suspended": false, "displayname": display_name, "avatar_url": null, "threepids": [],
                "external_ids": [], "erased": false, "last_seen_ts": null,
            }),
        )
    }

    /// A deleted user: Synapse keeps the account, deactivated.
    pub fn deactivated(self, user_id: &str) -> Mounted<'a> {
        self.json(200, json!({"name": user_id, "admin": false, "deactivated": true, "displayname": null}))
    }

    pub fn not_found(self) -> Mounted<'a> {
        self.error(404, "M_NOT_FOUND", "User not found")
    }
}

impl<'a> Endpoint<'a, Devices> {
    /// The user's devices, by id.
    pub fn ok(self, user_id: &str, device_ids: &[&str]) -> Mounted<'a> {
        let devices: Vec<Value> = device_ids
            .iter()
            .map(|id| json!({"user_id": user_id, "device_id": id, "display_name": null, "last_seen_ts": null}))
            .collect();
        self.json(200, json!({"total": devices.len(), "devices": devices}))
    }
}

impl<'a> Endpoint<'a, Alias> {
    pub fn ok(self, room_id: &str) -> Mounted<'a> {
        self.json(200, json!({"room_id": room_id, "servers": [SERVER_NAME]}))
    }

    pub fn not_found(self) -> Mounted<'a> {
        self.error(404, "M_NOT_FOUND", "Room alias not found")
    }
}

impl<'a> Endpoint<'a, CreateRoom> {
    /// Synapse 1.163 makes version-12 room ids: no server name.
    pub fn ok(self, room_id: &str) -> Mounted<'a> {
        self.json(200, json!({"room_id": room_id}))
    }

    pub fn room_in_use(self) -> Mounted<'a> {
        self.error(400, "M_ROOM_IN_USE", "Room alias already taken")
    }
}

impl<'a> Endpoint<'a, RoomState> {
    /// The room's state events.
    pub fn ok(self, events: Value) -> Mounted<'a> {
        self.json(200, events)
    }
}

impl<'a> Endpoint<'a, StateContent> {
    /// The event's content.
    pub fn ok(self, content: Value) -> Mounted<'a> {
        self.json(200, content)
    }

    pub fn not_found(self) -> Mounted<'a> {
        self.error(404, "M_NOT_FOUND", "Event not found.")
    }
}

impl<'a> Endpoint<'a, EventSent> {
    pub fn ok(self, event_id: &str) -> Mounted<'a> {
        self.json(200, json!({"event_id": event_id}))
    }

    /// A reaction the homeserver already has from this sender.
    pub fn duplicate_annotation(self) -> Mounted<'a> {
        self.error(400, "M_DUPLICATE_ANNOTATION", "Can't send same reaction twice")
    }

    /// A sender who is not in the room.
    pub fn not_in_room(self, user_id: &str, room_id: &str) -> Mounted<'a> {
        self.forbidden(&format!("User {user_id} not in room {room_id} (None)"))
    }
}

impl<'a> Endpoint<'a, JoinedMembers> {
    pub fn ok(self, user_ids: &[&str]) -> Mounted<'a> {
        let joined: serde_json::Map<String, Value> =
            user_ids.iter().map(|id| (id.to_string(), json!({"avatar_url": null, "display_name": id}))).collect();
        self.json(200, json!({"joined": joined}))
    }
}

impl<'a> Endpoint<'a, Members> {
    /// `m.room.member` events for (user, membership) pairs.
    pub fn ok(self, room_id: &str, members: &[(&str, &str)]) -> Mounted<'a> {
        let chunk: Vec<Value> =
            members.iter().map(|(user, membership)| member_event(room_id, user, membership)).collect();
        self.json(200, json!({"chunk": chunk}))
    }
}

impl<'a> Endpoint<'a, DirectoryVisibility> {
    pub fn ok(self, public: bool) -> Mounted<'a> {
        self.json(200, json!({"visibility": if public { "public" } else { "private" }}))
    }
}

impl<'a> Endpoint<'a, Joined> {
    pub fn ok(self, room_id: &str) -> Mounted<'a> {
        self.json(200, json!({"room_id": room_id}))
    }
}

impl<'a> Endpoint<'a, AdminRoomState> {
    /// `{"state": [events]}`.
    pub fn ok(self, events: Vec<Value>) -> Mounted<'a> {
        self.json(200, json!({"state": events}))
    }
}

impl<'a> Endpoint<'a, AdminRoomDetails> {
    pub fn ok(self, room_id: &str, name: &str, joined_members: u64) -> Mounted<'a> {
        self.json(
            200,
            json!({
                "room_id": room_id, "name": name, "canonical_alias": null, "joined_members": joined_members,
                "joined_local_members": joined_members, "version": "12", "creator": format!("@openmeet:{SERVER_NAME}"),
                "encryption": null, "federatable": false, "public": false, "join_rules": "invite",
                "guest_access": null, "history_visibility": "shared", "state_events": 8, "room_type": null,
                "forgotten": false,
            }),
        )
    }
}

impl<'a> Endpoint<'a, Timeline> {
    /// A page of events, newest first (`dir=b`), ending at the room's creation when `end` is `None`.
    pub fn ok(self, chunk: Vec<Value>, end: Option<&str>) -> Mounted<'a> {
        let mut page = json!({"chunk": chunk, "start": "t8-49860_0_0_0_0_0_0_0_0_0_0_0_0_0"});
        if let Some(end) = end {
            page["end"] = json!(end);
        }
        self.json(200, page)
    }
}

/// A timeline message event as `/messages` returns it.
pub fn message_event(room_id: &str, event_id: &str, sender: &str, ts: u64, content: Value) -> Value {
    json!({
        "type": "m.room.message", "content": content, "event_id": event_id, "room_id": room_id, "sender": sender,
        "origin_server_ts": ts, "unsigned": {"age": 2190510, "membership": "join"}, "user_id": sender,
    })
}
