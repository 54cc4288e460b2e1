//! Group and event rooms: ensure-by-alias, settings that fit the visibility, event updates and cancellation,
//! archive and purge.
//!
//! The canonical alias is a room's identity and the homeserver is the source of truth: a room's OpenMeet metadata
//! (kind, slug, lifecycle state, event times) lives in its `org.openmeet.room` state event, so nothing here depends
//! on DynamoDB surviving. Ensuring a room that exists converges its state to the request, which also finishes a
//! room half-created by a crash.

use std::time::Duration;

use ruma::OwnedRoomId;
use ruma::events::space::child::SpaceChildEventContent;
use serde_json::{Value, json};

use crate::app::App;
use crate::domain::DomainError;
use crate::domain::platform;
use crate::domain::roles::PowerLevels;
use crate::domain::room_policy::{
    Admission, converge_power_levels, initial_power_levels, is_policy_child, space_child,
};
use crate::domain::rooms::{self, RoomRef};
use crate::domain::tenancy;
use crate::homeserver::RoomState;
use crate::identity::{RoomKind, Slug, TenantId};

mod spec;
mod state;
#[cfg(test)]
mod tests;

pub use spec::*;
pub use state::*;

pub use crate::domain::room_policy::META_EVENT;

/// Ensures the room of a group (with its space) or an event. `true` when the room was created now.
pub async fn ensure(
    app: &App,
    tenant: &TenantId,
    kind: RoomKind,
    slug: &Slug,
    spec: RoomSpec,
) -> Result<(RoomView, bool), DomainError> {
    let admission = match spec.visibility {
        Visibility::Public => tenancy::public_admission(app, tenant).await?,
        Visibility::Private => Admission::InviteOnly,
    };
    let parent = match (kind, &spec.group) {
        (RoomKind::Group, _) => {
            let space_alias = app.identities.space_alias(tenant, slug);
            let request = space_creation_request(&space_alias, &spec, tenant, slug, &admission)?;
            Some(rooms::find_or_create(app, &space_alias, request).await?.0)
        }
        (RoomKind::Event, Some(group)) => {
            let space_alias = app.identities.space_alias(tenant, group);
            Some(rooms::lookup_alias(app, &space_alias).await?.ok_or_else(|| {
                DomainError::conflict("conflict", format!("the group {group} has no room yet; ensure it first"))
            })?)
        }
        (RoomKind::Event, None) => None,
    };
    let alias = app.identities.room_alias(tenant, kind, slug);
    let server = app.identities.server_name().to_owned();
    let owner = (tenant, kind, slug);
    let request = room_creation_request(&alias, &spec, owner, &admission, parent.as_ref(), &server)?;
    let (room_id, created) = rooms::find_or_create(app, &alias, request).await?;
    let state = settled_state(app, room_id.as_str()).await?;
    let lifecycle = lifecycle_of(&state);
    if !created && lifecycle != Lifecycle::Active {
        return Err(DomainError::conflict("conflict", format!("this room is \"{}\"", lifecycle.as_str())));
    }
    if let (false, Some(new)) = (created, &spec.event) {
        let old_name = name_of(&state);
        if let Some(text) = describe_change(old_name.as_deref(), event_details_of(&state).as_ref(), &spec.name, new) {
            // Before the state changes: a retry after a crash recomputes the same change and the same txn id.
            let old = serde_json::to_string(&event_details_of(&state)).unwrap_or_default();
            let txn =
                format!("om-update-{}", digest(&[room_id.as_str(), old_name.as_deref().unwrap_or(""), &old, &text]));
            platform::send_notice(app, room_id.as_str(), &txn, &text).await?;
        }
    }
    let desired = desired_state(&spec, owner, &alias, lifecycle, &admission, parent.as_ref(), &server);
    converge(app, room_id.as_str(), &state, desired).await?;
    tenancy::unpublish(app, room_id.as_str()).await?;
    if let Some(parent) = &parent {
        let parent_state = settled_state(app, parent.as_str()).await?;
        if kind == RoomKind::Group {
            // The group's space follows the group's name, topic and visibility as its chat room does.
            converge(app, parent.as_str(), &parent_state, space_state(&spec, &admission)).await?;
        }
        let linked = parent_state
            .typed::<SpaceChildEventContent>(room_id.as_str())
            .is_some_and(|link| is_policy_child(&link, &server));
        if !linked {
            platform::put_typed_state(app, parent.as_str(), &*room_id, &space_child(&server)?).await?;
        }
    }
    let room = RoomRef { kind, slug: slug.clone(), alias, room_id };
    Ok((view(app, &room).await?, created))
}

/// Writes the desired state that differs, and brings power levels made before the tenant walls to policy (so old
/// rooms migrate on their next ensure).
async fn converge(
    app: &App,
    room_id: &str,
    state: &RoomState,
    desired: Vec<(String, String, Value)>,
) -> Result<(), DomainError> {
    if let Some(levels) = state.single("m.room.power_levels").and_then(converge_power_levels) {
        platform::put_state(app, room_id, "m.room.power_levels", "", &levels).await?;
    }
    for (event_type, key, content) in state_changes(state, desired) {
        platform::put_state(app, room_id, &event_type, &key, &content).await?;
    }
    Ok(())
}

/// The room's state once its creation has finished: Synapse publishes the alias while `createRoom` is still
/// running, and until the creator's join lands even the creator is refused (403).
pub async fn settled_state(app: &App, room_id: &str) -> Result<RoomState, DomainError> {
    for _ in 0..50 {
        match platform::room_state(app, room_id).await {
            Err(error) if error.is_refusal(403) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
    platform::room_state(app, room_id).await
}

/// Raises `events_default` so members can no longer post, react or redact (never lowers it); a room made before
/// reactions followed `events_default` is brought to policy on the way.
async fn restrict_posting(app: &App, room_id: &str, lifecycle: Lifecycle) -> Result<(), DomainError> {
    let state = platform::room_state(app, room_id).await?;
    let mut levels = state.single("m.room.power_levels").cloned().unwrap_or_else(|| initial_power_levels(0));
    let converged = converge_power_levels(&levels);
    let current = PowerLevels::from_content(&levels).events_default.unwrap_or(0);
    if current >= lifecycle.events_default() && converged.is_none() {
        return Ok(());
    }
    if let Some(converged) = converged {
        levels = converged;
    }
    levels["events_default"] = json!(current.max(lifecycle.events_default()));
    platform::put_state(app, room_id, "m.room.power_levels", "", &levels).await
}

async fn set_lifecycle(app: &App, room_id: &str, lifecycle: Lifecycle) -> Result<(), DomainError> {
    let state = platform::room_state(app, room_id).await?;
    let mut meta = state.single(META_EVENT).cloned().unwrap_or_else(|| json!({}));
    if meta.get("state") == Some(&json!(lifecycle)) {
        return Ok(());
    }
    meta["state"] = json!(lifecycle);
    platform::put_state(app, room_id, META_EVENT, "", &meta).await
}

/// Cancels an event: one notice, members can no longer post, state `cancelled`. Repeats change nothing.
pub async fn cancel(app: &App, tenant: &TenantId, slug: &Slug, input: CancelInput) -> Result<RoomView, DomainError> {
    let reason = input.reason.as_deref().map(|r| check_text("reason", r, 1024)).transpose()?;
    let room = rooms::resolve(app, tenant, RoomKind::Event, slug).await?;
    let state = match platform::room_state(app, room.room_id.as_str()).await {
        // The platform created the room and never leaves it: it is refused only while a purge is under way (the
        // alias still resolves until the purge ends) or before its creation has finished. A conflict, not a 502.
        Err(error) if error.is_refusal(403) => {
            return Err(DomainError::conflict("conflict", "the event's room is being deleted or created; try again"));
        }
        other => other?,
    };
    match lifecycle_of(&state) {
        Lifecycle::Archived => return Err(DomainError::conflict("conflict", "this room is archived")),
        Lifecycle::Cancelled => return view(app, &room).await,
        Lifecycle::Active => {}
    }
    let text = match &reason {
        Some(reason) => format!("This event has been cancelled. Reason: {reason}"),
        None => "This event has been cancelled.".to_owned(),
    };
    let txn = format!("om-cancel-{}", digest(&[room.room_id.as_str()]));
    platform::send_notice(app, room.room_id.as_str(), &txn, &text).await?;
    restrict_posting(app, room.room_id.as_str(), Lifecycle::Cancelled).await?;
    set_lifecycle(app, room.room_id.as_str(), Lifecycle::Cancelled).await?;
    view(app, &room).await
}

/// Archives (read-only, out of the directory, history kept) or purges a room. A missing room is already gone.
pub async fn delete(
    app: &App,
    tenant: &TenantId,
    kind: RoomKind,
    slug: &Slug,
    mode: DeleteMode,
) -> Result<(), DomainError> {
    let alias = app.identities.room_alias(tenant, kind, slug);
    let space = (kind == RoomKind::Group).then(|| app.identities.space_alias(tenant, slug));
    let Some(room_id) = rooms::lookup_alias(app, &alias).await? else {
        return Ok(());
    };
    match mode {
        DeleteMode::Archive => {
            restrict_posting(app, room_id.as_str(), Lifecycle::Archived).await?;
            tenancy::unpublish(app, room_id.as_str()).await?;
            set_lifecycle(app, room_id.as_str(), Lifecycle::Archived).await?;
        }
        DeleteMode::Purge => {
            let mut targets = vec![(alias, room_id)];
            if let Some(space) = space
                && let Some(space_id) = rooms::lookup_alias(app, &space).await?
            {
                targets.push((space, space_id));
            }
            for (alias, room_id) in targets {
                purge(app, &room_id).await?;
                rooms::forget_alias(app, &alias).await?;
            }
        }
    }
    Ok(())
}

/// Deletes the room through the admin API. Deletion runs in the background on the homeserver; its aliases go
/// first, so the next ensure creates a new room.
async fn purge(app: &App, room_id: &OwnedRoomId) -> Result<(), DomainError> {
    // Aliases are removed explicitly so the slug is free again at once, whatever the background deletion's pace.
    if let Ok(aliases) = app.homeserver.room_aliases(room_id).await {
        for alias in aliases {
            app.homeserver.delete_alias(&alias).await?;
        }
    }
    Ok(app.homeserver.purge_room(room_id).await?)
}

/// The room object, read from the homeserver.
pub async fn view(app: &App, room: &RoomRef) -> Result<RoomView, DomainError> {
    let state = platform::room_state(app, room.room_id.as_str()).await?;
    Ok(RoomView {
        kind: room.kind.path_segment(),
        slug: room.slug.to_string(),
        room_id: room.room_id.to_string(),
        alias: Some(room.alias.to_string()),
        name: name_of(&state).unwrap_or_default(),
        topic: topic_of(&state).filter(|t| !t.is_empty()),
        state: lifecycle_of(&state),
        member_count: member_count(app, &state),
    })
}
