//! Deferred writes. A write that meets a homeserver outage (transient error, open circuit) is stored as an
//! operation record and its id enqueued on the retry queue; the caller gets `202 {"status":"queued"}`. The retry
//! worker replays it with the same transaction id, so a send whose first answer was lost is not posted twice.
//!
//! The queue carries the operation id only; what the operation needs (a message's content, say) stays in the
//! record, in the KMS-encrypted table. Messages of one room share a FIFO message group, so they are delivered in
//! the order they were accepted; while a room has queued messages, new ones queue behind them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::App;
use crate::auth::Caller;
use crate::aws::store;
use crate::config::RetryPolicy;
use crate::domain::membership::Role;
use crate::error::{ApiError, BackendError};
use crate::homeserver::{Acting, HomeserverError, encode};
use crate::identity::{RoomKind, Slug, TenantId, UserSlug};

/// Finished operation records are kept this long for `GET /v1/operations/{id}`.
const RECORD_LIFETIME_SECS: u64 = 7 * 24 * 60 * 60;

/// What to replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", deny_unknown_fields)]
pub enum Operation {
    /// A room event sent as a user's server device (or the platform) under a fixed transaction id.
    #[serde(rename_all = "camelCase")]
    SendEvent {
        tenant: String,
        /// `None`: the platform user.
        user: Option<String>,
        room_id: String,
        event_type: String,
        txn_id: String,
        content: Value,
    },
    /// A single member's change, stamped with when it was accepted: a newer intent (a later change of that
    /// member, or a later reconcile of the room) supersedes it.
    #[serde(rename_all = "camelCase")]
    Membership {
        tenant: String,
        kind: String,
        slug: String,
        user: String,
        change: MemberChange,
        version: u64,
        force: bool,
    },
    /// A reconcile too large for one request (or met by an outage), run in slices by the worker.
    Reconcile(DeferredReconcile),
    #[serde(rename_all = "camelCase")]
    CancelEvent { tenant: String, slug: String, reason: Option<String> },
    #[serde(rename_all = "camelCase")]
    DeleteRoom { tenant: String, kind: String, slug: String, purge: bool },
    #[serde(rename_all = "camelCase")]
    DeleteUser { tenant: String, user: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "camelCase", deny_unknown_fields)]
pub enum MemberChange {
    Put { role: Role },
    Remove { ban: bool },
}

impl Operation {
    /// The FIFO group: everything of one room is delivered in order.
    fn group(&self) -> String {
        match self {
            Operation::SendEvent { room_id, .. } => room_id.clone(),
            Operation::Membership { tenant, kind, slug, .. }
            | Operation::Reconcile(DeferredReconcile { tenant, kind, slug, .. })
            | Operation::DeleteRoom { tenant, kind, slug, .. } => {
                format!("{tenant}/{kind}/{slug}")
            }
            Operation::CancelEvent { tenant, slug, .. } => format!("{tenant}/events/{slug}"),
            Operation::DeleteUser { tenant, user } => format!("{tenant}/user/{user}"),
        }
    }

    /// Only sends keep a backlog: they are what a new write of the same room must not overtake.
    fn room_id(&self) -> Option<&str> {
        match self {
            Operation::SendEvent { room_id, .. } => Some(room_id),
            _ => None,
        }
    }
}

/// Milliseconds since the epoch: the version of a membership intent.
pub fn now_version() -> u64 {
    now_millis() as u64
}

/// A queued reconcile. Stamped like a member change: a later reconcile of the room supersedes it, and users the
/// service changed after accepting it are left as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeferredReconcile {
    pub tenant: String,
    pub kind: String,
    pub slug: String,
    /// The list by role (see [`roster`]): the compact form keeps 5,000 members well inside one DynamoDB item.
    pub members: BTreeMap<Role, Vec<String>>,
    pub version: u64,
    pub force: bool,
}

/// A reconcile list in the form [`DeferredReconcile`] stores.
pub fn roster(wanted: &[(UserSlug, Role)]) -> BTreeMap<Role, Vec<String>> {
    let mut roster: BTreeMap<Role, Vec<String>> = BTreeMap::new();
    for (user, role) in wanted {
        roster.entry(*role).or_default().push(user.to_string());
    }
    roster
}

fn unroster(roster: &BTreeMap<Role, Vec<String>>) -> Result<Vec<(UserSlug, Role)>, HomeserverError> {
    roster
        .iter()
        .flat_map(|(role, users)| users.iter().map(move |user| (user, *role)))
        .map(|(user, role)| UserSlug::parse(user).map(|user| (user, role)).map_err(|_| invalid("member")))
        .collect()
}

fn intent_key(tenant: &str, kind: &str, slug: &str) -> String {
    format!("T#{tenant}#R#{kind}#{slug}")
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
        .raise(&intent_key(tenant, kind, slug), &format!("MEMBER#{user}"), "version", version)
        .await
        .map_err(ApiError::from)
}

/// Records a reconcile of the whole room at `version`: it speaks for every member.
pub async fn record_reconcile(app: &App, tenant: &str, kind: &str, slug: &str, version: u64) -> Result<(), ApiError> {
    app.store.raise(&intent_key(tenant, kind, slug), "RECONCILED", "version", version).await.map_err(ApiError::from)
}

/// The newest intent about `user` in the room: their own latest change or the room's latest reconcile.
async fn latest_member_intent(
    app: &App,
    tenant: &str,
    kind: &str,
    slug: &str,
    user: &str,
) -> Result<u64, BackendError> {
    let pk = intent_key(tenant, kind, slug);
    let own = app.store.get(&pk, &format!("MEMBER#{user}")).await?.and_then(|i| store::number(&i, "version"));
    let room = app.store.get(&pk, "RECONCILED").await?.and_then(|i| store::number(&i, "version"));
    Ok(own.unwrap_or(0).max(room.unwrap_or(0)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Delivered,
    Failed,
}

/// The answer of `GET /v1/operations/{id}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationView {
    pub operation_id: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer of a deferred write.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    pub status: &'static str,
    pub operation_id: String,
}

/// The body of a retry-queue message: a reference only, never a secret or message text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QueuedOperation {
    pub operation_id: String,
}

fn record_pk(operation_id: &str) -> String {
    format!("OP#{operation_id}")
}

fn backlog_pk(room_id: &str) -> String {
    format!("BACKLOG#{room_id}")
}

/// Whether an error means "the homeserver is not there right now", for which a write is deferred.
pub fn is_outage(error: &ApiError) -> bool {
    matches!(error, ApiError::HomeserverUnavailable { .. } | ApiError::RateLimited { .. })
}

/// Whether the room has queued operations that a new write must not overtake.
pub async fn has_backlog(app: &App, room_id: &str) -> Result<bool, ApiError> {
    let item = app.store.get(&backlog_pk(room_id), "BACKLOG").await?;
    Ok(item.and_then(|item| store::number_signed(&item, "pending")).is_some_and(|pending| pending > 0))
}

async fn adjust_backlog(app: &App, room_id: &str, delta: i64) -> Result<(), BackendError> {
    app.store.add(&backlog_pk(room_id), "BACKLOG", "pending", delta).await
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
    let mut item = store::keyed(&pk, "OP");
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
        let ref_item =
            store::keyed(&crate::credentials::user_partition(&caller.tenant, user), &format!("OPREF#{operation_id}"));
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
async fn undo_record(app: &App, pk: &str) {
    if let Err(error) = app.store.delete(pk, "OP").await {
        tracing::error!(error = %error, operation = pk, "could not remove the record of an operation never queued");
    }
}

fn owner_of(caller: &Caller) -> String {
    match caller.user() {
        Some(user) => format!("user:{user}"),
        None => "service".to_owned(),
    }
}

fn now_millis() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

/// `GET /v1/operations/{id}`: only whoever started it (the tenant's service sees all of its tenant's).
pub async fn status(app: &App, caller: &Caller, operation_id: &str) -> Result<OperationView, ApiError> {
    let not_found = || ApiError::not_found("no such operation");
    if operation_id.is_empty() || operation_id.len() > 128 {
        return Err(not_found());
    }
    let item = app.store.get(&record_pk(operation_id), "OP").await?.ok_or_else(not_found)?;
    let same_tenant = store::string(&item, "tenant").as_deref() == Some(caller.tenant.as_str());
    let visible = same_tenant && (caller.is_service() || store::string(&item, "owner") == Some(owner_of(caller)));
    if !visible {
        return Err(not_found());
    }
    Ok(view_of(operation_id, &item))
}

fn view_of(operation_id: &str, item: &store::Item) -> OperationView {
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

/// How one replay ended, for the worker.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Try again after the delay (the message returns to the queue).
    #[error("transient: {reason}")]
    Transient { reason: String, retry_after: Option<Duration> },
    /// Out of attempts: the operation is marked failed and the message goes to the DLQ.
    #[error("exhausted: {0}")]
    Exhausted(String),
}

/// Replays one queued operation; `attempt` counts from 1 (SQS's receive count). `deadline` is when the worker's
/// invocation ends, if it does: a reconcile slice stops well before it.
pub async fn replay(
    app: &App,
    message: &QueuedOperation,
    attempt: u32,
    deadline: Option<Instant>,
) -> Result<(), ReplayError> {
    let transient = |error: BackendError| ReplayError::Transient { reason: error.to_string(), retry_after: None };
    let pk = record_pk(&message.operation_id);
    let Some(item) = app.store.get(&pk, "OP").await.map_err(transient)? else {
        tracing::warn!(operation_id = %message.operation_id, "queued operation has no record; dropped");
        return Ok(());
    };
    if store::string(&item, "status").as_deref() != Some("queued") {
        return Ok(());
    }
    // SQS's receive count, or our own count when the queue does not report it (or after a redrive reset it).
    let attempt = attempt.max(store::number(&item, "attempts").unwrap_or(0) as u32 + 1);
    let operation: Operation = match store::string(&item, "operation").map(|raw| serde_json::from_str(&raw)) {
        Some(Ok(operation)) => operation,
        _ => {
            finish(app, &pk, None, None, Err("the operation record is unreadable".into())).await.map_err(transient)?;
            return Ok(());
        }
    };
    let accepted_at = store::number(&item, "acceptedAt");
    let executed = match &operation {
        Operation::Reconcile(reconcile) => reconcile_slice(app, reconcile, slice_deadline(app, deadline)).await,
        _ => execute(app, &operation).await.map(Executed::Done),
    };
    match executed {
        Ok(Executed::Continues) => {
            continue_later(app, &pk, message, &operation).await.map_err(transient)?;
            Ok(())
        }
        Ok(Executed::Done(event_id)) => {
            finish(app, &pk, operation.room_id(), accepted_at, Ok(event_id)).await.map_err(transient)?;
            Ok(())
        }
        Err(error) if error.is_transient() || matches!(error, HomeserverError::UnknownToken) => {
            let retry_after = match &error {
                HomeserverError::RateLimited { retry_after } => Some(*retry_after),
                _ => None,
            };
            let reason = error.to_string();
            app.store.add(&pk, "OP", "attempts", 1).await.map_err(transient)?;
            if attempt >= app.config.retry.max_attempts {
                let why = format!("gave up after {attempt} attempts: {reason}");
                finish(app, &pk, operation.room_id(), accepted_at, Err(why.clone())).await.map_err(transient)?;
                return Err(ReplayError::Exhausted(why));
            }
            crate::metrics::retry_attempt();
            Err(ReplayError::Transient { reason, retry_after })
        }
        Err(error) => {
            // A refusal (403, 400, ...) will not change by retrying: fail at once.
            finish(app, &pk, operation.room_id(), accepted_at, Err(format!("the homeserver refused it: {error}")))
                .await
                .map_err(transient)?;
            Ok(())
        }
    }
}

/// How far one replay got.
enum Executed {
    /// Finished, with the event id of a send.
    Done(Option<String>),
    /// Progress made, more to do: the operation is queued again (a long reconcile).
    Continues,
}

/// Leaves a margin before the invocation's end for writing the outcome and re-queueing.
fn slice_deadline(app: &App, invocation_deadline: Option<Instant>) -> Instant {
    let slice = Instant::now() + app.config.reconcile.slice;
    match invocation_deadline {
        Some(deadline) => slice.min(deadline.checked_sub(Duration::from_secs(10)).unwrap_or(deadline)),
        None => slice,
    }
}

/// Queues the next slice of an operation as a new message (a redelivery would count against the queue's
/// `maxReceiveCount`); the operation stays `queued`.
async fn continue_later(
    app: &App,
    pk: &str,
    message: &QueuedOperation,
    operation: &Operation,
) -> Result<(), BackendError> {
    app.store.add(pk, "OP", "slices", 1).await?;
    let body =
        serde_json::to_string(message).map_err(|e| BackendError::Corrupt { service: "sqs", detail: e.to_string() })?;
    let deduplication_id = format!("{}#{}", message.operation_id, now_millis());
    app.queue.send_ordered(body, &operation.group(), &deduplication_id).await?;
    tracing::info!(operation_id = %message.operation_id, "operation continues in a later slice");
    Ok(())
}

async fn reconcile_slice(
    app: &App,
    reconcile: &DeferredReconcile,
    deadline: Instant,
) -> Result<Executed, HomeserverError> {
    let DeferredReconcile { tenant, kind, slug, members, version, force } = reconcile;
    let pk = intent_key(tenant, kind, slug);
    let stamped = app.store.get(&pk, "RECONCILED").await.map_err(backend_to_homeserver)?;
    if stamped.and_then(|item| store::number(&item, "version")).unwrap_or(0) > *version {
        tracing::info!("reconcile superseded by a newer one; skipped");
        return Ok(Executed::Done(None));
    }
    let spared: BTreeSet<UserSlug> = app
        .store
        .keys_above(&pk, "MEMBER#", "version", *version)
        .await
        .map_err(backend_to_homeserver)?
        .iter()
        .filter_map(|user| UserSlug::parse(user).ok())
        .collect();
    let tenant = TenantId::parse(tenant).map_err(|_| invalid("tenant"))?;
    let room = crate::domain::rooms::resolve_path(app, &tenant, kind, slug).await.map_err(api_to_homeserver)?;
    let wanted = unroster(members)?;
    let complete = crate::domain::membership::reconcile_slice(app, &tenant, &room, &wanted, &spared, *force, deadline)
        .await
        .map_err(api_to_homeserver)?;
    Ok(if complete { Executed::Done(None) } else { Executed::Continues })
}

async fn execute(app: &App, operation: &Operation) -> Result<Option<String>, HomeserverError> {
    let tenant_of = |tenant: &str| TenantId::parse(tenant).map_err(|_| invalid("tenant"));
    match operation {
        Operation::Membership { tenant, kind, slug, user, change, version, force } => {
            let newest = latest_member_intent(app, tenant, kind, slug, user).await.map_err(backend_to_homeserver)?;
            if newest > *version {
                tracing::info!(%user, "membership change superseded by a newer intent; skipped");
                return Ok(None);
            }
            let tenant_id = tenant_of(tenant)?;
            let room =
                crate::domain::rooms::resolve_path(app, &tenant_id, kind, slug).await.map_err(api_to_homeserver)?;
            let user_slug = UserSlug::parse(user).map_err(|_| invalid("user"))?;
            match change {
                MemberChange::Put { role } => {
                    crate::domain::membership::put(app, &tenant_id, &room, &user_slug, *role, *force).await.map(|_| ())
                }
                MemberChange::Remove { ban } => {
                    crate::domain::membership::remove(app, &tenant_id, &room, &user_slug, *ban, *force).await
                }
            }
            .map_err(api_to_homeserver)?;
            record_member_intent(app, tenant, kind, slug, user, *version).await.map_err(api_to_homeserver)?;
            Ok(None)
        }
        Operation::CancelEvent { tenant, slug, reason } => {
            let slug = Slug::parse(slug).map_err(|_| invalid("slug"))?;
            let input = crate::domain::room_lifecycle::CancelInput { reason: reason.clone() };
            crate::domain::room_lifecycle::cancel(app, &tenant_of(tenant)?, &slug, input)
                .await
                .map_err(api_to_homeserver)?;
            Ok(None)
        }
        Operation::DeleteRoom { tenant, kind, slug, purge } => {
            let kind = RoomKind::from_path(kind).map_err(|_| invalid("kind"))?;
            let slug = Slug::parse(slug).map_err(|_| invalid("slug"))?;
            let mode = if *purge {
                crate::domain::room_lifecycle::DeleteMode::Purge
            } else {
                crate::domain::room_lifecycle::DeleteMode::Archive
            };
            crate::domain::room_lifecycle::delete(app, &tenant_of(tenant)?, kind, &slug, mode)
                .await
                .map_err(api_to_homeserver)?;
            Ok(None)
        }
        // Run in slices by `replay`, never in one go.
        Operation::Reconcile(_) => Err(invalid("operation")),
        Operation::DeleteUser { tenant, user } => {
            let user = UserSlug::parse(user).map_err(|_| invalid("user"))?;
            crate::domain::users::delete(app, &tenant_of(tenant)?, &user).await.map_err(api_to_homeserver)?;
            Ok(None)
        }
        Operation::SendEvent { tenant, user, room_id, event_type, txn_id, content } => {
            let path =
                format!("/_matrix/client/v3/rooms/{}/send/{}/{}", encode(room_id), encode(event_type), encode(txn_id));
            let answer: Value = match user {
                None => {
                    let event_id = crate::domain::platform::send_event(app, room_id, event_type, txn_id, content)
                        .await
                        .map_err(api_to_homeserver)?;
                    return Ok(Some(event_id));
                }
                Some(user) => {
                    let tenant = TenantId::parse(tenant).map_err(|_| invalid("tenant"))?;
                    let user = UserSlug::parse(user).map_err(|_| invalid("user"))?;
                    let sent = app
                        .credentials
                        .as_user(&tenant, &user, |device| {
                            let path = &path;
                            async move {
                                app.homeserver
                                    .call::<Value>(reqwest::Method::PUT, path, Acting::User(&device), Some(content))
                                    .await
                            }
                        })
                        .await;
                    match sent {
                        // The same reaction already stands: what the operation wanted holds.
                        Err(error) if super::messages::room::is_duplicate_annotation(&error) => return Ok(None),
                        other => other.map_err(api_to_homeserver)?,
                    }
                }
            };
            Ok(answer.get("event_id").and_then(Value::as_str).map(str::to_owned))
        }
    }
}

fn invalid(what: &str) -> HomeserverError {
    HomeserverError::Rejected { status: 400, errcode: "M_INVALID_PARAM".into(), message: format!("invalid {what}") }
}

fn backend_to_homeserver(error: BackendError) -> HomeserverError {
    HomeserverError::Transient { detail: error.to_string() }
}

/// Domain errors met during a replay, reduced to the homeserver's classification.
fn api_to_homeserver(error: ApiError) -> HomeserverError {
    match error {
        ApiError::RateLimited { retry_after } => HomeserverError::RateLimited { retry_after },
        ApiError::HomeserverUnavailable { .. } | ApiError::DependencyUnavailable { .. } | ApiError::Internal => {
            HomeserverError::Transient { detail: error.to_string() }
        }
        other => HomeserverError::Rejected {
            status: other.status(),
            errcode: other.code().to_owned(),
            message: other.to_string(),
        },
    }
}

async fn finish(
    app: &App,
    pk: &str,
    room_id: Option<&str>,
    accepted_at_ms: Option<u64>,
    outcome: Result<Option<String>, String>,
) -> Result<(), BackendError> {
    let updates = match &outcome {
        Ok(event_id) => {
            let mut updates = vec![("status", AttributeValue::S("delivered".into()))];
            if let Some(event_id) = event_id {
                updates.push(("eventId", AttributeValue::S(event_id.clone())));
            }
            updates
        }
        Err(reason) => {
            vec![("status", AttributeValue::S("failed".into())), ("error", AttributeValue::S(reason.clone()))]
        }
    };
    app.store.set(pk, "OP", &updates).await?;
    if outcome.is_ok() {
        // Delivered: the content (a message's text) is no longer needed; the record keeps only the outcome.
        app.store.remove_attribute(pk, "OP", "operation").await?;
    }
    if let Some(room_id) = room_id {
        adjust_backlog(app, room_id, -1).await?;
    }
    crate::metrics::operation_finished(outcome.is_ok());
    if let (Ok(Some(_)), Some(accepted)) = (&outcome, accepted_at_ms) {
        crate::metrics::message_delivered(true, (now_millis() as u64).saturating_sub(accepted));
    }
    match outcome {
        Ok(_) => tracing::info!(operation = pk, "deferred operation delivered"),
        Err(reason) => tracing::warn!(operation = pk, %reason, "deferred operation failed"),
    }
    Ok(())
}

/// Discards what is still stored of a deleted user's deferred sends: their text goes, the operation is marked
/// failed (a queued message then finds nothing to do), and the room's backlog no longer counts it.
pub async fn discard_for_deleted_user(app: &App, tenant: &TenantId, user: &UserSlug) -> Result<(), BackendError> {
    let partition = crate::credentials::user_partition(tenant, user);
    for item in app.store.items(&partition, "OPREF#").await? {
        let Some(operation_id) = store::string(&item, "sk").and_then(|sk| sk.strip_prefix("OPREF#").map(str::to_owned))
        else {
            continue;
        };
        let pk = record_pk(&operation_id);
        let Some(record) = app.store.get(&pk, "OP").await? else { continue };
        if store::string(&record, "operation").is_none() {
            continue;
        }
        let operation: Option<Operation> =
            store::string(&record, "operation").and_then(|raw| serde_json::from_str(&raw).ok());
        let was_queued = store::string(&record, "status").as_deref() == Some("queued");
        let reason = AttributeValue::S("the user was deleted".into());
        app.store.set(&pk, "OP", &[("status", AttributeValue::S("failed".into())), ("error", reason)]).await?;
        app.store.remove_attribute(&pk, "OP", "operation").await?;
        if was_queued && let Some(room_id) = operation.as_ref().and_then(Operation::room_id) {
            adjust_backlog(app, room_id, -1).await?;
        }
    }
    Ok(())
}

/// Resets a failed operation so a redriven message is replayed (once the cause is fixed). Delivered ones stay.
pub async fn reopen(app: &App, operation_id: &str) -> Result<bool, BackendError> {
    let pk = record_pk(operation_id);
    let Some(item) = app.store.get(&pk, "OP").await? else { return Ok(false) };
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
        .set(&pk, "OP", &[("status", AttributeValue::S("queued".into())), ("attempts", AttributeValue::N("0".into()))])
        .await?;
    app.store.remove_attribute(&pk, "OP", "error").await?;
    if let Some(room_id) = operation.as_ref().and_then(Operation::room_id) {
        adjust_backlog(app, room_id, 1).await?;
    }
    Ok(true)
}

/// The delay before the next attempt: exponential with full jitter, or the homeserver's `retry_after`.
pub fn backoff(policy: &RetryPolicy, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    let exponential = policy.base_delay.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)));
    // SQS delays and visibility timeouts top out at 15 minutes for a back-off worth having.
    let capped = exponential.min(policy.max_delay).min(Duration::from_secs(15 * 60));
    let jittered = capped.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0);
    retry_after.map_or(jittered, |after| jittered.max(after))
}

/// A view for tests and tools.
pub fn queued_answer(operation_id: &str) -> Value {
    json!({"status": "queued", "operationId": operation_id})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_honours_retry_after() {
        let policy =
            RetryPolicy { max_attempts: 5, base_delay: Duration::from_secs(2), max_delay: Duration::from_secs(3600) };
        assert_eq!(backoff(&policy, 1, None, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(&policy, 3, None, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(&policy, 3, None, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(&policy, 40, None, 1.0), Duration::from_secs(900));
        assert_eq!(backoff(&policy, 1, Some(Duration::from_secs(30)), 0.5), Duration::from_secs(30));
        let short = RetryPolicy { max_delay: Duration::from_secs(5), ..policy };
        assert_eq!(backoff(&short, 10, None, 1.0), Duration::from_secs(5));
    }

    #[test]
    fn operations_round_trip_and_refuse_unknown_fields() {
        let operation = Operation::SendEvent {
            tenant: "t".into(),
            user: Some("u".into()),
            room_id: "!r:localhost".into(),
            event_type: "m.room.message".into(),
            txn_id: "om1".into(),
            content: json!({"body": "hi"}),
        };
        let raw = serde_json::to_string(&operation).expect("serialises");
        assert_eq!(serde_json::from_str::<Operation>(&raw).expect("parses"), operation);
        assert!(serde_json::from_str::<QueuedOperation>(r#"{"operationId":"x","token":"y"}"#).is_err());
        assert_eq!(operation.group(), "!r:localhost");
    }

    #[test]
    fn a_queued_reconcile_keeps_its_list_compactly_and_shares_the_rooms_group() {
        let slug = |user: &str| UserSlug::parse(user).expect("slug");
        let wanted = vec![(slug("ann"), Role::Owner), (slug("bob"), Role::Member), (slug("cy"), Role::Member)];
        let operation = Operation::Reconcile(DeferredReconcile {
            tenant: "t".into(),
            kind: "groups".into(),
            slug: "hikers".into(),
            members: roster(&wanted),
            version: 7,
            force: false,
        });
        let json = serde_json::to_value(&operation).expect("serializes");
        assert_eq!(json["members"], json!({"member": ["bob", "cy"], "owner": ["ann"]}));
        let back: Operation = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, operation);
        let Operation::Reconcile(DeferredReconcile { members, .. }) = &back else { panic!("not a reconcile") };
        let mut listed = unroster(members).expect("valid users");
        listed.sort();
        let mut expected = wanted.clone();
        expected.sort();
        assert_eq!(listed, expected);
        let member_change = Operation::Membership {
            tenant: "t".into(),
            kind: "groups".into(),
            slug: "hikers".into(),
            user: "bob".into(),
            change: MemberChange::Remove { ban: false },
            version: 8,
            force: false,
        };
        assert_eq!(operation.group(), member_change.group(), "a room's member changes must stay in order");
        assert!(unroster(&BTreeMap::from([(Role::Member, vec!["Not A Slug".to_owned()])])).is_err());
    }

    #[test]
    fn only_outages_are_deferred() {
        assert!(is_outage(&ApiError::HomeserverUnavailable { retry_after: Duration::from_secs(1) }));
        assert!(!is_outage(&ApiError::forbidden("no")));
        assert!(!is_outage(&ApiError::DependencyUnavailable { retry_after: Duration::from_secs(1) }));
    }
}
