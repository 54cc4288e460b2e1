//! Sending, editing and deleting messages.
//!
//! Writes that can wait are deferred when the homeserver is unreachable (or the room already has queued writes,
//! which a new one must not overtake): the event's content and transaction id go to the retry queue
//! (`operations::defer`) and the caller gets `202 queued`. A new message's preparation reads (room state, the
//! thread's latest event, the members it mentions) degrade during an outage rather than refuse: the lifecycle check
//! is left to the homeserver's power levels, a thread's fallback reply points at its root, and mentions stay text.

use ruma::events::reaction::ReactionEventContent;
use ruma::events::relation::Annotation;
use serde::Serialize;
use serde_json::Value;

use super::content::{self, Placement};
use super::idempotency::{self, Answer, Claim, IdempotencyKey};
use super::mentions::{self, Mentionables};
use super::render::{self, Rendered};
use super::room::{self, Identity};
use super::{Actor, EditMessageInput, MessageFormat, PostMessageInput, body_event_id, check_body};
use crate::app::App;
use crate::domain::operations::{self, Operation};
use crate::domain::platform;
use crate::domain::rooms::RoomRef;
use crate::domain::{DomainError, OperationId, Outcome};
use crate::homeserver::{Acting, HomeserverError, TimelineEvent};
use ruma::events::relation::RelationType;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageSent {
    pub event_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageEdited {
    pub event_id: String,
    pub edit_event_id: String,
}

/// Sends a message as the actor: sent now, or deferred during an outage. With a key, a repeat within 24 h returns
/// the first answer and sends nothing (`InProgress` while the first request with it is still running).
pub async fn post(
    app: &App,
    room: &RoomRef,
    actor: &Actor,
    input: &PostMessageInput,
    key: Option<&IdempotencyKey>,
) -> Result<Outcome<MessageSent>, DomainError> {
    let accepted = std::time::Instant::now();
    check_body(&input.body)?;
    if let Some(attachment) = &input.attachment {
        content::check_attachment(attachment)?;
    }
    let thread_root = input.thread_root_id.as_deref().map(|id| body_event_id("threadRootId", id)).transpose()?;
    let reply_to = input.reply_to_id.as_deref().map(|id| body_event_id("replyToId", id)).transpose()?;

    let Some(key) = key else {
        let txn_id = idempotency::random_txn_id();
        return Ok(match send_new(app, room, actor, input, thread_root, reply_to, &txn_id).await? {
            Outcome::Done(event_id) => {
                crate::metrics::message_delivered(false, accepted.elapsed().as_millis() as u64);
                Outcome::Done(MessageSent { event_id })
            }
            Outcome::Queued(queued) => Outcome::Queued(queued),
        });
    };
    let fingerprint = fingerprint(room, input)?;
    let (pk, sk) = idempotency::record_key(actor.tenant(), &actor.key(), key);
    // A fresh transaction id for each use of the key (see `idempotency`); a takeover keeps the first attempt's.
    let txn_id = match idempotency::claim(app, &pk, &sk, &fingerprint, &idempotency::random_txn_id()).await? {
        Claim::Done { event_id } => return Ok(Outcome::Done(MessageSent { event_id })),
        Claim::Queued { operation_id } => return Ok(Outcome::Queued(OperationId::from(operation_id))),
        Claim::InFlight => return Err(DomainError::InProgress),
        Claim::Proceed { txn_id } => txn_id,
    };
    match send_new(app, room, actor, input, thread_root, reply_to, &txn_id).await {
        Ok(Outcome::Done(event_id)) => {
            crate::metrics::message_delivered(false, accepted.elapsed().as_millis() as u64);
            idempotency::complete(app, &pk, &sk, &fingerprint, &txn_id, Answer::Sent { event_id: &event_id }).await?;
            Ok(Outcome::Done(MessageSent { event_id }))
        }
        Ok(Outcome::Queued(queued)) => {
            let answer = Answer::Queued { operation_id: queued.as_str() };
            idempotency::complete(app, &pk, &sk, &fingerprint, &txn_id, answer).await?;
            Ok(Outcome::Queued(queued))
        }
        Err(error) => {
            // A refusal sent nothing: free the key for a corrected retry. After a transient failure the event may
            // exist; the pending record makes the next attempt reuse the transaction id, which the homeserver
            // deduplicates.
            if !error.retryable() {
                idempotency::release(app, &pk, &sk).await?;
            }
            Err(error)
        }
    }
}

/// What makes two requests under one key "the same request": the room and the parsed body.
fn fingerprint(room: &RoomRef, input: &PostMessageInput) -> Result<String, DomainError> {
    let body = serde_json::to_string(input).map_err(|_| DomainError::Internal)?;
    Ok(hex::encode(idempotency::digest(&["post-message", room.kind.as_str(), room.slug.as_str(), &body])))
}

/// `Ok(None)` instead of an outage: what a preparation read cannot tell during one.
fn unless_outage<T>(result: Result<T, DomainError>) -> Result<Option<T>, DomainError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) if error.is_outage() => Ok(None),
        Err(error) => Err(error),
    }
}

async fn send_new(
    app: &App,
    room: &RoomRef,
    actor: &Actor,
    input: &PostMessageInput,
    thread_root: Option<String>,
    reply_to: Option<String>,
    txn_id: &str,
) -> Result<Outcome<String>, DomainError> {
    let backlog = preflight(app, room, actor).await?;
    let mut reply_sender = None;
    let placement = match (thread_root, reply_to) {
        (None, None) => Placement::Timeline,
        (Some(root), reply_to) => {
            // `None`: unknown during an outage; the homeserver checks the relation when the send is replayed.
            if let Some(root_event) = unless_outage(room::fetch_event(app, room, &root).await)? {
                let valid_root = root_event
                    .as_ref()
                    .is_some_and(|event| event.is_message() && event.rel_type().is_none() && !event.redacted);
                if !valid_root {
                    return Err(DomainError::invalid(
                        "invalid_body",
                        "threadRootId must be a message of this room that is not itself in a thread or an edit",
                    ));
                }
            }
            match reply_to {
                Some(reply_to) => {
                    let target = unless_outage(reply_target(app, room, &reply_to).await)?;
                    reply_sender = target.and_then(|target| target.sender).map(|sender| sender.to_string());
                    Placement::Thread { root, in_reply_to: reply_to, is_falling_back: false }
                }
                None => {
                    let latest = unless_outage(latest_in_thread(app, room, &root).await)?.flatten();
                    Placement::Thread {
                        in_reply_to: latest.unwrap_or_else(|| root.clone()),
                        root,
                        is_falling_back: true,
                    }
                }
            }
        }
        (None, Some(reply_to)) => match unless_outage(reply_target(app, room, &reply_to).await)? {
            Some(target) => {
                reply_sender = target.sender.as_ref().map(|sender| sender.to_string());
                // A reply to a message inside a thread belongs in that thread.
                match target.content.relates_to.as_ref().and_then(|relation| relation.thread_root()) {
                    Some(root) => {
                        Placement::Thread { root: root.to_string(), in_reply_to: reply_to, is_falling_back: false }
                    }
                    None => Placement::Reply { to: reply_to },
                }
            }
            None => Placement::Reply { to: reply_to },
        },
    };

    let mut rendered = render_for(app, room, actor, input.format, &input.body).await?;
    // Replies mention the author of what they reply to, so that they are notified.
    let own_id = room::matrix_id(app, actor);
    if let Some(sender) = reply_sender.filter(|sender| *sender != own_id && !rendered.user_ids.contains(sender)) {
        rendered.user_ids.push(sender);
    }
    let content = content::message_content(&input.body, &rendered, input.attachment.as_ref(), &placement)?;
    let content = serde_json::to_value(content).map_err(|_| DomainError::Internal)?;
    deliver(app, room, actor, backlog, "m.room.message", content, txn_id).await
}

/// The checks before a write, side by side: the room's lifecycle (left to the homeserver's power levels during an
/// outage) and whether the room has queued writes (`true`: this one must queue behind them).
async fn preflight(app: &App, room: &RoomRef, actor: &Actor) -> Result<Backlog, DomainError> {
    let (writable, backlog) =
        tokio::join!(room::ensure_writable(app, room, actor), operations::has_backlog(app, room.room_id.as_str()));
    unless_outage(writable)?;
    Ok(Backlog(backlog?))
}

/// Whether the room has queued writes, from [`preflight`].
struct Backlog(bool);

async fn reply_target(app: &App, room: &RoomRef, event_id: &str) -> Result<TimelineEvent, DomainError> {
    match room::fetch_event(app, room, event_id).await? {
        Some(event) if event.is_message() => Ok(event),
        _ => Err(DomainError::invalid("invalid_body", "replyToId must be a message of this room")),
    }
}

/// The thread's newest event, for the reply fallback of thread-unaware clients.
async fn latest_in_thread(app: &App, room: &RoomRef, root: &str) -> Result<Option<String>, DomainError> {
    let latest = app.homeserver.latest_relation(&room.room_id, root, RelationType::Thread, Acting::Platform).await?;
    Ok(latest.map(|event_id| event_id.to_string()))
}

/// Renders a body with the mentions this actor may make in this room (none can be resolved during an outage).
async fn render_for(
    app: &App,
    room: &RoomRef,
    actor: &Actor,
    format: MessageFormat,
    body: &str,
) -> Result<Rendered, DomainError> {
    let candidates = mentions::candidates(body);
    let mentionables = if candidates == mentions::Candidates::default() {
        Mentionables::default()
    } else {
        unless_outage(room::mentionables(app, room, actor, &candidates).await)?.unwrap_or_default()
    };
    Ok(match format {
        MessageFormat::Markdown => render::markdown(body, &mentionables),
        MessageFormat::Plain => render::plain(body, &mentionables),
    })
}

/// Sends the event, or defers it when the homeserver is unreachable or the room has queued writes. The operation
/// is named after the transaction id, so a repeat of a deferred keyed request finds the same operation.
async fn deliver(
    app: &App,
    room: &RoomRef,
    actor: &Actor,
    backlog: Backlog,
    event_type: &str,
    content: Value,
    txn_id: &str,
) -> Result<Outcome<String>, DomainError> {
    if !backlog.0 {
        // The rate-limit counts, when they need not be waited for, overlap the homeserver's answer.
        crate::long_step::begins();
        match send_event(app, room, actor, event_type, &content, txn_id).await {
            Ok(event_id) => return Ok(Outcome::Done(event_id)),
            Err(error) if error.is_outage() => {}
            Err(error) => return Err(error),
        }
    }
    let user = match actor {
        Actor::User { user, .. } => Some(user.to_string()),
        Actor::Platform { .. } => None,
    };
    let operation = Operation::SendEvent {
        tenant: actor.tenant().to_string(),
        user,
        room_id: room.room_id.to_string(),
        event_type: event_type.to_owned(),
        txn_id: txn_id.to_owned(),
        content,
    };
    let operation_id = OperationId::from(txn_id.to_owned());
    Ok(Outcome::Queued(operations::defer(app, &actor.caller(), operation_id, operation).await?))
}

/// Sends one room event as the actor under `txn_id`; returns its event id. The platform sends from its own device,
/// as the retry worker does, so both share the homeserver's deduplication of the transaction id.
async fn send_event(
    app: &App,
    room: &RoomRef,
    actor: &Actor,
    event_type: &str,
    content: &Value,
    txn_id: &str,
) -> Result<String, DomainError> {
    if let Actor::Platform { .. } = actor {
        return platform::send_event(app, room.room_id.as_str(), event_type, txn_id, content).await;
    }
    let outcome = room::act(app, actor, |identity: Identity| async move {
        app.homeserver.send_message_event(&room.room_id, event_type, txn_id, content, identity.acting()).await
    })
    .await;
    let sent = match outcome {
        Ok(Ok(sent)) => sent,
        Ok(Err(refusal)) => {
            // Refused for lack of power: perhaps the room was archived or cancelled a moment ago; say so if so.
            if matches!(refusal, HomeserverError::Rejected { status: 403, .. }) {
                room::forget_active(app, room.room_id.as_str());
                room::ensure_writable(app, room, actor).await?;
            }
            return Err(room::refusal(refusal));
        }
        Err(error) => return Err(room::explain_failure(app, room, actor, error).await),
    };
    Ok(sent.to_string())
}

/// Edits a message: only its sender may (a service, the platform user's messages).
pub async fn edit(
    app: &App,
    room: &RoomRef,
    actor: &Actor,
    event_id: &str,
    input: &EditMessageInput,
) -> Result<Outcome<MessageEdited>, DomainError> {
    check_body(&input.body)?;
    let original = room::fetch_message(app, room, event_id).await?;
    if !room::sent_by(app, actor, &original) {
        return Err(DomainError::not_permitted("only the sender may edit a message"));
    }
    if original.rel_type() == Some(&RelationType::Replacement) {
        return Err(DomainError::invalid("invalid_parameter", "that event is an edit; edit the original message"));
    }
    if original.redacted {
        return Err(DomainError::conflict("conflict", "the message was deleted"));
    }
    let backlog = preflight(app, room, actor).await?;
    // The homeserver bundles the latest edit with the original (same sender only).
    let latest_edit = original.latest_edit.as_deref();
    let current = original.current_content();
    let rendered = render_for(app, room, actor, input.format, &input.body).await?;
    if let Some(edit) = latest_edit
        && content::same_text(current, &input.body, &rendered)
    {
        let edit_event_id = edit.event_id.to_string();
        return Ok(Outcome::Done(MessageEdited { event_id: event_id.to_owned(), edit_event_id }));
    }
    let content = content::edit_content(event_id, current, &input.body, &rendered)?;
    // The same edit of the same state retried lands on one event; a later edit (even back to an earlier text)
    // starts from another latest edit and so gets another transaction id.
    let base = latest_edit.map_or(event_id, |edit| edit.event_id.as_str());
    let new_content = serde_json::to_string(&content.new_content).map_err(|_| DomainError::Internal)?;
    let txn_id = idempotency::derived_txn_id(&[
        "edit-message",
        actor.tenant().as_str(),
        &actor.key(),
        event_id,
        base,
        &new_content,
    ]);
    let content = serde_json::to_value(content).map_err(|_| DomainError::Internal)?;
    Ok(match deliver(app, room, actor, backlog, "m.room.message", content, &txn_id).await? {
        Outcome::Done(edit_event_id) => Outcome::Done(MessageEdited { event_id: event_id.to_owned(), edit_event_id }),
        Outcome::Queued(queued) => Outcome::Queued(queued),
    })
}

/// Deletes (redacts) a message: its sender, a moderator or above, or a service.
pub async fn delete(app: &App, room: &RoomRef, actor: &Actor, event_id: &str) -> Result<(), DomainError> {
    let message = room::fetch_message(app, room, event_id).await?;
    if message.redacted {
        return Ok(());
    }
    let own = room::sent_by(app, actor, &message);
    if !own && room::power_of(app, room, actor).await? < room::MODERATOR_POWER {
        return Err(DomainError::not_permitted("only the sender or a moderator may delete a message"));
    }
    redact(app, room, actor, event_id).await
}

/// Redacts an event as the actor. The transaction id is derived from the event, so a retry makes no second
/// redaction.
pub async fn redact(app: &App, room: &RoomRef, actor: &Actor, event_id: &str) -> Result<(), DomainError> {
    let txn_id = idempotency::derived_txn_id(&["redact", actor.tenant().as_str(), &actor.key(), event_id]);
    let outcome = room::act(app, actor, |identity: Identity| {
        let txn_id = &txn_id;
        async move { app.homeserver.redact(&room.room_id, event_id, txn_id, identity.acting()).await }
    })
    .await;
    match outcome {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(refusal)) => Err(room::refusal(refusal)),
        Err(error) => Err(room::explain_failure(app, room, actor, error).await),
    }
}

/// Sends a reaction as the actor: a random transaction id, because a reaction removed and added again must be a new
/// event; the homeserver's refusal of a duplicate (`M_DUPLICATE_ANNOTATION`) is what keeps it idempotent.
pub async fn send_reaction(
    app: &App,
    room: &RoomRef,
    actor: &Actor,
    event_id: &str,
    key: &str,
) -> Result<Outcome<()>, DomainError> {
    let annotation = Annotation::new(crate::homeserver::event_id(event_id)?, key.to_owned());
    let content = serde_json::to_value(ReactionEventContent::new(annotation)).map_err(|_| DomainError::Internal)?;
    let backlog = preflight(app, room, actor).await?;
    match deliver(app, room, actor, backlog, "m.reaction", content, &idempotency::random_txn_id()).await {
        Ok(outcome) => Ok(outcome.map(|_| ())),
        Err(error) if room::is_duplicate_annotation(&error) => Ok(Outcome::Done(())),
        Err(error) => Err(error),
    }
}
