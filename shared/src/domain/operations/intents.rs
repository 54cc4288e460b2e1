//! Membership intents: the newest accepted change per member (and per reconcile), so a replay never undoes a later one.

use crate::app::App;
use crate::aws::BackendError;
use crate::aws::intents::{IntentRoom, Intents};
use crate::domain::DomainError;

pub(crate) fn intent_room<'r>(tenant: &'r str, kind: &'r str, slug: &'r str) -> IntentRoom<'r> {
    IntentRoom { tenant, kind, slug }
}

/// Records that the service's latest word on `user` in this room was given at `version`.
pub async fn record_member_intent(
    app: &App,
    tenant: &str,
    kind: &str,
    slug: &str,
    user: &str,
    version: u64,
) -> Result<(), DomainError> {
    Intents(&app.store).raise_member(intent_room(tenant, kind, slug), user, version).await.map_err(DomainError::from)
}

/// Records a reconcile of the whole room at `version`: it speaks for every member.
pub async fn record_reconcile(
    app: &App,
    tenant: &str,
    kind: &str,
    slug: &str,
    version: u64,
) -> Result<(), DomainError> {
    Intents(&app.store).raise_reconcile(intent_room(tenant, kind, slug), version).await.map_err(DomainError::from)
}

/// The newest intent about `user` in the room: their own latest change or the room's latest reconcile.
pub(crate) async fn latest_member_intent(
    app: &App,
    tenant: &str,
    kind: &str,
    slug: &str,
    user: &str,
) -> Result<u64, BackendError> {
    let intents = Intents(&app.store);
    let own = intents.member(intent_room(tenant, kind, slug), user).await?;
    let room = intents.reconcile(intent_room(tenant, kind, slug)).await?;
    Ok(own.unwrap_or(0).max(room.unwrap_or(0)))
}
