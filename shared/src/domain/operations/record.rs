//! Operation records and the room backlog: deferring a write, reading its status, reopening or discarding it.

use super::*;
use crate::app::App;
use crate::aws::BackendError;
use crate::aws::operations::{self as records, OperationRecord, Operations};
use crate::aws::store;
use crate::domain::{DomainError, OperationId, Outcome};
use crate::identity::Caller;
use crate::identity::{TenantId, UserSlug};

/// Whether the room has queued operations that a new write must not overtake.
pub async fn has_backlog(app: &App, room_id: &str) -> Result<bool, DomainError> {
    Ok(Operations(&app.store).backlog(room_id).await? > 0)
}

pub(crate) async fn adjust_backlog(app: &App, room_id: &str, delta: i64) -> Result<(), BackendError> {
    Operations(&app.store).adjust_backlog(room_id, delta).await
}

/// The write's own result, or, when it met an outage, the write queued for the retry worker.
pub async fn defer_on_outage<T>(
    app: &App,
    caller: &Caller,
    done: Result<T, DomainError>,
    operation: impl FnOnce() -> Operation,
) -> Result<Outcome<T>, DomainError> {
    match done {
        Err(error) if error.is_outage() => {
            Ok(Outcome::Queued(defer(app, caller, OperationId::new(), operation()).await?))
        }
        other => other.map(Outcome::Done),
    }
}

/// Stores the operation and enqueues it. `operation_id` is derived by the caller when the write has an idempotency
/// key, so a repeat of a queued request finds the same operation instead of queueing a second one.
pub async fn defer(
    app: &App,
    caller: &Caller,
    operation_id: OperationId,
    operation: Operation,
) -> Result<OperationId, DomainError> {
    let id = operation_id.as_str();
    let record = OperationRecord {
        tenant: Some(caller.tenant.to_string()),
        owner: Some(owner_of(caller)),
        status: Some(records::QUEUED.to_owned()),
        attempts: Some(0),
        operation: Some(serde_json::to_string(&operation).map_err(|_| DomainError::Internal)?),
        accepted_at: Some(now_millis() as u64),
        expires_at: Some(store::now_secs() + RECORD_LIFETIME_SECS),
        ..OperationRecord::default()
    };
    if !Operations(&app.store).create(id, &record).await? {
        return Ok(operation_id);
    }
    // A user's queued text is findable from the user, so that deleting the user discards it.
    if let (Operation::SendEvent { user: Some(_), .. }, Some(user)) = (&operation, caller.user())
        && let Err(error) = Operations(&app.store).add_reference(&caller.tenant, user, id).await
    {
        undo_record(app, id).await;
        return Err(error.into());
    }
    if let Some(room_id) = operation.room_id()
        && let Err(error) = adjust_backlog(app, room_id, 1).await
    {
        undo_record(app, id).await;
        return Err(error.into());
    }
    let body = serde_json::to_string(&QueuedOperation { operation_id: operation_id.clone() })
        .map_err(|_| DomainError::Internal)?;
    if let Err(error) = app.queue.send_ordered(body, &operation.group(), id).await {
        // Nothing is queued: the room's backlog must not stay raised (later writes would queue behind nothing),
        // and the record goes, so that a retry of the request defers afresh.
        if let Some(room_id) = operation.room_id()
            && let Err(undo) = adjust_backlog(app, room_id, -1).await
        {
            tracing::error!(error = %undo, operation_id = %operation_id, "could not lower the backlog of a failed enqueue");
        }
        undo_record(app, id).await;
        return Err(error.into());
    }
    tracing::info!(operation_id = %operation_id, "write deferred to the retry queue");
    Ok(operation_id)
}

/// Removes the record of an operation that could not be queued (best effort: the caller reports the failure).
pub(super) async fn undo_record(app: &App, operation_id: &str) {
    if let Err(error) = Operations(&app.store).delete(operation_id).await {
        tracing::error!(error = %error, operation_id, "could not remove the record of an operation never queued");
    }
}

pub(super) fn owner_of(caller: &Caller) -> String {
    match caller.user() {
        Some(user) => format!("user:{user}"),
        None => "service".to_owned(),
    }
}

pub(crate) fn now_millis() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

/// `GET /v1/operations/{id}`: only whoever started it (the tenant's service sees all of its tenant's).
pub async fn status(app: &App, caller: &Caller, operation_id: &str) -> Result<OperationView, DomainError> {
    let not_found = || DomainError::not_found("no such operation");
    if operation_id.is_empty() || operation_id.len() > 128 {
        return Err(not_found());
    }
    let record = Operations(&app.store).get(operation_id).await?.ok_or_else(not_found)?;
    let same_tenant = record.tenant.as_deref() == Some(caller.tenant.as_str());
    let visible = same_tenant && (caller.is_service() || record.owner == Some(owner_of(caller)));
    if !visible {
        return Err(not_found());
    }
    Ok(view_of(operation_id, record))
}

pub(super) fn view_of(operation_id: &str, record: OperationRecord) -> OperationView {
    let status = match record.status.as_deref() {
        Some(records::DELIVERED) => Status::Delivered,
        Some(records::FAILED) => Status::Failed,
        _ => Status::Queued,
    };
    OperationView { operation_id: operation_id.to_owned(), status, event_id: record.event_id, error: record.error }
}

/// Discards what is still stored of a deleted user's deferred sends: their text goes, the operation is marked
/// failed (a queued message then finds nothing to do), and the room's backlog no longer counts it.
pub async fn discard_for_deleted_user(app: &App, tenant: &TenantId, user: &UserSlug) -> Result<(), BackendError> {
    let operations = Operations(&app.store);
    for operation_id in operations.references(tenant, user).await? {
        let Some(record) = operations.get(&operation_id).await? else { continue };
        // Already discarded, or delivered.
        let Some(operation) = record.operation::<Operation>() else { continue };
        let operation = operation.ok();
        let was_queued = record.has_status(records::QUEUED);
        operations.failed(&operation_id, "the user was deleted").await?;
        operations.drop_content(&operation_id).await?;
        if was_queued && let Some(room_id) = operation.as_ref().and_then(Operation::room_id) {
            adjust_backlog(app, room_id, -1).await?;
        }
    }
    Ok(())
}

/// Resets a failed operation so a redriven message is replayed (once the cause is fixed). Delivered ones stay.
pub async fn reopen(app: &App, operation_id: &str) -> Result<bool, BackendError> {
    let operations = Operations(&app.store);
    let Some(record) = operations.get(operation_id).await? else { return Ok(false) };
    if !record.has_status(records::FAILED) {
        return Ok(record.has_status(records::QUEUED));
    }
    let operation: Option<Operation> = record.operation().and_then(Result::ok);
    // Discarded (its user was deleted): nothing left to replay.
    if operation.is_none() {
        return Ok(false);
    }
    operations.requeue(operation_id).await?;
    if let Some(room_id) = operation.as_ref().and_then(Operation::room_id) {
        adjust_backlog(app, room_id, 1).await?;
    }
    Ok(true)
}
