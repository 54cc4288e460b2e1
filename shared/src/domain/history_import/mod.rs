//! Importing another chat's history (Zulip's, `openmeet-cutover import-zulip`): the homeserver side. Messages are
//! sent as their original senders with their original timestamps (appservice masquerade with `?ts=`), each on the
//! sender's import device so that the homeserver's transaction record survives a restart (24 h): a resent message
//! returns its first event. What the import reads from an export and in which order it sends lives in the tool.
//!
//! Placeholders: a Zulip user without an OpenMeet account is sent as `@{prefix}{tenant}.zulip={id}`. `=` never occurs
//! in an OpenMeet user id, so no OpenMeet identity maps to it ([`crate::identity::Identities::openmeet_user`] answers
//! `None`): no JWT can ask for its session, it has no password and is never logged in, and it belongs to the tenant
//! (the tenant-walls module reads the tenant from the localpart). Its display name says it is an imported Zulip user.

pub mod content;
pub mod delta;
pub mod emoji;
pub mod history_room;
pub mod live;

use std::collections::HashSet;

use ruma::api::client::account::register;
use ruma::api::error::ErrorCode;
use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, UserId};
use serde_json::Value;

use crate::app::App;
use crate::credentials::ensure_device;
use crate::domain::DomainError;
use crate::domain::rooms;
use crate::homeserver::{Acting, HomeserverError};
use crate::identity::TenantId;

pub use crate::credentials::IMPORT_DEVICE;

/// What a placeholder's display name ends with.
pub const PLACEHOLDER_SUFFIX: &str = " (Zulip, imported)";

/// The Matrix id of the placeholder of Zulip user `zulip_id` in `tenant`.
pub fn placeholder_user_id(app: &App, tenant: &TenantId, zulip_id: i64) -> Result<OwnedUserId, DomainError> {
    let raw = format!("@{}{tenant}.zulip={zulip_id}:{}", app.config.user_prefix, app.identities.server_name());
    UserId::parse(raw.as_str()).map_err(|_| DomainError::Internal)
}

/// Whether a Matrix id is an import placeholder (never an OpenMeet member).
pub fn is_placeholder(user_id: &str) -> bool {
    user_id.split(':').next().is_some_and(|localpart| localpart.contains(".zulip="))
}

/// Registers the placeholder through the appservice (no password, no login) with a marked display name, and its
/// import device. Safe to repeat.
pub async fn ensure_placeholder(
    app: &App,
    tenant: &TenantId,
    zulip_id: i64,
    full_name: &str,
) -> Result<OwnedUserId, DomainError> {
    let user_id = placeholder_user_id(app, tenant, zulip_id)?;
    let mut request = register::v3::Request::new();
    request.username = Some(user_id.localpart().to_owned());
    request.inhibit_login = true;
    request.login_type = Some(register::LoginType::ApplicationService);
    match app.homeserver.send(request, Acting::Platform).await {
        Ok(_) => {}
        Err(HomeserverError::Rejected { errcode: ErrorCode::UserInUse, .. }) => {}
        Err(error) => return Err(error.into()),
    }
    let name: String = full_name.chars().take(200).collect();
    let acting = Acting::Masquerade { user: &user_id, device: None };
    let display_name = format!("{name}{PLACEHOLDER_SUFFIX}");
    app.homeserver.set_profile_field(&user_id, "displayname", &display_name, acting).await?;
    ensure_device(&app.homeserver, &user_id, IMPORT_DEVICE).await?;
    Ok(user_id)
}

/// Creates a sender's import device (a no-op when it exists).
pub async fn ensure_sender(app: &App, user_id: &UserId) -> Result<(), DomainError> {
    Ok(ensure_device(&app.homeserver, user_id, IMPORT_DEVICE).await?)
}

/// Whether the user exists (and is not deactivated) on the homeserver.
pub async fn user_exists(app: &App, user_id: &UserId) -> Result<bool, DomainError> {
    Ok(app.homeserver.admin_user(user_id).await?.is_some_and(|user| !user.deactivated))
}

/// The room's joined members (admin API: no per-user token).
pub async fn joined_members(app: &App, room_id: &OwnedRoomId) -> Result<HashSet<String>, DomainError> {
    Ok(app.homeserver.admin_room_members(room_id.as_str()).await?.into_iter().collect())
}

/// Joins a sender who is not in the room (admin join; already joined is success).
pub async fn join(app: &App, room_id: &OwnedRoomId, user_id: &UserId) -> Result<(), DomainError> {
    rooms::admin_join(app, room_id, user_id).await
}

/// The user leaves the room (after the import joined them only to send their history). Not in it is success.
pub async fn leave(app: &App, room_id: &OwnedRoomId, user_id: &UserId) -> Result<(), DomainError> {
    let acting = Acting::Masquerade { user: user_id, device: None };
    match app.homeserver.leave(room_id, acting).await {
        Ok(_) => Ok(()),
        Err(error) if error.is_not_found() => Ok(()),
        Err(HomeserverError::Rejected { status: 403, .. }) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Sends one event as `sender` at `ts_ms` on their import device. A reaction the homeserver already has
/// (`M_DUPLICATE_ANNOTATION`) answers `None`.
pub async fn send(
    app: &App,
    room_id: &OwnedRoomId,
    sender: &UserId,
    txn_id: &str,
    ts_ms: u64,
    event_type: &str,
    content: &Value,
) -> Result<Option<OwnedEventId>, DomainError> {
    let device = ruma::OwnedDeviceId::from(IMPORT_DEVICE);
    let acting = Acting::Masquerade { user: sender, device: Some(&device) };
    match app.homeserver.send_at(room_id, event_type, txn_id, content, ts_ms, acting).await {
        Ok(event_id) => Ok(Some(event_id)),
        Err(error) if error.is_duplicate_annotation() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Stores a file in the media repository, streamed from the opened file (`length` bytes: the size the caller
/// checked against [`upload_limit`]); answers its `mxc://` URI. The platform uploads it, not the message's sender:
/// the per-user media quota is for people, and an import of one prolific sender's files must not run into it (the
/// message itself is still sent as its sender).
pub async fn upload(
    app: &App,
    filename: &str,
    content_type: &str,
    file: std::fs::File,
    length: u64,
) -> Result<String, DomainError> {
    Ok(app.homeserver.upload_file(Some(filename), content_type, file, length, Acting::Platform).await?)
}

/// The largest file the homeserver's media repository accepts, if it states a limit.
pub async fn upload_limit(app: &App) -> Result<Option<u64>, DomainError> {
    Ok(app.homeserver.upload_limit().await?)
}

/// Puts the member's read marker and receipt at `event_id`, so imported history is not unread.
pub async fn mark_read(
    app: &App,
    room_id: &OwnedRoomId,
    user_id: &UserId,
    event_id: &OwnedEventId,
) -> Result<(), DomainError> {
    let acting = Acting::Masquerade { user: user_id, device: None };
    Ok(app.homeserver.set_read_markers(room_id, event_id, acting).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Identities, UserSlug};

    #[test]
    fn no_openmeet_user_maps_to_a_placeholder() {
        let ids = Identities::new("om_", "localhost", "openmeet").expect("identities");
        let placeholder = UserId::parse("@om_acme.zulip=42:localhost").expect("valid Matrix id");
        assert_eq!(ids.openmeet_user(&placeholder), None);
        assert!(UserSlug::parse("zulip=42").is_err());
        assert!(is_placeholder(placeholder.as_str()));
        assert!(!is_placeholder("@om_acme.zulip:localhost"));
    }
}
