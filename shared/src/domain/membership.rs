//! Membership and roles: OpenMeet memberships as room membership and power levels.
//!
//! The homeserver is the source of truth: every operation reads the room's real membership and its
//! `m.room.power_levels` (as the platform user, who created the room and holds unlimited power), computes what must
//! change with the pure functions below, and applies only that. Power levels are written read-modify-write, never
//! clobbering entries we do not manage, and verified afterwards. Every operation is safe to replay.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::domain::rooms::{self, RoomRef, membership_of};
use crate::domain::users::{self, AvatarChange};
use crate::error::ApiError;
use crate::homeserver::{Acting, HomeserverError, encode};
use crate::identity::{RoomKind, TenantId, UserSlug};

/// The contract's limit on a reconcile list (`ReconcileMembersRequest.members.maxItems`).
pub const MAX_RECONCILE_MEMBERS: usize = 5000;
/// Membership changes in flight at once during a reconcile: enough to hide latency, few enough not to swamp Synapse.
const MEMBERSHIP_CONCURRENCY: usize = 8;
/// Read-modify-write rounds of the power levels before giving up on a room that keeps changing under us.
const MAX_POWER_LEVEL_WRITES: usize = 5;

// ------------------------------------------------------------------------------------------------------------------
// Roles and power levels
// ------------------------------------------------------------------------------------------------------------------

/// An OpenMeet role; ordered from least to most powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Speaker,
    Moderator,
    Admin,
    Owner,
}

impl Role {
    /// Most powerful first, so the first role a level reaches is the one it reads as.
    const DESCENDING: [Role; 5] = [Role::Owner, Role::Admin, Role::Moderator, Role::Speaker, Role::Member];

    pub fn power_level(self) -> i64 {
        match self {
            Role::Owner => 100,
            Role::Admin => 75,
            Role::Moderator => 50,
            Role::Speaker => 25,
            Role::Member => 0,
        }
    }

    /// The role a power level reads as: a level between two roles reads as the lower one; anything below 0 (or
    /// above 100) reads as the nearest role.
    pub fn from_power_level(level: i64) -> Role {
        Role::DESCENDING.into_iter().find(|role| level >= role.power_level()).unwrap_or(Role::Member)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Moderator => "moderator",
            Role::Speaker => "speaker",
            Role::Member => "member",
        }
    }
}

/// The part of `m.room.power_levels` membership cares about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PowerLevels {
    pub users_default: i64,
    /// Explicit entries of the `users` map, by Matrix user id.
    pub users: BTreeMap<String, i64>,
}

/// Power levels are integers, but old rooms may carry them as strings.
fn level_value(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))
}

impl PowerLevels {
    pub fn from_content(content: &Value) -> PowerLevels {
        let users_default = content.get("users_default").and_then(level_value).unwrap_or(0);
        let users = content
            .get("users")
            .and_then(Value::as_object)
            .map(|users| users.iter().filter_map(|(user, level)| Some((user.clone(), level_value(level)?))).collect())
            .unwrap_or_default();
        PowerLevels { users_default, users }
    }

    /// The level a user effectively has: their entry, else `users_default`.
    pub fn level_of(&self, user_id: &str) -> i64 {
        self.users.get(user_id).copied().unwrap_or(self.users_default)
    }
}

/// Merges wanted levels into the power-levels content. A wanted level equal to `users_default` removes the entry
/// (a member's entry is dropped rather than pinned at 0); every other key and every other user's entry is kept.
/// `never_listed` (the room creator, whose power in room version 12 is unlimited and who must not appear in the
/// map) is never written. `None` when nothing would change, so the caller can skip the write.
pub fn merge_power_levels(content: &Value, wanted: &BTreeMap<String, i64>, never_listed: &str) -> Option<Value> {
    let users_default = PowerLevels::from_content(content).users_default;
    let original = content.get("users").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut users: Map<String, Value> = original.clone();
    for (user, &level) in wanted {
        if user == never_listed {
            continue;
        }
        if level == users_default {
            users.remove(user);
        } else {
            users.insert(user.clone(), json!(level));
        }
    }
    if users == original {
        return None;
    }
    let mut merged = match content {
        Value::Object(fields) => fields.clone(),
        _ => Map::new(),
    };
    merged.insert("users".into(), Value::Object(users));
    Some(Value::Object(merged))
}

// ------------------------------------------------------------------------------------------------------------------
// Inputs and views
// ------------------------------------------------------------------------------------------------------------------

/// Body of `PUT /v1/{kind}/{slug}/members/{userId}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutMemberInput {
    pub role: Role,
}

/// One entry of a reconcile list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MemberSpec {
    pub user_id: String,
    pub role: Role,
}

/// Body of `PUT /v1/{kind}/{slug}/members`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileInput {
    pub members: Vec<MemberSpec>,
}

impl ReconcileInput {
    /// Checks the list as a whole (ids, size, duplicates) before anything changes.
    pub fn validate(self) -> Result<Vec<(UserSlug, Role)>, ApiError> {
        if self.members.len() > MAX_RECONCILE_MEMBERS {
            return Err(ApiError::bad_request(
                "invalid_body",
                format!("members may list at most {MAX_RECONCILE_MEMBERS} users"),
            ));
        }
        let mut seen = BTreeSet::new();
        let mut wanted = Vec::with_capacity(self.members.len());
        for spec in self.members {
            let user = UserSlug::parse(&spec.user_id).map_err(|_| {
                ApiError::bad_request(
                    "invalid_body",
                    format!("members: {:?} is not a user id (1-64 characters of [a-z0-9._-])", spec.user_id),
                )
            })?;
            if !seen.insert(user.clone()) {
                return Err(ApiError::bad_request("invalid_body", format!("members: {user} is listed twice")));
            }
            wanted.push((user, spec.role));
        }
        Ok(wanted)
    }
}

/// A room membership as the homeserver states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Membership {
    Join,
    Invite,
    Knock,
    Ban,
    Leave,
}

impl Membership {
    pub fn parse(value: &str) -> Option<Membership> {
        match value {
            "join" => Some(Membership::Join),
            "invite" => Some(Membership::Invite),
            "knock" => Some(Membership::Knock),
            "ban" => Some(Membership::Ban),
            "leave" => Some(Membership::Leave),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Membership::Join => "join",
            Membership::Invite => "invite",
            Membership::Knock => "knock",
            Membership::Ban => "ban",
            Membership::Leave => "leave",
        }
    }

    /// Joined or invited: a member as far as reconcile and the last-owner rule are concerned.
    pub fn is_member(self) -> bool {
        matches!(self, Membership::Join | Membership::Invite)
    }
}

/// A member as the API shows it (schema `Member`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// `None` for a stranger: someone in the room who is not a user of this tenant.
    pub user_id: Option<String>,
    pub matrix_user_id: String,
    pub role: Role,
    pub membership: &'static str,
}

/// Schema `MemberList`.
#[derive(Debug, Clone, Serialize)]
pub struct MemberList {
    pub members: Vec<MemberView>,
}

/// Schema `ReconcileResult`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileReport {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub role_changed: Vec<String>,
    pub unchanged: usize,
}

// ------------------------------------------------------------------------------------------------------------------
// Pure decisions
// ------------------------------------------------------------------------------------------------------------------

/// Refuses a change that takes the room from at least one owner to none, unless forced.
pub fn check_last_owner(
    owners_before: &BTreeSet<UserSlug>,
    owners_after: &BTreeSet<UserSlug>,
    force: bool,
) -> Result<(), ApiError> {
    if force || owners_before.is_empty() || !owners_after.is_empty() {
        return Ok(());
    }
    Err(ApiError::conflict(
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

// ------------------------------------------------------------------------------------------------------------------
// Homeserver reads and writes
// ------------------------------------------------------------------------------------------------------------------

/// Power-level writes of one room are serialized within this process, so that our own concurrent requests do not
/// overwrite each other's read-modify-write (other writers are caught by the verification after each write).
static ROOM_LOCKS: LazyLock<Mutex<HashMap<OwnedRoomId, Arc<tokio::sync::Mutex<()>>>>> = LazyLock::new(Default::default);

async fn lock_room(room_id: &RoomId) -> tokio::sync::OwnedMutexGuard<()> {
    let lock = {
        let mut locks = ROOM_LOCKS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Only the map holds an idle lock: forget those, so the map stays as small as the rooms in use.
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks.entry(room_id.to_owned()).or_default().clone()
    };
    lock.lock_owned().await
}

fn power_levels_path(room_id: &RoomId) -> String {
    format!("/_matrix/client/v3/rooms/{}/state/m.room.power_levels/", encode(room_id.as_str()))
}

async fn read_power_levels(app: &App, room_id: &RoomId) -> Result<Value, ApiError> {
    let path = power_levels_path(room_id);
    Ok(app.homeserver.call(reqwest::Method::GET, &path, Acting::Platform, None::<&Value>).await?)
}

/// Makes the given users' effective levels hold. `known` (read earlier, maybe seconds ago) only decides whether
/// anything is to do, so a no-op costs no request; the merge itself goes onto a fresh read, so that another
/// writer's change is clobbered only if it lands within one round trip (Matrix has no compare-and-swap for state).
/// Every write is verified by re-reading: if someone replaced the event in between, the merge is redone on top of
/// theirs. Returns how many writes it took (0: nothing to do).
async fn write_power_levels(
    app: &App,
    room_id: &RoomId,
    known: &Value,
    wanted: &BTreeMap<String, i64>,
) -> Result<usize, ApiError> {
    let platform = app.identities.platform_user_id();
    if merge_power_levels(known, wanted, platform.as_str()).is_none() {
        return Ok(0);
    }
    let path = power_levels_path(room_id);
    let mut writes = 0;
    loop {
        let content = read_power_levels(app, room_id).await?;
        let Some(merged) = merge_power_levels(&content, wanted, platform.as_str()) else {
            return Ok(writes);
        };
        if writes == MAX_POWER_LEVEL_WRITES {
            tracing::warn!(room = %room_id, writes, "power levels keep changing under us; giving up for now");
            return Err(ApiError::HomeserverUnavailable { retry_after: Duration::from_secs(1) });
        }
        app.homeserver.call::<Value>(reqwest::Method::PUT, &path, Acting::Platform, Some(&merged)).await?;
        writes += 1;
    }
}

#[derive(Deserialize)]
struct MembersResponse {
    #[serde(default)]
    chunk: Vec<MemberEvent>,
}

#[derive(Deserialize)]
struct MemberEvent {
    state_key: String,
    #[serde(default)]
    content: MemberContent,
}

#[derive(Deserialize, Default)]
struct MemberContent {
    #[serde(default)]
    membership: String,
}

/// The tenant's users among a Matrix user id: the platform, foreign users and other tenants' users are `None`.
fn tenant_user(app: &App, tenant: &TenantId, user_id: &str) -> Option<UserSlug> {
    let user_id = UserId::parse(user_id).ok()?;
    match app.identities.openmeet_user(&user_id) {
        Some((owner, user)) if owner == *tenant => Some(user),
        _ => None,
    }
}

/// The room's memberships and power levels, restricted to the tenant's users: two requests, whatever the size.
async fn read_tenant_view(app: &App, tenant: &TenantId, room_id: &RoomId) -> Result<(TenantView, Value), ApiError> {
    let path = format!("/_matrix/client/v3/rooms/{}/members?not_membership=leave", encode(room_id.as_str()));
    let members: MembersResponse =
        app.homeserver.call(reqwest::Method::GET, &path, Acting::Platform, None::<&Value>).await?;
    let content = read_power_levels(app, room_id).await?;
    let power = PowerLevels::from_content(&content);
    let mut view = TenantView { users_default: power.users_default, ..TenantView::default() };
    let platform = app.identities.platform_user_id();
    for event in members.chunk {
        let Some(membership) = Membership::parse(&event.content.membership).filter(|m| *m != Membership::Leave) else {
            continue;
        };
        if let Some(user) = tenant_user(app, tenant, &event.state_key) {
            view.memberships.insert(user, membership);
        } else if let Ok(stranger) = UserId::parse(event.state_key.as_str())
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

/// A membership change that already holds (joining someone joined, kicking someone gone) is success.
fn already_applied(outcome: Result<Value, HomeserverError>) -> Result<(), ApiError> {
    match outcome {
        Ok(_) => Ok(()),
        Err(error) if error.is_membership_already_applied() => Ok(()),
        Err(error) => Err(error.into()),
    }
}

async fn room_action(app: &App, room_id: &RoomId, action: &str, user_id: &UserId) -> Result<(), ApiError> {
    let path = format!("/_matrix/client/v3/rooms/{}/{action}", encode(room_id.as_str()));
    let body = json!({"user_id": user_id.as_str()});
    already_applied(app.homeserver.call(reqwest::Method::POST, &path, Acting::Platform, Some(&body)).await)
}

/// Provisions the user when the homeserver does not know them (display name = userId until `putUser` sets one),
/// lifts a ban, and joins them with the homeserver's admin join (which invites first in invite-only rooms).
async fn join(
    app: &App,
    tenant: &TenantId,
    room_id: &RoomId,
    user: &UserSlug,
    current: Option<Membership>,
) -> Result<(), ApiError> {
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
        room_action(app, room_id, "unban", &user_id).await?;
    }
    rooms::admin_join(app, room_id, &user_id).await
}

/// Runs `task` for every item, at most `limit` at a time, on this task (no `'static` bound, no extra crate). After
/// the first failure nothing new starts; what is in flight finishes, then that failure is returned. Nothing new
/// starts after `deadline` either: `Ok(false)` when items were left for later.
async fn run_bounded<T, F, Fut>(
    items: Vec<T>,
    limit: usize,
    deadline: Option<Instant>,
    task: F,
) -> Result<bool, ApiError>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<(), ApiError>>,
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
async fn other_owner_exists(
    app: &App,
    tenant: &TenantId,
    room_id: &OwnedRoomId,
    power: &PowerLevels,
    except: &UserSlug,
) -> Result<bool, ApiError> {
    for (user_id, level) in &power.users {
        if *level < Role::Owner.power_level() {
            continue;
        }
        let Some(user) = tenant_user(app, tenant, user_id).filter(|user| user != except) else {
            continue;
        };
        let membership = membership_of(app, room_id, user_id).await?;
        if membership.as_deref().and_then(Membership::parse).is_some_and(Membership::is_member) {
            return Ok(true);
        }
        tracing::debug!(user = %user, "owner entry of a non-member ignored");
    }
    Ok(false)
}

/// Refuses to take away `user`'s ownership when they are the last owner, unless forced.
async fn guard_last_owner(
    app: &App,
    tenant: &TenantId,
    room: &RoomRef,
    power: &PowerLevels,
    user: &UserSlug,
    membership: Option<Membership>,
    force: bool,
) -> Result<(), ApiError> {
    let user_id = app.identities.matrix_user_id(tenant, user);
    let is_owner =
        membership.is_some_and(Membership::is_member) && power.level_of(user_id.as_str()) >= Role::Owner.power_level();
    if force || !is_owner || other_owner_exists(app, tenant, &room.room_id, power, user).await? {
        return Ok(());
    }
    check_last_owner(&BTreeSet::from([user.clone()]), &BTreeSet::new(), force)
}

async fn current_membership(app: &App, room_id: &RoomId, user_id: &UserId) -> Result<Option<Membership>, ApiError> {
    Ok(membership_of(app, room_id, user_id.as_str()).await?.as_deref().and_then(Membership::parse))
}

/// A group's space, whose membership follows the group's (so Matrix clients show the hierarchy); `None` for other
/// rooms. No roles there: nobody posts in a space.
async fn group_space(app: &App, tenant: &TenantId, room: &RoomRef) -> Result<Option<OwnedRoomId>, ApiError> {
    if room.kind != RoomKind::Group {
        return Ok(None);
    }
    rooms::lookup_alias(app, &app.identities.space_alias(tenant, &room.slug)).await
}

/// Into a group's space (lifting a ban the group's removal put there).
async fn join_space(app: &App, space: &RoomId, user_id: &UserId) -> Result<(), ApiError> {
    match current_membership(app, space, user_id).await? {
        Some(Membership::Join) => Ok(()),
        Some(Membership::Ban) => {
            room_action(app, space, "unban", user_id).await?;
            rooms::admin_join(app, space, user_id).await
        }
        _ => rooms::admin_join(app, space, user_id).await,
    }
}

/// Kicks (or bans) a user out of a room given their membership there; a banned user stays banned (kicking would
/// lift the ban), someone not there is left alone.
async fn leave_room(
    app: &App,
    room_id: &RoomId,
    user_id: &UserId,
    ban: bool,
    membership: Option<Membership>,
) -> Result<(), ApiError> {
    match membership {
        Some(Membership::Ban) => Ok(()),
        _ if ban => room_action(app, room_id, "ban", user_id).await,
        Some(Membership::Join | Membership::Invite | Membership::Knock) => {
            room_action(app, room_id, "kick", user_id).await
        }
        Some(Membership::Leave) | None => Ok(()),
    }
}

// ------------------------------------------------------------------------------------------------------------------
// Operations
// ------------------------------------------------------------------------------------------------------------------

/// Makes `user` a joined member of the room with `role`: provisions them if needed, lifts a ban, joins them, sets
/// their power level. Nothing is written when they already are.
pub async fn put(
    app: &App,
    tenant: &TenantId,
    room: &RoomRef,
    user: &UserSlug,
    role: Role,
    force: bool,
) -> Result<MemberView, ApiError> {
    let _room_lock = lock_room(&room.room_id).await;
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
) -> Result<(), ApiError> {
    let _room_lock = lock_room(&room.room_id).await;
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
) -> Result<Reconciled, ApiError> {
    let started = Instant::now();
    let _room_lock = if dry_run { None } else { Some(lock_room(&room.room_id).await) };
    let (view, content) = read_tenant_view(app, tenant, &room.room_id).await?;
    let plan = plan_reconcile(wanted, &view);
    check_last_owner(&view.owners(), &plan.owners_after, force)?;
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
) -> Result<bool, ApiError> {
    let started = Instant::now();
    let _room_lock = lock_room(&room.room_id).await;
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
) -> Result<Option<usize>, ApiError> {
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
            room_action(app, &room.room_id, "kick", &user_id).await?;
            match space {
                Some(space) => room_action(app, space, "kick", &user_id).await,
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
pub async fn list(app: &App, tenant: &TenantId, room: &RoomRef) -> Result<MemberList, ApiError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn slug(name: &str) -> UserSlug {
        UserSlug::parse(name).expect("valid slug")
    }

    fn view(members: &[(&str, Membership, Option<i64>)]) -> TenantView {
        let mut view = TenantView::default();
        for (name, membership, level) in members {
            if *membership != Membership::Leave {
                view.memberships.insert(slug(name), *membership);
            }
            if let Some(level) = level {
                view.levels.insert(slug(name), *level);
            }
        }
        view
    }

    fn wanted(list: &[(&str, Role)]) -> Vec<(UserSlug, Role)> {
        list.iter().map(|(name, role)| (slug(name), *role)).collect()
    }

    #[test]
    fn roles_map_to_the_contracts_power_levels() {
        let expected =
            [(Role::Owner, 100), (Role::Admin, 75), (Role::Moderator, 50), (Role::Speaker, 25), (Role::Member, 0)];
        for (role, level) in expected {
            assert_eq!(role.power_level(), level);
            assert_eq!(Role::from_power_level(level), role);
            assert_eq!(serde_json::to_value(role).expect("serializes"), json!(role.as_str()));
        }
    }

    #[test]
    fn a_level_between_two_roles_reads_as_the_lower() {
        assert_eq!(Role::from_power_level(99), Role::Admin);
        assert_eq!(Role::from_power_level(74), Role::Moderator);
        assert_eq!(Role::from_power_level(60), Role::Moderator);
        assert_eq!(Role::from_power_level(49), Role::Speaker);
        assert_eq!(Role::from_power_level(24), Role::Member);
        assert_eq!(Role::from_power_level(1), Role::Member);
        assert_eq!(Role::from_power_level(-10), Role::Member);
        assert_eq!(Role::from_power_level(9000), Role::Owner);
    }

    #[test]
    fn roles_parse_strictly() {
        let input: PutMemberInput = serde_json::from_str(r#"{"role":"moderator"}"#).expect("valid");
        assert_eq!(input.role, Role::Moderator);
        for bad in [r#"{"role":"Owner"}"#, r#"{"role":"god"}"#, r#"{"role":50}"#, r#"{}"#, r#"{"role":"member","x":1}"#]
        {
            assert!(serde_json::from_str::<PutMemberInput>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reconcile_lists_are_validated_as_a_whole() {
        let parse = |text: &str| {
            serde_json::from_str::<ReconcileInput>(text)
                .map_err(|_| ())
                .and_then(|input| input.validate().map_err(|error| assert_eq!(error.code(), "invalid_body")))
        };
        let ok =
            parse(r#"{"members":[{"userId":"a","role":"owner"},{"userId":"b.c","role":"member"}]}"#).expect("valid");
        assert_eq!(ok, wanted(&[("a", Role::Owner), ("b.c", Role::Member)]));
        assert_eq!(parse(r#"{"members":[]}"#), Ok(vec![]));
        assert!(parse(r#"{"members":[{"userId":"a","role":"owner"},{"userId":"a","role":"member"}]}"#).is_err());
        assert!(parse(r#"{"members":[{"userId":"A","role":"owner"}]}"#).is_err());
        assert!(parse(r#"{"members":[{"userId":"a","role":"owner","extra":1}]}"#).is_err());
        assert!(parse(r#"{"members":[],"extra":1}"#).is_err());
        assert!(parse(r#"{"members":[{"userId":"a"}]}"#).is_err());
        let too_many: Vec<Value> =
            (0..=MAX_RECONCILE_MEMBERS).map(|i| json!({"userId": format!("u{i}"), "role": "member"})).collect();
        assert!(parse(&json!({ "members": too_many }).to_string()).is_err());
    }

    #[test]
    fn merge_keeps_every_other_entry_and_key() {
        let content = json!({
            "users": {"@om_t.a:x": 100, "@foreign:elsewhere": 50, "@om_t.b:x": 25},
            "users_default": 0,
            "events": {"m.room.name": 50},
            "kick": 50,
        });
        let wanted = BTreeMap::from([("@om_t.b:x".to_owned(), 50), ("@om_t.c:x".to_owned(), 75)]);
        let merged = merge_power_levels(&content, &wanted, "@openmeet:x").expect("changes");
        assert_eq!(
            merged["users"],
            json!({"@om_t.a:x": 100, "@foreign:elsewhere": 50, "@om_t.b:x": 50, "@om_t.c:x": 75})
        );
        assert_eq!(merged["events"], content["events"]);
        assert_eq!(merged["kick"], 50);
    }

    #[test]
    fn merge_drops_members_entries_and_skips_no_ops() {
        let content = json!({"users": {"@om_t.a:x": 100, "@om_t.b:x": 50}, "users_default": 0});
        let demoted =
            merge_power_levels(&content, &BTreeMap::from([("@om_t.b:x".to_owned(), 0)]), "@p:x").expect("changes");
        assert_eq!(demoted["users"], json!({"@om_t.a:x": 100}));
        let same = BTreeMap::from([("@om_t.a:x".to_owned(), 100), ("@om_t.z:x".to_owned(), 0)]);
        assert_eq!(merge_power_levels(&content, &same, "@p:x"), None);
        // Without a `users` map, a member-only change must not invent one.
        assert_eq!(merge_power_levels(&json!({}), &BTreeMap::from([("@om_t.z:x".to_owned(), 0)]), "@p:x"), None);
    }

    #[test]
    fn merge_honours_a_nonzero_users_default() {
        let content = json!({"users": {}, "users_default": 10});
        let wanted = BTreeMap::from([("@om_t.a:x".to_owned(), 0), ("@om_t.b:x".to_owned(), 10)]);
        let merged = merge_power_levels(&content, &wanted, "@p:x").expect("changes");
        assert_eq!(merged["users"], json!({"@om_t.a:x": 0}));
    }

    #[test]
    fn merge_never_lists_the_room_creator() {
        let content = json!({"users": {"@om_t.a:x": 100}});
        let wanted = BTreeMap::from([("@openmeet:x".to_owned(), 100)]);
        assert_eq!(merge_power_levels(&content, &wanted, "@openmeet:x"), None);
    }

    #[test]
    fn power_levels_read_defaults_and_string_levels() {
        let power = PowerLevels::from_content(&json!({"users": {"@a:x": "50", "@b:x": 75, "@c:x": "junk"}}));
        assert_eq!(power.users_default, 0);
        assert_eq!(power.level_of("@a:x"), 50);
        assert_eq!(power.level_of("@b:x"), 75);
        assert_eq!(power.level_of("@c:x"), 0);
        assert_eq!(power.level_of("@nobody:x"), 0);
        assert_eq!(PowerLevels::from_content(&json!({"users_default": 5})).level_of("@a:x"), 5);
    }

    #[test]
    fn reconcile_plan_reaches_the_list_exactly() {
        use Membership::*;
        let room = view(&[("a", Join, Some(100)), ("b", Join, None), ("c", Join, None)]);
        let plan = plan_reconcile(&wanted(&[("a", Role::Owner), ("b", Role::Moderator), ("d", Role::Member)]), &room);
        assert_eq!(plan.report.added, ["d"]);
        assert_eq!(plan.report.removed, ["c"]);
        assert_eq!(plan.report.role_changed, ["b"]);
        assert_eq!(plan.report.unchanged, 1);
        assert_eq!(plan.joins, [PlannedJoin { user: slug("d"), current: None }]);
        assert_eq!(plan.kicks, [slug("c")]);
        assert_eq!(plan.levels, BTreeMap::from([(slug("b"), 50)]));
        assert_eq!(plan.owners_after, BTreeSet::from([slug("a")]));
    }

    #[test]
    fn a_reconciled_room_plans_nothing() {
        use Membership::*;
        let room = view(&[("a", Join, Some(100)), ("b", Join, Some(50)), ("d", Join, None)]);
        let plan = plan_reconcile(&wanted(&[("a", Role::Owner), ("b", Role::Moderator), ("d", Role::Member)]), &room);
        assert!(plan.joins.is_empty() && plan.kicks.is_empty() && plan.levels.is_empty());
        assert_eq!(plan.report, ReconcileReport { unchanged: 3, ..ReconcileReport::default() });
    }

    #[test]
    fn reconcile_plan_handles_every_membership_state() {
        use Membership::*;
        let room = view(&[
            ("invited", Invite, None),
            ("invited-extra", Invite, None),
            ("banned", Ban, Some(50)),
            ("banned-extra", Ban, None),
            ("knocking", Knock, None),
            ("gone", Leave, Some(75)),
            ("ex-owner", Leave, Some(100)),
        ]);
        let plan = plan_reconcile(
            &wanted(&[
                ("invited", Role::Speaker),
                ("banned", Role::Member),
                ("knocking", Role::Member),
                ("gone", Role::Admin),
            ]),
            &room,
        );
        // Invited, banned and knocking users on the list are joined; a ban is lifted on the way.
        assert_eq!(plan.report.added, ["banned", "gone", "invited", "knocking"]);
        assert!(plan.joins.contains(&PlannedJoin { user: slug("banned"), current: Some(Ban) }));
        // An invite not on the list is withdrawn; a ban not on the list stays.
        assert_eq!(plan.report.removed, ["invited-extra"]);
        assert_eq!(plan.kicks, [slug("invited-extra")]);
        // Levels: set where they differ, and the stale owner entry of someone who left is dropped.
        assert_eq!(plan.levels, BTreeMap::from([(slug("banned"), 0), (slug("ex-owner"), 0), (slug("invited"), 25)]));
        assert_eq!(plan.report.unchanged, 0);
        assert!(plan.report.role_changed.is_empty());
    }

    #[test]
    fn a_level_that_only_reads_as_the_role_is_normalised() {
        let room = view(&[("a", Membership::Join, Some(60))]);
        let plan = plan_reconcile(&wanted(&[("a", Role::Moderator)]), &room);
        assert_eq!(plan.report.role_changed, ["a"]);
        assert_eq!(plan.levels, BTreeMap::from([(slug("a"), 50)]));
    }

    #[test]
    fn owners_are_joined_or_invited_users_at_owner_level() {
        use Membership::*;
        let room = view(&[
            ("a", Join, Some(100)),
            ("b", Invite, Some(100)),
            ("c", Leave, Some(100)),
            ("d", Ban, Some(100)),
            ("e", Join, Some(75)),
        ]);
        assert_eq!(room.owners(), BTreeSet::from([slug("a"), slug("b")]));
    }

    #[test]
    fn the_last_owner_is_kept_unless_forced() {
        let one = BTreeSet::from([slug("a")]);
        let none = BTreeSet::new();
        let error = check_last_owner(&one, &none, false).expect_err("refused");
        assert_eq!((error.status(), error.code()), (409, "last_owner"));
        assert!(check_last_owner(&one, &none, true).is_ok());
        assert!(check_last_owner(&one, &BTreeSet::from([slug("b")]), false).is_ok());
        // A room that had no owner may stay without one.
        assert!(check_last_owner(&none, &none, false).is_ok());
    }

    #[test]
    fn reconcile_removing_every_owner_is_refused() {
        let room = view(&[("a", Membership::Join, Some(100)), ("b", Membership::Join, None)]);
        let plan = plan_reconcile(&wanted(&[("a", Role::Admin), ("b", Role::Member)]), &room);
        assert!(check_last_owner(&room.owners(), &plan.owners_after, false).is_err());
        let handed_over = plan_reconcile(&wanted(&[("b", Role::Owner)]), &room);
        assert!(check_last_owner(&room.owners(), &handed_over.owners_after, false).is_ok());
    }

    #[tokio::test]
    async fn bounded_runs_respect_the_limit_and_stop_after_a_failure() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (running, peak, started) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
        let outcome = run_bounded((0..40).collect(), 8, None, |i: usize| {
            let (running, peak, started) = (&running, &peak, &started);
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                if i == 20 { Err(ApiError::Internal) } else { Ok(()) }
            }
        })
        .await;
        assert!(outcome.is_err());
        assert_eq!(peak.load(Ordering::SeqCst), 8);
        assert!(started.load(Ordering::SeqCst) < 40, "kept starting after a failure");
        assert_eq!(running.load(Ordering::SeqCst), 0, "left work in flight");

        let done = AtomicUsize::new(0);
        let complete = run_bounded((0..17).collect(), 8, None, |_: usize| {
            let done = &done;
            async move {
                done.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .await
        .expect("all succeed");
        assert!(complete);
        assert_eq!(done.load(Ordering::SeqCst), 17);
    }

    #[tokio::test]
    async fn bounded_runs_start_nothing_after_the_deadline_and_say_so() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let started = AtomicUsize::new(0);
        let deadline = Instant::now() + Duration::from_millis(25);
        let complete = run_bounded((0..100).collect(), 4, Some(deadline), |_: usize| {
            let started = &started;
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok(())
            }
        })
        .await
        .expect("no failure");
        assert!(!complete, "reported complete with items left");
        let started = started.load(Ordering::SeqCst);
        assert!((4..100).contains(&started), "started {started} of 100");

        let nothing_left = run_bounded(Vec::<usize>::new(), 4, Some(Instant::now()), |_| async { Ok(()) }).await;
        assert!(nothing_left.expect("no failure"), "an empty list is complete even past the deadline");
    }

    #[test]
    fn a_sparing_plan_leaves_users_with_a_newer_intent_alone() {
        let room = view(&[
            ("a", Membership::Join, Some(100)),
            ("b", Membership::Join, None),
            ("c", Membership::Join, Some(50)),
        ]);
        // b was promoted and c removed by the service after the reconcile was accepted: both are spared.
        let spared: BTreeSet<UserSlug> = ["b", "c"].into_iter().map(slug).collect();
        let plan = plan_reconcile_sparing(
            &wanted(&[("a", Role::Owner), ("b", Role::Member), ("d", Role::Member)]),
            &room,
            &spared,
        );
        assert_eq!(plan.kicks, Vec::<UserSlug>::new(), "c was kicked though spared");
        assert_eq!(plan.joins.iter().map(|j| j.user.as_str()).collect::<Vec<_>>(), ["d"]);
        assert!(!plan.levels.keys().any(|user| spared.contains(user)), "a spared user's level changed");
        assert_eq!(plan.report.added, ["d"]);
        assert!(plan.report.removed.is_empty() && plan.report.role_changed.is_empty());
        assert_eq!(plan.report.unchanged, 1);
    }

    #[tokio::test]
    async fn room_locks_serialize_one_room_and_are_forgotten_when_idle() {
        let room = OwnedRoomId::try_from("!lock-test:x").expect("room id");
        let guard = lock_room(&room).await;
        let other = OwnedRoomId::try_from("!lock-other:x").expect("room id");
        drop(lock_room(&other).await);
        let blocked = tokio::time::timeout(Duration::from_millis(20), lock_room(&room)).await;
        assert!(blocked.is_err(), "a second lock of the same room was granted");
        drop(guard);
        drop(lock_room(&room).await);
        let _ = lock_room(&OwnedRoomId::try_from("!lock-third:x").expect("room id")).await;
        let locks = ROOM_LOCKS.lock().expect("lock map");
        assert!(!locks.contains_key(&other), "an idle lock was kept");
    }
}
