//! Membership intents: the newest accepted change per member (and per reconcile), so a replay never undoes a later one.

use crate::app::App;
use crate::aws::keys;
use crate::aws::store;
use crate::error::{ApiError, BackendError};

pub(super) fn intent_key(tenant: &str, kind: &str, slug: &str) -> String {
    keys::room_intents(tenant, kind, slug)
}

/// Records that the service's latest word on `user` in this room was given at `version`.
pub async fn record_member_intent(
    app: &App,
    tenant: &str,
    kind: &str,
    slug: &str,
    user: &str,
    version: u64,
) -> Result<(), ApiError> {
    app.store
        .raise(&intent_key(tenant, kind, slug), &keys::member_intent(tenant, kind, slug, user).sk, "version", version)
        .await
        .map_err(ApiError::from)
}

/// Records a reconcile of the whole room at `version`: it speaks for every member.
pub async fn record_reconcile(app: &App, tenant: &str, kind: &str, slug: &str, version: u64) -> Result<(), ApiError> {
    app.store
        .raise(&intent_key(tenant, kind, slug), keys::RECONCILE_INTENT_SK, "version", version)
        .await
        .map_err(ApiError::from)
}

/// The newest intent about `user` in the room: their own latest change or the room's latest reconcile.
pub(super) async fn latest_member_intent(
    app: &App,
    tenant: &str,
    kind: &str,
    slug: &str,
    user: &str,
) -> Result<u64, BackendError> {
    let pk = intent_key(tenant, kind, slug);
    let own = app
        .store
        .get(&pk, &keys::member_intent(tenant, kind, slug, user).sk)
        .await?
        .and_then(|i| store::number(&i, "version"));
    let room = app.store.get(&pk, keys::RECONCILE_INTENT_SK).await?.and_then(|i| store::number(&i, "version"));
    Ok(own.unwrap_or(0).max(room.unwrap_or(0)))
}
