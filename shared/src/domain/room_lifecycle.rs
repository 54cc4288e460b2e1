//! Group and event rooms: ensure-by-alias, settings that fit the visibility, event updates and cancellation,
//! archive and purge.
//!
//! The canonical alias is a room's identity and the homeserver is the source of truth: a room's OpenMeet metadata
//! (kind, slug, lifecycle state, event times) lives in its `org.openmeet.room` state event, so nothing here depends
//! on DynamoDB surviving. Ensuring a room that exists converges its state to the request, which also finishes a
//! room half-created by a crash.

use std::collections::HashMap;
use std::time::Duration;

use ruma::{OwnedRoomAliasId, OwnedRoomId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::domain::platform;
use crate::domain::room_policy::{self, Admission, Creation, converge_power_levels, initial_power_levels, join_rules};
use crate::domain::rooms::{self, RoomRef};
use crate::domain::tenancy;
use crate::error::ApiError;
use crate::homeserver::{Acting, encode};
use crate::identity::{RoomKind, Slug, TenantId};

pub use crate::domain::room_policy::META_EVENT;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Public,
    Private,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    Active,
    Cancelled,
    Archived,
}

impl Lifecycle {
    /// Who may post: everyone, moderators and above once cancelled, owners once archived.
    fn events_default(self) -> i64 {
        match self {
            Lifecycle::Active => 0,
            Lifecycle::Cancelled => 50,
            Lifecycle::Archived => 100,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupRoomInput {
    pub name: String,
    pub topic: Option<String>,
    pub visibility: Visibility,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EventRoomInput {
    pub name: String,
    pub topic: Option<String>,
    pub starts_at: String,
    pub ends_at: Option<String>,
    pub location: Option<String>,
    pub group_slug: Option<String>,
    pub visibility: Visibility,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelInput {
    pub reason: Option<String>,
}

/// A validated request for a room.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomSpec {
    pub name: String,
    pub topic: Option<String>,
    pub visibility: Visibility,
    pub event: Option<EventDetails>,
    pub group: Option<Slug>,
}

/// What an event room's notices speak of. Times are normalised to UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDetails {
    pub starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// The room object of the contract.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomView {
    pub kind: &'static str,
    pub slug: String,
    pub room_id: String,
    pub alias: Option<String>,
    pub name: String,
    pub topic: Option<String>,
    pub state: Lifecycle,
    pub member_count: u64,
}

fn check_text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > max || trimmed.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::bad_request("invalid_body", format!("{field} must be 1-{max} characters")));
    }
    Ok(trimmed.to_owned())
}

fn normalise_time(field: &str, value: &str) -> Result<time::OffsetDateTime, ApiError> {
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map(|t| t.to_offset(time::UtcOffset::UTC))
        .map_err(|_| ApiError::bad_request("invalid_body", format!("{field} must be an RFC 3339 time")))
}

fn format_time(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

impl RoomSpec {
    pub fn group(input: GroupRoomInput) -> Result<RoomSpec, ApiError> {
        Ok(RoomSpec {
            name: check_text("name", &input.name, 255)?,
            topic: input.topic.as_deref().map(|t| check_text("topic", t, 4096)).transpose()?,
            visibility: input.visibility,
            event: None,
            group: None,
        })
    }

    pub fn event(input: EventRoomInput) -> Result<RoomSpec, ApiError> {
        let starts = normalise_time("startsAt", &input.starts_at)?;
        let ends = input.ends_at.as_deref().map(|e| normalise_time("endsAt", e)).transpose()?;
        if ends.is_some_and(|ends| ends < starts) {
            return Err(ApiError::bad_request("invalid_body", "endsAt is before startsAt"));
        }
        Ok(RoomSpec {
            name: check_text("name", &input.name, 255)?,
            topic: input.topic.as_deref().map(|t| check_text("topic", t, 4096)).transpose()?,
            visibility: input.visibility,
            event: Some(EventDetails {
                starts_at: format_time(starts),
                ends_at: ends.map(format_time),
                location: input.location.as_deref().map(|l| check_text("location", l, 512)).transpose()?,
            }),
            group: input.group_slug.as_deref().map(Slug::parse).transpose()?,
        })
    }
}

/// The state a room should hold, besides power levels.
fn desired_state(
    spec: &RoomSpec,
    owner: (&TenantId, RoomKind, &Slug),
    alias: &OwnedRoomAliasId,
    lifecycle: Lifecycle,
    admission: &Admission,
    parent: Option<&OwnedRoomId>,
    server_name: &str,
) -> Vec<(String, String, Value)> {
    let (tenant, kind, slug) = owner;
    let mut meta = json!({"tenant": tenant.as_str(), "kind": kind.as_str(), "slug": slug.as_str(), "state": lifecycle});
    if let Some(event) = &spec.event {
        meta["event"] = json!(event);
    }
    let mut state = vec![
        ("m.room.name".to_owned(), String::new(), json!({"name": spec.name})),
        ("m.room.topic".to_owned(), String::new(), json!({"topic": spec.topic.clone().unwrap_or_default()})),
        ("m.room.join_rules".to_owned(), String::new(), join_rules(admission)),
        ("m.room.history_visibility".to_owned(), String::new(), json!({"history_visibility": "shared"})),
        ("m.room.guest_access".to_owned(), String::new(), json!({"guest_access": "forbidden"})),
        ("m.room.canonical_alias".to_owned(), String::new(), json!({"alias": alias.as_str()})),
        (META_EVENT.to_owned(), String::new(), meta),
    ];
    if let Some(parent) = parent {
        state.push(("m.space.parent".to_owned(), parent.to_string(), json!({"via": [server_name], "canonical": true})));
    }
    state
}

/// What a group's space shows: the group's name and topic; it admits whom the group's room admits.
fn space_state(spec: &RoomSpec, admission: &Admission) -> Vec<(String, String, Value)> {
    vec![
        ("m.room.name".to_owned(), String::new(), json!({"name": spec.name})),
        ("m.room.topic".to_owned(), String::new(), json!({"topic": spec.topic.clone().unwrap_or_default()})),
        ("m.room.join_rules".to_owned(), String::new(), join_rules(admission)),
    ]
}

/// The state events of `desired` that `current` does not already hold.
fn state_changes(
    current: &HashMap<(String, String), Value>,
    desired: Vec<(String, String, Value)>,
) -> Vec<(String, String, Value)> {
    desired
        .into_iter()
        .filter(|(event_type, key, content)| current.get(&(event_type.clone(), key.clone())) != Some(content))
        .collect()
}

/// What changed for the people of an event, in one sentence; `None` when nothing they care about did.
fn describe_change(
    old_name: Option<&str>,
    old: Option<&EventDetails>,
    new_name: &str,
    new: &EventDetails,
) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(old_name) = old_name
        && old_name != new_name
    {
        parts.push(format!("name: {old_name} → {new_name}"));
    }
    let old = old?;
    let show =
        |v: Option<&String>| v.map(|s| s.replace('T', " ").replace('Z', " UTC")).unwrap_or_else(|| "none".into());
    if old.starts_at != new.starts_at {
        parts.push(format!("starts: {} → {}", show(Some(&old.starts_at)), show(Some(&new.starts_at))));
    }
    if old.ends_at != new.ends_at {
        parts.push(format!("ends: {} → {}", show(old.ends_at.as_ref()), show(new.ends_at.as_ref())));
    }
    if old.location != new.location {
        let place = |v: Option<&String>| v.cloned().unwrap_or_else(|| "none".into());
        parts.push(format!("location: {} → {}", place(old.location.as_ref()), place(new.location.as_ref())));
    }
    (!parts.is_empty()).then(|| format!("Event updated — {}", parts.join("; ")))
}

fn digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..12])
}

fn lifecycle_of(state: &HashMap<(String, String), Value>) -> Lifecycle {
    state
        .get(&(META_EVENT.to_owned(), String::new()))
        .and_then(|meta| meta.get("state"))
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or(Lifecycle::Active)
}

fn event_details_of(state: &HashMap<(String, String), Value>) -> Option<EventDetails> {
    state
        .get(&(META_EVENT.to_owned(), String::new()))
        .and_then(|meta| meta.get("event"))
        .and_then(|e| serde_json::from_value(e.clone()).ok())
}

fn text_of(state: &HashMap<(String, String), Value>, event_type: &str, field: &str) -> Option<String> {
    state
        .get(&(event_type.to_owned(), String::new()))
        .and_then(|c| c.get(field))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Ensures the room of a group (with its space) or an event. `true` when the room was created now.
pub async fn ensure(
    app: &App,
    tenant: &TenantId,
    kind: RoomKind,
    slug: &Slug,
    spec: RoomSpec,
) -> Result<(RoomView, bool), ApiError> {
    let admission = match spec.visibility {
        Visibility::Public => tenancy::public_admission(app, tenant).await?,
        Visibility::Private => Admission::InviteOnly,
    };
    let parent = match (kind, &spec.group) {
        (RoomKind::Group, _) => {
            let space_alias = app.identities.space_alias(tenant, slug);
            let body = space_creation_body(&space_alias, &spec, tenant, slug, &admission);
            Some(rooms::find_or_create(app, &space_alias, &body).await?.0)
        }
        (RoomKind::Event, Some(group)) => {
            let space_alias = app.identities.space_alias(tenant, group);
            Some(rooms::lookup_alias(app, &space_alias).await?.ok_or_else(|| {
                ApiError::conflict("conflict", format!("the group {group} has no room yet; ensure it first"))
            })?)
        }
        (RoomKind::Event, None) => None,
    };
    let alias = app.identities.room_alias(tenant, kind, slug);
    let server = app.identities.server_name().to_owned();
    let owner = (tenant, kind, slug);
    let body = room_creation_body(&alias, &spec, owner, &admission, parent.as_ref(), &server);
    let (room_id, created) = rooms::find_or_create(app, &alias, &body).await?;
    let state = settled_state(app, room_id.as_str()).await?;
    let lifecycle = lifecycle_of(&state);
    if !created && lifecycle != Lifecycle::Active {
        return Err(ApiError::conflict("conflict", format!("this room is {}", serde_json::json!(lifecycle))));
    }
    if let (false, Some(new)) = (created, &spec.event) {
        let old_name = text_of(&state, "m.room.name", "name");
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
        let child = (String::from("m.space.child"), room_id.to_string());
        let parent_state = settled_state(app, parent.as_str()).await?;
        if kind == RoomKind::Group {
            // The group's space follows the group's name, topic and visibility as its chat room does.
            converge(app, parent.as_str(), &parent_state, space_state(&spec, &admission)).await?;
        }
        let content = json!({"via": [server], "suggested": true});
        if parent_state.get(&child) != Some(&content) {
            platform::put_state(app, parent.as_str(), "m.space.child", room_id.as_str(), &content).await?;
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
    state: &HashMap<(String, String), Value>,
    desired: Vec<(String, String, Value)>,
) -> Result<(), ApiError> {
    if let Some(levels) = state.get(&("m.room.power_levels".to_owned(), String::new())).and_then(converge_power_levels)
    {
        platform::put_state(app, room_id, "m.room.power_levels", "", &levels).await?;
    }
    for (event_type, key, content) in state_changes(state, desired) {
        platform::put_state(app, room_id, &event_type, &key, &content).await?;
    }
    Ok(())
}

/// The room's state once its creation has finished: Synapse publishes the alias while `createRoom` is still
/// running, and until the creator's join lands even the creator is refused (403).
pub async fn settled_state(app: &App, room_id: &str) -> Result<HashMap<(String, String), Value>, ApiError> {
    for _ in 0..50 {
        match platform::room_state(app, room_id).await {
            Err(ApiError::HomeserverRejected(reason)) if reason.starts_with("403") => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
    platform::room_state(app, room_id).await
}

/// The `createRoom` body of a group's or event's chat room: everything [`desired_state`] wants is in it, so a new
/// room needs no further state write.
fn room_creation_body(
    alias: &OwnedRoomAliasId,
    spec: &RoomSpec,
    owner: (&TenantId, RoomKind, &Slug),
    admission: &Admission,
    parent: Option<&OwnedRoomId>,
    server_name: &str,
) -> Value {
    let desired = desired_state(spec, owner, alias, Lifecycle::Active, admission, parent, server_name);
    let state_of = |wanted: &str| desired.iter().find(|(t, _, _)| t == wanted).map(|(_, _, c)| c.clone());
    room_policy::creation_body(Creation {
        alias,
        name: &spec.name,
        topic: Some(spec.topic.as_deref().unwrap_or_default()),
        is_space: false,
        admission: admission.clone(),
        meta: state_of(META_EVENT).unwrap_or_default(),
        extra_state: desired.into_iter().filter(|(t, _, _)| t == "m.space.parent").collect(),
        power_levels: initial_power_levels(Lifecycle::Active.events_default()),
    })
}

/// The `createRoom` body of a group's space. Nobody posts in a space.
fn space_creation_body(
    alias: &OwnedRoomAliasId,
    spec: &RoomSpec,
    tenant: &TenantId,
    slug: &Slug,
    admission: &Admission,
) -> Value {
    let mut meta = room_policy::meta(tenant.as_str(), "space");
    meta["slug"] = json!(slug.as_str());
    room_policy::creation_body(Creation {
        alias,
        name: &spec.name,
        topic: Some(spec.topic.as_deref().unwrap_or_default()),
        is_space: true,
        admission: admission.clone(),
        meta,
        extra_state: Vec::new(),
        power_levels: initial_power_levels(Lifecycle::Archived.events_default()),
    })
}

/// Raises `events_default` so members can no longer post (never lowers it).
async fn restrict_posting(app: &App, room_id: &str, lifecycle: Lifecycle) -> Result<(), ApiError> {
    let state = platform::room_state(app, room_id).await?;
    let mut levels = state
        .get(&("m.room.power_levels".to_owned(), String::new()))
        .cloned()
        .unwrap_or_else(|| initial_power_levels(0));
    let current = levels.get("events_default").and_then(Value::as_i64).unwrap_or(0);
    if current >= lifecycle.events_default() {
        return Ok(());
    }
    levels["events_default"] = json!(lifecycle.events_default());
    platform::put_state(app, room_id, "m.room.power_levels", "", &levels).await
}

async fn set_lifecycle(app: &App, room_id: &str, lifecycle: Lifecycle) -> Result<(), ApiError> {
    let state = platform::room_state(app, room_id).await?;
    let mut meta = state.get(&(META_EVENT.to_owned(), String::new())).cloned().unwrap_or_else(|| json!({}));
    if meta.get("state") == Some(&json!(lifecycle)) {
        return Ok(());
    }
    meta["state"] = json!(lifecycle);
    platform::put_state(app, room_id, META_EVENT, "", &meta).await
}

/// Cancels an event: one notice, members can no longer post, state `cancelled`. Repeats change nothing.
pub async fn cancel(app: &App, tenant: &TenantId, slug: &Slug, input: CancelInput) -> Result<RoomView, ApiError> {
    let reason = input.reason.as_deref().map(|r| check_text("reason", r, 1024)).transpose()?;
    let room = rooms::resolve(app, tenant, RoomKind::Event, slug).await?;
    let state = platform::room_state(app, room.room_id.as_str()).await?;
    match lifecycle_of(&state) {
        Lifecycle::Archived => return Err(ApiError::conflict("conflict", "this room is archived")),
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMode {
    Archive,
    Purge,
}

impl DeleteMode {
    pub fn parse(mode: Option<&str>) -> Result<DeleteMode, ApiError> {
        match mode {
            None | Some("archive") => Ok(DeleteMode::Archive),
            Some("purge") => Ok(DeleteMode::Purge),
            Some(_) => Err(ApiError::bad_request("invalid_parameter", "mode must be archive or purge")),
        }
    }
}

/// Archives (read-only, out of the directory, history kept) or purges a room. A missing room is already gone.
pub async fn delete(
    app: &App,
    tenant: &TenantId,
    kind: RoomKind,
    slug: &Slug,
    mode: DeleteMode,
) -> Result<(), ApiError> {
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
async fn purge(app: &App, room_id: &OwnedRoomId) -> Result<(), ApiError> {
    // Aliases are removed explicitly so the slug is free again at once, whatever the background deletion's pace.
    let aliases_path = format!("/_matrix/client/v3/rooms/{}/aliases", encode(room_id.as_str()));
    if let Ok(aliases) =
        app.homeserver.call::<Value>(reqwest::Method::GET, &aliases_path, Acting::Platform, None::<&Value>).await
    {
        for alias in aliases.get("aliases").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            let path = format!("/_matrix/client/v3/directory/room/{}", encode(alias));
            match app.homeserver.call::<Value>(reqwest::Method::DELETE, &path, Acting::Platform, None::<&Value>).await {
                Ok(_) => {}
                Err(error) if error.is_not_found() => {}
                Err(error) => return Err(error.into()),
            }
        }
    }
    let path = format!("/_synapse/admin/v2/rooms/{}", encode(room_id.as_str()));
    match app
        .homeserver
        .call::<Value>(reqwest::Method::DELETE, &path, Acting::Platform, Some(&json!({"purge": true, "block": false})))
        .await
    {
        Ok(_) => Ok(()),
        Err(error) if error.is_not_found() => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// The room object, read from the homeserver.
pub async fn view(app: &App, room: &RoomRef) -> Result<RoomView, ApiError> {
    let state = platform::room_state(app, room.room_id.as_str()).await?;
    Ok(RoomView {
        kind: room.kind.path_segment(),
        slug: room.slug.to_string(),
        room_id: room.room_id.to_string(),
        alias: Some(room.alias.to_string()),
        name: text_of(&state, "m.room.name", "name").unwrap_or_default(),
        topic: text_of(&state, "m.room.topic", "topic").filter(|t| !t.is_empty()),
        state: lifecycle_of(&state),
        member_count: member_count(app, &state),
    })
}

/// Joined members, the platform's user excluded.
pub fn member_count(app: &App, state: &HashMap<(String, String), Value>) -> u64 {
    let platform = app.identities.platform_user_id();
    state
        .iter()
        .filter(|((event_type, key), content)| {
            event_type == "m.room.member"
                && key != platform.as_str()
                && content.get("membership").and_then(Value::as_str) == Some("join")
        })
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(starts: &str, ends: Option<&str>, location: Option<&str>) -> EventDetails {
        EventDetails { starts_at: starts.into(), ends_at: ends.map(Into::into), location: location.map(Into::into) }
    }

    #[test]
    fn unchanged_events_need_no_notice() {
        let d = details("2026-12-01T18:00:00Z", None, Some("Hall"));
        assert_eq!(describe_change(Some("Party"), Some(&d), "Party", &d), None);
    }

    #[test]
    fn a_notice_names_every_change_old_to_new() {
        let old = details("2026-12-01T18:00:00Z", None, Some("Hall"));
        let new = details("2026-12-02T19:30:00Z", Some("2026-12-02T22:00:00Z"), Some("Park"));
        let text = describe_change(Some("Party"), Some(&old), "Big party", &new).expect("a change");
        assert!(text.contains("name: Party → Big party"), "{text}");
        assert!(text.contains("starts: 2026-12-01 18:00:00 UTC → 2026-12-02 19:30:00 UTC"), "{text}");
        assert!(text.contains("ends: none → 2026-12-02 22:00:00 UTC"), "{text}");
        assert!(text.contains("location: Hall → Park"), "{text}");
    }

    #[test]
    fn times_are_normalised_so_equal_instants_compare_equal() {
        let input = |starts: &str| EventRoomInput {
            name: "E".into(),
            topic: None,
            starts_at: starts.into(),
            ends_at: None,
            location: None,
            group_slug: None,
            visibility: Visibility::Public,
        };
        let a = RoomSpec::event(input("2026-12-01T18:00:00Z")).expect("valid");
        let b = RoomSpec::event(input("2026-12-01T19:00:00+01:00")).expect("valid");
        assert_eq!(a.event, b.event);
        assert!(RoomSpec::event(input("tomorrow")).is_err());
    }

    #[test]
    fn an_end_before_the_start_is_refused() {
        let input = EventRoomInput {
            name: "E".into(),
            topic: None,
            starts_at: "2026-12-01T18:00:00Z".into(),
            ends_at: Some("2026-12-01T17:00:00Z".into()),
            location: None,
            group_slug: None,
            visibility: Visibility::Private,
        };
        assert_eq!(RoomSpec::event(input).err().map(|e| e.status()), Some(400));
    }

    #[test]
    fn only_differing_state_is_written() {
        let tenant = TenantId::parse("t").expect("tenant");
        let slug = Slug::parse("s").expect("slug");
        let alias = OwnedRoomAliasId::try_from("#om_t.group.s:localhost").expect("alias");
        let spec = RoomSpec { name: "N".into(), topic: None, visibility: Visibility::Public, event: None, group: None };
        let owner = (&tenant, RoomKind::Group, &slug);
        let desired_for = |spec: &RoomSpec| {
            desired_state(spec, owner, &alias, Lifecycle::Active, &Admission::InviteOnly, None, "localhost")
        };
        let desired = desired_for(&spec);
        let current: HashMap<(String, String), Value> =
            desired.iter().map(|(t, k, c)| ((t.clone(), k.clone()), c.clone())).collect();
        assert!(state_changes(&current, desired.clone()).is_empty());
        let desired = desired_for(&RoomSpec { name: "M".into(), ..spec });
        let changes = state_changes(&current, desired);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].0, "m.room.name");
    }

    #[test]
    fn lifecycle_only_ever_restricts_posting_further() {
        assert!(Lifecycle::Active.events_default() < Lifecycle::Cancelled.events_default());
        assert!(Lifecycle::Cancelled.events_default() < Lifecycle::Archived.events_default());
        assert_eq!(DeleteMode::parse(None).ok(), Some(DeleteMode::Archive));
        assert!(DeleteMode::parse(Some("nuke")).is_err());
    }
}
