//! Acting as a user, server-side: the appservice asserts the user on their fixed server device.
//!
//! Every call the platform makes for a user (their messages, profile, push rules, direct-room account data) is an
//! appservice request with `?user_id=…&device_id=OPENMEET_SERVER`. The appservice is registered with
//! `rate_limited: false`, so work done for users at volume is never starved by the homeserver's per-user limits,
//! while the tokens browsers hold are limited like any client's. Because the device is fixed, Synapse deduplicates
//! transaction ids per (user, device), persistently for 24 h (see docs/adr/0001-credentials.md). No user token is
//! minted, stored or cached for this.

use std::future::Future;

use ruma::api::error::ErrorCode;
use ruma::{OwnedDeviceId, UserId};
use serde_json::{Value, json};

use crate::homeserver::{AccessToken, Acting, Homeserver, HomeserverError, UserDevice, encode};
use crate::identity::{Identities, TenantId, UserSlug};

/// The device id of every user's server-side device. Browsers may not claim it.
pub const SERVER_DEVICE: &str = "OPENMEET_SERVER";

/// The device every imported event is sent on (per sender; `crate::domain::history_import`): masquerading with a
/// device makes the homeserver keep the transaction record across restarts. Browsers may not claim it either.
pub const IMPORT_DEVICE: &str = "OPENMEET_IMPORT";

pub struct Credentials {
    homeserver: Homeserver,
    identities: Identities,
}

impl Credentials {
    pub fn new(homeserver: Homeserver, identities: Identities) -> Self {
        Credentials { homeserver, identities }
    }

    /// The identity server-side calls for this user run under.
    pub fn server_device(&self, tenant: &TenantId, user: &UserSlug) -> UserDevice {
        UserDevice { user: self.identities.matrix_user_id(tenant, user), device: OwnedDeviceId::from(SERVER_DEVICE) }
    }

    /// Runs `call` as the user on their server device; when the homeserver does not know the device (a new user,
    /// or someone deleted it), creates it and runs the call once more.
    pub async fn as_user<T, F, Fut>(&self, tenant: &TenantId, user: &UserSlug, call: F) -> Result<T, HomeserverError>
    where
        F: Fn(UserDevice) -> Fut,
        Fut: Future<Output = Result<T, HomeserverError>>,
    {
        let identity = self.server_device(tenant, user);
        match call(identity.clone()).await {
            Err(error) if is_unknown_device(&error) => {
                tracing::info!(tenant = %tenant, user = %user, "server device unknown to the homeserver; creating it");
                ensure_device(&self.homeserver, &identity.user, SERVER_DEVICE).await?;
                call(identity).await
            }
            other => other,
        }
    }
}

/// Masquerading with a `device_id` the user does not have answers `400 M_UNKNOWN_DEVICE`.
pub fn is_unknown_device(error: &HomeserverError) -> bool {
    matches!(error, HomeserverError::Rejected { errcode: ErrorCode::UnknownDevice, .. })
}

/// Creates the user's device through the admin API; a no-op when it exists.
pub async fn ensure_device(homeserver: &Homeserver, user_id: &UserId, device_id: &str) -> Result<(), HomeserverError> {
    let path = format!("/_synapse/admin/v2/users/{}/devices", encode(user_id.as_str()));
    homeserver
        .call::<Value>(reqwest::Method::POST, &path, Acting::Platform, Some(&json!({"device_id": device_id})))
        .await
        .map(|_| ())
}

/// A refreshable browser session as the homeserver issued it.
pub struct DeviceLogin {
    pub access_token: AccessToken,
    pub refresh_token: AccessToken,
    pub expires_in_ms: u64,
}

/// Appservice login bound to `device_id` with `refresh_token: true`: the same id gives the same device every time,
/// and the access token expires after the homeserver's `refreshable_access_token_lifetime`.
pub async fn login_device(
    homeserver: &Homeserver,
    user_id: &UserId,
    device_id: &str,
    display_name: &str,
) -> Result<DeviceLogin, HomeserverError> {
    #[derive(serde::Deserialize)]
    struct LoginResponse {
        access_token: String,
        refresh_token: Option<String>,
        expires_in_ms: Option<u64>,
    }
    let body = json!({
        "type": "m.login.application_service",
        "identifier": {"type": "m.id.user", "user": user_id.as_str()},
        "device_id": device_id,
        "initial_device_display_name": display_name,
        "refresh_token": true,
    });
    let response: Result<LoginResponse, _> =
        homeserver.call(reqwest::Method::POST, "/_matrix/client/v3/login", Acting::Platform, Some(&body)).await;
    crate::metrics::auth(crate::metrics::AuthKind::HomeserverLogin, response.is_ok());
    let response = response?;
    // A homeserver that does not issue refreshable tokens would hand the browser a token that never expires.
    let (Some(refresh_token), Some(expires_in_ms)) = (response.refresh_token, response.expires_in_ms) else {
        return Err(HomeserverError::InvalidResponse(
            "the homeserver issued no refresh token (refreshable sessions are off)".into(),
        ));
    };
    Ok(DeviceLogin {
        access_token: AccessToken::new(response.access_token),
        refresh_token: AccessToken::new(refresh_token),
        expires_in_ms,
    })
}
