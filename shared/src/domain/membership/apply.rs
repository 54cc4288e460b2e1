//! Reading a room and changing it on the homeserver: power-level writes, joins, kicks, bounded fan-out.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use ruma::{OwnedRoomId, RoomId, UserId};
use serde_json::Value;

use super::*;
use crate::app::App;
use crate::domain::DomainError;
use crate::domain::rooms::{self, RoomRef, membership_of};
use crate::domain::users::{self, AvatarChange};
use crate::homeserver::{Acting, MemberAction};
use crate::identity::{RoomKind, TenantId, UserSlug};

/// The power levels as JSON: they are merged and written back, and keys we do not model must survive.
pub(super) async fn read_power_levels(app: &App, room_id: &RoomId) -> Result<Value, DomainError> {
    let content = app.homeserver.state_content(room_id, "m.room.power_levels", "", Acting::Platform).await?;
    content.ok_or(DomainError::HomeserverAnswer("the room has no power levels"))
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
) -> Result<usize, DomainError> {
    let platform = app.identities.platform_user_id();
    if merge_power_levels(known, wanted, platform.as_str()).is_none() {
        return Ok(0);
    }
    let mut writes = 0;
    loop {
        let content = read_power_levels(app, room_id).await?;
        let Some(merged) = merge_power_levels(&content, wanted, platform.as_str()) else {
            return Ok(writes);
        };
        // Also for a single member's change (put): the event would be refused by the homeserver anyway.
        check_power_levels_size(&content, wanted, platform.as_str())?;
        if writes == MAX_POWER_LEVEL_WRITES {
            tracing::warn!(room = %room_id, writes, "power levels keep changing under us; giving up for now");
            return Err(DomainError::Contended { retry_after: Duration::from_secs(1) });
        }
        app.homeserver.put_state(room_id, "m.room.power_levels", "", &merged, Acting::Platform).await?;
        writes += 1;
    }
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
) -> Result<(TenantView, Value), DomainError> {
    let members = app.homeserver.current_members(room_id).await?;
    let content = read_power_levels(app, room_id).await?;
    let power = PowerLevels::from_content(&content);
    let mut view = TenantView { users_default: power.users_default, ..TenantView::default() };
    let platform = app.identities.platform_user_id();
    for (member, membership) in members {
        let Some(membership) = Membership::from_state(&membership).filter(|m| *m != Membership::Leave) else {
            continue;
        };
        if let Some(user) = tenant_user(app, tenant, &member) {
            view.memberships.insert(user, membership);
        } else if let Ok(stranger) = UserId::parse(member.as_str())
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

/// A membership change of `user_id` by the platform; one that already holds (kicking someone gone) is success.
pub(super) async fn room_action(
    app: &App,
    room_id: &RoomId,
    action: MemberAction,
    user_id: &UserId,
) -> Result<(), DomainError> {
    Ok(app.homeserver.member_action(room_id, action, user_id).await?)
}

/// Provisions the user when the homeserver does not know them (display name = userId until `putUser` sets one),
/// lifts a ban, and joins them with the homeserver's admin join (which invites first in invite-only rooms).
pub(super) async fn join(
    app: &App,
    tenant: &TenantId,
    room_id: &RoomId,
    user: &UserSlug,
    current: Option<Membership>,
) -> Result<(), DomainError> {
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
        room_action(app, room_id, MemberAction::Unban, &user_id).await?;
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
) -> Result<bool, DomainError>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<(), DomainError>>,
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
) -> Result<bool, DomainError> {
    for (user_id, level) in &power.users {
        if *level < Role::Owner.power_level() {
            continue;
        }
        let Some(user) = tenant_user(app, tenant, user_id).filter(|user| user != except) else {
            continue;
        };
        let membership = membership_of(app, room_id, user_id).await?;
        if membership.as_ref().and_then(Membership::from_state).is_some_and(Membership::is_member) {
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
) -> Result<(), DomainError> {
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
) -> Result<Option<Membership>, DomainError> {
    Ok(membership_of(app, room_id, user_id.as_str()).await?.as_ref().and_then(Membership::from_state))
}

/// A group's space, whose membership follows the group's (so Matrix clients show the hierarchy); `None` for other
/// rooms. No roles there: nobody posts in a space.
pub(super) async fn group_space(
    app: &App,
    tenant: &TenantId,
    room: &RoomRef,
) -> Result<Option<OwnedRoomId>, DomainError> {
    if room.kind != RoomKind::Group {
        return Ok(None);
    }
    rooms::lookup_alias(app, &app.identities.space_alias(tenant, &room.slug)).await
}

/// Into a group's space (lifting a ban the group's removal put there).
pub(super) async fn join_space(app: &App, space: &RoomId, user_id: &UserId) -> Result<(), DomainError> {
    match current_membership(app, space, user_id).await? {
        Some(Membership::Join) => Ok(()),
        Some(Membership::Ban) => {
            room_action(app, space, MemberAction::Unban, user_id).await?;
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
) -> Result<(), DomainError> {
    match membership {
        Some(Membership::Ban) => Ok(()),
        _ if ban => room_action(app, room_id, MemberAction::Ban, user_id).await,
        Some(Membership::Join | Membership::Invite | Membership::Knock) => {
            room_action(app, room_id, MemberAction::Kick, user_id).await
        }
        Some(Membership::Leave) | None => Ok(()),
    }
}
