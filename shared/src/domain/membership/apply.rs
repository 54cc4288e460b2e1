//! Reading a room and changing it on the homeserver: power-level writes, joins, kicks, bounded fan-out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use ruma::{OwnedRoomId, RoomId, UserId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::app::App;
use crate::domain::rooms::{self, RoomRef, membership_of};
use crate::domain::users::{self, AvatarChange};
use crate::error::ApiError;
use crate::homeserver::{Acting, HomeserverError, encode};
use crate::identity::{RoomKind, TenantId, UserSlug};

/// Power-level writes of one room are serialized within this process, so that our own concurrent requests do not
/// overwrite each other's read-modify-write (other writers are caught by the verification after each write).
pub(super) static ROOM_LOCKS: LazyLock<Mutex<HashMap<OwnedRoomId, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Default::default);

pub(super) async fn lock_room(room_id: &RoomId) -> tokio::sync::OwnedMutexGuard<()> {
    let lock = {
        let mut locks = ROOM_LOCKS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Only the map holds an idle lock: forget those, so the map stays as small as the rooms in use.
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks.entry(room_id.to_owned()).or_default().clone()
    };
    lock.lock_owned().await
}

pub(super) fn power_levels_path(room_id: &RoomId) -> String {
    format!("/_matrix/client/v3/rooms/{}/state/m.room.power_levels/", encode(room_id.as_str()))
}

pub(super) async fn read_power_levels(app: &App, room_id: &RoomId) -> Result<Value, ApiError> {
    let path = power_levels_path(room_id);
    Ok(app.homeserver.call(reqwest::Method::GET, &path, Acting::Platform, None::<&Value>).await?)
}

/// Makes the given users' effective levels hold. `known` (read earlier, maybe seconds ago) only decides whether
/// anything is to do, so a no-op costs no request; the merge itself goes onto a fresh read, so that another
/// writer's change is clobbered only if it lands within one round trip (Matrix has no compare-and-swap for state).
/// Every write is verified by re-reading: if someone replaced the event in between, the merge is redone on top of
/// theirs. Returns how many writes it took (0: nothing to do).
pub(super) async fn write_power_levels(
    app: &App,
    room_id: &RoomId,
    known: &Value,
    wanted: &BTreeMap<String, i64>,
) -> Result<usize, ApiError> {
    let platform = app.identities.platform_user_id();
    if merge_power_levels(known, wanted, platform.as_str()).is_none() {
        return Ok(0);
    }
    let path = power_levels_path(room_id);
    let mut writes = 0;
    loop {
        let content = read_power_levels(app, room_id).await?;
        let Some(merged) = merge_power_levels(&content, wanted, platform.as_str()) else {
            return Ok(writes);
        };
        if writes == MAX_POWER_LEVEL_WRITES {
            tracing::warn!(room = %room_id, writes, "power levels keep changing under us; giving up for now");
            return Err(ApiError::HomeserverUnavailable { retry_after: Duration::from_secs(1) });
        }
        app.homeserver.call::<Value>(reqwest::Method::PUT, &path, Acting::Platform, Some(&merged)).await?;
        writes += 1;
    }
}

#[derive(Deserialize)]
pub(super) struct MembersResponse {
    #[serde(default)]
    chunk: Vec<MemberEvent>,
}

#[derive(Deserialize)]
pub(super) struct MemberEvent {
    state_key: String,
    #[serde(default)]
    content: MemberContent,
}

#[derive(Deserialize, Default)]
pub(super) struct MemberContent {
    #[serde(default)]
    membership: String,
}

/// The tenant's users among a Matrix user id: the platform, foreign users and other tenants' users are `None`.
pub(super) fn tenant_user(app: &App, tenant: &TenantId, user_id: &str) -> Option<UserSlug> {
    let user_id = UserId::parse(user_id).ok()?;
    match app.identities.openmeet_user(&user_id) {
        Some((owner, user)) if owner == *tenant => Some(user),
        _ => None,
    }
}

/// The room's memberships and power levels, restricted to the tenant's users: two requests, whatever the size.
pub(super) async fn read_tenant_view(
    app: &App,
    tenant: &TenantId,
    room_id: &RoomId,
) -> Result<(TenantView, Value), ApiError> {
    let path = format!("/_matrix/client/v3/rooms/{}/members?not_membership=leave", encode(room_id.as_str()));
    let members: MembersResponse =
        app.homeserver.call(reqwest::Method::GET, &path, Acting::Platform, None::<&Value>).await?;
    let content = read_power_levels(app, room_id).await?;
    let power = PowerLevels::from_content(&content);
    let mut view = TenantView { users_default: power.users_default, ..TenantView::default() };
    let platform = app.identities.platform_user_id();
    for event in members.chunk {
        let Some(membership) = Membership::parse(&event.content.membership).filter(|m| *m != Membership::Leave) else {
            continue;
        };
        if let Some(user) = tenant_user(app, tenant, &event.state_key) {
            view.memberships.insert(user, membership);
        } else if let Ok(stranger) = UserId::parse(event.state_key.as_str())
            && stranger != platform
        {
            view.strangers.insert(stranger, membership);
        }
    }
    for (user_id, level) in &power.users {
        if let Some(user) = tenant_user(app, tenant, user_id) {
            view.levels.insert(user, *level);
        }
    }
    Ok((view, content))
}

/// A membership change that already holds (joining someone joined, kicking someone gone) is success.
pub(super) fn already_applied(outcome: Result<Value, HomeserverError>) -> Result<(), ApiError> {
    match outcome {
        Ok(_) => Ok(()),
        Err(error) if error.is_membership_already_applied() => Ok(()),
        Err(error) => Err(error.into()),
    }
}

pub(super) async fn room_action(app: &App, room_id: &RoomId, action: &str, user_id: &UserId) -> Result<(), ApiError> {
    let path = format!("/_matrix/client/v3/rooms/{}/{action}", encode(room_id.as_str()));
    let body = json!({"user_id": user_id.as_str()});
    already_applied(app.homeserver.call(reqwest::Method::POST, &path, Acting::Platform, Some(&body)).await)
}

/// Provisions the user when the homeserver does not know them (display name = userId until `putUser` sets one),
/// lifts a ban, and joins them with the homeserver's admin join (which invites first in invite-only rooms).
pub(super) async fn join(
    app: &App,
    tenant: &TenantId,
    room_id: &RoomId,
    user: &UserSlug,
    current: Option<Membership>,
) -> Result<(), ApiError> {
    if current == Some(Membership::Join) {
        return Ok(());
    }
    // Only `None`/`Leave` may mean "never provisioned" (or deactivated since): anyone banned, invited or knocking
    // exists. `get` is checked first so an existing profile is never overwritten.
    if matches!(current, None | Some(Membership::Leave)) && users::get(app, tenant, user).await?.is_none() {
        users::ensure_profile(app, tenant, user, user.as_str(), AvatarChange::Keep).await?;
    }
    let user_id = app.identities.matrix_user_id(tenant, user);
    if current == Some(Membership::Ban) {
        room_action(app, room_id, "unban", &user_id).await?;
    }
    rooms::admin_join(app, room_id, &user_id).await
}

/// Runs `task` for every item, at most `limit` at a time, on this task (no `'static` bound, no extra crate). After
/// the first failure nothing new starts; what is in flight finishes, then that failure is returned. Nothing new
/// starts after `deadline` either: `Ok(false)` when items were left for later.
pub(super) async fn run_bounded<T, F, Fut>(
    items: Vec<T>,
    limit: usize,
    deadline: Option<Instant>,
    task: F,
) -> Result<bool, ApiError>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<(), ApiError>>,
{
    let mut pending = items.into_iter().peekable();
    let mut in_flight: Vec<Pin<Box<Fut>>> = Vec::new();
    let mut first_error = None;
    loop {
        let in_time = deadline.is_none_or(|deadline| Instant::now() < deadline);
        while first_error.is_none() && in_time && in_flight.len() < limit.max(1) {
            let Some(item) = pending.next() else { break };
            in_flight.push(Box::pin(task(item)));
        }
        if in_flight.is_empty() {
            return first_error.map_or(Ok(pending.peek().is_none()), Err);
        }
        let outcome = std::future::poll_fn(|cx| {
            for index in 0..in_flight.len() {
                if let Poll::Ready(outcome) = in_flight[index].as_mut().poll(cx) {
                    drop(in_flight.swap_remove(index));
                    return Poll::Ready(outcome);
                }
            }
            Poll::Pending
        })
        .await;
        if let Err(error) = outcome {
            first_error.get_or_insert(error);
        }
    }
}

/// Joined or invited owners other than `except`, found from the power levels' owner entries (few) rather than the
/// whole member list: enough to tell whether `except` is the last one.
pub(super) async fn other_owner_exists(
    app: &App,
    tenant: &TenantId,
    room_id: &OwnedRoomId,
    power: &PowerLevels,
    except: &UserSlug,
) -> Result<bool, ApiError> {
    for (user_id, level) in &power.users {
        if *level < Role::Owner.power_level() {
            continue;
        }
        let Some(user) = tenant_user(app, tenant, user_id).filter(|user| user != except) else {
            continue;
        };
        let membership = membership_of(app, room_id, user_id).await?;
        if membership.as_deref().and_then(Membership::parse).is_some_and(Membership::is_member) {
            return Ok(true);
        }
        tracing::debug!(user = %user, "owner entry of a non-member ignored");
    }
    Ok(false)
}

/// Refuses to take away `user`'s ownership when they are the last owner, unless forced.
pub(super) async fn guard_last_owner(
    app: &App,
    tenant: &TenantId,
    room: &RoomRef,
    power: &PowerLevels,
    user: &UserSlug,
    membership: Option<Membership>,
    force: bool,
) -> Result<(), ApiError> {
    let user_id = app.identities.matrix_user_id(tenant, user);
    let is_owner =
        membership.is_some_and(Membership::is_member) && power.level_of(user_id.as_str()) >= Role::Owner.power_level();
    if force || !is_owner || other_owner_exists(app, tenant, &room.room_id, power, user).await? {
        return Ok(());
    }
    check_last_owner(&BTreeSet::from([user.clone()]), &BTreeSet::new(), force)
}

pub(super) async fn current_membership(
    app: &App,
    room_id: &RoomId,
    user_id: &UserId,
) -> Result<Option<Membership>, ApiError> {
    Ok(membership_of(app, room_id, user_id.as_str()).await?.as_deref().and_then(Membership::parse))
}

/// A group's space, whose membership follows the group's (so Matrix clients show the hierarchy); `None` for other
/// rooms. No roles there: nobody posts in a space.
pub(super) async fn group_space(app: &App, tenant: &TenantId, room: &RoomRef) -> Result<Option<OwnedRoomId>, ApiError> {
    if room.kind != RoomKind::Group {
        return Ok(None);
    }
    rooms::lookup_alias(app, &app.identities.space_alias(tenant, &room.slug)).await
}

/// Into a group's space (lifting a ban the group's removal put there).
pub(super) async fn join_space(app: &App, space: &RoomId, user_id: &UserId) -> Result<(), ApiError> {
    match current_membership(app, space, user_id).await? {
        Some(Membership::Join) => Ok(()),
        Some(Membership::Ban) => {
            room_action(app, space, "unban", user_id).await?;
            rooms::admin_join(app, space, user_id).await
        }
        _ => rooms::admin_join(app, space, user_id).await,
    }
}

/// Kicks (or bans) a user out of a room given their membership there; a banned user stays banned (kicking would
/// lift the ban), someone not there is left alone.
pub(super) async fn leave_room(
    app: &App,
    room_id: &RoomId,
    user_id: &UserId,
    ban: bool,
    membership: Option<Membership>,
) -> Result<(), ApiError> {
    match membership {
        Some(Membership::Ban) => Ok(()),
        _ if ban => room_action(app, room_id, "ban", user_id).await,
        Some(Membership::Join | Membership::Invite | Membership::Knock) => {
            room_action(app, room_id, "kick", user_id).await
        }
        Some(Membership::Leave) | None => Ok(()),
    }
}
