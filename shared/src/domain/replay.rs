//! Replaying a queued operation: executing it with its transaction id, slicing long reconciles, finishing the record.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::app::App;
use crate::aws::BackendError;
use crate::aws::intents::Intents;
use crate::aws::operations::{self as records, Counter, Operations};
use crate::domain::DomainError;
use crate::domain::operations::*;
use crate::homeserver::{Acting, HomeserverError};
use crate::identity::{RoomKind, Slug, TenantId, UserSlug};
use crate::settings::RetryPolicy;

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
    let id = message.operation_id.as_str();
    let Some(record) = Operations(&app.store).get(id).await.map_err(transient)? else {
        tracing::warn!(operation_id = %message.operation_id, "queued operation has no record; dropped");
        return Ok(());
    };
    if !record.has_status(records::QUEUED) {
        return Ok(());
    }
    // SQS's receive count, or our own count when the queue does not report it (or after a redrive reset it).
    let attempt = attempt.max(record.attempts.unwrap_or(0) as u32 + 1);
    let operation: Operation = match record.operation() {
        Some(Ok(operation)) => operation,
        _ => {
            finish(app, id, None, None, Err("the operation record is unreadable".into())).await.map_err(transient)?;
            return Ok(());
        }
    };
    let accepted_at = record.accepted_at;
    let executed = match &operation {
        Operation::Reconcile(reconcile) => reconcile_slice(app, reconcile, slice_deadline(app, deadline)).await,
        _ => execute(app, &operation).await.map(Executed::Done),
    };
    match executed {
        Ok(Executed::Continues) => {
            continue_later(app, message, &operation).await.map_err(transient)?;
            Ok(())
        }
        Ok(Executed::Done(event_id)) => {
            finish(app, id, operation.room_id(), accepted_at, Ok(event_id)).await.map_err(transient)?;
            Ok(())
        }
        Err(error) if error.is_transient() || matches!(error, HomeserverError::UnknownToken) => {
            let retry_after = match &error {
                HomeserverError::RateLimited { retry_after } => Some(*retry_after),
                _ => None,
            };
            let reason = error.to_string();
            Operations(&app.store).count(id, Counter::Attempts).await.map_err(transient)?;
            if attempt >= app.config.retry.max_attempts {
                let why = format!("gave up after {attempt} attempts: {reason}");
                finish(app, id, operation.room_id(), accepted_at, Err(why.clone())).await.map_err(transient)?;
                return Err(ReplayError::Exhausted(why));
            }
            crate::metrics::retry_attempt();
            Err(ReplayError::Transient { reason, retry_after })
        }
        Err(error) => {
            // A refusal (403, 400, ...) will not change by retrying: fail at once.
            finish(app, id, operation.room_id(), accepted_at, Err(format!("the homeserver refused it: {error}")))
                .await
                .map_err(transient)?;
            Ok(())
        }
    }
}

/// How far one replay got.
pub(crate) enum Executed {
    /// Finished, with the event id of a send.
    Done(Option<String>),
    /// Progress made, more to do: the operation is queued again (a long reconcile).
    Continues,
}

/// Leaves a margin before the invocation's end for writing the outcome and re-queueing.
pub(crate) fn slice_deadline(app: &App, invocation_deadline: Option<Instant>) -> Instant {
    let slice = Instant::now() + app.config.reconcile.slice;
    match invocation_deadline {
        Some(deadline) => slice.min(deadline.checked_sub(Duration::from_secs(10)).unwrap_or(deadline)),
        None => slice,
    }
}

/// Queues the next slice of an operation as a new message (a redelivery would count against the queue's
/// `maxReceiveCount`); the operation stays `queued`.
pub(crate) async fn continue_later(
    app: &App,
    message: &QueuedOperation,
    operation: &Operation,
) -> Result<(), BackendError> {
    Operations(&app.store).count(message.operation_id.as_str(), Counter::Slices).await?;
    let body =
        serde_json::to_string(message).map_err(|e| BackendError::Corrupt { service: "sqs", detail: e.to_string() })?;
    let deduplication_id = format!("{}#{}", message.operation_id, now_millis());
    app.queue.send_ordered(body, &operation.group(), &deduplication_id).await?;
    tracing::info!(operation_id = %message.operation_id, "operation continues in a later slice");
    Ok(())
}

pub(crate) async fn reconcile_slice(
    app: &App,
    reconcile: &DeferredReconcile,
    deadline: Instant,
) -> Result<Executed, HomeserverError> {
    let DeferredReconcile { tenant, kind, slug, members, version, force } = reconcile;
    let intents = Intents(&app.store);
    let stamped = intents.reconcile(intent_room(tenant, kind, slug)).await.map_err(backend_to_homeserver)?;
    if stamped.unwrap_or(0) > *version {
        tracing::info!("reconcile superseded by a newer one; skipped");
        return Ok(Executed::Done(None));
    }
    let spared: BTreeSet<UserSlug> = intents
        .members_above(intent_room(tenant, kind, slug), *version)
        .await
        .map_err(backend_to_homeserver)?
        .iter()
        .filter_map(|user| UserSlug::parse(user).ok())
        .collect();
    let tenant = TenantId::parse(tenant).map_err(|_| invalid("tenant"))?;
    let room = crate::domain::rooms::resolve_path(app, &tenant, kind, slug).await.map_err(domain_to_homeserver)?;
    let wanted = unroster(members)?;
    let complete = crate::domain::membership::reconcile_slice(app, &tenant, &room, &wanted, &spared, *force, deadline)
        .await
        .map_err(domain_to_homeserver)?;
    Ok(if complete { Executed::Done(None) } else { Executed::Continues })
}

pub(crate) async fn execute(app: &App, operation: &Operation) -> Result<Option<String>, HomeserverError> {
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
                crate::domain::rooms::resolve_path(app, &tenant_id, kind, slug).await.map_err(domain_to_homeserver)?;
            let user_slug = UserSlug::parse(user).map_err(|_| invalid("user"))?;
            match change {
                MemberChange::Put { role } => {
                    crate::domain::membership::put(app, &tenant_id, &room, &user_slug, *role, *force).await.map(|_| ())
                }
                MemberChange::Remove { ban } => {
                    crate::domain::membership::remove(app, &tenant_id, &room, &user_slug, *ban, *force).await
                }
            }
            .map_err(domain_to_homeserver)?;
            record_member_intent(app, tenant, kind, slug, user, *version).await.map_err(domain_to_homeserver)?;
            Ok(None)
        }
        Operation::CancelEvent { tenant, slug, reason } => {
            let slug = Slug::parse(slug).map_err(|_| invalid("slug"))?;
            let input = crate::domain::room_lifecycle::CancelInput { reason: reason.clone() };
            crate::domain::room_lifecycle::cancel(app, &tenant_of(tenant)?, &slug, input)
                .await
                .map_err(domain_to_homeserver)?;
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
                .map_err(domain_to_homeserver)?;
            Ok(None)
        }
        // Run in slices by `replay`, never in one go.
        Operation::Reconcile(_) => Err(invalid("operation")),
        Operation::DeleteUser { tenant, user } => {
            let user = UserSlug::parse(user).map_err(|_| invalid("user"))?;
            crate::domain::users::delete(app, &tenant_of(tenant)?, &user).await.map_err(domain_to_homeserver)?;
            Ok(None)
        }
        Operation::Redact(redaction) => {
            crate::domain::messages::deferred::redact(app, redaction).await.map_err(domain_to_homeserver)?;
            Ok(None)
        }
        Operation::SendEvent { tenant, user, room_id, event_type, txn_id, content } => {
            let answer = match user {
                None => {
                    let event_id = crate::domain::platform::send_event(app, room_id, event_type, txn_id, content)
                        .await
                        .map_err(domain_to_homeserver)?;
                    return Ok(Some(event_id));
                }
                Some(user) => {
                    let tenant = TenantId::parse(tenant).map_err(|_| invalid("tenant"))?;
                    let user = UserSlug::parse(user).map_err(|_| invalid("user"))?;
                    let room_id = crate::homeserver::room_id(room_id)?;
                    let sent = app
                        .credentials
                        .as_user(&tenant, &user, |device| {
                            let room_id = &room_id;
                            async move {
                                let acting = Acting::User(&device);
                                app.homeserver.send_message_event(room_id, event_type, txn_id, content, acting).await
                            }
                        })
                        .await;
                    match sent {
                        // The same reaction already stands: what the operation wanted holds.
                        Err(error) if error.is_duplicate_annotation() => return Ok(None),
                        other => other?,
                    }
                }
            };
            Ok(Some(answer.to_string()))
        }
    }
}

pub(crate) fn backend_to_homeserver(error: BackendError) -> HomeserverError {
    HomeserverError::Transient { detail: error.to_string() }
}

/// A domain failure met during a replay, reduced to the homeserver's classification: what may pass is retried,
/// anything else fails the operation with its reason.
pub(crate) fn domain_to_homeserver(error: DomainError) -> HomeserverError {
    match error {
        DomainError::Homeserver(error) => error,
        DomainError::Contended { .. } | DomainError::Backend(_) | DomainError::Internal => {
            HomeserverError::Transient { detail: error.to_string() }
        }
        other => HomeserverError::Rejected { status: 400, errcode: other.kind().into(), message: other.to_string() },
    }
}

pub(crate) async fn finish(
    app: &App,
    operation_id: &str,
    room_id: Option<&str>,
    accepted_at_ms: Option<u64>,
    outcome: Result<Option<String>, String>,
) -> Result<(), BackendError> {
    let operations = Operations(&app.store);
    match &outcome {
        Ok(event_id) => {
            operations.delivered(operation_id, event_id.as_deref()).await?;
            // Delivered: the content (a message's text) is no longer needed; the record keeps only the outcome.
            operations.drop_content(operation_id).await?;
        }
        Err(reason) => operations.failed(operation_id, reason).await?,
    }
    if let Some(room_id) = room_id {
        adjust_backlog(app, room_id, -1).await?;
    }
    crate::metrics::operation_finished(outcome.is_ok());
    if let (Ok(Some(_)), Some(accepted)) = (&outcome, accepted_at_ms) {
        crate::metrics::message_delivered(true, (now_millis() as u64).saturating_sub(accepted));
    }
    match outcome {
        Ok(_) => tracing::info!(operation_id, "deferred operation delivered"),
        Err(reason) => tracing::warn!(operation_id, %reason, "deferred operation failed"),
    }
    Ok(())
}

/// The delay before the next attempt: exponential with full jitter, or the homeserver's `retry_after`.
pub fn backoff(policy: &RetryPolicy, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    let exponential = policy.base_delay.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)));
    // SQS delays and visibility timeouts top out at 15 minutes for a back-off worth having.
    let capped = exponential.min(policy.max_delay).min(Duration::from_secs(15 * 60));
    let jittered = capped.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0);
    retry_after.map_or(jittered, |after| jittered.max(after))
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
}
