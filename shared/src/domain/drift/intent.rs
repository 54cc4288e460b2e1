//! Recording the desired state where the service changes a room: ensure (settings), cancel/archive (lifecycle),
//! purge (forgotten), member changes and reconciles (members). Versions are the acceptance time in ms
//! (`operations::now_version`), the same stamps the queued member changes carry, so a queued change replayed late
//! never overwrites a newer intent.

use std::collections::BTreeMap;

use crate::app::App;
use crate::aws::desired_state::{DesiredStates, EventTimes, RoomKey, RoomSettings};
use crate::domain::DomainError;
use crate::domain::membership::Role;
use crate::domain::room_lifecycle::{RoomSpec, Visibility};
use crate::domain::room_policy::{Admission, join_rules};
use crate::domain::{rooms, tenancy};
use crate::identity::{RoomKind, Slug, TenantId, UserSlug};

pub fn key(tenant: &TenantId, kind: &str, slug: &str) -> RoomKey {
    RoomKey { tenant: tenant.to_string(), kind: kind.to_owned(), slug: slug.to_owned() }
}

/// Records the settings of a room just ensured (its space and the tenant's are cached by the ensure: no extra
/// homeserver request in the common case).
pub async fn record_room(
    app: &App,
    tenant: &TenantId,
    kind: RoomKind,
    slug: &Slug,
    room_id: &str,
    spec: &RoomSpec,
    version: u64,
) -> Result<(), DomainError> {
    let admission = match spec.visibility {
        Visibility::Public => tenancy::public_admission(app, tenant).await?,
        Visibility::Private => Admission::InviteOnly,
    };
    let parent_slug = match kind {
        RoomKind::Group => Some(slug.clone()),
        RoomKind::Event => spec.group.clone(),
    };
    let parent = match parent_slug {
        Some(group) => rooms::lookup_alias(app, &app.identities.space_alias(tenant, &group)).await?,
        None => None,
    };
    let settings = RoomSettings {
        room_id: room_id.to_owned(),
        name: spec.name.clone(),
        // Recorded in its wire form, as the drift pass compares it with the room's.
        join_rules: serde_json::to_value(join_rules(&admission)).map_err(|_| DomainError::Internal)?,
        parent: parent.map(|p| p.to_string()),
        event: spec.event.as_ref().map(|e| EventTimes { starts_at: e.starts_at.clone(), ends_at: e.ends_at.clone() }),
    };
    let key = key(tenant, kind.path_segment(), slug.as_str());
    DesiredStates(&app.store).put_settings(&key, &settings, version).await?;
    Ok(())
}

/// Records a lifecycle change (`cancelled`, `archived`) of a recorded room.
pub async fn record_lifecycle(
    app: &App,
    tenant: &TenantId,
    kind: RoomKind,
    slug: &Slug,
    lifecycle: &str,
    version: u64,
    at_secs: u64,
) -> Result<(), DomainError> {
    let key = key(tenant, kind.path_segment(), slug.as_str());
    DesiredStates(&app.store).put_lifecycle(&key, lifecycle, version, at_secs).await?;
    Ok(())
}

/// A purged room is no longer managed.
pub async fn forget_room(app: &App, tenant: &TenantId, kind: RoomKind, slug: &Slug) -> Result<(), DomainError> {
    DesiredStates(&app.store).forget(&key(tenant, kind.path_segment(), slug.as_str())).await?;
    Ok(())
}

/// Records one member's change: `Some(role)` put, `None` removed.
pub async fn record_member(
    app: &App,
    tenant: &TenantId,
    kind: &str,
    slug: &str,
    user: &UserSlug,
    role: Option<Role>,
    version: u64,
) -> Result<(), DomainError> {
    let key = key(tenant, kind, slug);
    DesiredStates(&app.store).put_member(&key, user.as_str(), role.map(Role::as_str), version).await?;
    Ok(())
}

/// Records a reconcile's whole list.
pub async fn record_roster(
    app: &App,
    tenant: &TenantId,
    kind: &str,
    slug: &str,
    wanted: &[(UserSlug, Role)],
    version: u64,
) -> Result<(), DomainError> {
    let mut roster: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (user, role) in wanted {
        roster.entry(role.as_str().to_owned()).or_default().push(user.to_string());
    }
    DesiredStates(&app.store).put_roster(&key(tenant, kind, slug), &roster, version).await?;
    Ok(())
}
