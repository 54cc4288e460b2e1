//! The room routes' lifecycle operations as the API asks for them: done now or queued when the homeserver is out,
//! and recorded as the room's desired state (drift repair and retention read it). Versions order the intents.

use crate::app::App;
use crate::domain::drift::intent;
use crate::domain::operations::{self, Operation};
use crate::domain::room_lifecycle::{self as lifecycle, CancelInput, DeleteMode, RoomSpec, RoomView};
use crate::domain::{DomainError, Outcome};
use crate::identity::Caller;
use crate::identity::{RoomKind, Slug};

/// Creates the room or brings its settings to `spec`; `true` when it was created. The settings become its desired
/// state.
pub async fn put_room(
    app: &App,
    caller: &Caller,
    kind: RoomKind,
    slug: &Slug,
    spec: RoomSpec,
) -> Result<(RoomView, bool), DomainError> {
    let version = operations::now_version();
    let (view, created) = lifecycle::ensure(app, &caller.tenant, kind, slug, spec.clone()).await?;
    intent::record_room(app, &caller.tenant, kind, slug, &view.room_id, &spec, version).await?;
    Ok((view, created))
}

/// Cancels an event room, now or later. Done or queued, the room is meant to be cancelled from now (retention
/// counts from now; no more reminders).
pub async fn cancel_event(
    app: &App,
    caller: &Caller,
    slug: &Slug,
    input: CancelInput,
) -> Result<Outcome<RoomView>, DomainError> {
    let reason = input.reason.clone();
    let version = operations::now_version();
    let done = lifecycle::cancel(app, &caller.tenant, slug, input).await;
    let operation = || Operation::CancelEvent { tenant: caller.tenant.to_string(), slug: slug.to_string(), reason };
    let outcome = operations::defer_on_outage(app, caller, done, operation).await?;
    let at = version / 1000;
    intent::record_lifecycle(app, &caller.tenant, RoomKind::Event, slug, "cancelled", version, at).await?;
    Ok(outcome)
}

/// Archives or purges a room, now or later. An archived room is meant to stay archived; a purged one is no longer
/// managed, so the drift pass stops looking for it.
pub async fn delete_room(
    app: &App,
    caller: &Caller,
    kind: RoomKind,
    slug: &Slug,
    mode: DeleteMode,
) -> Result<Outcome<()>, DomainError> {
    let version = operations::now_version();
    let done = lifecycle::delete(app, &caller.tenant, kind, slug, mode).await;
    let operation = || Operation::DeleteRoom {
        tenant: caller.tenant.to_string(),
        kind: kind.path_segment().to_owned(),
        slug: slug.to_string(),
        purge: mode == DeleteMode::Purge,
    };
    let outcome = operations::defer_on_outage(app, caller, done, operation).await?;
    match mode {
        DeleteMode::Archive => {
            let at = version / 1000;
            intent::record_lifecycle(app, &caller.tenant, kind, slug, "archived", version, at).await?
        }
        DeleteMode::Purge => intent::forget_room(app, &caller.tenant, kind, slug).await?,
    }
    Ok(outcome)
}
