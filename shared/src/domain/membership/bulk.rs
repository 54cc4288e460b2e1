//! The bulk path of the one reconcile, for the cutover (docs/adr/0011-bulk-memberships.md): the same plan as the
//! API's reconcile ([`plan_reconcile`]), applied with one homeserver write per membership and one write in flight
//! per room. The room is read once (members, power levels, join rule; a group's space: members and join rule once
//! too), never per member; the platform's users are taken as provisioned (the cutover's users stage made them).
//!
//! Synapse linearises membership changes per room (`member_linearizer`, keyed by the room id): joins sent at once
//! into one room only queue. So each room's joins go one at a time, in list order, and throughput comes from many
//! rooms at once (the caller's concurrency). A group's space is another room: its joins run beside the group's.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use ruma::events::room::join_rules::{JoinRule, RoomJoinRulesEventContent};
use ruma::{RoomId, UserId};

use super::*;
use crate::app::App;
use crate::domain::DomainError;
use crate::domain::rooms::{self, RoomRef};
use crate::homeserver::{Acting, MemberAction};
use crate::identity::{TenantId, UserSlug};

/// How a user gets into one room with a single write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinPath {
    /// `restricted` to a space the user is in (the tenant's space, joined by the cutover's users stage): the user
    /// joins by appservice masquerade, one `m.room.member` event, a request any generic worker serves.
    Masquerade,
    /// Invite-only: Synapse's admin join, which invites and joins in one request (two events; main process only).
    AdminJoin,
}

impl JoinPath {
    /// The cheapest legal path into a room with this join rule (absent: as invite-only).
    pub fn for_rule(rule: Option<&JoinRule>) -> JoinPath {
        match rule {
            Some(JoinRule::Restricted(_) | JoinRule::KnockRestricted(_) | JoinRule::Public) => JoinPath::Masquerade,
            _ => JoinPath::AdminJoin,
        }
    }
}

/// One room's side of the bulk apply: where it is, how one joins it, who is in it now.
struct Target<'a> {
    room_id: &'a RoomId,
    path: JoinPath,
    current: HashMap<String, Membership>,
}

impl<'a> Target<'a> {
    /// One read of the join rule; the member list is passed in (already read) or read once here.
    async fn read(
        app: &App,
        room_id: &'a RoomId,
        current: Option<HashMap<String, Membership>>,
    ) -> Result<Target<'a>, DomainError> {
        let rule = app.homeserver.state_content(room_id, "m.room.join_rules", "", Acting::Platform).await?;
        let rule = rule.and_then(|content| serde_json::from_value::<RoomJoinRulesEventContent>(content).ok());
        let current = match current {
            Some(current) => current,
            None => (app.homeserver.current_members(room_id).await?.into_iter())
                .filter_map(|(user, state)| Some((user, Membership::from_state(&state)?)))
                .collect(),
        };
        Ok(Target { room_id, path: JoinPath::for_rule(rule.as_ref().map(|c| &c.join_rule)), current })
    }

    fn membership(&self, user_id: &UserId) -> Option<Membership> {
        self.current.get(user_id.as_str()).copied()
    }

    /// Joins each user not joined yet, one at a time: a banned user is unbanned first (the only second write).
    async fn join_all(&self, app: &App, users: &[ruma::OwnedUserId]) -> Result<(), DomainError> {
        for user_id in users {
            match self.membership(user_id) {
                Some(Membership::Join) => continue,
                Some(Membership::Ban) => {
                    app.homeserver.member_action(self.room_id, MemberAction::Unban, user_id).await?;
                }
                _ => {}
            }
            self.join(app, user_id).await?;
        }
        Ok(())
    }

    async fn join(&self, app: &App, user_id: &UserId) -> Result<(), DomainError> {
        if self.path == JoinPath::Masquerade {
            // A join the user is already in is a no-op answered 200; no device is needed (a join makes no
            // transaction), and an unknown one would be refused.
            let acting = Acting::Masquerade { user: user_id, device: None };
            match app.homeserver.join(self.room_id, acting).await {
                Ok(()) => return Ok(()),
                // Not (yet) in the allow-space (a user the users stage has not admitted): the admin join invites.
                Err(error) if error.is_forbidden() => {}
                Err(error) => return Err(error.into()),
            }
        }
        rooms::admin_join(app, self.room_id, user_id).await
    }

    /// Kicks each user who is joined, invited or knocking, one at a time.
    async fn kick_all(&self, app: &App, users: &[ruma::OwnedUserId]) -> Result<(), DomainError> {
        for user_id in users {
            let present =
                matches!(self.membership(user_id), Some(Membership::Join | Membership::Invite | Membership::Knock));
            if present {
                app.homeserver.member_action(self.room_id, MemberAction::Kick, user_id).await?;
            }
        }
        Ok(())
    }
}

/// Makes the room's membership and power levels equal `wanted` (validated: unique users), with no limit on the
/// number of changes (the cutover is the background job) and, when `force`, regardless of the last-owner rule.
/// Reads: the room's members and power levels, its join rule, and for a group its space's members and join rule,
/// once each. Writes: one per join (two for a banned user), one per kick, one power-levels write for the room.
pub async fn reconcile_bulk(
    app: &App,
    tenant: &TenantId,
    room: &RoomRef,
    wanted: &[(UserSlug, Role)],
    force: bool,
) -> Result<ReconcileReport, DomainError> {
    let started = Instant::now();
    let _room_lock = app.container.room_locks.lock(&room.room_id).await;
    let (view, content) = read_tenant_view(app, tenant, &room.room_id).await?;
    let plan = plan_reconcile(wanted, &view);
    check_last_owner(&view.owners(), &plan.owners_after, force)?;
    let user_id = |user: &UserSlug| app.identities.matrix_user_id(tenant, user);
    let levels: BTreeMap<String, i64> =
        plan.levels.iter().map(|(user, level)| (user_id(user).to_string(), *level)).collect();
    check_power_levels_size(&content, &levels, app.identities.platform_user_id().as_str())?;
    let report = plan.report.clone();
    let joins: Vec<_> = plan.joins.iter().map(|planned| user_id(&planned.user)).collect();
    let kicks: Vec<_> = plan.kicks.iter().map(user_id).collect();
    if !joins.is_empty() || !kicks.is_empty() || !plan.evictions.is_empty() {
        let members = view_memberships(app, tenant, &view);
        let target = Target::read(app, &room.room_id, Some(members)).await?;
        let space = match joins.is_empty() && kicks.is_empty() {
            true => None,
            false => group_space(app, tenant, room).await?,
        };
        let space = match &space {
            Some(space) => Some(Target::read(app, space, None).await?),
            None => None,
        };
        // The room and its space are two rooms: one writer each, side by side.
        let in_room = async {
            target.join_all(app, &joins).await?;
            let mut leaving = kicks.clone();
            leaving.extend(plan.evictions.iter().cloned());
            target.kick_all(app, &leaving).await
        };
        let in_space = async {
            match &space {
                Some(space) => {
                    space.join_all(app, &joins).await?;
                    space.kick_all(app, &kicks).await
                }
                None => Ok(()),
            }
        };
        tokio::try_join!(in_room, in_space)?;
    }
    let writes = write_power_levels(app, &room.room_id, &content, &levels).await?;
    tracing::info!(
        room = %room.room_id,
        listed = wanted.len(),
        added = report.added.len(),
        removed = report.removed.len(),
        role_changed = report.role_changed.len(),
        unchanged = report.unchanged,
        power_level_writes = writes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "members reconciled (bulk)"
    );
    Ok(report)
}

/// The tenant view's memberships back as Matrix ids (strangers included), so the room's members are read once.
fn view_memberships(app: &App, tenant: &TenantId, view: &TenantView) -> HashMap<String, Membership> {
    let users = view
        .memberships
        .iter()
        .map(|(user, membership)| (app.identities.matrix_user_id(tenant, user).to_string(), *membership));
    let strangers = view.strangers.iter().map(|(user, membership)| (user.to_string(), *membership));
    users.chain(strangers).collect()
}

#[cfg(test)]
mod tests {
    use ruma::events::room::join_rules::{AllowRule, Restricted};
    use ruma::owned_room_id;

    use super::*;

    #[test]
    fn rooms_restricted_to_a_space_take_one_masquerade_join_and_invite_only_rooms_the_admin_join() {
        let space = Restricted::new(vec![AllowRule::room_membership(owned_room_id!("!space:x"))]);
        assert_eq!(JoinPath::for_rule(Some(&JoinRule::Restricted(space))), JoinPath::Masquerade);
        assert_eq!(JoinPath::for_rule(Some(&JoinRule::Public)), JoinPath::Masquerade);
        assert_eq!(JoinPath::for_rule(Some(&JoinRule::Invite)), JoinPath::AdminJoin);
        assert_eq!(JoinPath::for_rule(None), JoinPath::AdminJoin, "an unreadable rule is taken as invite-only");
    }
}
