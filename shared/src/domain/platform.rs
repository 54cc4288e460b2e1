//! Acting as the platform's own user: the appservice sender, creator of every room.

use ruma::events::room::message::RoomMessageEventContent;
use serde_json::Value;

use crate::app::App;
use crate::domain::DomainError;
use crate::homeserver::{self, Acting, RoomState};

/// The platform user's own device: its transaction ids are deduplicated per device, persistently (see ADR 0001),
/// so a notice retried after a crash is posted once.
pub const PLATFORM_DEVICE: &str = "OPENMEET_PLATFORM";

/// Masquerading with `device_id` needs the device to exist; creating it is a no-op when it does.
async fn ensure_device(app: &App) -> Result<(), DomainError> {
    app.container
        .platform_device
        .get_or_try_init(|| async {
            let platform = app.identities.platform_user_id();
            app.homeserver.create_device(&platform, PLATFORM_DEVICE).await.map_err(DomainError::from)
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
) -> Result<String, DomainError> {
    ensure_device(app).await?;
    let platform = app.identities.platform_user_id();
    let device = ruma::OwnedDeviceId::from(PLATFORM_DEVICE);
    let acting = Acting::Masquerade { user: &platform, device: Some(&device) };
    let room_id = homeserver::room_id(room_id)?;
    Ok(app.homeserver.send_message_event(&room_id, event_type, txn_id, content, acting).await?.to_string())
}

/// Posts an `m.notice` as the platform.
pub async fn send_notice(app: &App, room_id: &str, txn_id: &str, text: &str) -> Result<String, DomainError> {
    let notice = RoomMessageEventContent::notice_plain(text);
    let content = serde_json::to_value(notice).map_err(|_| DomainError::Internal)?;
    send_event(app, room_id, "m.room.message", txn_id, &content).await
}

/// Puts a state event as the platform.
pub async fn put_state(
    app: &App,
    room_id: &str,
    event_type: &str,
    state_key: &str,
    content: &Value,
) -> Result<(), DomainError> {
    let room_id = homeserver::room_id(room_id)?;
    app.homeserver.put_state(&room_id, event_type, state_key, content, Acting::Platform).await?;
    Ok(())
}

/// Puts a state event of one of ruma's typed contents as the platform.
pub async fn put_typed_state<C, K>(app: &App, room_id: &str, state_key: &K, content: &C) -> Result<(), DomainError>
where
    C: ruma::events::StateEventContent,
    C::StateKey: std::borrow::Borrow<K>,
    K: AsRef<str> + ?Sized,
{
    let room_id = homeserver::room_id(room_id)?;
    app.homeserver.put_typed_state(&room_id, state_key, content, Acting::Platform).await?;
    Ok(())
}

/// The room's whole current state.
pub async fn room_state(app: &App, room_id: &str) -> Result<RoomState, DomainError> {
    let room_id = homeserver::room_id(room_id)?;
    Ok(app.homeserver.room_state(&room_id).await?)
}
