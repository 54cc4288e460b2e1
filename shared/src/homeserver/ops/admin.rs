//! Synapse's admin API (which ruma does not model) and the few client endpoints whose bodies we write as plain JSON,
//! behind named operations: the domain asks for a user, a device, a room list, never for a path.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::homeserver::{Acting, Homeserver, HomeserverError, encode};

/// A user as the admin API shows it (the fields used here).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AdminUser {
    #[serde(default)]
    pub displayname: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub deactivated: bool,
}

/// A device as the admin API lists it (the fields used here).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AdminDevice {
    pub device_id: String,
    /// When the homeserver last saw the device (ms since the epoch); `None` when never.
    #[serde(default)]
    pub last_seen_ts: Option<u64>,
}

/// One page of the admin room list (the fields used here).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AdminRoomsPage {
    #[serde(default)]
    pub rooms: Vec<AdminRoom>,
    /// Where the next page starts; `None` on the last page. Synapse sends a number (older versions a string).
    #[serde(default, deserialize_with = "offset")]
    pub next_batch: Option<u64>,
}

/// A room of the admin room list.
#[derive(Debug, Clone, Deserialize)]
pub struct AdminRoom {
    pub room_id: String,
    #[serde(default)]
    pub canonical_alias: Option<String>,
    #[serde(default)]
    pub creator: Option<String>,
}

fn offset<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Offset {
        Number(u64),
        Text(String),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Option::<Offset>::deserialize(deserializer)? {
        Some(Offset::Number(n)) => Some(n),
        Some(Offset::Text(text)) => text.parse().ok(),
        Some(Offset::Other(_)) | None => None,
    })
}

/// Values of a 404 are "absent"; everything else is the error.
fn absent_on_404<T>(outcome: Result<T, HomeserverError>) -> Result<Option<T>, HomeserverError> {
    match outcome {
        Ok(value) => Ok(Some(value)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}

impl Homeserver {
    /// The version probe (health): `/_matrix/client/versions` needs no identity and no version negotiation.
    pub async fn versions(&self) -> Result<(), HomeserverError> {
        self.call::<Value>(reqwest::Method::GET, "/_matrix/client/versions", Acting::Platform, None::<&Value>)
            .await
            .map(drop)
    }

    /// A user with the admin API; `None` when the homeserver never knew them.
    pub async fn admin_user(&self, user_id: &ruma::UserId) -> Result<Option<AdminUser>, HomeserverError> {
        let path = format!("/_synapse/admin/v2/users/{}", encode(user_id.as_str()));
        absent_on_404(self.call(reqwest::Method::GET, &path, Acting::Platform, None::<&Value>).await)
    }

    /// Deactivates a user without erasing their messages; an unknown user is fine.
    pub async fn deactivate_user(&self, user_id: &ruma::UserId) -> Result<(), HomeserverError> {
        let path = format!("/_synapse/admin/v1/deactivate/{}", encode(user_id.as_str()));
        let body = json!({"erase": false});
        absent_on_404(self.call::<Value>(reqwest::Method::POST, &path, Acting::Platform, Some(&body)).await).map(drop)
    }

    /// Reactivates a deactivated user (Synapse 1.163 asks no password for it): marks them active and not erased and
    /// recreates their profile row; rooms are not rejoined.
    pub async fn reactivate_user(&self, user_id: &ruma::UserId) -> Result<(), HomeserverError> {
        let path = format!("/_synapse/admin/v2/users/{}", encode(user_id.as_str()));
        let body = json!({"deactivated": false});
        self.call::<Value>(reqwest::Method::PUT, &path, Acting::Platform, Some(&body)).await.map(drop)
    }

    /// Creates a device for a user (a no-op when it exists), so the appservice may assert it.
    pub async fn create_device(&self, user_id: &ruma::UserId, device_id: &str) -> Result<(), HomeserverError> {
        let path = format!("/_synapse/admin/v2/users/{}/devices", encode(user_id.as_str()));
        let body = json!({"device_id": device_id});
        self.call::<Value>(reqwest::Method::POST, &path, Acting::Platform, Some(&body)).await.map(drop)
    }

    /// Deletes a device and every token of it; already gone is fine.
    pub async fn delete_device(&self, user_id: &ruma::UserId, device_id: &str) -> Result<(), HomeserverError> {
        let path = format!("/_synapse/admin/v2/users/{}/devices/{}", encode(user_id.as_str()), encode(device_id));
        absent_on_404(self.call::<Value>(reqwest::Method::DELETE, &path, Acting::Platform, None::<&Value>).await)
            .map(drop)
    }

    /// A user's devices as the admin API lists them.
    pub async fn user_devices(&self, user_id: &ruma::UserId) -> Result<Vec<AdminDevice>, HomeserverError> {
        #[derive(Deserialize)]
        struct Devices {
            #[serde(default)]
            devices: Vec<AdminDevice>,
        }
        let path = format!("/_synapse/admin/v2/users/{}/devices", encode(user_id.as_str()));
        let listed: Devices = self.call(reqwest::Method::GET, &path, Acting::Platform, None::<&Value>).await?;
        Ok(listed.devices)
    }

    /// One page of the server's rooms (admin room list).
    pub async fn admin_rooms_page(&self, from: u64, limit: u32) -> Result<AdminRoomsPage, HomeserverError> {
        let path = format!("/_synapse/admin/v1/rooms?limit={limit}&from={from}");
        self.call(reqwest::Method::GET, &path, Acting::Platform, None::<&Value>).await
    }

    /// Deletes a room and purges its history in the background; an unknown room is fine.
    pub async fn purge_room(&self, room_id: &ruma::RoomId) -> Result<(), HomeserverError> {
        let path = format!("/_synapse/admin/v2/rooms/{}", encode(room_id.as_str()));
        let body = json!({"purge": true, "block": false});
        absent_on_404(self.call::<Value>(reqwest::Method::DELETE, &path, Acting::Platform, Some(&body)).await).map(drop)
    }

    /// Sets one profile field (`displayname`, `avatar_url`) of the user `acting` asserts. Plain JSON: an empty
    /// `avatar_url` clears the avatar, which ruma's typed request (an `Option<MxcUri>`) cannot say.
    pub async fn set_profile_field(
        &self,
        user_id: &ruma::UserId,
        field: &str,
        value: &str,
        acting: Acting<'_>,
    ) -> Result<(), HomeserverError> {
        let path = format!("/_matrix/client/v3/profile/{}/{}", encode(user_id.as_str()), encode(field));
        let body = serde_json::Map::from_iter([(field.to_owned(), Value::from(value))]);
        self.call::<Value>(reqwest::Method::PUT, &path, acting, Some(&body)).await.map(drop)
    }

    /// The user's global account data of `event_type`; `None` when unset. Plain JSON: a read-modify-write whose
    /// unknown keys must survive.
    pub async fn account_data(
        &self,
        user_id: &ruma::UserId,
        event_type: &str,
        acting: Acting<'_>,
    ) -> Result<Option<Value>, HomeserverError> {
        let path = account_data_path(user_id, event_type);
        absent_on_404(self.call(reqwest::Method::GET, &path, acting, None::<&Value>).await)
    }

    pub async fn put_account_data(
        &self,
        user_id: &ruma::UserId,
        event_type: &str,
        content: &Value,
        acting: Acting<'_>,
    ) -> Result<(), HomeserverError> {
        let path = account_data_path(user_id, event_type);
        self.call::<Value>(reqwest::Method::PUT, &path, acting, Some(content)).await.map(drop)
    }
}

fn account_data_path(user_id: &ruma::UserId, event_type: &str) -> String {
    format!("/_matrix/client/v3/user/{}/account_data/{}", encode(user_id.as_str()), encode(event_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_list_pages_read_the_offset_as_a_number_or_a_string() {
        let page = |json: &str| serde_json::from_str::<AdminRoomsPage>(json).expect("a page");
        assert_eq!(page(r#"{"rooms": [], "next_batch": 500}"#).next_batch, Some(500));
        assert_eq!(page(r#"{"rooms": [], "next_batch": "1000"}"#).next_batch, Some(1000));
        assert_eq!(page(r#"{"rooms": [{"room_id": "!r:l"}]}"#).next_batch, None);
        assert_eq!(page(r#"{"next_batch": null}"#).next_batch, None);
        assert_eq!(
            page(r#"{"rooms": [{"room_id": "!r:l", "creator": "@p:l"}]}"#).rooms[0].creator.as_deref(),
            Some("@p:l")
        );
    }
}
