//! Acting as the platform's own user: the appservice sender, creator of every room.

use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::app::App;
use crate::error::ApiError;
use crate::homeserver::{Acting, encode};

/// The platform user's own device: its transaction ids are deduplicated per device, persistently (see ADR 0001),
/// so a notice retried after a crash is posted once.
pub const PLATFORM_DEVICE: &str = "OPENMEET_PLATFORM";

static DEVICE_READY: OnceCell<()> = OnceCell::const_new();

/// Masquerading with `device_id` needs the device to exist; creating it is a no-op when it does.
async fn ensure_device(app: &App) -> Result<(), ApiError> {
    DEVICE_READY
        .get_or_try_init(|| async {
            let platform = app.identities.platform_user_id();
            let path = format!("/_synapse/admin/v2/users/{}/devices", encode(platform.as_str()));
            app.homeserver
                .call::<Value>(
                    reqwest::Method::POST,
                    &path,
                    Acting::Platform,
                    Some(&json!({"device_id": PLATFORM_DEVICE})),
                )
                .await
                .map(|_| ())
                .map_err(ApiError::from)
        })
        .await
        .map(|_| ())
}

/// Sends an event as the platform user with a deterministic transaction id (retries post it once).
pub async fn send_event(
    app: &App,
    room_id: &str,
    event_type: &str,
    txn_id: &str,
    content: &Value,
) -> Result<String, ApiError> {
    ensure_device(app).await?;
    let platform = app.identities.platform_user_id();
    let device = ruma::OwnedDeviceId::from(PLATFORM_DEVICE);
    let path = format!("/_matrix/client/v3/rooms/{}/send/{}/{}", encode(room_id), encode(event_type), encode(txn_id));
    let response: Value = app
        .homeserver
        .call(reqwest::Method::PUT, &path, Acting::Masquerade { user: &platform, device: Some(&device) }, Some(content))
        .await?;
    response
        .get("event_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(ApiError::HomeserverRejected("send returned no event id".into()))
}

/// Posts an `m.notice` as the platform.
pub async fn send_notice(app: &App, room_id: &str, txn_id: &str, text: &str) -> Result<String, ApiError> {
    send_event(app, room_id, "m.room.message", txn_id, &json!({"msgtype": "m.notice", "body": text})).await
}

/// Puts a state event as the platform.
pub async fn put_state(
    app: &App,
    room_id: &str,
    event_type: &str,
    state_key: &str,
    content: &Value,
) -> Result<(), ApiError> {
    let path =
        format!("/_matrix/client/v3/rooms/{}/state/{}/{}", encode(room_id), encode(event_type), encode(state_key));
    app.homeserver.call::<Value>(reqwest::Method::PUT, &path, Acting::Platform, Some(content)).await?;
    Ok(())
}

/// The room's whole current state, keyed by (type, state_key).
pub async fn room_state(
    app: &App,
    room_id: &str,
) -> Result<std::collections::HashMap<(String, String), Value>, ApiError> {
    let path = format!("/_matrix/client/v3/rooms/{}/state", encode(room_id));
    let events: Vec<Value> = app.homeserver.call(reqwest::Method::GET, &path, Acting::Platform, None::<&Value>).await?;
    Ok(events
        .into_iter()
        .filter_map(|event| {
            let event_type = event.get("type")?.as_str()?.to_owned();
            let state_key = event.get("state_key")?.as_str()?.to_owned();
            Some(((event_type, state_key), event.get("content")?.clone()))
        })
        .collect())
}
