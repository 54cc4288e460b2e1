//! Operation records and the room backlog: deferring a write, reading its status, reopening or discarding it.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};

use super::*;
use crate::app::App;
use crate::auth::Caller;
use crate::aws::keys;
use crate::aws::store;
use crate::error::{ApiError, BackendError};
use crate::identity::{TenantId, UserSlug};

pub(super) fn record_pk(operation_id: &str) -> String {
    keys::operation(operation_id).pk
}

pub(super) fn backlog_pk(room_id: &str) -> String {
    keys::backlog(room_id).pk
}

/// Whether an error means "the homeserver is not there right now", for which a write is deferred.
pub fn is_outage(error: &ApiError) -> bool {
    matches!(error, ApiError::HomeserverUnavailable { .. } | ApiError::RateLimited { .. })
}

/// Whether the room has queued operations that a new write must not overtake.
pub async fn has_backlog(app: &App, room_id: &str) -> Result<bool, ApiError> {
    let item = app.store.get(&backlog_pk(room_id), keys::BACKLOG_SK).await?;
    Ok(item.and_then(|item| store::number_signed(&item, "pending")).is_some_and(|pending| pending > 0))
}

pub(super) async fn adjust_backlog(app: &App, room_id: &str, delta: i64) -> Result<(), BackendError> {
    app.store.add(&backlog_pk(room_id), keys::BACKLOG_SK, "pending", delta).await
}

/// A fresh operation id, for writes without an idempotency key.
pub fn new_operation_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The `202` answer of a write that met an outage, or the write's own outcome.
pub async fn defer_on_outage<T>(
    app: &App,
    caller: &Caller,
    outcome: Result<T, ApiError>,
    operation: impl FnOnce() -> Operation,
) -> Result<Result<T, Queued>, ApiError> {
    match outcome {
        Err(error) if is_outage(&error) => Ok(Err(defer(app, caller, new_operation_id(), operation()).await?)),
        other => other.map(Ok),
    }
}

/// Stores the operation and enqueues it. `operation_id` is derived by the caller when the write has an idempotency
/// key, so a repeat of a queued request finds the same operation instead of queueing a second one.
pub async fn defer(app: &App, caller: &Caller, operation_id: String, operation: Operation) -> Result<Queued, ApiError> {
    let pk = record_pk(&operation_id);
    let mut item = store::keyed(&pk, keys::OPERATION_SK);
    item.insert("tenant".into(), AttributeValue::S(caller.tenant.to_string()));
    item.insert("owner".into(), AttributeValue::S(owner_of(caller)));
    item.insert("status".into(), AttributeValue::S("queued".into()));
    item.insert("attempts".into(), AttributeValue::N("0".into()));
    item.insert(
        "operation".into(),
        AttributeValue::S(serde_json::to_string(&operation).map_err(|_| ApiError::Internal)?),
    );
    item.insert("acceptedAt".into(), AttributeValue::N(now_millis().to_string()));
    item.insert(store::TTL_ATTRIBUTE.into(), AttributeValue::N((store::now_secs() + RECORD_LIFETIME_SECS).to_string()));
    if let store::PutOutcome::Exists(_) = app.store.put_if_absent(item).await? {
        return Ok(Queued { status: "queued", operation_id });
    }
    // A user's queued text is findable from the user, so that deleting the user discards it.
    if let (Operation::SendEvent { user: Some(_), .. }, Some(user)) = (&operation, caller.user()) {
        let ref_item = {
            let key = keys::operation_ref(&caller.tenant, user, &operation_id);
            store::keyed(&key.pk, &key.sk)
        };
        if let Err(error) = app.store.put(ref_item).await {
            undo_record(app, &pk).await;
            return Err(error.into());
        }
    }
    if let Some(room_id) = operation.room_id()
        && let Err(error) = adjust_backlog(app, room_id, 1).await
    {
        undo_record(app, &pk).await;
        return Err(error.into());
    }
    let body = serde_json::to_string(&QueuedOperation { operation_id: operation_id.clone() })
        .map_err(|_| ApiError::Internal)?;
    if let Err(error) = app.queue.send_ordered(body, &operation.group(), &operation_id).await {
        // Nothing is queued: the room's backlog must not stay raised (later writes would queue behind nothing),
        // and the record goes, so that a retry of the request defers afresh.
        if let Some(room_id) = operation.room_id()
            && let Err(undo) = adjust_backlog(app, room_id, -1).await
        {
            tracing::error!(error = %undo, operation_id = %operation_id, "could not lower the backlog of a failed enqueue");
        }
        undo_record(app, &pk).await;
        return Err(error.into());
    }
    tracing::info!(operation_id = %operation_id, "write deferred to the retry queue");
    Ok(Queued { status: "queued", operation_id })
}

/// Removes the record of an operation that could not be queued (best effort: the caller reports the failure).
pub(super) async fn undo_record(app: &App, pk: &str) {
    if let Err(error) = app.store.delete(pk, keys::OPERATION_SK).await {
        tracing::error!(error = %error, operation = pk, "could not remove the record of an operation never queued");
    }
}

pub(super) fn owner_of(caller: &Caller) -> String {
    match caller.user() {
        Some(user) => format!("user:{user}"),
        None => "service".to_owned(),
    }
}

pub(super) fn now_millis() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

/// `GET /v1/operations/{id}`: only whoever started it (the tenant's service sees all of its tenant's).
pub async fn status(app: &App, caller: &Caller, operation_id: &str) -> Result<OperationView, ApiError> {
    let not_found = || ApiError::not_found("no such operation");
    if operation_id.is_empty() || operation_id.len() > 128 {
        return Err(not_found());
    }
    let item = app.store.get(&record_pk(operation_id), keys::OPERATION_SK).await?.ok_or_else(not_found)?;
    let same_tenant = store::string(&item, "tenant").as_deref() == Some(caller.tenant.as_str());
    let visible = same_tenant && (caller.is_service() || store::string(&item, "owner") == Some(owner_of(caller)));
    if !visible {
        return Err(not_found());
    }
    Ok(view_of(operation_id, &item))
}

pub(super) fn view_of(operation_id: &str, item: &store::Item) -> OperationView {
    let status = match store::string(item, "status").as_deref() {
        Some("delivered") => Status::Delivered,
        Some("failed") => Status::Failed,
        _ => Status::Queued,
    };
    OperationView {
        operation_id: operation_id.to_owned(),
        status,
        event_id: store::string(item, "eventId"),
        error: store::string(item, "error"),
    }
}

/// Discards what is still stored of a deleted user's deferred sends: their text goes, the operation is marked
/// failed (a queued message then finds nothing to do), and the room's backlog no longer counts it.
pub async fn discard_for_deleted_user(app: &App, tenant: &TenantId, user: &UserSlug) -> Result<(), BackendError> {
    let partition = keys::user_partition(tenant, user);
    for item in app.store.items(&partition, keys::OPERATION_REF_PREFIX).await? {
        let Some(operation_id) =
            store::string(&item, "sk").and_then(|sk| sk.strip_prefix(keys::OPERATION_REF_PREFIX).map(str::to_owned))
        else {
            continue;
        };
        let pk = record_pk(&operation_id);
        let Some(record) = app.store.get(&pk, keys::OPERATION_SK).await? else { continue };
        if store::string(&record, "operation").is_none() {
            continue;
        }
        let operation: Option<Operation> =
            store::string(&record, "operation").and_then(|raw| serde_json::from_str(&raw).ok());
        let was_queued = store::string(&record, "status").as_deref() == Some("queued");
        let reason = AttributeValue::S("the user was deleted".into());
        app.store
            .set(&pk, keys::OPERATION_SK, &[("status", AttributeValue::S("failed".into())), ("error", reason)])
            .await?;
        app.store.remove_attribute(&pk, keys::OPERATION_SK, "operation").await?;
        if was_queued && let Some(room_id) = operation.as_ref().and_then(Operation::room_id) {
            adjust_backlog(app, room_id, -1).await?;
        }
    }
    Ok(())
}

/// Resets a failed operation so a redriven message is replayed (once the cause is fixed). Delivered ones stay.
pub async fn reopen(app: &App, operation_id: &str) -> Result<bool, BackendError> {
    let pk = record_pk(operation_id);
    let Some(item) = app.store.get(&pk, keys::OPERATION_SK).await? else { return Ok(false) };
    if store::string(&item, "status").as_deref() != Some("failed") {
        return Ok(store::string(&item, "status").as_deref() == Some("queued"));
    }
    let operation: Option<Operation> =
        store::string(&item, "operation").and_then(|raw| serde_json::from_str(&raw).ok());
    // Discarded (its user was deleted): nothing left to replay.
    if operation.is_none() {
        return Ok(false);
    }
    app.store
        .set(
            &pk,
            keys::OPERATION_SK,
            &[("status", AttributeValue::S("queued".into())), ("attempts", AttributeValue::N("0".into()))],
        )
        .await?;
    app.store.remove_attribute(&pk, keys::OPERATION_SK, "error").await?;
    if let Some(room_id) = operation.as_ref().and_then(Operation::room_id) {
        adjust_backlog(app, room_id, 1).await?;
    }
    Ok(true)
}

/// A view for tests and tools.
pub fn queued_answer(operation_id: &str) -> Value {
    json!({"status": "queued", "operationId": operation_id})
}
