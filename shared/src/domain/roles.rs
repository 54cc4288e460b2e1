//! OpenMeet roles and the part of `m.room.power_levels` membership reads and writes.
//!
//! Power levels stay JSON (`json!`, not ruma's typed content) where they are merged: the room's content is written
//! back, and keys we do not model (other tools' entries, newer spec fields) must survive the write.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::domain::DomainError;

/// The largest `m.room.power_levels` content written. Matrix refuses any event over 65536 bytes (PDU, envelope
/// included: signatures, hashes, auth and prev events, about 1-2 KiB); 4 KiB are left for the envelope.
pub const MAX_POWER_LEVELS_BYTES: usize = 60 * 1024;

/// An OpenMeet role; ordered from least to most powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Speaker,
    Moderator,
    Admin,
    Owner,
}

impl Role {
    /// Most powerful first, so the first role a level reaches is the one it reads as.
    const DESCENDING: [Role; 5] = [Role::Owner, Role::Admin, Role::Moderator, Role::Speaker, Role::Member];

    /// The one place a role's power level is spelled: every other level (room policy, lifecycle, moderation
    /// checks) is named through it.
    pub const fn power_level(self) -> i64 {
        match self {
            Role::Owner => 100,
            Role::Admin => 75,
            Role::Moderator => 50,
            Role::Speaker => 25,
            Role::Member => 0,
        }
    }

    /// The role a power level reads as: a level between two roles reads as the lower one; anything below 0 (or
    /// above 100) reads as the nearest role.
    pub fn from_power_level(level: i64) -> Role {
        Role::DESCENDING.into_iter().find(|role| level >= role.power_level()).unwrap_or(Role::Member)
    }

    /// The role of a recorded or requested name (`owner`, …, `member`).
    pub fn from_name(name: &str) -> Option<Role> {
        Role::DESCENDING.into_iter().find(|role| role.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Moderator => "moderator",
            Role::Speaker => "speaker",
            Role::Member => "member",
        }
    }
}

/// The part of `m.room.power_levels` membership cares about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PowerLevels {
    pub users_default: i64,
    /// Who may post: `None` when the content does not say (the spec's default is 0).
    pub events_default: Option<i64>,
    /// Explicit entries of the `users` map, by Matrix user id.
    pub users: BTreeMap<String, i64>,
}

/// Power levels are integers, but old rooms may carry them as strings.
pub(crate) fn level_value(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))
}

impl PowerLevels {
    pub fn from_content(content: &Value) -> PowerLevels {
        let users_default = content.get("users_default").and_then(level_value).unwrap_or(0);
        let events_default = content.get("events_default").and_then(level_value);
        let users = content
            .get("users")
            .and_then(Value::as_object)
            .map(|users| users.iter().filter_map(|(user, level)| Some((user.clone(), level_value(level)?))).collect())
            .unwrap_or_default();
        PowerLevels { users_default, events_default, users }
    }

    /// The level a user effectively has: their entry, else `users_default`.
    pub fn level_of(&self, user_id: &str) -> i64 {
        self.users.get(user_id).copied().unwrap_or(self.users_default)
    }
}

/// Merges wanted levels into the power-levels content. A wanted level equal to `users_default` removes the entry
/// (a member's entry is dropped rather than pinned at 0); every other key and every other user's entry is kept.
/// `never_listed` (the room creator, whose power in room version 12 is unlimited and who must not appear in the
/// map) is never written. `None` when nothing would change, so the caller can skip the write.
/// JSON, not ruma's `RoomPowerLevelsEventContent`: the merged content is written back, and keys we do not model
/// must survive.
pub fn merge_power_levels(content: &Value, wanted: &BTreeMap<String, i64>, never_listed: &str) -> Option<Value> {
    let users_default = PowerLevels::from_content(content).users_default;
    let original = content.get("users").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut users: Map<String, Value> = original.clone();
    for (user, &level) in wanted {
        if user == never_listed {
            continue;
        }
        if level == users_default {
            users.remove(user);
        } else {
            users.insert(user.clone(), json!(level));
        }
    }
    if users == original {
        return None;
    }
    let mut merged = match content {
        Value::Object(fields) => fields.clone(),
        _ => Map::new(),
    };
    merged.insert("users".into(), Value::Object(users));
    Some(Value::Object(merged))
}

/// Refuses power levels that would not fit in one Matrix event, before anything changes: each elevated role (every
/// role above `member`) is listed in the one `m.room.power_levels` event, so a room can hold a few hundred of
/// them, not more. Members at the default level are never listed.
pub fn check_power_levels_size(
    content: &Value,
    wanted: &BTreeMap<String, i64>,
    never_listed: &str,
) -> Result<(), DomainError> {
    let Some(merged) = merge_power_levels(content, wanted, never_listed) else {
        return Ok(());
    };
    let size = merged.to_string().len();
    if size <= MAX_POWER_LEVELS_BYTES {
        return Ok(());
    }
    let listed = merged.get("users").and_then(Value::as_object).map_or(0, Map::len);
    Err(DomainError::TooLarge(format!(
        "the room's power levels would be {size} bytes with {listed} users above member, over the {MAX_POWER_LEVELS_BYTES} \
         bytes one Matrix event can hold: give fewer users a role above member"
    )))
}

#[cfg(test)]
mod size_tests {
    use super::*;

    fn elevated(count: usize) -> BTreeMap<String, i64> {
        (0..count).map(|i| (format!("@om_{}.{}{i}:chat.example.org", "t".repeat(32), "u".repeat(58)), 50)).collect()
    }

    #[test]
    fn power_levels_over_one_event_are_refused_before_anything_changes() {
        let content = json!({"users_default": 0, "users": {}});
        assert!(check_power_levels_size(&content, &elevated(100), "@openmeet:x").is_ok());
        let error = check_power_levels_size(&content, &elevated(1000), "@openmeet:x").expect_err("too large");
        assert_eq!((error.status(), error.code()), (413, "payload_too_large"));
        // Members at the default level are never listed, however many.
        let members: BTreeMap<String, i64> = elevated(5000).into_keys().map(|user| (user, 0)).collect();
        assert!(check_power_levels_size(&content, &members, "@openmeet:x").is_ok());
    }
}
