//! A user's HTTP pushers (`/_matrix/client/v3/pushers`): set, listed and removed as the user. The platform sets
//! them on the user's server device (appservice identity assertion, no access token of its own), so logging a
//! browser device out leaves them alone; Synapse deletes a pusher with the device it was set on, or with the
//! access token that set it, and every pusher of a deactivated user.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::homeserver::{Acting, Homeserver, HomeserverError};

/// An HTTP pusher to set. `pushkey` is secret: this type never prints it.
pub struct HttpPusher<'a> {
    pub app_id: &'a str,
    pub pushkey: &'a str,
    /// The push gateway's `/_matrix/push/v1/notify` URL.
    pub url: &'a str,
    /// Further `data` keys, which the homeserver hands back to the gateway with every notification.
    pub data: Value,
}

/// One pusher of a user, as listed (its pushkey is kept only to remove it).
#[derive(Clone, Deserialize)]
pub struct PusherEntry {
    pub app_id: String,
    pub pushkey: String,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub data: Value,
}

impl PusherEntry {
    /// The gateway URL of an HTTP pusher.
    pub fn url(&self) -> Option<&str> {
        self.data.get("url").and_then(Value::as_str)
    }
}

impl std::fmt::Debug for PusherEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PusherEntry")
            .field("app_id", &self.app_id)
            .field("kind", &self.kind)
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Pushers {
    #[serde(default)]
    pushers: Vec<PusherEntry>,
}

const PUSHERS: &str = "/_matrix/client/v3/pushers";

impl Homeserver {
    /// Sets (or replaces: same `app_id` and `pushkey`) an HTTP pusher with `format: event_id_only`.
    pub async fn set_pusher(&self, pusher: &HttpPusher<'_>, acting: Acting<'_>) -> Result<(), HomeserverError> {
        let mut data = json!({"url": pusher.url, "format": "event_id_only"});
        if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), &pusher.data) {
            data.extend(extra.clone());
        }
        let body = json!({
            "kind": "http",
            "app_id": pusher.app_id,
            "pushkey": pusher.pushkey,
            "app_display_name": "OpenMeet",
            "device_display_name": "OpenMeet notifications",
            "lang": "en",
            "data": data,
            "append": false,
        });
        self.call::<Value>(reqwest::Method::POST, &format!("{PUSHERS}/set"), acting, Some(&body)).await.map(drop)
    }

    /// Removes the pusher `(app_id, pushkey)`; absent already is success.
    pub async fn delete_pusher(&self, app_id: &str, pushkey: &str, acting: Acting<'_>) -> Result<(), HomeserverError> {
        let body = json!({"kind": null, "app_id": app_id, "pushkey": pushkey});
        self.call::<Value>(reqwest::Method::POST, &format!("{PUSHERS}/set"), acting, Some(&body)).await.map(drop)
    }

    /// Every pusher of the user.
    pub async fn pushers(&self, acting: Acting<'_>) -> Result<Vec<PusherEntry>, HomeserverError> {
        let listed: Pushers = self.call(reqwest::Method::GET, PUSHERS, acting, None::<&Value>).await?;
        Ok(listed.pushers)
    }
}
