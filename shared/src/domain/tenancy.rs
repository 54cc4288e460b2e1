//! Tenants at the homeserver (docs/adr/0003-tenant-walls.md). Each tenant has one space that every provisioned user
//! of the tenant joins; the tenant's public rooms admit that space's members through `restricted` join rules, so
//! "public" means tenant-public with any token. The tenant-walls Synapse module refuses the rest.
//!
//! [`upgrade_all`] carries rooms made before the walls over: the one-shot `openmeet-local ops upgrade-rooms`.

use std::collections::BTreeSet;

use ruma::events::EmptyStateKey;
use ruma::events::room::join_rules::{JoinRule, RoomJoinRulesEventContent};
use ruma::events::room::member::MembershipState;
use ruma::{OwnedRoomId, UserId};
use serde_json::Value;

use crate::app::App;
use crate::domain::DomainError;
use crate::domain::platform;
use crate::domain::roles::Role;
use crate::domain::room_policy::{
    self, Admission, Creation, META_EVENT, converge_power_levels, initial_power_levels, join_rule,
};
use crate::domain::rooms;
use crate::homeserver::{RoomState, Visibility};
use crate::identity::{Slug, TenantId};

/// The tenant's space, created on first use. Nobody posts in it (events at owner level).
pub async fn tenant_space(app: &App, tenant: &TenantId) -> Result<OwnedRoomId, DomainError> {
    let alias = app.identities.tenant_space_alias(tenant);
    let request = room_policy::creation_request(Creation {
        alias: &alias,
        name: tenant.as_str(),
        topic: Some("Everyone in this OpenMeet community"),
        is_space: true,
        admission: Admission::InviteOnly,
        meta: room_policy::meta(tenant.as_str(), "tenant", None),
        extra_state: Vec::new(),
        power_levels: initial_power_levels(Role::Owner.power_level()),
    })?;
    Ok(rooms::find_or_create(app, &alias, request).await?.0)
}

/// Puts a provisioned user into their tenant's space: from then on they may join the tenant's public rooms.
pub async fn admit(app: &App, tenant: &TenantId, user_id: &UserId) -> Result<(), DomainError> {
    let space = tenant_space(app, tenant).await?;
    // A space that another request is creating right now is published before its creator has joined it: until
    // then reads and joins of it are refused (403), as `room_lifecycle::settled_state` waits out for state reads.
    for _ in 0..30 {
        match join_space(app, &space, user_id).await {
            Err(error) if error.is_refusal(403) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
    join_space(app, &space, user_id).await
}

/// A read first: joins into one room are serialised by the homeserver, and a tenant's space is the one room every
/// admission touches, so the already-joined case must not queue for it.
async fn join_space(app: &App, space: &OwnedRoomId, user_id: &UserId) -> Result<(), DomainError> {
    if rooms::membership_of(app, space, user_id.as_str()).await? == Some(MembershipState::Join) {
        return Ok(());
    }
    rooms::admin_join(app, space, user_id).await
}

/// How a public room of the tenant admits people.
pub async fn public_admission(app: &App, tenant: &TenantId) -> Result<Admission, DomainError> {
    Ok(Admission::MembersOf(tenant_space(app, tenant).await?))
}

/// Brings a managed room's platform-owned settings to policy: power levels, join rules, its tenant in the metadata,
/// out of the server-wide directory. Writes only what differs; returns how many writes it made.
pub async fn converge_room(
    app: &App,
    room_id: &str,
    state: &RoomState,
    admission: &Admission,
    meta: &Value,
) -> Result<usize, DomainError> {
    let mut writes = 0;
    let current = |event_type: &str| state.single(event_type);
    if let Some(levels) = current("m.room.power_levels").and_then(converge_power_levels) {
        platform::put_state(app, room_id, "m.room.power_levels", "", &levels).await?;
        writes += 1;
    }
    let rule = join_rule(admission);
    if state.typed::<RoomJoinRulesEventContent>("").map(|rules| rules.join_rule) != Some(rule.clone()) {
        platform::put_typed_state(app, room_id, &EmptyStateKey, &RoomJoinRulesEventContent::new(rule)).await?;
        writes += 1;
    }
    let mut wanted_meta =
        current(META_EVENT).filter(|m| m.is_object()).cloned().unwrap_or_else(|| Value::Object(Default::default()));
    if let Some(fields) = meta.as_object() {
        for (key, value) in fields {
            wanted_meta.as_object_mut().map(|m| m.entry(key.clone()).or_insert_with(|| value.clone()));
        }
    }
    if current(META_EVENT) != Some(&wanted_meta) {
        platform::put_state(app, room_id, META_EVENT, "", &wanted_meta).await?;
        writes += 1;
    }
    if unpublish(app, room_id).await? {
        writes += 1;
    }
    Ok(writes)
}

/// Takes the room out of the server-wide directory; `true` when it was listed.
pub async fn unpublish(app: &App, room_id: &str) -> Result<bool, DomainError> {
    let room = crate::homeserver::room_id(room_id)?;
    if app.homeserver.directory_visibility(&room).await? == Visibility::Private {
        return Ok(false);
    }
    app.homeserver.unlist_room(room_id).await?;
    Ok(true)
}

/// What a managed room's canonical alias says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagedRoom {
    TenantSpace(TenantId),
    GroupSpace(TenantId, Slug),
    Group(TenantId, Slug),
    Event(TenantId, Slug),
    Direct(TenantId),
}

impl ManagedRoom {
    /// `#<prefix><tenant>.<kind>[.<slug>]:<server>`; `None` for any other alias.
    pub fn from_alias(prefix: &str, server_name: &str, alias: &str) -> Option<ManagedRoom> {
        let localpart = alias.strip_prefix('#')?.strip_suffix(server_name)?.strip_suffix(':')?;
        let (tenant, rest) = localpart.strip_prefix(prefix)?.split_once('.')?;
        let tenant = TenantId::parse(tenant).ok()?;
        if rest == "tenant" {
            return Some(ManagedRoom::TenantSpace(tenant));
        }
        let (kind, slug) = rest.split_once('.')?;
        match kind {
            "direct" => Some(ManagedRoom::Direct(tenant)),
            "space" => Some(ManagedRoom::GroupSpace(tenant, Slug::parse(slug).ok()?)),
            "group" => Some(ManagedRoom::Group(tenant, Slug::parse(slug).ok()?)),
            "event" => Some(ManagedRoom::Event(tenant, Slug::parse(slug).ok()?)),
            _ => None,
        }
    }

    fn tenant(&self) -> &TenantId {
        match self {
            ManagedRoom::TenantSpace(t)
            | ManagedRoom::GroupSpace(t, _)
            | ManagedRoom::Group(t, _)
            | ManagedRoom::Event(t, _)
            | ManagedRoom::Direct(t) => t,
        }
    }

    fn meta(&self) -> Value {
        let (kind, slug) = match self {
            ManagedRoom::TenantSpace(_) => ("tenant", None),
            ManagedRoom::GroupSpace(_, s) => ("space", Some(s)),
            ManagedRoom::Group(_, s) => ("group", Some(s)),
            ManagedRoom::Event(_, s) => ("event", Some(s)),
            ManagedRoom::Direct(_) => ("direct", None),
        };
        room_policy::meta(self.tenant().as_str(), kind, slug.map(Slug::as_str))
    }
}

/// What `upgrade-rooms` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UpgradeReport {
    pub rooms_seen: usize,
    pub rooms_changed: usize,
    pub writes: usize,
    pub users_admitted: usize,
    pub space_members_added: usize,
    /// Members of other tenants (joined, invited or knocking before the walls) removed: (room, user).
    pub foreign_members_removed: Vec<(String, String)>,
    /// Rooms that could not be upgraded, with the reason (a room being created or deleted right now, say).
    pub failed: Vec<(String, String)>,
}

/// Every room the platform created under its namespace, read with the admin room list.
async fn managed_rooms(app: &App) -> Result<Vec<(OwnedRoomId, ManagedRoom)>, DomainError> {
    let platform = app.identities.platform_user_id();
    let prefix = app.config.user_prefix.clone();
    let mut found = Vec::new();
    let mut from = 0u64;
    loop {
        let page = app.homeserver.admin_rooms_page(from, 500).await?;
        for room in &page.rooms {
            let managed = room
                .canonical_alias
                .as_deref()
                .and_then(|alias| ManagedRoom::from_alias(&prefix, app.identities.server_name(), alias));
            if let (Some(managed), Some(platform_created)) =
                (managed, room.creator.as_deref().map(|c| c == platform.as_str()))
                && platform_created
                && let Ok(room_id) = OwnedRoomId::try_from(room.room_id.as_str())
            {
                found.push((room_id, managed));
            }
        }
        match page.next_batch {
            Some(next) if next > from => from = next,
            _ => return Ok(found),
        }
    }
}

/// Members (joined, invited, knocking) of a managed room who do not belong to its tenant: users of this deployment's
/// namespace of another tenant (placeholders included: the tenant is read from the localpart, as the walls module
/// does) and namespace look-alikes of other servers. The platform user and non-namespace users are left alone.
fn foreign_members(app: &App, tenant: &TenantId, state: &RoomState) -> Vec<ruma::OwnedUserId> {
    let (prefix, server) = (app.config.user_prefix.as_str(), app.identities.server_name());
    state
        .memberships()
        .filter(|(_, membership)| {
            matches!(membership, MembershipState::Join | MembershipState::Invite | MembershipState::Knock)
        })
        .filter_map(|(user, _)| UserId::parse(user).ok())
        .filter(|user| is_foreign(prefix, server, tenant, user) && *user != app.identities.platform_user_id())
        .collect()
}

/// Whether a namespaced user belongs to another tenant (or to another server) than `tenant`.
fn is_foreign(prefix: &str, server_name: &str, tenant: &TenantId, user: &UserId) -> bool {
    let Some(rest) = user.localpart().strip_prefix(prefix) else { return false };
    let owner = rest.split_once('.').map(|(owner, _)| owner);
    user.server_name().as_str() != server_name || owner != Some(tenant.as_str())
}

fn joined_tenant_users(app: &App, tenant: &TenantId, state: &RoomState) -> BTreeSet<ruma::OwnedUserId> {
    state
        .joined()
        .filter_map(|user| UserId::parse(user).ok())
        .filter(|user| app.identities.openmeet_user(user).is_some_and(|(owner, _)| owner == *tenant))
        .collect()
}

/// The one-shot migration (of one tenant, or of all): every managed room gets the walls' power levels, join rules
/// and metadata; every user found in a tenant's rooms joins the tenant's space; every member of a group room joins
/// the group's space. A room that fails is reported and the others go on. Safe to run again: a second run writes
/// nothing.
pub async fn upgrade_all(app: &App, only: Option<&TenantId>) -> Result<UpgradeReport, DomainError> {
    let mut report = UpgradeReport::default();
    let rooms = managed_rooms(app).await?;
    let mut admitted: BTreeSet<ruma::OwnedUserId> = BTreeSet::new();
    for (room_id, managed) in rooms {
        if only.is_some_and(|tenant| tenant != managed.tenant()) {
            continue;
        }
        report.rooms_seen += 1;
        if let Err(error) = upgrade_room(app, &room_id, &managed, &mut admitted, &mut report).await {
            report.failed.push((room_id.to_string(), error.to_string()));
        }
    }
    Ok(report)
}

async fn upgrade_room(
    app: &App,
    room_id: &OwnedRoomId,
    managed: &ManagedRoom,
    admitted: &mut BTreeSet<ruma::OwnedUserId>,
    report: &mut UpgradeReport,
) -> Result<(), DomainError> {
    let tenant = managed.tenant().clone();
    let state = platform::room_state(app, room_id.as_str()).await?;
    // Walls first: members of other tenants let in before them leave before the room is converged.
    for user in foreign_members(app, &tenant, &state) {
        app.homeserver.kick(room_id, &user, "not a member of this room's community").await?;
        report.foreign_members_removed.push((room_id.to_string(), user.to_string()));
    }
    let open = state.typed::<RoomJoinRulesEventContent>("").is_some_and(|rules| rules.join_rule != JoinRule::Invite);
    let admission = match managed {
        ManagedRoom::GroupSpace(..) | ManagedRoom::Group(..) | ManagedRoom::Event(..) if open => {
            public_admission(app, &tenant).await?
        }
        _ => Admission::InviteOnly,
    };
    let writes = converge_room(app, room_id.as_str(), &state, &admission, &managed.meta()).await?;
    report.writes += writes;
    report.rooms_changed += usize::from(writes > 0);
    let members = joined_tenant_users(app, &tenant, &state);
    for user in &members {
        if admitted.insert(user.clone()) {
            admit(app, &tenant, user).await?;
            report.users_admitted += 1;
        }
    }
    if let ManagedRoom::Group(_, slug) = managed
        && let Some(space) = rooms::lookup_alias(app, &app.identities.space_alias(&tenant, slug)).await?
    {
        let space_members = joined_tenant_users(app, &tenant, &platform::room_state(app, space.as_str()).await?);
        for user in members.difference(&space_members) {
            rooms::admin_join(app, &space, user).await?;
            report.space_members_added += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn managed_aliases_are_recognised_and_others_are_not() {
        let parse = |alias: &str| ManagedRoom::from_alias("om_", "localhost", alias);
        let t = TenantId::parse("acme").expect("tenant");
        let slug = |s: &str| Slug::parse(s).expect("slug");
        assert_eq!(parse("#om_acme.tenant:localhost"), Some(ManagedRoom::TenantSpace(t.clone())));
        assert_eq!(parse("#om_acme.group.chess:localhost"), Some(ManagedRoom::Group(t.clone(), slug("chess"))));
        assert_eq!(parse("#om_acme.space.chess:localhost"), Some(ManagedRoom::GroupSpace(t.clone(), slug("chess"))));
        assert_eq!(parse("#om_acme.event.a.b:localhost"), Some(ManagedRoom::Event(t.clone(), slug("a.b"))));
        assert_eq!(parse("#om_acme.direct.a=b:localhost"), Some(ManagedRoom::Direct(t)));
        assert_eq!(parse("#om_acme.group.chess:elsewhere"), None);
        assert_eq!(parse("#general:localhost"), None);
        assert_eq!(parse("#om_acme.team.x:localhost"), None);
    }

    #[test]
    fn members_of_other_tenants_are_foreign_and_the_tenants_own_are_not() {
        let acme = TenantId::parse("acme").expect("tenant");
        let foreign = |user: &str| is_foreign("om_", "localhost", &acme, &UserId::parse(user).expect("user id"));
        assert!(!foreign("@om_acme.alice:localhost"));
        assert!(!foreign("@om_acme.zulip=7:localhost"), "the tenant's own placeholder");
        assert!(!foreign("@openmeet:localhost"), "outside the namespace");
        assert!(foreign("@om_globex.alice:localhost"));
        assert!(foreign("@om_globex.zulip=7:localhost"));
        assert!(foreign("@om_acme.alice:evil.example"), "a look-alike of another server");
        assert!(foreign("@om_acmeco.alice:localhost"));
    }

    #[test]
    fn metadata_names_tenant_kind_and_slug() {
        let room = ManagedRoom::Group(TenantId::parse("acme").expect("t"), Slug::parse("chess").expect("s"));
        assert_eq!(room.meta(), json!({"tenant": "acme", "kind": "group", "slug": "chess"}));
    }
}
