//! Deletions and reaction removals that meet a homeserver outage are queued like sends (`202`, ADR 0002): the
//! operation names who asked, and the replay checks again that they may (sender, moderator, service; a member for
//! their own reaction), so a refusal ends the operation `failed` with the reason. The redaction's transaction id
//! is derived from the event and the actor (`send::redact`), so a replay whose answer was lost redacts once.

use crate::app::App;
use crate::domain::messages::{Actor, reactions, send};
use crate::domain::operations::{self, DeferredRedaction, Operation};
use crate::domain::rooms::{self, RoomRef};
use crate::domain::{DomainError, Outcome};
use crate::identity::Caller;
use crate::identity::{TenantId, UserSlug};

/// `DELETE …/messages/{eventId}`: done, or queued during an outage.
pub async fn delete_message(
    app: &App,
    caller: &Caller,
    room: &RoomRef,
    event_id: &str,
) -> Result<Outcome<()>, DomainError> {
    let outcome = send::delete(app, room, &Actor::of(caller), event_id).await;
    operations::defer_on_outage(app, caller, outcome, || redaction(caller, room, event_id, None)).await
}

/// `DELETE …/reactions/{key}`: done, or queued during an outage (the membership check included).
pub async fn remove_reaction(
    app: &App,
    caller: &Caller,
    room: &RoomRef,
    event_id: &str,
    key: &str,
) -> Result<Outcome<()>, DomainError> {
    let outcome = async {
        rooms::require_member(app, room, caller).await?;
        reactions::delete(app, room, &Actor::of(caller), event_id, key).await
    }
    .await;
    operations::defer_on_outage(app, caller, outcome, || redaction(caller, room, event_id, Some(key))).await
}

fn redaction(caller: &Caller, room: &RoomRef, event_id: &str, key: Option<&str>) -> Operation {
    let (user, service) = match caller.user() {
        Some(user) => (Some(user.to_string()), None),
        None => (None, Some(caller.subject.clone())),
    };
    Operation::Redact(DeferredRedaction {
        tenant: caller.tenant.to_string(),
        user,
        service,
        kind: room.kind.path_segment().to_owned(),
        slug: room.slug.to_string(),
        room_id: room.room_id.to_string(),
        event_id: event_id.to_owned(),
        reaction_key: key.map(str::to_owned),
    })
}

/// The replay: the same checks and the same redaction as the request would have made.
pub async fn redact(app: &App, redaction: &DeferredRedaction) -> Result<(), DomainError> {
    let tenant = TenantId::parse(&redaction.tenant)?;
    let actor = match &redaction.user {
        Some(user) => Actor::User { tenant: tenant.clone(), user: UserSlug::parse(user)? },
        None => Actor::Platform { tenant: tenant.clone(), service: redaction.service.clone().unwrap_or_default() },
    };
    let room = rooms::resolve_path(app, &tenant, &redaction.kind, &redaction.slug).await?;
    match &redaction.reaction_key {
        Some(key) => {
            rooms::require_member(app, &room, &actor.caller()).await?;
            reactions::delete(app, &room, &actor, &redaction.event_id, key).await
        }
        None => send::delete(app, &room, &actor, &redaction.event_id).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_redaction_names_its_actor_and_shares_the_rooms_group() {
        let redaction = Operation::Redact(DeferredRedaction {
            tenant: "t".into(),
            user: Some("ann".into()),
            service: None,
            kind: "groups".into(),
            slug: "g".into(),
            room_id: "!r:l".into(),
            event_id: "$e".into(),
            reaction_key: Some("👍".into()),
        });
        let json = serde_json::to_value(&redaction).expect("encodes");
        assert_eq!(json["op"], "redact");
        assert_eq!(json["reactionKey"], "👍");
        assert_eq!(serde_json::from_value::<Operation>(json).expect("decodes"), redaction);
        assert!(serde_json::from_value::<Operation>(serde_json::json!({"op": "redact", "tenant": "t"})).is_err());
    }
}
