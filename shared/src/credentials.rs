//! Acting as a user, server-side, with a device-bound token.
//!
//! Each OpenMeet user has one server device, [`SERVER_DEVICE`], whose token is minted by appservice login. Because
//! the device is fixed, Synapse deduplicates transaction ids per (user, device) across token re-mints and restarts
//! (see docs/adr/0001-credentials.md). The token is KMS-sealed in DynamoDB with a 2-hour sliding TTL and cached in
//! memory for a few minutes; a 401 `M_UNKNOWN_TOKEN` re-mints once and retries.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use ruma::UserId;
use serde_json::json;

use crate::aws::store::{self, Store};
use crate::aws::vault::{CredentialScope, Vault};
use crate::error::ApiError;
use crate::homeserver::{AccessToken, Acting, Homeserver, HomeserverError};
use crate::identity::{Identities, TenantId, UserSlug};

/// The device id of every user's server-side device. Browsers may not claim it.
pub const SERVER_DEVICE: &str = "OPENMEET_SERVER";
const PURPOSE: &str = "server-device";
/// Unused this long, a stored credential is dropped by DynamoDB TTL.
pub const IDLE_LIFETIME: Duration = Duration::from_secs(2 * 60 * 60);
/// The TTL is pushed forward at most this often, so a busy user does not cost a write per request.
const TOUCH_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// How long a decrypted token stays in this container's memory.
const MEMORY_TTL: Duration = Duration::from_secs(5 * 60);

struct Cached {
    token: AccessToken,
    cached_at: Instant,
}

pub struct Credentials {
    store: Store,
    vault: Vault,
    homeserver: Homeserver,
    identities: Identities,
    cache: Mutex<HashMap<CredentialScope, Cached>>,
}

impl Credentials {
    pub fn new(store: Store, vault: Vault, homeserver: Homeserver, identities: Identities) -> Self {
        Credentials { store, vault, homeserver, identities, cache: Mutex::new(HashMap::new()) }
    }

    fn scope(tenant: &TenantId, user: &UserSlug) -> CredentialScope {
        CredentialScope {
            tenant: tenant.to_string(),
            user: user.to_string(),
            purpose: PURPOSE,
            device: SERVER_DEVICE.to_owned(),
        }
    }

    pub fn record_key(tenant: &TenantId, user: &UserSlug) -> (String, String) {
        (user_partition(tenant, user), format!("CRED#{PURPOSE}#{SERVER_DEVICE}"))
    }

    /// Runs `call` with the user's server token; on `M_UNKNOWN_TOKEN` re-mints once and runs it again.
    pub async fn as_user<T, F, Fut>(&self, tenant: &TenantId, user: &UserSlug, call: F) -> Result<T, ApiError>
    where
        F: Fn(AccessToken) -> Fut,
        Fut: Future<Output = Result<T, HomeserverError>>,
    {
        let token = self.server_token(tenant, user).await?;
        match call(token).await {
            Err(HomeserverError::UnknownToken) => {
                tracing::info!(tenant = %tenant, user = %user, "server token unknown to the homeserver; re-minting");
                self.forget(tenant, user).await?;
                let token = self.mint(tenant, user).await?;
                Ok(call(token).await?)
            }
            other => Ok(other?),
        }
    }

    /// The user's server token: memory, else the sealed record, else a fresh login.
    pub async fn server_token(&self, tenant: &TenantId, user: &UserSlug) -> Result<AccessToken, ApiError> {
        let scope = Self::scope(tenant, user);
        if let Some(token) = self.cached(&scope) {
            return Ok(token);
        }
        let (pk, sk) = Self::record_key(tenant, user);
        if let Some(item) = self.store.get(&pk, &sk).await?
            && let Some(ciphertext) = store::binary(&item, "ciphertext")
            && let Some(token) = self.vault.open(&scope, ciphertext).await?
        {
            let expires_at = store::number(&item, store::TTL_ATTRIBUTE).unwrap_or(0);
            let now = store::now_secs();
            if expires_at < now + IDLE_LIFETIME.as_secs() - TOUCH_INTERVAL.as_secs() {
                self.store.set_expiry(&pk, &sk, now + IDLE_LIFETIME.as_secs()).await?;
            }
            self.remember(scope, &token);
            return Ok(token);
        }
        self.mint(tenant, user).await
    }

    async fn mint(&self, tenant: &TenantId, user: &UserSlug) -> Result<AccessToken, ApiError> {
        let user_id = self.identities.matrix_user_id(tenant, user);
        let token = login_device(&self.homeserver, &user_id, SERVER_DEVICE, "OpenMeet server").await?;
        let scope = Self::scope(tenant, user);
        let ciphertext = self.vault.seal(&scope, &token).await?;
        let (pk, sk) = Self::record_key(tenant, user);
        let mut item = store::keyed(&pk, &sk);
        item.insert("ciphertext".into(), AttributeValue::B(ciphertext.into()));
        item.insert(
            store::TTL_ATTRIBUTE.into(),
            AttributeValue::N((store::now_secs() + IDLE_LIFETIME.as_secs()).to_string()),
        );
        self.store.put(item).await?;
        self.remember(scope, &token);
        Ok(token)
    }

    /// Drops the user's server credential everywhere this container can see it.
    pub async fn forget(&self, tenant: &TenantId, user: &UserSlug) -> Result<(), ApiError> {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(&Self::scope(tenant, user));
        }
        let (pk, sk) = Self::record_key(tenant, user);
        self.store.delete(&pk, &sk).await?;
        Ok(())
    }

    fn cached(&self, scope: &CredentialScope) -> Option<AccessToken> {
        let cache = self.cache.lock().ok()?;
        cache.get(scope).filter(|entry| entry.cached_at.elapsed() < MEMORY_TTL).map(|entry| entry.token.clone())
    }

    fn remember(&self, scope: CredentialScope, token: &AccessToken) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|_, entry| entry.cached_at.elapsed() < MEMORY_TTL);
            cache.insert(scope, Cached { token: token.clone(), cached_at: Instant::now() });
        }
    }
}

/// The partition of everything stored about one user.
pub fn user_partition(tenant: &TenantId, user: &UserSlug) -> String {
    format!("T#{tenant}#U#{user}")
}

/// Appservice login bound to `device_id`: the same id gives the same device (and transaction scope) every time.
pub async fn login_device(
    homeserver: &Homeserver,
    user_id: &UserId,
    device_id: &str,
    display_name: &str,
) -> Result<AccessToken, HomeserverError> {
    #[derive(serde::Deserialize)]
    struct LoginResponse {
        access_token: String,
    }
    let body = json!({
        "type": "m.login.application_service",
        "identifier": {"type": "m.id.user", "user": user_id.as_str()},
        "device_id": device_id,
        "initial_device_display_name": display_name,
    });
    let response: Result<LoginResponse, _> =
        homeserver.call(reqwest::Method::POST, "/_matrix/client/v3/login", Acting::Platform, Some(&body)).await;
    crate::metrics::auth(crate::metrics::AuthKind::HomeserverLogin, response.is_ok());
    let response = response?;
    Ok(AccessToken::new(response.access_token))
}
