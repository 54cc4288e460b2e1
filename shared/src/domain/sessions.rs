//! Browser sessions: a device-bound, expiring Matrix token the browser uses to sync with the homeserver directly.
//!
//! A session is an appservice login with `refresh_token: true` on the browser's device: the access token expires
//! after the homeserver's `refreshable_access_token_lifetime` and the browser renews it with Matrix's own
//! `POST /_matrix/client/v3/refresh` (or by calling the route again with the same deviceId). Each web device is
//! indexed in DynamoDB (`WEBDEV#{shard}`, `{tenant}/{user}/{device}`, with the time it was last issued), so that
//! the cap on web devices can order them by last use and the scheduled sweep can find idle ones without listing
//! every user of the homeserver.

use std::collections::BTreeMap;

use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::aws::keys;
use crate::aws::store;
use crate::aws::web_devices::WebDevices;
use crate::credentials::{IMPORT_DEVICE, SERVER_DEVICE, login_device};
use crate::domain::DomainError;
use crate::domain::platform::PLATFORM_DEVICE;
use crate::domain::tenancy;
use crate::domain::users::{self, AvatarChange};
use crate::homeserver::AdminDevice;
use crate::identity::{TenantId, UserSlug};

/// The device index is spread over this many partitions (no hot key at sign-in peaks).
const INDEX_SHARDS: u64 = 8;

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
    pub refresh_token: String,
    pub expires_in_ms: u64,
}

// `Session` carries tokens: keep them out of debug prints.
impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("matrix_user_id", &self.matrix_user_id)
            .field("device_id", &self.device_id)
            .field("expires_in_ms", &self.expires_in_ms)
            .finish_non_exhaustive()
    }
}

/// The devices the platform itself uses (a user's server device, the history importer's, the platform user's),
/// and the prefix kept for any later one: a browser may not claim, delete or crowd them out.
const PLATFORM_DEVICES: [&str; 3] = [SERVER_DEVICE, IMPORT_DEVICE, PLATFORM_DEVICE];
const PLATFORM_DEVICE_PREFIX: &str = "OPENMEET_";

/// The one check for a platform device id (compared without case: nothing is lost by reserving more).
pub fn is_platform_device(device_id: &str) -> bool {
    let upper = device_id.to_ascii_uppercase();
    PLATFORM_DEVICES.contains(&upper.as_str()) || upper.starts_with(PLATFORM_DEVICE_PREFIX)
}

/// 1–64 characters of `[A-Za-z0-9_-]`; the platform's own devices are reserved.
pub fn validate_device_id(device_id: &str) -> Result<(), DomainError> {
    if is_platform_device(device_id) {
        return Err(DomainError::invalid(
            "reserved_device_id",
            format!("device ids starting with {PLATFORM_DEVICE_PREFIX} are reserved for the platform"),
        ));
    }
    let valid = !device_id.is_empty()
        && device_id.len() <= 64
        && device_id.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(DomainError::invalid("invalid_body", "deviceId must be 1-64 characters of [A-Za-z0-9_-]"))
    }
}

fn new_device_id() -> String {
    let suffix: String = rand::rng().sample_iter(Alphanumeric).take(10).map(char::from).collect();
    format!("OM{}", suffix.to_ascii_uppercase())
}

/// Provisions the user on first use, logs them in on the given (or a new) device, and keeps their web devices
/// within the cap.
pub async fn create(
    app: &App,
    tenant: &TenantId,
    user: &UserSlug,
    display_name: Option<&str>,
    input: SessionInput,
) -> Result<Session, DomainError> {
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
    // The browser's own token joins the tenant's public rooms: it needs the tenant's space (a read when already in).
    tenancy::admit(app, tenant, &user_id).await?;
    let login = login_device(&app.homeserver, &user_id, &device_id, "OpenMeet web").await?;
    remember_device(app, tenant, user, &device_id).await?;
    enforce_cap(app, tenant, user, &device_id).await?;
    // The user's pusher (set on the first session, repaired on later ones); its failure is not the session's.
    crate::domain::push::pushers::ensure_for_session(app, tenant, user).await;
    Ok(Session {
        homeserver_url: app.config.public_homeserver_url.clone(),
        matrix_user_id: user_id.to_string(),
        device_id,
        access_token: login.access_token.expose().to_owned(),
        refresh_token: login.refresh_token.expose().to_owned(),
        expires_in_ms: login.expires_in_ms,
    })
}

/// Logs one device out (deleting it and with it every token of it). Already gone is fine.
pub async fn delete(app: &App, tenant: &TenantId, user: &UserSlug, device_id: &str) -> Result<(), DomainError> {
    validate_device_id(device_id)?;
    log_out(app, tenant, user, device_id).await
}

async fn log_out(app: &App, tenant: &TenantId, user: &UserSlug, device_id: &str) -> Result<(), DomainError> {
    let user_id = app.identities.matrix_user_id(tenant, user);
    app.homeserver.delete_device(&user_id, device_id).await?;
    WebDevices(&app.store).forget(shard_of(tenant, user), tenant.as_str(), user.as_str(), device_id).await?;
    Ok(())
}

/// The index shard of a user's web devices.
fn shard_of(tenant: &TenantId, user: &UserSlug) -> u64 {
    let prefix = keys::web_device_user_prefix(tenant.as_str(), user.as_str());
    crate::domain::messages::idempotency::digest(&[&prefix])[0] as u64 % INDEX_SHARDS
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

async fn remember_device(app: &App, tenant: &TenantId, user: &UserSlug, device_id: &str) -> Result<(), DomainError> {
    let shard = shard_of(tenant, user);
    WebDevices(&app.store).issued(shard, tenant.as_str(), user.as_str(), device_id, now_ms()).await?;
    Ok(())
}

/// A web device and when it was last used: the later of the homeserver's `last_seen_ts` and our last issue.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WebDevice {
    device_id: String,
    last_used_ms: u64,
}

/// The user's web devices: every device but the server's (users of the appservice namespace have no password, so
/// each other device came from this route), with their last use.
async fn web_devices(app: &App, tenant: &TenantId, user: &UserSlug) -> Result<Vec<WebDevice>, DomainError> {
    let user_id = app.identities.matrix_user_id(tenant, user);
    let listed = app.homeserver.user_devices(&user_id).await?;
    let indexed = WebDevices(&app.store).of_user(shard_of(tenant, user), tenant.as_str(), user.as_str()).await?;
    let issued: BTreeMap<String, u64> = indexed.into_iter().collect();
    Ok(merge_last_use(&listed, &issued))
}

fn merge_last_use(listed: &[AdminDevice], issued: &BTreeMap<String, u64>) -> Vec<WebDevice> {
    listed
        .iter()
        .filter(|device| !is_platform_device(&device.device_id))
        .map(|device| {
            let seen = device.last_seen_ts.unwrap_or(0);
            let last_used_ms = seen.max(issued.get(&device.device_id).copied().unwrap_or(0));
            WebDevice { device_id: device.device_id.clone(), last_used_ms }
        })
        .collect()
}

/// The devices to log out so that at most `max` remain, least recently used first; `keep` (the device just
/// issued) is never one of them.
fn over_cap(mut devices: Vec<WebDevice>, max: usize, keep: &str) -> Vec<String> {
    if devices.len() <= max {
        return Vec::new();
    }
    let excess = devices.len() - max;
    devices.retain(|device| device.device_id != keep);
    devices.sort_by_key(|device| device.last_used_ms);
    devices.into_iter().take(excess).map(|device| device.device_id).collect()
}

async fn enforce_cap(app: &App, tenant: &TenantId, user: &UserSlug, keep: &str) -> Result<(), DomainError> {
    let devices = web_devices(app, tenant, user).await?;
    for device_id in over_cap(devices, app.config.sessions.max_web_devices, keep) {
        tracing::info!(tenant = %tenant, user = %user, device = %device_id, "web device cap: logging out the least recently used");
        log_out(app, tenant, user, &device_id).await?;
    }
    Ok(())
}

/// What a sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub checked: usize,
    pub logged_out: usize,
}

/// Logs out every indexed web device unused for longer than the configured idle period (only those of `tenant`,
/// when given). Devices the homeserver no longer has leave the index. Stops at `deadline`; each run starts at
/// another shard (by the hour), so a sweep cut short does not always leave the same shards unswept.
pub async fn sweep_idle(
    app: &App,
    tenant: Option<&TenantId>,
    deadline: Option<std::time::Instant>,
) -> Result<SweepReport, DomainError> {
    let idle_ms = app.config.sessions.idle_after.as_millis() as u64;
    let cutoff = now_ms().saturating_sub(idle_ms);
    let mut report = SweepReport::default();
    let first = store::now_secs() / 3600;
    for shard in (first..first + INDEX_SHARDS).map(|n| n % INDEX_SHARDS) {
        if deadline.is_some_and(|deadline| std::time::Instant::now() >= deadline) {
            tracing::warn!(?report, "session sweep stopped at its deadline");
            break;
        }
        let indexed = WebDevices(&app.store).users(shard, tenant.map(TenantId::as_str)).await?;
        let users: std::collections::BTreeSet<(String, String)> = indexed.into_iter().collect();
        for (tenant, user) in users {
            let (Ok(tenant), Ok(user)) = (TenantId::parse(&tenant), UserSlug::parse(&user)) else { continue };
            let devices = web_devices(app, &tenant, &user).await?;
            report.checked += devices.len();
            for device in devices.iter().filter(|device| device.last_used_ms < cutoff) {
                tracing::info!(tenant = %tenant, user = %user, device = %device.device_id, "idle web device logged out");
                log_out(app, &tenant, &user, &device.device_id).await?;
                report.logged_out += 1;
            }
            forget_vanished(app, &tenant, &user, &devices).await?;
        }
    }
    Ok(report)
}

/// Drops index entries of devices the homeserver no longer has (logged out by the user, or the user deleted).
async fn forget_vanished(
    app: &App,
    tenant: &TenantId,
    user: &UserSlug,
    devices: &[WebDevice],
) -> Result<(), DomainError> {
    let index = WebDevices(&app.store);
    let shard = shard_of(tenant, user);
    for (device, _) in index.of_user(shard, tenant.as_str(), user.as_str()).await? {
        if !devices.iter().any(|known| known.device_id == device) {
            index.forget(shard, tenant.as_str(), user.as_str(), &device).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_are_validated_and_the_server_device_is_reserved() {
        assert!(validate_device_id("BROWSER_1-a").is_ok());
        for reserved in [SERVER_DEVICE, IMPORT_DEVICE, PLATFORM_DEVICE, "openmeet_import", "OPENMEET_LATER"] {
            assert_eq!(validate_device_id(reserved).err().map(|e| e.code()), Some("reserved_device_id"), "{reserved}");
        }
        for bad in ["", "a b", "..", "a.b", "a/b", "é"] {
            assert!(validate_device_id(bad).is_err(), "{bad}");
        }
        assert!(validate_device_id(&"a".repeat(64)).is_ok());
        assert!(validate_device_id(&"a".repeat(65)).is_err());
    }

    #[test]
    fn generated_device_ids_are_valid_and_distinct() {
        let (a, b) = (new_device_id(), new_device_id());
        assert!(validate_device_id(&a).is_ok());
        assert_ne!(a, b);
    }

    #[test]
    fn last_use_is_the_later_of_seen_and_issued_and_the_server_device_is_not_a_web_device() {
        let device = |id: &str, seen| AdminDevice { device_id: id.into(), last_seen_ts: seen };
        let listed = vec![
            device("OPENMEET_SERVER", Some(5)),
            device("OPENMEET_IMPORT", Some(1)),
            device("A", Some(900)),
            device("B", None),
        ];
        let issued = BTreeMap::from([("A".to_owned(), 100), ("B".to_owned(), 300)]);
        assert_eq!(
            merge_last_use(&listed, &issued),
            vec![
                WebDevice { device_id: "A".into(), last_used_ms: 900 },
                WebDevice { device_id: "B".into(), last_used_ms: 300 }
            ]
        );
    }

    #[test]
    fn the_cap_logs_out_the_least_recently_used_but_never_the_new_device() {
        let device = |id: &str, at| WebDevice { device_id: id.into(), last_used_ms: at };
        let devices = vec![device("A", 30), device("B", 10), device("C", 20), device("NEW", 0)];
        assert_eq!(over_cap(devices.clone(), 4, "NEW"), Vec::<String>::new());
        assert_eq!(over_cap(devices.clone(), 3, "NEW"), vec!["B".to_owned()]);
        assert_eq!(over_cap(devices, 2, "NEW"), vec!["B".to_owned(), "C".to_owned()]);
    }
}
