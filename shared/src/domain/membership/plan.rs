//! Pure decisions: what a change or a reconcile must do, decided before anything is done.

use std::collections::{BTreeMap, BTreeSet};

use ruma::OwnedUserId;

use super::*;
use crate::domain::DomainError;
use crate::identity::UserSlug;

/// Refuses a change that takes the room from at least one owner to none, unless forced.
pub fn check_last_owner(
    owners_before: &BTreeSet<UserSlug>,
    owners_after: &BTreeSet<UserSlug>,
    force: bool,
) -> Result<(), DomainError> {
    if force || owners_before.is_empty() || !owners_after.is_empty() {
        return Ok(());
    }
    Err(DomainError::conflict(
        "last_owner",
        "this would leave the room without an owner; make someone else owner first, or pass force=true",
    ))
}

/// What the room looks like, restricted to the users one tenant manages.
#[derive(Debug, Clone, Default)]
pub struct TenantView {
    /// Every membership but `leave` (a user who left has none).
    pub memberships: BTreeMap<UserSlug, Membership>,
    /// Effective level of every user with an explicit entry.
    pub levels: BTreeMap<UserSlug, i64>,
    pub users_default: i64,
    /// Everyone else in the room (joined, invited or knocking) but the platform: users of other tenants, or local
    /// accounts that are no OpenMeet users. Nobody put them there; a reconcile removes them.
    pub strangers: BTreeMap<OwnedUserId, Membership>,
}

impl TenantView {
    pub fn level_of(&self, user: &UserSlug) -> i64 {
        self.levels.get(user).copied().unwrap_or(self.users_default)
    }

    pub fn membership_of(&self, user: &UserSlug) -> Option<Membership> {
        self.memberships.get(user).copied()
    }

    /// Joined or invited users at owner level.
    pub fn owners(&self) -> BTreeSet<UserSlug> {
        self.memberships
            .iter()
            .filter(|(user, membership)| membership.is_member() && self.level_of(user) >= Role::Owner.power_level())
            .map(|(user, _)| user.clone())
            .collect()
    }
}

/// A join to perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedJoin {
    pub user: UserSlug,
    /// The membership now; `Ban` must be lifted before the join.
    pub current: Option<Membership>,
}

/// Everything a reconcile changes, decided before anything does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcilePlan {
    pub joins: Vec<PlannedJoin>,
    pub kicks: Vec<UserSlug>,
    /// Strangers to remove, whatever their tenant.
    pub evictions: Vec<OwnedUserId>,
    /// Users whose effective level must become this (`users_default` means: drop the entry).
    pub levels: BTreeMap<UserSlug, i64>,
    pub report: ReconcileReport,
    pub owners_after: BTreeSet<UserSlug>,
}

/// The diff between the room's membership (restricted to the tenant's users) and the wanted list: joined users
/// not listed are kicked (invited ones too: their invite is withdrawn), listed users who are not joined are joined,
/// and every listed user's effective level becomes exactly their role's. Stale entries of users who are not
/// members and not listed are dropped too, so that afterwards the power levels equal the list exactly; banned
/// users not listed stay banned. Only users with something to change cost a homeserver call.
pub fn plan_reconcile(wanted: &[(UserSlug, Role)], room: &TenantView) -> ReconcilePlan {
    plan_reconcile_sparing(wanted, room, &BTreeSet::new())
}

/// [`plan_reconcile`] leaving `spared` users exactly as they are (listed or not): a queued reconcile must not undo
/// a member change the service made after accepting it.
pub fn plan_reconcile_sparing(
    wanted: &[(UserSlug, Role)],
    room: &TenantView,
    spared: &BTreeSet<UserSlug>,
) -> ReconcilePlan {
    let mut plan = ReconcilePlan::default();
    let listed: BTreeSet<&UserSlug> = wanted.iter().map(|(user, _)| user).chain(spared).collect();
    plan.owners_after = room.owners().intersection(spared).cloned().collect();
    for (user, role) in wanted.iter().filter(|(user, _)| !spared.contains(user)) {
        let level_now = room.level_of(user);
        let membership = room.membership_of(user);
        if role.power_level() != level_now {
            plan.levels.insert(user.clone(), role.power_level());
        }
        if *role == Role::Owner {
            plan.owners_after.insert(user.clone());
        }
        if membership == Some(Membership::Join) {
            if role.power_level() == level_now {
                plan.report.unchanged += 1;
            } else {
                plan.report.role_changed.push(user.to_string());
            }
        } else {
            plan.joins.push(PlannedJoin { user: user.clone(), current: membership });
            plan.report.added.push(user.to_string());
        }
    }
    for (user, membership) in &room.memberships {
        if membership.is_member() && !listed.contains(user) {
            plan.kicks.push(user.clone());
            plan.report.removed.push(user.to_string());
        }
    }
    for (stranger, membership) in &room.strangers {
        if membership.is_member() {
            plan.evictions.push(stranger.clone());
            plan.report.removed.push(stranger.to_string());
        }
    }
    for user in room.levels.keys() {
        if !listed.contains(user) && room.level_of(user) != room.users_default {
            plan.levels.insert(user.clone(), room.users_default);
        }
    }
    plan.report.added.sort();
    plan.report.removed.sort();
    plan.report.role_changed.sort();
    plan
}
