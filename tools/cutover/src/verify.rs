//! `verify`: the snapshot against the homeserver, read through admin endpoints only (no per-user token): every user
//! with its profile, every room by alias with its name, visibility, lifecycle and space link, exactly the listed
//! members with their power levels, and nobody else (in the rooms, and among the tenant's users).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::App;
use shared::domain::DomainError;
use shared::domain::cutover::{self, RoomState, UserState};
use shared::domain::history_import;
use shared::domain::membership::Role;
use shared::domain::room_lifecycle::{Lifecycle, Visibility};
use shared::homeserver::{Acting, encode};
use shared::identity::{RoomKind, TenantId};

use crate::exec::{Progress, for_each, with_retries};
use crate::snapshot::{self, Invalid, MemberBuckets, Room, Summary, User};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub snapshot: Summary,
    pub checked: u64,
    pub discrepancies: Vec<String>,
}

/// A user's differences from its record.
pub fn user_discrepancies(expected: &User, actual: &UserState) -> Vec<String> {
    let who = format!("user {}/{}", expected.tenant, expected.user);
    if !actual.exists {
        return vec![format!("{who}: missing")];
    }
    if actual.deactivated {
        return vec![format!("{who}: deactivated")];
    }
    let mut found = Vec::new();
    if actual.display_name.as_deref() != Some(expected.display_name.as_str()) {
        found.push(format!("{who}: display name is {:?}, expected {:?}", actual.display_name, expected.display_name));
    }
    if actual.avatar_url != expected.avatar_url {
        found.push(format!("{who}: avatar is {:?}, expected {:?}", actual.avatar_url, expected.avatar_url));
    }
    found
}

fn room_name(tenant: &TenantId, kind: RoomKind, slug: &str) -> String {
    format!("room {}/{}/{slug}", tenant, kind.path_segment())
}

/// A room's differences from its record (the members are checked by [`member_discrepancies`]).
/// `group_space`: the room id of the event's group's space, when it has one.
pub fn room_discrepancies(expected: &Room, actual: &RoomState, group_space: Option<&str>) -> Vec<String> {
    let who = room_name(&expected.tenant, expected.kind, expected.slug.as_str());
    let mut found = Vec::new();
    if actual.name.as_deref() != Some(expected.spec.name.as_str()) {
        found.push(format!("{who}: name is {:?}, expected {:?}", actual.name, expected.spec.name));
    }
    if actual.topic != expected.spec.topic {
        found.push(format!("{who}: topic is {:?}, expected {:?}", actual.topic, expected.spec.topic));
    }
    // Private rooms are invite-only; public ones admit the tenant (restricted) or anyone (public).
    let private = actual.join_rule.as_deref() == Some("invite");
    if private != (expected.spec.visibility == Visibility::Private) {
        found.push(format!("{who}: join rule {:?} does not fit {:?}", actual.join_rule, expected.spec.visibility));
    }
    let lifecycle = actual.lifecycle.unwrap_or(Lifecycle::Active);
    if lifecycle != expected.lifecycle {
        found.push(format!("{who}: state is {lifecycle:?}, expected {:?}", expected.lifecycle));
    }
    if let Some(event) = &expected.spec.event
        && actual.event.as_ref() != Some(event)
    {
        found.push(format!("{who}: event details are {:?}, expected {event:?}", actual.event));
    }
    if let Some(space) = group_space
        && !actual.parents.iter().any(|p| p == space)
    {
        found.push(format!("{who}: not linked to its group's space {space}"));
    }
    found
}

/// The room's members against the list: missing, extra (anyone joined who is not listed, the platform aside) and
/// wrong power levels, including a stale raised level of someone not listed.
pub fn member_discrepancies(
    app: &App,
    tenant: &TenantId,
    kind: RoomKind,
    slug: &str,
    wanted: &[(shared::identity::UserSlug, Role)],
    actual: &RoomState,
) -> Vec<String> {
    let who = room_name(tenant, kind, slug);
    let wanted: BTreeMap<String, Role> =
        wanted.iter().map(|(user, role)| (app.identities.matrix_user_id(tenant, user).to_string(), *role)).collect();
    let joined: HashSet<&str> = actual.joined.iter().map(String::as_str).collect();
    let mut found = Vec::new();
    for (user_id, role) in &wanted {
        if !joined.contains(user_id.as_str()) {
            found.push(format!("{who}: member {user_id} is missing"));
        }
        let level = actual.level_of(user_id);
        if level != role.power_level() {
            found.push(format!(
                "{who}: {user_id} has power level {level}, expected {} ({})",
                role.power_level(),
                role.as_str()
            ));
        }
    }
    for user_id in &actual.joined {
        if !wanted.contains_key(user_id) {
            found.push(format!("{who}: extra member {user_id}"));
        }
    }
    for (user_id, level) in &actual.levels {
        if !wanted.contains_key(user_id) && *level != actual.users_default && joined.contains(user_id.as_str()) {
            found.push(format!("{who}: {user_id} (not listed) has power level {level}"));
        }
    }
    found
}

/// A page of the admin user listing (`/_synapse/admin/v2/users`).
#[derive(Debug, Default, Deserialize)]
struct UsersPage {
    #[serde(default)]
    users: Vec<ListedUser>,
    /// Where the next page starts: a number, sent as text or as a number depending on the version.
    #[serde(default)]
    next_token: Option<NextToken>,
}

#[derive(Debug, Deserialize)]
struct ListedUser {
    #[serde(default)]
    name: String,
    #[serde(default, deserialize_with = "ruma::serde::default_on_error")]
    deactivated: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum NextToken {
    Number(u64),
    Text(String),
}

impl NextToken {
    fn from(&self) -> u64 {
        match self {
            NextToken::Number(n) => *n,
            NextToken::Text(text) => text.parse().unwrap_or(u64::MAX),
        }
    }
}

/// The tenant's active users on the homeserver (admin listing, paged).
async fn tenant_users(app: &App, tenant: &TenantId) -> Result<HashSet<String>, DomainError> {
    let prefix = format!("@{}", app.identities.localpart(tenant, &shared::identity::UserSlug::parse("x")?));
    let prefix = prefix.trim_end_matches('x').to_owned();
    let mut users = HashSet::new();
    let mut from = 0u64;
    loop {
        let path =
            format!("/_synapse/admin/v2/users?from={from}&limit=1000&guests=false&name={}", encode(&prefix[1..]));
        let page: UsersPage =
            app.homeserver.call(reqwest::Method::GET, &path, Acting::Platform, None::<&Value>).await?;
        for user in page.users {
            // An import's placeholder is a Zulip sender without an account, never an OpenMeet user.
            if user.name.starts_with(&prefix) && !user.deactivated && !history_import::is_placeholder(&user.name) {
                users.insert(user.name);
            }
        }
        match page.next_token {
            Some(next) => from = next.from(),
            None => return Ok(users),
        }
    }
}

pub async fn verify(
    app: &'static App,
    path: &Path,
    summary: Summary,
    concurrency: usize,
    quiet: bool,
) -> Result<VerifyReport, Invalid> {
    let total = summary.users + summary.groups + summary.events + summary.memberships;
    let progress = Progress::new(total, quiet);
    let mut found: Vec<String> = Vec::new();
    let mut listed: BTreeMap<String, HashSet<String>> = BTreeMap::new();

    progress.phase("users");
    for user in snapshot::users(path)? {
        listed
            .entry(user.tenant.to_string())
            .or_default()
            .insert(app.identities.matrix_user_id(&user.tenant, &user.user).to_string());
    }
    for_each(
        snapshot::users(path)?,
        concurrency,
        |u| async move {
            match with_retries(|| cutover::read_user(app, &u.tenant, &u.user)).await {
                Ok(state) => user_discrepancies(&u, &state),
                Err(error) => vec![format!("user {}/{}: could not be read: {error}", u.tenant, u.user)],
            }
        },
        |mut d| {
            progress.add(1);
            found.append(&mut d);
        },
    )
    .await;
    for tenant in &summary.tenants {
        let Ok(tenant_id) = TenantId::parse(tenant) else { continue };
        let wanted = listed.remove(tenant).unwrap_or_default();
        match with_retries(|| tenant_users(app, &tenant_id)).await {
            Ok(present) => {
                let mut extra: Vec<&String> = present.difference(&wanted).collect();
                extra.sort();
                found.extend(extra.into_iter().map(|u| format!("user {u}: present but not in the snapshot")));
            }
            Err(error) => found.push(format!("tenant {tenant}: users could not be listed: {error}")),
        }
    }

    progress.phase("rooms");
    for kind in [RoomKind::Group, RoomKind::Event] {
        for_each(
            snapshot::rooms(path, kind)?,
            concurrency,
            |r| async move {
                let alias = app.identities.room_alias(&r.tenant, r.kind, &r.slug);
                let who = room_name(&r.tenant, r.kind, r.slug.as_str());
                let space = match (r.kind, &r.spec.group) {
                    (RoomKind::Group, _) => Some(app.identities.space_alias(&r.tenant, &r.slug)),
                    (RoomKind::Event, Some(group)) => Some(app.identities.space_alias(&r.tenant, group)),
                    (RoomKind::Event, None) => None,
                };
                let space_id = match &space {
                    Some(space) => match with_retries(|| shared::domain::rooms::lookup_alias(app, space)).await {
                        Ok(id) => id.map(|id| id.to_string()),
                        Err(error) => return vec![format!("{who}: space could not be read: {error}")],
                    },
                    None => None,
                };
                let mut found = Vec::new();
                if space.is_some() && space_id.is_none() {
                    found.push(format!("{who}: its group's space is missing"));
                }
                match with_retries(|| cutover::read_room(app, &alias)).await {
                    Ok(Some(state)) => {
                        let parent = if r.kind == RoomKind::Event { space_id.as_deref() } else { None };
                        found.extend(room_discrepancies(&r, &state, parent));
                    }
                    Ok(None) => found.push(format!("{who}: missing")),
                    Err(error) => found.push(format!("{who}: could not be read: {error}")),
                }
                found
            },
            |mut d| {
                progress.add(1);
                found.append(&mut d);
            },
        )
        .await;
    }

    progress.phase("memberships");
    let buckets = MemberBuckets::spill(path, summary.memberships, 20_000)?;
    for index in 0..buckets.count() {
        for_each(
            buckets.bucket(index)?,
            concurrency,
            |r| async move {
                let alias = app.identities.room_alias(&r.tenant, r.kind, &r.slug);
                let units = r.members.len() as u64;
                let found = match with_retries(|| cutover::read_room(app, &alias)).await {
                    Ok(Some(state)) => {
                        member_discrepancies(app, &r.tenant, r.kind, r.slug.as_str(), &r.members, &state)
                    }
                    // Reported once, by the room check.
                    Ok(None) => Vec::new(),
                    Err(error) => vec![format!(
                        "{}: members could not be read: {error}",
                        room_name(&r.tenant, r.kind, r.slug.as_str())
                    )],
                };
                (units, found)
            },
            |(units, mut d)| {
                progress.add(units);
                found.append(&mut d);
            },
        )
        .await;
    }
    progress.finish();
    Ok(VerifyReport { snapshot: summary, checked: total, discrepancies: found })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Valid, parse_line};

    fn room(line: &str) -> Room {
        match parse_line(line) {
            Ok(Valid::Room(room)) => room,
            _ => panic!("not a room: {line}"),
        }
    }

    #[test]
    fn users_differ_by_existence_profile_and_deactivation() {
        let Ok(Valid::User(user)) =
            parse_line(r#"{"type":"user","tenant":"t","userId":"a","displayName":"Ann","avatarUrl":null}"#)
        else {
            panic!("a user")
        };
        assert_eq!(user_discrepancies(&user, &UserState::default()), ["user t/a: missing"]);
        let same = UserState { exists: true, display_name: Some("Ann".into()), ..UserState::default() };
        assert!(user_discrepancies(&user, &same).is_empty());
        let renamed = UserState { display_name: Some("Bob".into()), ..same.clone() };
        assert!(user_discrepancies(&user, &renamed)[0].contains("display name"));
        let gone = UserState { deactivated: true, ..same };
        assert_eq!(user_discrepancies(&user, &gone), ["user t/a: deactivated"]);
    }

    #[test]
    fn rooms_differ_by_name_visibility_lifecycle_and_space_link() {
        let expected = room(
            r#"{"type":"event","tenant":"t","slug":"e","name":"E","startsAt":"2031-01-01T18:00:00Z","groupSlug":"g","visibility":"private","status":"cancelled"}"#,
        );
        let actual = RoomState {
            room_id: "!r:x".into(),
            name: Some("E".into()),
            join_rule: Some("invite".into()),
            lifecycle: Some(Lifecycle::Cancelled),
            event: expected.spec.event.clone(),
            parents: vec!["!space:x".into()],
            ..RoomState::default()
        };
        assert_eq!(room_discrepancies(&expected, &actual, Some("!space:x")), Vec::<String>::new());
        let drifted = RoomState {
            name: Some("F".into()),
            join_rule: Some("restricted".into()),
            lifecycle: None,
            parents: vec![],
            ..actual
        };
        let found = room_discrepancies(&expected, &drifted, Some("!space:x"));
        assert_eq!(found.len(), 4, "{found:?}");
    }
}
