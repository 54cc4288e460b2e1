//! A member's reactions (`m.reaction` annotations): add one, remove one. Both are idempotent.

use super::Actor;
use super::room::{self, Identity};
use super::send;
use crate::app::App;
use crate::domain::rooms::RoomRef;
use crate::domain::{DomainError, Outcome};
use ruma::events::TimelineEventType;
use ruma::events::relation::RelationType;

const MAX_KEY_CHARS: usize = 64;
/// Pages of the message's reactions searched for the caller's own.
const MAX_PAGES: usize = 10;

/// A reaction key from the path: 1-64 characters, no control characters.
pub fn parse_key(key: &str) -> Result<String, DomainError> {
    if key.is_empty() || key.chars().count() > MAX_KEY_CHARS || key.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "invalid_parameter",
            "key must be 1-64 characters without control characters",
        ));
    }
    Ok(key.to_owned())
}

/// Adds the actor's reaction; a second time changes nothing.
pub async fn put(
    app: &App,
    room: &RoomRef,
    actor: &Actor,
    event_id: &str,
    key: &str,
) -> Result<Outcome<()>, DomainError> {
    let message = room::fetch_message(app, room, event_id).await?;
    if message.redacted {
        return Err(DomainError::conflict("conflict", "the message was deleted"));
    }
    let sent = send::send_reaction(app, room, actor, event_id, key).await;
    super::history::reaction_cache::forget(room.room_id.as_str(), event_id);
    sent
}

/// Removes the actor's reaction with `key`, if any.
pub async fn delete(app: &App, room: &RoomRef, actor: &Actor, event_id: &str, key: &str) -> Result<(), DomainError> {
    room::fetch_message(app, room, event_id).await?;
    let own_id = room::matrix_id(app, actor);
    for reaction_id in own_reactions(app, room, actor, event_id, key, &own_id).await? {
        super::history::reaction_cache::forget(room.room_id.as_str(), event_id);
        send::redact(app, room, actor, &reaction_id).await?;
        super::history::reaction_cache::forget(room.room_id.as_str(), event_id);
    }
    Ok(())
}

/// The actor's live reactions with `key` to the message (normally one).
async fn own_reactions(
    app: &App,
    room: &RoomRef,
    actor: &Actor,
    event_id: &str,
    key: &str,
    own_id: &str,
) -> Result<Vec<String>, DomainError> {
    let mut found = Vec::new();
    let mut from: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let (chunk, next_batch) = room::act(app, actor, |identity: Identity| {
            let from = from.as_deref();
            async move {
                let annotation = RelationType::Annotation;
                let reactions = Some(TimelineEventType::Reaction);
                app.homeserver
                    .relations(&room.room_id, event_id, annotation, reactions, from, 100, identity.acting())
                    .await
            }
        })
        .await?
        .map_err(room::refusal)?;
        for reaction in chunk {
            let reaction_key = reaction.content.relates_to.as_ref().and_then(|relation| relation.key.as_deref());
            if reaction.sender.as_ref().is_some_and(|sender| sender.as_str() == own_id)
                && reaction_key == Some(key)
                && !reaction.redacted
            {
                found.push(reaction.event_id.to_string());
            }
        }
        from = next_batch;
        if from.is_none() {
            break;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded() {
        assert_eq!(parse_key("👍").ok().as_deref(), Some("👍"));
        assert!(parse_key(&"a".repeat(64)).is_ok());
        assert!(parse_key(&"a".repeat(65)).is_err());
        assert!(parse_key("").is_err());
        assert!(parse_key("a\nb").is_err());
    }
}
