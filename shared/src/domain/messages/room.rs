//! Homeserver reads and writes shared by the message operations: acting as the caller, reading events, members and
//! power levels, and turning the homeserver's refusals into the API's errors.

use ruma::events::room::member::MembershipState;
use std::future::Future;

use ruma::UserId;
use ruma::events::room::power_levels::RoomPowerLevelsEventContent;

use super::Actor;
use super::mentions::{Candidates, MentionTarget, Mentionables};
use crate::app::App;
use crate::domain::DomainError;
use crate::domain::room_lifecycle::{self, Lifecycle};
use crate::domain::rooms::{self, RoomRef};
use crate::homeserver::{Acting, HomeserverError, TimelineEvent, UserDevice};

/// Moderators and above may mention the whole room and delete others' messages.
pub const MODERATOR_POWER: i64 = crate::domain::roles::Role::Moderator.power_level();

/// The identity a homeserver call runs under, owned so it can move into the call's future.
#[derive(Clone)]
pub enum Identity {
    User(UserDevice),
    Platform,
}

impl Identity {
    pub fn acting(&self) -> Acting<'_> {
        match self {
            Identity::User(device) => Acting::User(device),
            Identity::Platform => Acting::Platform,
        }
    }
}

/// Runs `call` as the actor (a user on their server device, or the platform). The outer error is
/// everything the caller cannot be blamed for; the inner one is the homeserver's refusal, for the operation to
/// interpret (a 403 of a send means something else than a 403 of a read).
pub async fn act<T, F, Fut>(app: &App, actor: &Actor, call: F) -> Result<Result<T, HomeserverError>, DomainError>
where
    F: Fn(Identity) -> Fut,
    Fut: Future<Output = Result<T, HomeserverError>>,
{
    let keep_refusals = |outcome: Result<T, HomeserverError>| match outcome {
        Ok(value) => Ok(Ok(value)),
        Err(refusal @ HomeserverError::Rejected { .. }) => Ok(Err(refusal)),
        Err(other) => Err(other),
    };
    match actor {
        Actor::Platform { .. } => Ok(keep_refusals(call(Identity::Platform).await)?),
        Actor::User { tenant, user } => {
            app.credentials
                .as_user(tenant, user, |device| {
                    let call = &call;
                    async move {
                        match call(Identity::User(device)).await {
                            // The credentials layer creates a missing server device and calls again.
                            Err(error) if crate::credentials::is_unknown_device(&error) => Err(error),
                            outcome => keep_refusals(outcome),
                        }
                    }
                })
                .await
                .map_err(DomainError::from)
        }
    }
}

/// The usual meaning of a refusal: 403 for power or membership, 404 for something missing, 413 for size.
pub fn refusal(error: HomeserverError) -> DomainError {
    match &error {
        HomeserverError::Rejected { status: 403, .. } => {
            DomainError::not_permitted("the homeserver does not allow this member to do that in this room")
        }
        HomeserverError::Rejected { status: 404, .. } => DomainError::not_found("no such message in this room"),
        HomeserverError::Rejected { status: 413, .. } => {
            DomainError::TooLarge("the homeserver refused the message as too large".into())
        }
        _ => error.into(),
    }
}

/// `a=b&c=d`, percent-encoded. (A function, so no encoder lives across an `await`: it is not `Send`.)
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        serializer.append_pair(name, value);
    }
    serializer.finish()
}

/// The homeserver's "you already reacted with this key": for an idempotent add, success.
pub fn is_duplicate_annotation(error: &DomainError) -> bool {
    matches!(error, DomainError::Homeserver(error) if error.is_duplicate_annotation())
}

/// An event of the room, read as the platform's user; `None` when the room has no such event.
pub async fn fetch_event(app: &App, room: &RoomRef, event_id: &str) -> Result<Option<TimelineEvent>, DomainError> {
    Ok(app.homeserver.room_event(&room.room_id, event_id, Acting::Platform).await?)
}

/// A message (`m.room.message`) of the room, or `404`.
pub async fn fetch_message(app: &App, room: &RoomRef, event_id: &str) -> Result<TimelineEvent, DomainError> {
    match fetch_event(app, room, event_id).await? {
        Some(event) if event.is_message() && event.room_id.as_ref() == Some(&room.room_id) => Ok(event),
        _ => Err(DomainError::not_found("no such message in this room")),
    }
}

/// Whether the actor sent the event.
pub fn sent_by(app: &App, actor: &Actor, event: &TimelineEvent) -> bool {
    event.sender.as_ref().is_some_and(|sender| sender.as_str() == matrix_id(app, actor))
}

/// The Matrix id the actor sends as.
pub fn matrix_id(app: &App, actor: &Actor) -> String {
    match actor {
        Actor::User { tenant, user } => app.identities.matrix_user_id(tenant, user).to_string(),
        Actor::Platform { .. } => app.identities.platform_user_id().to_string(),
    }
}

/// The actor's power level in the room. The platform's user created every room and, in room version 12, holds
/// unlimited power; it is reported as `i64::MAX`.
pub async fn power_of(app: &App, room: &RoomRef, actor: &Actor) -> Result<i64, DomainError> {
    let Actor::User { .. } = actor else {
        return Ok(i64::MAX);
    };
    let levels = app.homeserver.power_levels(&room.room_id).await?;
    Ok(power_in(&levels, &matrix_id(app, actor)))
}

/// A user's level in the room's power levels: listed, or the default.
pub fn power_in(levels: &RoomPowerLevelsEventContent, user_id: &str) -> i64 {
    let listed = UserId::parse(user_id).ok().and_then(|user_id| levels.users.get(&user_id).copied());
    listed.unwrap_or(levels.users_default).into()
}

/// `@room` needs the room's `notifications.room` level: the level Synapse checks before it highlights anyone, so
/// the API never marks a mention the homeserver would not honour.
async fn may_mention_room(app: &App, room: &RoomRef, actor: &Actor) -> Result<bool, DomainError> {
    let Actor::User { .. } = actor else {
        return Ok(true);
    };
    let levels = app.homeserver.power_levels(&room.room_id).await?;
    Ok(power_in(&levels, &matrix_id(app, actor)) >= i64::from(levels.notifications.room))
}

/// Who the `@` words of a message may mention: joined members of the caller's tenant, and `@room` for moderators.
/// Reads nothing when the text has no `@` word.
pub async fn mentionables(
    app: &App,
    room: &RoomRef,
    actor: &Actor,
    candidates: &Candidates,
) -> Result<Mentionables, DomainError> {
    let mut mentionables = Mentionables::default();
    if candidates.room {
        mentionables.room_allowed = may_mention_room(app, room, actor).await?;
    }
    if candidates.user_ids.is_empty() {
        return Ok(mentionables);
    }
    let joined = app.homeserver.joined_members(&room.room_id, Acting::Platform).await?;
    for (user_id, profile) in joined {
        let Some((tenant, slug)) = app.identities.openmeet_user(&user_id) else {
            continue;
        };
        if &tenant != actor.tenant() || !candidates.user_ids.iter().any(|id| id == slug.as_str()) {
            continue;
        }
        let display_name =
            profile.display_name.as_deref().filter(|name| !name.trim().is_empty()).unwrap_or(slug.as_str()).to_owned();
        mentionables.insert(slug.as_str(), MentionTarget { user_id: user_id.to_string(), display_name });
    }
    Ok(mentionables)
}

/// When a user's write fails in a way that may just mean "not a member" (no credentials can be minted for a user
/// who was never provisioned, say), tells that apart: `403` for non-members, the original error otherwise.
pub async fn explain_failure(app: &App, room: &RoomRef, actor: &Actor, error: DomainError) -> DomainError {
    let Actor::User { .. } = actor else {
        return error;
    };
    let refused = matches!(
        error,
        DomainError::HomeserverAnswer(_)
            | DomainError::Homeserver(
                HomeserverError::Rejected { .. } | HomeserverError::UnknownToken | HomeserverError::InvalidResponse(_)
            )
    );
    if !refused {
        return error;
    }
    match rooms::membership_of(app, &room.room_id, &matrix_id(app, actor)).await {
        Ok(Some(MembershipState::Join)) => error,
        Ok(_) => DomainError::not_permitted("only members of this room may do that"),
        Err(_) => error,
    }
}

/// Forgets that the room was active (see [`crate::container::ContainerState::active_rooms`]): a refusal may mean it
/// no longer is.
pub fn forget_active(app: &App, room_id: &str) {
    app.container.active_rooms.forget(room_id);
}

/// The lifecycle state in the room's `org.openmeet.room` state event; the rest of it is not read here.
#[derive(serde::Deserialize)]
struct LifecycleOf {
    #[serde(default, deserialize_with = "crate::homeserver::timeline::lenient")]
    state: Option<Lifecycle>,
}

/// What a write may do in the room's lifecycle state (the `org.openmeet.room` state event, read as the platform):
/// nobody writes into an archived room (`409`); users do not post or react in a cancelled event room (`403`),
/// whatever their power, while the service still may (announcements).
pub async fn ensure_writable(app: &App, room: &RoomRef, actor: &Actor) -> Result<(), DomainError> {
    if app.container.active_rooms.contains(room.room_id.as_str()) {
        return Ok(());
    }
    let meta = app.homeserver.state_content(&room.room_id, room_lifecycle::META_EVENT, "", Acting::Platform).await?;
    let lifecycle = meta.and_then(|meta| serde_json::from_value::<LifecycleOf>(meta).ok()).and_then(|meta| meta.state);
    match (lifecycle, actor) {
        (Some(Lifecycle::Archived), _) => {
            Err(DomainError::conflict("conflict", "this room is archived: it is read-only"))
        }
        (Some(Lifecycle::Cancelled), Actor::User { .. }) => {
            Err(DomainError::not_permitted("this event was cancelled: its room is read-only for members"))
        }
        (Some(Lifecycle::Cancelled), Actor::Platform { .. }) => Ok(()),
        (Some(Lifecycle::Active) | None, _) => {
            app.container.active_rooms.remember(room.room_id.as_str());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn power_levels_fall_back_to_the_default() {
        // Numbers may arrive as strings from old rooms.
        let levels = json!({"users": {"@a:l": 75, "@b:l": "50"}, "users_default": 0});
        let levels: RoomPowerLevelsEventContent = serde_json::from_value(levels).expect("power levels");
        assert_eq!(power_in(&levels, "@a:l"), 75);
        assert_eq!(power_in(&levels, "@b:l"), 50);
        assert_eq!(power_in(&levels, "@c:l"), 0);
        let empty: RoomPowerLevelsEventContent = serde_json::from_value(json!({})).expect("power levels");
        assert_eq!(power_in(&empty, "@c:l"), 0);
    }

    #[test]
    fn refusals_map_to_the_contract() {
        let rejected = |status| HomeserverError::Rejected { status, errcode: "M_X".into(), message: String::new() };
        assert_eq!(refusal(rejected(403)).status(), 403);
        assert_eq!(refusal(rejected(404)).status(), 404);
        assert_eq!(refusal(rejected(413)).status(), 413);
        assert_eq!(refusal(rejected(400)).status(), 502);
    }
}
