//! A page of history: the homeserver's events turned into the API's messages, newest first, edits applied,
//! redactions shown, reactions counted, senders mapped back to OpenMeet users.
//!
//! The room's timeline comes from `/messages` (only `m.room.message` events), the thread's from
//! `/relations/{root}/m.thread`; both page backwards and their tokens pass through as `next`. Edits arrive bundled
//! with the message they edit (the homeserver keeps only same-sender edits); reactions are read per message from
//! `/relations/{id}/m.annotation`, concurrently, and kept briefly per container (`reaction_cache`). The main timeline leaves out edits and thread replies (a thread
//! root tells how many replies it has); it reads a few homeserver pages at most to fill a page.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::content::{self};
use super::render;
use super::room::{self, Identity};
use super::{Actor, Attachment};
use crate::app::App;
use crate::domain::DomainError;
use crate::domain::rooms::RoomRef;
use crate::homeserver::{HomeserverError, TimelineEvent};
use ruma::events::TimelineEventType;
use ruma::events::relation::RelationType;

pub mod reaction_cache;
#[cfg(test)]
mod tests;
mod view;

pub use view::*;

pub const DEFAULT_LIMIT: usize = 50;

pub const MAX_LIMIT: usize = 100;

/// A member's page holds at most this many (the service's up to [`MAX_LIMIT`]): a page's homeserver calls grow
/// with it, and members' reads are made through the appservice, which the homeserver does not rate-limit.
pub const USER_MAX_LIMIT: usize = 50;

/// Homeserver pages read at most to fill one page of the main timeline (edits and thread replies are skipped).
const MAX_ROUNDS: usize = 5;

/// The `next` of a thread page whose replies are all listed but whose root is not yet.
const ONLY_THE_ROOT_LEFT: &str = "om-thread-root";

/// Reactions of one message are read from one page of 100 (the newest hundred count), so a page of history costs
/// at most `MAX_ROUNDS + limit` homeserver calls (a thread page `2 + limit`), besides resolving the room.
const MAX_REACTION_PAGES: usize = 1;

/// Reaction lookups in flight at once.
const REACTION_CONCURRENCY: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub event_id: String,
    pub user_id: Option<String>,
    pub body: String,
    pub html: String,
    pub sent_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<String>,
    pub deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_root_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
    /// On a thread root: how many messages the thread holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_reply_count: Option<u64>,
    pub reactions: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessagePage {
    pub messages: Vec<MessageView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET .../messages` query parameters, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery {
    pub limit: usize,
    pub from: Option<String>,
    pub thread_root_id: Option<String>,
}

impl PageQuery {
    pub fn parse(limit: Option<&str>, from: Option<&str>, thread_root_id: Option<&str>) -> Result<Self, DomainError> {
        let invalid = |why: &str| DomainError::invalid("invalid_parameter", why.to_owned());
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| invalid("limit must be an integer from 1 to 100"))?,
        };
        let from = match from {
            None => None,
            Some(token) if is_page_token(token) => Some(token.to_owned()),
            Some(_) => return Err(invalid("from must be the next token of a previous page")),
        };
        let thread_root_id = thread_root_id.map(super::parse_event_id).transpose()?;
        Ok(PageQuery { limit, from, thread_root_id })
    }
}

/// The shape of the homeserver's pagination tokens (`s12_3_0…`, `t4-56_0…`, sharded `m7~1.8~2.9…`) or our own
/// thread marker. Each number must fit in 63 bits: Synapse answers a larger one with a 500, not a 400.
fn is_page_token(token: &str) -> bool {
    if token == ONLY_THE_ROOT_LEFT {
        return true;
    }
    let Some(rest) = token.strip_prefix(['s', 't', 'm']) else {
        return false;
    };
    token.len() <= 512
        && rest.split(['_', '-', '~', '.']).all(|number| {
            !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) && number.parse::<i64>().is_ok()
        })
}

/// Reads one page as the actor (a member reads with their own identity, so the homeserver's history visibility
/// holds for them; the service reads as the platform's user).
pub async fn page(app: &App, room: &RoomRef, actor: &Actor, query: &PageQuery) -> Result<MessagePage, DomainError> {
    if matches!(actor, Actor::User { .. }) && query.limit > USER_MAX_LIMIT {
        return Err(DomainError::invalid(
            "invalid_parameter",
            format!("limit must be at most {USER_MAX_LIMIT} for a member's read"),
        ));
    }
    let (events, next) = match &query.thread_root_id {
        None => timeline(app, room, actor, query).await?,
        Some(root) => thread(app, room, actor, root, query).await?,
    };
    let mut messages: Vec<MessageView> =
        events.iter().filter_map(|event| view(event, &app.identities, actor.tenant())).collect();
    let wanted: Vec<String> = messages.iter().filter(|m| !m.deleted).map(|m| m.event_id.clone()).collect();
    let mut counted = count_reactions(app, room, actor, wanted).await?;
    for message in &mut messages {
        if let Some(reactions) = counted.remove(&message.event_id) {
            message.reactions = reactions;
        }
    }
    Ok(MessagePage { messages, next })
}

/// A page read as the actor: `read` is the homeserver read, run as them.
async fn get_as<T, F, Fut>(app: &App, actor: &Actor, read: F) -> Result<T, DomainError>
where
    F: Fn(Identity) -> Fut,
    Fut: std::future::Future<Output = Result<T, HomeserverError>>,
{
    let outcome = room::act(app, actor, read).await?;
    outcome.map_err(|refusal| match refusal {
        HomeserverError::Rejected { status: 403, .. } => {
            DomainError::not_permitted("only members of this room may read it")
        }
        HomeserverError::Rejected { status: 400, .. } => {
            DomainError::invalid("invalid_parameter", "from is not a token of this listing")
        }
        other => room::refusal(other),
    })
}

async fn timeline(
    app: &App,
    room: &RoomRef,
    actor: &Actor,
    query: &PageQuery,
) -> Result<(Vec<TimelineEvent>, Option<String>), DomainError> {
    let mut listed = Vec::new();
    let mut from = query.from.clone();
    for _ in 0..MAX_ROUNDS {
        // Ask for exactly what is missing, so that a page never holds more than `limit` and nothing is skipped.
        let limit = u32::try_from(query.limit - listed.len()).map_err(|_| DomainError::Internal)?;
        let (chunk, end) = get_as(app, actor, |identity: Identity| {
            let from = from.as_deref();
            async move {
                let types = [TimelineEventType::RoomMessage];
                app.homeserver.room_messages(&room.room_id, &types, from, limit, identity.acting()).await
            }
        })
        .await?;
        let exhausted = chunk.is_empty() || end.is_none();
        listed.extend(chunk.into_iter().filter(in_main_timeline));
        from = end;
        if exhausted || listed.len() >= query.limit {
            break;
        }
    }
    Ok((listed, from))
}

/// Edits are applied to what they edit and thread replies live in their thread.
fn in_main_timeline(event: &TimelineEvent) -> bool {
    event.is_message() && !matches!(event.rel_type(), Some(RelationType::Replacement | RelationType::Thread))
}

async fn thread(
    app: &App,
    room: &RoomRef,
    actor: &Actor,
    root: &str,
    query: &PageQuery,
) -> Result<(Vec<TimelineEvent>, Option<String>), DomainError> {
    let root_event = room::fetch_message(app, room, root).await?;
    if query.from.as_deref() == Some(ONLY_THE_ROOT_LEFT) {
        return Ok((vec![root_event], None));
    }
    let limit = u32::try_from(query.limit).map_err(|_| DomainError::Internal)?;
    let (chunk, mut next) = get_as(app, actor, |identity: Identity| async move {
        let (from, thread) = (query.from.as_deref(), RelationType::Thread);
        app.homeserver.relations(&room.room_id, root, thread, None, from, limit, identity.acting()).await
    })
    .await?;
    let mut events: Vec<TimelineEvent> = chunk.into_iter().filter(TimelineEvent::is_message).collect();
    // The root opens the thread: it is the oldest, so it ends the last page, or makes a page of its own when the
    // replies filled this one.
    if next.is_none() {
        if events.len() < query.limit {
            events.push(root_event);
        } else {
            next = Some(ONLY_THE_ROOT_LEFT.to_owned());
        }
    }
    Ok((events, next))
}

/// Counts the reactions of each message; a message's lookup failing for lack of access counts nothing.
async fn count_reactions(
    app: &App,
    room: &RoomRef,
    actor: &Actor,
    event_ids: Vec<String>,
) -> Result<BTreeMap<String, BTreeMap<String, u64>>, DomainError> {
    if event_ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let identity = match actor {
        Actor::Platform { .. } => Identity::Platform,
        Actor::User { tenant, user } => Identity::User(app.credentials.server_device(tenant, user)),
    };
    let mut counted = BTreeMap::new();
    let room_id = room.room_id.to_string();
    let (cached, event_ids): (Vec<_>, Vec<_>) = event_ids
        .into_iter()
        .map(|event_id| (reaction_cache::get(&room_id, &event_id), event_id))
        .partition(|(cached, _)| cached.is_some());
    for (reactions, event_id) in cached {
        counted.insert(event_id, reactions.unwrap_or_default());
    }
    let mut pending = event_ids.into_iter().map(|(_, event_id)| event_id);
    loop {
        let mut tasks = tokio::task::JoinSet::new();
        for event_id in pending.by_ref().take(REACTION_CONCURRENCY) {
            let homeserver = app.homeserver.clone();
            let identity = identity.clone();
            let room_id = room.room_id.to_string();
            // In the request's span, so that its log lines (and homeserver calls) are the request's.
            let lookup = async move {
                let reactions = reactions_of(&homeserver, &identity, &room_id, &event_id).await;
                (event_id, reactions)
            };
            tasks.spawn(tracing::Instrument::instrument(lookup, tracing::Span::current()));
        }
        if tasks.is_empty() {
            return Ok(counted);
        }
        while let Some(joined) = tasks.join_next().await {
            let (event_id, reactions) = joined.map_err(|_| DomainError::Internal)?;
            let reactions = reactions?;
            reaction_cache::put(&room_id, &event_id, reactions.clone());
            counted.insert(event_id, reactions);
        }
    }
}

async fn reactions_of(
    homeserver: &crate::homeserver::Homeserver,
    identity: &Identity,
    room_id: &str,
    event_id: &str,
) -> Result<BTreeMap<String, u64>, DomainError> {
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut from: Option<String> = None;
    let room_id = crate::homeserver::room_id(room_id)?;
    for _ in 0..MAX_REACTION_PAGES {
        let (annotation, reactions) = (RelationType::Annotation, Some(TimelineEventType::Reaction));
        let page =
            homeserver.relations(&room_id, event_id, annotation, reactions, from.as_deref(), 100, identity.acting());
        let (chunk, next) = match page.await {
            Ok(page) => page,
            Err(HomeserverError::Rejected { .. }) => break,
            Err(error) => return Err(error.into()),
        };
        for reaction in chunk.into_iter().filter(|reaction| !reaction.redacted) {
            let key = reaction.content.relates_to.and_then(|relation| relation.key);
            if let (Some(key), Some(sender)) = (key, reaction.sender) {
                seen.insert((key, sender.to_string()));
            }
        }
        from = next;
        if from.is_none() {
            break;
        }
    }
    let mut counts = BTreeMap::new();
    for (key, _) in seen {
        *counts.entry(key).or_insert(0) += 1;
    }
    Ok(counts)
}
