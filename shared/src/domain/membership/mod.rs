//! Membership and roles: OpenMeet memberships as room membership and power levels.
//!
//! The homeserver is the source of truth: every operation reads the room's real membership and its
//! `m.room.power_levels` (as the platform user, who created the room and holds unlimited power), computes what must
//! change with the pure functions below, and applies only that. Power levels are written read-modify-write, never
//! clobbering entries we do not manage, and verified afterwards. Every operation is safe to replay.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde_json::Value;

use crate::app::App;
use crate::domain::DomainError;
use crate::domain::rooms::RoomRef;
use crate::homeserver::MemberAction;
use crate::identity::{TenantId, UserSlug};

mod apply;
mod bulk;
mod model;
mod plan;
#[cfg(test)]
mod tests;

pub use crate::domain::roles::*;
use apply::*;
pub use bulk::*;
pub use model::*;
pub use plan::*;

/// The contract's limit on a reconcile list (`ReconcileMembersRequest.members.maxItems`).
pub const MAX_RECONCILE_MEMBERS: usize = 5000;
/// Membership changes in flight at once during a reconcile: enough to hide latency, few enough not to swamp Synapse.
const MEMBERSHIP_CONCURRENCY: usize = 8;
/// Read-modify-write rounds of the power levels before giving up on a room that keeps changing under us.
const MAX_POWER_LEVEL_WRITES: usize = 5;

/// Makes `user` a joined member of the room with `role`: provisions them if needed, lifts a ban, joins them, sets
/// their power level. Nothing is written when they already are.
pub async fn put(
    app: &App,
    tenant: &TenantId,
    room: &RoomRef,
    user: &UserSlug,
    role: Role,
    force: bool,
) -> Result<MemberView, DomainError> {
    let _room_lock = app.container.room_locks.lock(&room.room_id).await;
    let user_id = app.identities.matrix_user_id(tenant, user);
    let content = read_power_levels(app, &room.room_id).await?;
    let power = PowerLevels::from_content(&content);
    let membership = current_membership(app, &room.room_id, &user_id).await?;
    if role != Role::Owner {
        guard_last_owner(app, tenant, room, &power, user, membership, force).await?;
    }
    join(app, tenant, &room.room_id, user, membership).await?;
    if let Some(space) = group_space(app, tenant, room).await? {
        join_space(app, &space, &user_id).await?;
    }
    let wanted = BTreeMap::from([(user_id.to_string(), role.power_level())]);
    let writes = write_power_levels(app, &room.room_id, &content, &wanted).await?;
    tracing::info!(room = %room.room_id, role = role.as_str(), power_level_writes = writes, "member set");
    Ok(MemberView {
        user_id: Some(user.to_string()),
        matrix_user_id: user_id.to_string(),
        role,
        membership: Membership::Join.as_str(),
    })
}

/// Kicks `user` (or bans them) and drops their power-level entry. A user not in the room is not an error; a banned
/// user stays banned (kicking would lift the ban).
pub async fn remove(
    app: &App,
    tenant: &TenantId,
    room: &RoomRef,
    user: &UserSlug,
    ban: bool,
    force: bool,
) -> Result<(), DomainError> {
    let _room_lock = app.container.room_locks.lock(&room.room_id).await;
    let user_id = app.identities.matrix_user_id(tenant, user);
    let content = read_power_levels(app, &room.room_id).await?;
    let power = PowerLevels::from_content(&content);
    let membership = current_membership(app, &room.room_id, &user_id).await?;
    guard_last_owner(app, tenant, room, &power, user, membership, force).await?;
    leave_room(app, &room.room_id, &user_id, ban, membership).await?;
    if let Some(space) = group_space(app, tenant, room).await? {
        let in_space = current_membership(app, &space, &user_id).await?;
        leave_room(app, &space, &user_id, ban, in_space).await?;
    }
    let wanted = BTreeMap::from([(user_id.to_string(), power.users_default)]);
    let writes = write_power_levels(app, &room.room_id, &content, &wanted).await?;
    tracing::info!(room = %room.room_id, ban, power_level_writes = writes, "member removed");
    Ok(())
}

/// What a reconcile request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// Done (or, with `dry_run`, what would be done).
    Applied(ReconcileReport),
    /// More changes than one request may make: nothing changed; the caller queues the reconcile.
    TooLarge(ReconcileReport),
}

/// Makes the room's membership and power levels equal `wanted` (already validated: unique users). Reads the room
/// once, joins with bounded concurrency, kicks, then writes the power levels once. With `dry_run` it only reports;
/// with more joins and kicks than `config.reconcile.inline_changes` it changes nothing and says so.
pub async fn reconcile(
    app: &App,
    tenant: &TenantId,
    room: &RoomRef,
    wanted: &[(UserSlug, Role)],
    dry_run: bool,
    force: bool,
) -> Result<Reconciled, DomainError> {
    let started = Instant::now();
    let _room_lock = if dry_run { None } else { Some(app.container.room_locks.lock(&room.room_id).await) };
    let (view, content) = read_tenant_view(app, tenant, &room.room_id).await?;
    let plan = plan_reconcile(wanted, &view);
    check_last_owner(&view.owners(), &plan.owners_after, force)?;
    // Refused before any join or kick: levels that cannot be written must not leave a half-applied list.
    let levels: BTreeMap<String, i64> = plan
        .levels
        .iter()
        .map(|(user, level)| (app.identities.matrix_user_id(tenant, user).to_string(), *level))
        .collect();
    check_power_levels_size(&content, &levels, app.identities.platform_user_id().as_str())?;
    if dry_run {
        return Ok(Reconciled::Applied(plan.report));
    }
    if plan.joins.len() + plan.kicks.len() + plan.evictions.len() > app.config.reconcile.inline_changes {
        return Ok(Reconciled::TooLarge(plan.report));
    }
    let report = plan.report.clone();
    let writes = apply_plan(app, tenant, room, plan, &content, None).await?;
    log_reconcile(room, wanted.len(), &report, started, writes);
    Ok(Reconciled::Applied(report))
}

/// One slice of a queued reconcile: reads the room again, plans again (sparing the users the service changed since
/// it accepted the reconcile) and applies the plan until `deadline`. `Ok(true)` when the room now equals the list;
/// `Ok(false)` when the rest is for the next slice (each slice starts from what the homeserver says, so a slice
/// cut short or replayed loses nothing and repeats nothing).
pub async fn reconcile_slice(
    app: &App,
    tenant: &TenantId,
    room: &RoomRef,
    wanted: &[(UserSlug, Role)],
    spared: &BTreeSet<UserSlug>,
    force: bool,
    deadline: Instant,
) -> Result<bool, DomainError> {
    let started = Instant::now();
    let _room_lock = app.container.room_locks.lock(&room.room_id).await;
    let (view, content) = read_tenant_view(app, tenant, &room.room_id).await?;
    let plan = plan_reconcile_sparing(wanted, &view, spared);
    check_last_owner(&view.owners(), &plan.owners_after, force)?;
    let report = plan.report.clone();
    let writes = apply_plan(app, tenant, room, plan, &content, Some(deadline)).await?;
    log_reconcile(room, wanted.len(), &report, started, writes);
    Ok(writes.is_some())
}

/// Joins, kicks, then one power-levels write; returns how many power-levels writes it took, or `None` when it
/// stopped starting joins or kicks at `deadline` (the power levels are then left for the next slice).
async fn apply_plan(
    app: &App,
    tenant: &TenantId,
    room: &RoomRef,
    plan: ReconcilePlan,
    content: &Value,
    deadline: Option<Instant>,
) -> Result<Option<usize>, DomainError> {
    let space = match plan.joins.is_empty() && plan.kicks.is_empty() {
        true => None,
        false => group_space(app, tenant, room).await?,
    };
    let space = space.as_deref();
    let joined = run_bounded(plan.joins, MEMBERSHIP_CONCURRENCY, deadline, |planned| async move {
        join(app, tenant, &room.room_id, &planned.user, planned.current).await?;
        match space {
            Some(space) => join_space(app, space, &app.identities.matrix_user_id(tenant, &planned.user)).await,
            None => Ok(()),
        }
    })
    .await?;
    if !joined {
        return Ok(None);
    }
    let kicks = plan.kicks.iter().map(|user| (app.identities.matrix_user_id(tenant, user), space));
    let evictions = plan.evictions.into_iter().map(|stranger| (stranger, None));
    let kicked = run_bounded(
        kicks.chain(evictions).collect(),
        MEMBERSHIP_CONCURRENCY,
        deadline,
        |(user_id, space)| async move {
            room_action(app, &room.room_id, MemberAction::Kick, &user_id).await?;
            match space {
                Some(space) => room_action(app, space, MemberAction::Kick, &user_id).await,
                None => Ok(()),
            }
        },
    )
    .await?;
    if !kicked {
        return Ok(None);
    }
    let levels: BTreeMap<String, i64> = plan
        .levels
        .iter()
        .map(|(user, level)| (app.identities.matrix_user_id(tenant, user).to_string(), *level))
        .collect();
    Ok(Some(write_power_levels(app, &room.room_id, content, &levels).await?))
}

/// `power_level_writes`: `None` when the slice stopped before the power levels.
fn log_reconcile(
    room: &RoomRef,
    listed: usize,
    report: &ReconcileReport,
    started: Instant,
    power_level_writes: Option<usize>,
) {
    tracing::info!(
        room = %room.room_id,
        listed,
        added = report.added.len(),
        removed = report.removed.len(),
        role_changed = report.role_changed.len(),
        unchanged = report.unchanged,
        complete = power_level_writes.is_some(),
        power_level_writes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "members reconciled"
    );
}

/// Everyone with any membership but `leave`, with their roles, read from the homeserver: the tenant's users, and
/// strangers (users of other tenants, other local accounts) who should not be there, so that nobody is hidden.
pub async fn list(app: &App, tenant: &TenantId, room: &RoomRef) -> Result<MemberList, DomainError> {
    let (view, content) = read_tenant_view(app, tenant, &room.room_id).await?;
    let power = PowerLevels::from_content(&content);
    let members = view
        .memberships
        .iter()
        .map(|(user, membership)| MemberView {
            user_id: Some(user.to_string()),
            matrix_user_id: app.identities.matrix_user_id(tenant, user).to_string(),
            role: Role::from_power_level(view.level_of(user)),
            membership: membership.as_str(),
        })
        .chain(view.strangers.iter().map(|(stranger, membership)| MemberView {
            user_id: None,
            matrix_user_id: stranger.to_string(),
            role: Role::from_power_level(power.level_of(stranger.as_str())),
            membership: membership.as_str(),
        }))
        .collect();
    Ok(MemberList { members })
}
