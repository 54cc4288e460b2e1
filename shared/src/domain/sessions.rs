//! Browser sessions: a device-bound Matrix token the browser uses to sync with the homeserver directly.

use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::App;
use crate::credentials::{SERVER_DEVICE, login_device};
use crate::domain::users::{self, AvatarChange};
use crate::error::ApiError;
use crate::homeserver::{Acting, encode};
use crate::identity::{TenantId, UserSlug};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionInput {
    pub device_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub homeserver_url: String,
    pub matrix_user_id: String,
    pub device_id: String,
    pub access_token: String,
}

// `Session` carries a token: keep it out of debug prints.
impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("matrix_user_id", &self.matrix_user_id)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

pub fn validate_device_id(device_id: &str) -> Result<(), ApiError> {
    if device_id == SERVER_DEVICE {
        return Err(ApiError::bad_request("reserved_device_id", format!("{SERVER_DEVICE} is reserved for the server")));
    }
    let valid = !device_id.is_empty()
        && device_id.len() <= 64
        && device_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_request("invalid_body", "deviceId must be 1-64 characters of [A-Za-z0-9_.-]"))
    }
}

fn new_device_id() -> String {
    let suffix: String = rand::rng().sample_iter(Alphanumeric).take(10).map(char::from).collect();
    format!("OM{}", suffix.to_ascii_uppercase())
}

/// Provisions the user on first use, then logs them in on the given (or a new) device.
pub async fn create(
    app: &App,
    tenant: &TenantId,
    user: &UserSlug,
    display_name: Option<&str>,
    input: SessionInput,
) -> Result<Session, ApiError> {
    let device_id = match input.device_id {
        Some(device_id) => {
            validate_device_id(&device_id)?;
            device_id
        }
        None => new_device_id(),
    };
    if !users::is_provisioned(app, tenant, user).await? {
        let name =
            users::validate_display_name(display_name.unwrap_or(user.as_str())).unwrap_or_else(|_| user.to_string());
        users::ensure(app, tenant, user, &name, AvatarChange::Keep).await?;
    }
    let user_id = app.identities.matrix_user_id(tenant, user);
    let token = login_device(&app.homeserver, &user_id, &device_id, "OpenMeet web").await?;
    Ok(Session {
        homeserver_url: app.config.public_homeserver_url.clone(),
        matrix_user_id: user_id.to_string(),
        device_id,
        access_token: token.expose().to_owned(),
    })
}

/// Logs one device out (deleting it and its tokens). Already gone is fine.
pub async fn delete(app: &App, tenant: &TenantId, user: &UserSlug, device_id: &str) -> Result<(), ApiError> {
    validate_device_id(device_id)?;
    let user_id = app.identities.matrix_user_id(tenant, user);
    let path = format!("/_synapse/admin/v2/users/{}/devices/{}", encode(user_id.as_str()), encode(device_id));
    match app.homeserver.call::<Value>(reqwest::Method::DELETE, &path, Acting::Platform, None::<&Value>).await {
        Ok(_) => Ok(()),
        Err(error) if error.is_not_found() => Ok(()),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_are_validated_and_the_server_device_is_reserved() {
        assert!(validate_device_id("BROWSER_1").is_ok());
        assert_eq!(validate_device_id(SERVER_DEVICE).err().map(|e| e.code()), Some("reserved_device_id"));
        assert!(validate_device_id("").is_err());
        assert!(validate_device_id("a b").is_err());
        assert!(validate_device_id(&"a".repeat(65)).is_err());
    }

    #[test]
    fn generated_device_ids_are_valid_and_distinct() {
        let (a, b) = (new_device_id(), new_device_id());
        assert!(validate_device_id(&a).is_ok());
        assert_ne!(a, b);
    }
}
