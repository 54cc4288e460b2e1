//! The user's one pusher. Its pushkey is a per-user secret: an HMAC of the user's identity under the appservice
//! token (which only the platform holds), so the gateway recognises a genuine pusher without a lookup and nothing
//! secret is stored in the table. It is set by the appservice on the user's server device (`OPENMEET_SERVER`),
//! which lives as long as the user: logging a browser device out does not take it away.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::app::App;
use crate::aws::push::{PushRecords, PushSettings};
use crate::domain::DomainError;
use crate::homeserver::{Acting, HttpPusher, PusherEntry};
use crate::identity::{TenantId, UserSlug};

use super::{APP_ID, DATA_USER};

/// Domain separation of the pushkey's HMAC (a new version gives every user a new key).
const PUSHKEY_LABEL: &[u8] = b"openmeet-pushkey-v1";

fn mac(app: &App, tenant: &TenantId, user: &UserSlug) -> Hmac<Sha256> {
    keyed(app.config.homeserver.appservice_token.expose(), tenant, user)
}

fn keyed(secret: &str, tenant: &TenantId, user: &UserSlug) -> Hmac<Sha256> {
    // HMAC accepts keys of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    for part in [PUSHKEY_LABEL, tenant.as_str().as_bytes(), user.as_str().as_bytes()] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac
}

/// The user's pushkey (hex). Never logged.
pub fn pushkey(app: &App, tenant: &TenantId, user: &UserSlug) -> String {
    hex::encode(mac(app, tenant, user).finalize().into_bytes())
}

/// Whether `candidate` is the user's pushkey (compared in constant time).
pub fn is_pushkey_of(app: &App, tenant: &TenantId, user: &UserSlug, candidate: &str) -> bool {
    let Ok(bytes) = hex::decode(candidate) else { return false };
    mac(app, tenant, user).verify_slice(&bytes).is_ok()
}

/// What to do with one listed pusher of the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The platform's pusher, with the current URL and key.
    Ours,
    /// Anything else: another URL, a key that is not the user's, an old URL of ours. Removed.
    Foreign,
}

fn verdict(app: &App, tenant: &TenantId, user: &UserSlug, url: &str, pusher: &PusherEntry) -> Verdict {
    let ours = pusher.app_id == APP_ID
        && pusher.kind.as_deref().is_none_or(|kind| kind == "http")
        && pusher.url() == Some(url)
        && is_pushkey_of(app, tenant, user, &pusher.pushkey);
    if ours { Verdict::Ours } else { Verdict::Foreign }
}

/// What [`ensure`] changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PusherReport {
    pub set: bool,
    pub removed: usize,
}

/// Brings the user's pushers in line with their preference: our pusher when chat notifications are on, none when
/// off, and no other pusher at all (a browser token could have planted one pointing elsewhere). Idempotent: the
/// same pusher is set again with the same `(app_id, pushkey)`, which replaces it. Without a configured gateway
/// URL, nothing is done.
pub async fn ensure(app: &App, tenant: &TenantId, user: &UserSlug) -> Result<PusherReport, DomainError> {
    let Some(url) = app.config.push.gateway_url.as_deref() else { return Ok(PusherReport::default()) };
    let settings = PushRecords(&app.store).settings(tenant, user).await?.unwrap_or_default();
    let homeserver = &app.homeserver;
    let listed =
        app.credentials.as_user(tenant, user, |me| async move { homeserver.pushers(Acting::User(&me)).await }).await?;
    let mut report = PusherReport::default();
    let mut have_ours = false;
    for pusher in &listed {
        match verdict(app, tenant, user, url, pusher) {
            Verdict::Ours if settings.chat => have_ours = true,
            verdict => {
                if verdict == Verdict::Foreign {
                    tracing::warn!(tenant = %tenant, user = %user, ?pusher, "removing a pusher the platform did not set");
                }
                remove_one(app, tenant, user, pusher).await?;
                report.removed += 1;
            }
        }
    }
    if settings.chat && !have_ours {
        set(app, tenant, user, url).await?;
        report.set = true;
    }
    let recorded = PushSettings { chat: settings.chat, pusher_url: settings.chat.then(|| url.to_owned()) };
    if recorded != settings {
        PushRecords(&app.store).put_settings(tenant, user, &recorded).await?;
    }
    Ok(report)
}

/// [`ensure`] for a session being issued: a failure is logged, never the session's. The next session repairs it
/// (its [`ensure`] lists the pushers again).
pub async fn ensure_for_session(app: &App, tenant: &TenantId, user: &UserSlug) {
    match ensure(app, tenant, user).await {
        Ok(report) if report != PusherReport::default() => {
            tracing::info!(tenant = %tenant, user = %user, set = report.set, removed = report.removed, "pushers repaired");
        }
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(tenant = %tenant, user = %user, %error, "pusher not set; the next session retries");
        }
    }
}

async fn set(app: &App, tenant: &TenantId, user: &UserSlug, url: &str) -> Result<(), DomainError> {
    let user_id = app.identities.matrix_user_id(tenant, user);
    let key = pushkey(app, tenant, user);
    let data = serde_json::Value::Object(serde_json::Map::from_iter([(
        DATA_USER.to_owned(),
        serde_json::Value::String(user_id.to_string()),
    )]));
    let pusher = HttpPusher { app_id: APP_ID, pushkey: &key, url, data };
    let (homeserver, pusher) = (&app.homeserver, &pusher);
    app.credentials
        .as_user(tenant, user, |me| async move { homeserver.set_pusher(pusher, Acting::User(&me)).await })
        .await?;
    Ok(())
}

async fn remove_one(app: &App, tenant: &TenantId, user: &UserSlug, pusher: &PusherEntry) -> Result<(), DomainError> {
    let homeserver = &app.homeserver;
    app.credentials
        .as_user(tenant, user, |me| async move {
            homeserver.delete_pusher(&pusher.app_id, &pusher.pushkey, Acting::User(&me)).await
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushkeys_are_per_user_per_secret_and_unambiguous() {
        let id = |t: &str, u: &str| (TenantId::parse(t).expect("tenant"), UserSlug::parse(u).expect("user"));
        let key =
            |secret: &str, (t, u): (TenantId, UserSlug)| hex::encode(keyed(secret, &t, &u).finalize().into_bytes());
        let bob = key("as", id("acme", "bob"));
        assert_eq!(bob.len(), 64);
        assert_eq!(bob, key("as", id("acme", "bob")));
        assert_ne!(bob, key("as", id("acme", "bo")));
        assert_ne!(bob, key("other", id("acme", "bob")));
        // Length-prefixed parts: moving a character between tenant and user changes the key.
        assert_ne!(key("as", id("ab", "c")), key("as", id("a", "bc")));
    }
}
