//! The drift-repair pass: page through the managed rooms (from a cursor), read each from the admin API (its state,
//! members included, and its directory entry; a parent space's state once per pass), compare with the recorded
//! intent and repair the differences. Bounded (rooms per run, requests per second), resumable, and silent on a
//! room that is as intended. Repairs write ruma's typed contents (join rules, name, space links, as the room policy
//! has them); the power levels stay JSON (docs/adr/0007: a rewritten event keeps the keys we do not manage).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use ruma::events::EmptyStateKey;
use ruma::events::room::join_rules::RoomJoinRulesEventContent;
use ruma::events::room::name::RoomNameEventContent;
use serde::Serialize;

use super::compare::{self, Comparison, Context, Desired, Drift, Intent, Observed};
use super::{Pacer, SelfHealSettings};
use crate::app::App;
use crate::aws::desired_state::{DesiredStates, ManagedRoom, MemberIntents};
use crate::domain::DomainError;
use crate::domain::membership::{self, Role};
use crate::domain::platform;
use crate::domain::room_lifecycle::Lifecycle;
use crate::domain::room_policy::{space_child, space_parent};
use crate::domain::rooms::RoomRef;
use crate::homeserver::admin_rooms::StateEvent;
use crate::identity::{RoomKind, Slug, TenantId, UserSlug};
use crate::metrics::{Unit, emit};

const JOB: &str = "drift";

#[derive(Debug, Clone, Default)]
pub struct PassOptions {
    /// List the drift, change nothing (not even the cursor).
    pub dry_run: bool,
    /// Only this tenant's rooms, all of them (no cursor).
    pub tenant: Option<String>,
    /// Every managed room from the first (no cursor), however many.
    pub all: bool,
    /// Stop starting rooms after this.
    pub deadline: Option<Instant>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomDrift {
    pub room: String,
    pub room_id: String,
    pub drift: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PassReport {
    pub dry_run: bool,
    pub rooms_checked: usize,
    pub drift_found: usize,
    pub repairs: usize,
    pub failures: usize,
    /// Joined members the service has no intent about (left alone).
    pub unmanaged_members: usize,
    /// Homeserver requests made (reads and repairs).
    pub requests: usize,
    /// Where the next scheduled pass resumes (`None`: from the first room).
    pub resume_after: Option<String>,
    /// Rooms with drift or a failure.
    pub rooms: Vec<RoomDrift>,
}

pub async fn run(app: &App, settings: &SelfHealSettings, options: &PassOptions) -> Result<PassReport, DomainError> {
    let desired_states = DesiredStates(&app.store);
    let scoped = options.all || options.tenant.is_some();
    let mut after = if scoped { None } else { desired_states.cursor(JOB).await? };
    let prefix = options.tenant.as_ref().map(|t| format!("{t}/"));
    let budget = if scoped { usize::MAX } else { settings.rooms_per_run };
    let mut report = PassReport { dry_run: options.dry_run, ..PassReport::default() };
    let mut pacer = Pacer::new(settings.requests_per_sec);
    let mut spaces: HashMap<String, Vec<StateEvent>> = HashMap::new();
    loop {
        let want = (budget - report.rooms_checked).min(100);
        let (rooms, last) = desired_states.page(prefix.as_deref(), after.as_deref(), want).await?;
        for room in &rooms {
            if options.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                break;
            }
            check_room(app, settings, options, room, &mut pacer, &mut spaces, &mut report).await;
            after = Some(room.key.sort_key());
        }
        let out_of_time = options.deadline.is_some_and(|deadline| Instant::now() >= deadline);
        if last.is_none() && !out_of_time && after.as_deref() == rooms.last().map(|r| r.key.sort_key()).as_deref() {
            // The end of the table: the next pass starts from the first room again.
            after = None;
            break;
        }
        if report.rooms_checked >= budget || out_of_time || rooms.is_empty() {
            break;
        }
    }
    report.requests = pacer.requests;
    report.resume_after = after.clone();
    if !options.dry_run && !scoped {
        desired_states.set_cursor(JOB, after.as_deref()).await?;
    }
    tracing::info!(
        rooms_checked = report.rooms_checked,
        drift_found = report.drift_found,
        repairs = report.repairs,
        failures = report.failures,
        requests = report.requests,
        dry_run = options.dry_run,
        "drift pass finished"
    );
    Ok(report)
}

async fn check_room(
    app: &App,
    settings: &SelfHealSettings,
    options: &PassOptions,
    room: &ManagedRoom,
    pacer: &mut Pacer,
    spaces: &mut HashMap<String, Vec<StateEvent>>,
    report: &mut PassReport,
) {
    report.rooms_checked += 1;
    let room_id = room.settings.room_id.clone();
    let outcome = async {
        let comparison = observe_and_compare(app, settings, room, pacer, spaces).await?;
        report.unmanaged_members += comparison.unmanaged.len();
        if comparison.drift.is_empty() {
            return Ok(Vec::new());
        }
        let described: Vec<String> = comparison.drift.iter().map(Drift::describe).collect();
        report.drift_found += comparison.drift.len();
        if !options.dry_run {
            // Room-wide state first (the power levels were computed from this read), then member by member (each
            // reads afresh and finds its level already right).
            let (members, settings): (Vec<&Drift>, Vec<&Drift>) = comparison
                .drift
                .iter()
                .partition(|d| matches!(d, Drift::MissingMember { .. } | Drift::ExtraMember { .. }));
            for drift in settings.into_iter().chain(members) {
                repair(app, room, drift, pacer).await?;
                report.repairs += 1;
                if let Drift::SpaceChild { parent, .. } = drift {
                    spaces.remove(parent);
                }
                tracing::info!(room = %room.key.sort_key(), room_id = %room_id, kind = drift.kind(), "drift repaired");
                emit("DriftRepaired", Unit::Count, 1.0, &[("Kind", drift.kind())]);
            }
        }
        Ok::<_, DomainError>(described)
    }
    .await;
    match outcome {
        Ok(drift) if drift.is_empty() => {}
        Ok(drift) => report.rooms.push(RoomDrift { room: room.key.sort_key(), room_id, drift, error: None }),
        Err(error) => {
            report.failures += 1;
            tracing::warn!(room = %room.key.sort_key(), error = %error, "drift check failed");
            let error = Some(error.to_string());
            report.rooms.push(RoomDrift { room: room.key.sort_key(), room_id, drift: Vec::new(), error });
        }
    }
}

async fn observe_and_compare(
    app: &App,
    settings: &SelfHealSettings,
    room: &ManagedRoom,
    pacer: &mut Pacer,
    spaces: &mut HashMap<String, Vec<StateEvent>>,
) -> Result<Comparison, DomainError> {
    let room_id = room.settings.room_id.as_str();
    pacer.take(1).await;
    let state = app.homeserver.admin_room_state(room_id).await?;
    pacer.take(1).await;
    let listed = app.homeserver.admin_room_details(room_id).await?.public;
    if let Some(parent) = &room.settings.parent
        && !spaces.contains_key(parent)
    {
        pacer.take(1).await;
        spaces.insert(parent.clone(), app.homeserver.admin_room_state(parent).await?);
    }
    let intents = DesiredStates(&app.store).members(&room.key).await?;
    let tenant = TenantId::parse(&room.key.tenant)?;
    let (members, complete) = desired_members(&intents, |user| {
        UserSlug::parse(user).ok().map(|slug| app.identities.matrix_user_id(&tenant, &slug).to_string())
    });
    let desired = Desired {
        room_id: room_id.to_owned(),
        name: room.settings.name.clone(),
        join_rule: recorded_join_rule(room)?,
        parent: room.settings.parent.clone(),
        events_default: events_default(&room.lifecycle),
        members,
        complete,
        server_name: app.identities.server_name().to_owned(),
    };
    let platform = app.identities.platform_user_id().to_string();
    let of_tenant = |user: &str| {
        ruma::UserId::parse(user)
            .ok()
            .and_then(|id| app.identities.openmeet_user(&id))
            .is_some_and(|(t, _)| t == tenant)
    };
    let observed = Observed {
        state: &state,
        listed,
        parent_state: room.settings.parent.as_ref().and_then(|p| spaces.get(p)).map(Vec::as_slice),
    };
    Ok(compare::compare(
        &desired,
        &observed,
        &Context { platform: &platform, keep: &settings.keep_users, of_tenant: &of_tenant },
    ))
}

/// The join rule recorded for the room (its wire form, as `intent` records it).
fn recorded_join_rule(room: &ManagedRoom) -> Result<ruma::events::room::join_rules::JoinRule, DomainError> {
    serde_json::from_value::<RoomJoinRulesEventContent>(room.settings.join_rules.clone())
        .map(|content| content.join_rule)
        .map_err(|_| DomainError::Internal)
}

/// Who may post in the recorded lifecycle (as `room_lifecycle` sets it).
fn events_default(lifecycle: &str) -> i64 {
    Lifecycle::from_name(lifecycle).events_default()
}

/// The intended members (Matrix id → intent): the latest reconcile's list, overridden by later single changes;
/// `true` when a reconcile gave the whole list.
pub fn desired_members(
    intents: &MemberIntents,
    matrix_id: impl Fn(&str) -> Option<String>,
) -> (BTreeMap<String, Intent>, bool) {
    let level = |role: &str| Role::from_name(role).map(Role::power_level);
    let mut members = BTreeMap::new();
    let roster_version = intents.roster.as_ref().map(|(_, version)| *version);
    if let Some((roster, version)) = &intents.roster {
        for (role, users) in roster {
            for user in users {
                if let (Some(id), Some(level)) = (matrix_id(user), level(role)) {
                    members.insert(id, Intent { level: Some(level), version: *version });
                }
            }
        }
    }
    for (user, (role, version)) in &intents.changes {
        let Some(id) = matrix_id(user) else { continue };
        match roster_version {
            Some(roster) if *version <= roster => {
                // The reconcile is newer: a user it left out is removed.
                members.entry(id).or_insert(Intent { level: None, version: roster });
            }
            _ => {
                members.insert(id, Intent { level: role.as_deref().and_then(level), version: *version });
            }
        }
    }
    (members, roster_version.is_some())
}

async fn repair(app: &App, room: &ManagedRoom, drift: &Drift, pacer: &mut Pacer) -> Result<(), DomainError> {
    let room_id = room.settings.room_id.as_str();
    let server = app.identities.server_name();
    if !matches!(drift, Drift::MissingMember { .. } | Drift::ExtraMember { .. }) {
        pacer.take(1).await;
    }
    match drift {
        Drift::PowerLevels { content } => platform::put_state(app, room_id, "m.room.power_levels", "", content).await,
        Drift::JoinRules { rule } => {
            platform::put_typed_state(app, room_id, &EmptyStateKey, &RoomJoinRulesEventContent::new(rule.clone())).await
        }
        Drift::Name { name } => {
            platform::put_typed_state(app, room_id, &EmptyStateKey, &RoomNameEventContent::new(name.clone())).await
        }
        Drift::SpaceParent { parent } => {
            let parent_id = crate::homeserver::room_id(parent)?;
            platform::put_typed_state(app, room_id, &*parent_id, &space_parent(server)?).await
        }
        Drift::SpaceChild { parent } => {
            let child_id = crate::homeserver::room_id(room_id)?;
            platform::put_typed_state(app, parent, &*child_id, &space_child(server)?).await
        }
        Drift::Listed => Ok(app.homeserver.unlist_room(room_id).await?),
        Drift::MissingMember { user_id, level } => {
            let (tenant, room_ref, user) = member_target(app, room, user_id)?;
            // Reads, maybe an unban, the join, the space join: a handful of requests.
            pacer.take(4).await;
            membership::put(app, &tenant, &room_ref, &user, Role::from_power_level(*level), true).await.map(|_| ())
        }
        Drift::ExtraMember { user_id } => match member_target(app, room, user_id) {
            Ok((tenant, room_ref, user)) => {
                pacer.take(4).await;
                membership::remove(app, &tenant, &room_ref, &user, false, true).await
            }
            // Not a user of the room's tenant: a plain kick by the platform.
            Err(_) => {
                pacer.take(1).await;
                let unreadable = || DomainError::HomeserverAnswer("a member or room id that does not parse");
                let room = ruma::RoomId::parse(room_id).map_err(|_| unreadable())?;
                let user = ruma::UserId::parse(user_id.as_str()).map_err(|_| unreadable())?;
                Ok(app.homeserver.kick(&room, &user, "not a member of this OpenMeet room").await?)
            }
        },
    }
}

/// The tenant, room and OpenMeet user a member repair acts on; `Err` for a user outside the room's tenant.
fn member_target(app: &App, room: &ManagedRoom, user_id: &str) -> Result<(TenantId, RoomRef, UserSlug), DomainError> {
    let tenant = TenantId::parse(&room.key.tenant)?;
    let parsed = ruma::UserId::parse(user_id).map_err(|_| DomainError::Internal)?;
    let (user_tenant, user) = app.identities.openmeet_user(&parsed).ok_or(DomainError::Internal)?;
    if user_tenant != tenant {
        return Err(DomainError::Internal);
    }
    let kind = RoomKind::from_path(&room.key.kind)?;
    let slug = Slug::parse(&room.key.slug)?;
    let room_id = ruma::OwnedRoomId::try_from(room.settings.room_id.as_str()).map_err(|_| DomainError::Internal)?;
    let alias = app.identities.room_alias(&tenant, kind, &slug);
    Ok((tenant, RoomRef { kind, slug, alias, room_id }, user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_changes_override_the_roster_and_older_ones_do_not() {
        let intents = MemberIntents {
            roster: Some((
                BTreeMap::from([("owner".into(), vec!["ann".into()]), ("member".into(), vec!["bob".into()])]),
                10,
            )),
            changes: BTreeMap::from([
                ("bob".into(), (Some("moderator".into()), 12)),
                ("cy".into(), (Some("member".into()), 5)),
                ("ann".into(), (None, 9)),
            ]),
        };
        let (members, complete) = desired_members(&intents, |u| Some(format!("@{u}")));
        assert!(complete);
        assert_eq!(
            members["@ann"],
            Intent { level: Some(100), version: 10 },
            "the reconcile is newer than her removal"
        );
        assert_eq!(members["@bob"], Intent { level: Some(Role::Moderator.power_level()), version: 12 });
        assert_eq!(members["@cy"], Intent { level: None, version: 10 }, "left out by the newer reconcile");
        let (members, complete) =
            desired_members(&MemberIntents { roster: None, ..intents }, |u| Some(format!("@{u}")));
        assert!(!complete);
        assert_eq!(members["@ann"].level, None);
        assert_eq!(members["@cy"].level, Some(0));
    }
}
