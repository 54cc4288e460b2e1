//! The table's key schema, in one place. One DynamoDB table holds every record; a record's partition key (`pk`)
//! says what it is and whose, its sort key (`sk`) which one. Tenant-owned records start with `T#{tenant}#`, so a
//! tenant's data can be found (and exported or erased) by prefix.
//!
//! | record                         | pk                              | sk                        |
//! |--------------------------------|---------------------------------|---------------------------|
//! | user profile                   | `T#{tenant}#U#{user}`           | `PROFILE`                 |
//! | operation reference of a user  | `T#{tenant}#U#{user}`           | `OPREF#{operation}`       |
//! | idempotency record             | `T#{tenant}#IDEM#{sha256}`      | `IDEM`                    |
//! | membership intents of a room   | `T#{tenant}#R#{kind}#{slug}`    | `MEMBER#{user}`, `RECONCILED` |
//! | queued operation               | `OP#{operation}`                | `OP`                      |
//! | a room's queued-message count  | `BACKLOG#{room id}`             | `BACKLOG`                 |
//! | alias → room id                | `ALIAS#{alias}`                 | `ROOM`                    |
//! | room creation lock             | `LOCK#{alias}`                  | `CREATING`                |
//! | web device index (sharded)     | `WEBDEV#{shard}`                | `{tenant}/{user}/{device}`|
//! | managed room: desired settings | `MANAGED`                       | `{tenant}/{kind}/{slug}`  |
//! | managed room: desired members  | `DESIRED#{tenant}/{kind}/{slug}`| `ROSTER`, `M#{user}`      |
//! | self-healing job cursor        | `SELFHEAL`                      | `CURSOR#{job}`            |
//! | event reminder posted          | `REMINDER#{tenant}/{kind}/{slug}` | `{reminder}@{startsAt}` |
//! | cutover run / import: summary  | `CUTOVER#{run}`                 | `META`                    |
//! | cutover run / import: entries  | `CUTOVER#{run}`                 | `{kind}{entity}`          |
//! | a snapshot's unfinished run    | `CUTOVER#SNAPSHOT#{digest}`     | `RUN`                     |
//! | newest complete run of tenants | `CUTOVER#BASE#{tenants digest}` | `RUN`                     |
//! | index of cutover runs          | `CUTOVER#RUNS`                  | `{started:012}#{run}`     |
//! | write budget: a user's         | `RL#{tenant}#U#{user}`          | `W#{windowStart}`         |
//! | write budget: a tenant's users | `RL#{tenant}#users`             | `W#{windowStart}`         |
//! | write budget: the service's    | `RL#{tenant}#service`           | `W#{windowStart}`         |
//! | chat push: preference, pusher  | `T#{tenant}#U#{user}`           | `PUSH`                    |
//! | chat push: event delivered     | `T#{tenant}#U#{user}`           | `PUSHED#{event id}` (TTL) |
//! | read budget: a user's          | `RR#{tenant}#U#{user}`          | `W#{windowStart}`         |
//! | read budget: a tenant's users  | `RR#{tenant}#users`             | `W#{windowStart}`         |
//! | read budget: the service's     | `RR#{tenant}#service`           | `W#{windowStart}`         |

use std::fmt;
use std::str::FromStr;

use crate::identity::{RoomKind, Slug, TenantId, UserSlug};

/// A record's primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    fn new(pk: String, sk: impl Into<String>) -> Key {
        Key { pk, sk: sk.into() }
    }
}

/// The partition of everything one user owns (deleted with the user).
pub fn user_partition(tenant: &TenantId, user: &UserSlug) -> String {
    format!("T#{tenant}#U#{user}")
}

pub fn user_profile(tenant: &TenantId, user: &UserSlug) -> Key {
    Key::new(user_partition(tenant, user), PROFILE_SK)
}

/// Sort-key prefix of a user's operation references.
pub const OPERATION_REF_PREFIX: &str = "OPREF#";

pub fn operation_ref(tenant: &TenantId, user: &UserSlug, operation_id: &str) -> Key {
    Key::new(user_partition(tenant, user), format!("{OPERATION_REF_PREFIX}{operation_id}"))
}

/// A user's chat notification preference and the state of their pusher (`crate::aws::push`).
pub fn push_settings(tenant: &TenantId, user: &UserSlug) -> Key {
    Key::new(user_partition(tenant, user), PUSH_SETTINGS_SK)
}

pub const PUSH_SETTINGS_SK: &str = "PUSH";

/// The marker of one event turned into a notification for the user: a retried notify finds it (expires).
pub fn push_delivered(tenant: &TenantId, user: &UserSlug, event_id: &str) -> Key {
    Key::new(user_partition(tenant, user), format!("PUSHED#{event_id}"))
}

/// The partition of one user's write budget (`crate::ratelimit`).
pub fn rate_user(tenant: &TenantId, user: &UserSlug) -> String {
    format!("RL#{tenant}#U#{user}")
}

/// The partition of the budget all of a tenant's users share.
pub fn rate_tenant_users(tenant: &TenantId) -> String {
    format!("RL#{tenant}#users")
}

/// The partition of the budget of a tenant's service.
pub fn rate_service(tenant: &TenantId) -> String {
    format!("RL#{tenant}#service")
}

/// The partition of one user's read budget (`crate::ratelimit`, GETs).
pub fn read_user(tenant: &TenantId, user: &UserSlug) -> String {
    format!("RR#{tenant}#U#{user}")
}

/// The partition of the read budget all of a tenant's users share.
pub fn read_tenant_users(tenant: &TenantId) -> String {
    format!("RR#{tenant}#users")
}

/// The partition of the read budget of a tenant's service.
pub fn read_service(tenant: &TenantId) -> String {
    format!("RR#{tenant}#service")
}

/// The sort key of one fixed window of a budget.
pub fn rate_window(start: u64) -> String {
    format!("W#{start}")
}

/// `digest_hex`: SHA-256 of the actor and the caller's key, so a key never appears in the table.
pub fn idempotency(tenant: &TenantId, digest_hex: &str) -> Key {
    Key::new(format!("T#{tenant}#IDEM#{digest_hex}"), "IDEM")
}

/// The partition of a room's membership intents.
pub fn room_intents(tenant: &str, kind: &str, slug: &str) -> String {
    format!("T#{tenant}#R#{kind}#{slug}")
}

/// Sort-key prefix of members' intents.
pub const MEMBER_INTENT_PREFIX: &str = "MEMBER#";

pub fn member_intent(tenant: &str, kind: &str, slug: &str, user: &str) -> Key {
    Key::new(room_intents(tenant, kind, slug), format!("{MEMBER_INTENT_PREFIX}{user}"))
}

pub fn reconcile_intent(tenant: &str, kind: &str, slug: &str) -> Key {
    Key::new(room_intents(tenant, kind, slug), RECONCILE_INTENT_SK)
}

pub const OPERATION_SK: &str = "OP";
pub const BACKLOG_SK: &str = "BACKLOG";
pub const ALIAS_MAPPING_SK: &str = "ROOM";
pub const ALIAS_LOCK_SK: &str = "CREATING";
pub const RECONCILE_INTENT_SK: &str = "RECONCILED";
pub const PROFILE_SK: &str = "PROFILE";

pub fn operation(operation_id: &str) -> Key {
    Key::new(format!("OP#{operation_id}"), OPERATION_SK)
}

pub fn backlog(room_id: &str) -> Key {
    Key::new(format!("BACKLOG#{room_id}"), BACKLOG_SK)
}

pub fn alias_mapping(alias: &str) -> Key {
    Key::new(format!("ALIAS#{alias}"), ALIAS_MAPPING_SK)
}

pub fn alias_creation_lock(alias: &str) -> Key {
    Key::new(format!("LOCK#{alias}"), ALIAS_LOCK_SK)
}

/// The shard partition of the web device index.
pub fn web_device_shard(shard: u64) -> String {
    format!("WEBDEV#{shard}")
}

/// Sort-key prefix of one user's web devices (`/` separates the parts: none of them may contain it).
pub fn web_device_user_prefix(tenant: &str, user: &str) -> String {
    format!("{tenant}/{user}/")
}

/// Sort-key prefix of one tenant's web devices.
pub fn web_device_tenant_prefix(tenant: &str) -> String {
    format!("{tenant}/")
}

pub fn web_device(shard: u64, tenant: &str, user: &str, device_id: &str) -> Key {
    Key::new(web_device_shard(shard), format!("{}{device_id}", web_device_user_prefix(tenant, user)))
}

/// The partition of every managed room's desired settings and lifecycle (one partition: a pass pages through
/// them in key order); `room` is `{tenant}/{kind}/{slug}`.
pub const MANAGED_ROOMS: &str = "MANAGED";

pub fn managed_room(room: &str) -> Key {
    Key::new(MANAGED_ROOMS.to_owned(), room)
}

/// The partition of a managed room's desired members: the latest reconcile's list and each later change.
pub fn desired_members(room: &str) -> String {
    format!("DESIRED#{room}")
}

/// Sort-key prefix of one member's latest desired change.
pub const DESIRED_MEMBER_PREFIX: &str = "M#";
pub const DESIRED_ROSTER_SK: &str = "ROSTER";

pub fn desired_member(room: &str, user: &str) -> Key {
    Key::new(desired_members(room), format!("{DESIRED_MEMBER_PREFIX}{user}"))
}

/// Where a self-healing job resumes.
pub fn job_cursor(job: &str) -> Key {
    Key::new("SELFHEAL".to_owned(), format!("CURSOR#{job}"))
}

/// The marker of an event reminder posted (`reminder` of the event starting at `starts_at`).
pub fn reminder_marker(room: &str, reminder: &str, starts_at: &str) -> Key {
    Key::new(format!("REMINDER#{room}"), format!("{reminder}@{starts_at}"))
}

/// The partition of a cutover run or Zulip import (`run`): its `META` item and its entries.
pub fn cutover_run(run: &str) -> String {
    format!("CUTOVER#{run}")
}

pub const CUTOVER_META_SK: &str = "META";

pub fn cutover_meta(run: &str) -> Key {
    Key::new(cutover_run(run), CUTOVER_META_SK)
}

/// One entry of a run: its kind's sort-key prefix, then the entity ([`CutoverEntity`]).
pub fn cutover_entry(run: &str, kind: CutoverEntry, entity: &str) -> Key {
    Key::new(cutover_run(run), format!("{}{entity}", kind.prefix()))
}

/// The kinds of a run's entries, each a sort-key prefix (the only place they are spelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CutoverEntry {
    /// The entity before the run first changed it (`rollback` restores it).
    Before,
    /// The entity is as the snapshot says (a Zulip import: the stream's room is finished).
    Done,
    /// Its last failure.
    Failed,
    /// A Zulip import: a stream's progress.
    Checkpoint,
    /// A Zulip import: a topic's thread root.
    ThreadRoot,
    /// A Zulip import: a user it joined to send their history.
    Joined,
    /// A Zulip import: a block of a room's imported messages (Zulip id → events, content digest).
    Ledger,
    /// A Zulip import: a sender whose power level it raised to post into a read-only room (the level before).
    Raised,
}

impl CutoverEntry {
    pub const fn prefix(self) -> &'static str {
        match self {
            CutoverEntry::Before => "BEFORE#",
            CutoverEntry::Done => "DONE#",
            CutoverEntry::Failed => "FAIL#",
            CutoverEntry::Checkpoint => "CKPT#",
            CutoverEntry::ThreadRoot => "ROOT#",
            CutoverEntry::Joined => "JOINED#",
            CutoverEntry::Ledger => "LEDGER#",
            CutoverEntry::Raised => "RAISED#",
        }
    }
}

/// What a run's entry is about: the part of the sort key after its kind's prefix. Written as
/// `user:{tenant}:{user}`, `room:{tenant}:{kind}:{slug}`, `members:{tenant}:{kind}:{slug}` (a cutover run; a
/// failure may name `tenant:{tenant}`), and `{stream}@{room id}`, `{stream}@{room id}:{topic key}`,
/// `{stream}@{room id}:{user id}`, `{stream}@{room id}#{block}` (a Zulip import).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CutoverEntity {
    Tenant(TenantId),
    User(TenantId, UserSlug),
    Room(TenantId, RoomKind, Slug),
    /// A room's member list.
    Members(TenantId, RoomKind, Slug),
    /// A Zulip stream imported into a room.
    Stream {
        stream: i64,
        room: String,
    },
    /// A topic's thread root in a stream's room (`topic`: 24 hex digits of its key).
    Thread {
        stream: i64,
        room: String,
        topic: String,
    },
    /// A user the import joined into a stream's room.
    Joined {
        stream: i64,
        room: String,
        user: String,
    },
    /// Block `block` of a stream's imported messages in a room.
    Block {
        stream: i64,
        room: String,
        block: u32,
    },
}

impl CutoverEntity {
    /// The member list of this room (the same room for a member list).
    pub fn members_of(&self) -> Option<CutoverEntity> {
        match self {
            CutoverEntity::Room(tenant, kind, slug) | CutoverEntity::Members(tenant, kind, slug) => {
                Some(CutoverEntity::Members(tenant.clone(), *kind, slug.clone()))
            }
            _ => None,
        }
    }
}

impl fmt::Display for CutoverEntity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CutoverEntity::Tenant(tenant) => write!(f, "tenant:{tenant}"),
            CutoverEntity::User(tenant, user) => write!(f, "user:{tenant}:{user}"),
            CutoverEntity::Room(tenant, kind, slug) => write!(f, "room:{tenant}:{}:{slug}", kind.path_segment()),
            CutoverEntity::Members(tenant, kind, slug) => {
                write!(f, "members:{tenant}:{}:{slug}", kind.path_segment())
            }
            CutoverEntity::Stream { stream, room } => write!(f, "{stream}@{room}"),
            CutoverEntity::Thread { stream, room, topic } => write!(f, "{stream}@{room}:{topic}"),
            CutoverEntity::Joined { stream, room, user } => write!(f, "{stream}@{room}:{user}"),
            CutoverEntity::Block { stream, room, block } => write!(f, "{stream}@{room}#{block}"),
        }
    }
}

/// A key that names no entity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable record key {0}")]
pub struct UnreadableEntity(pub String);

impl FromStr for CutoverEntity {
    type Err = UnreadableEntity;

    fn from_str(key: &str) -> Result<Self, Self::Err> {
        let unreadable = || UnreadableEntity(key.to_owned());
        if let Some((stream, rest)) = key.split_once('@')
            && let Ok(stream) = stream.parse::<i64>()
        {
            return Ok(zulip_entity(stream, rest));
        }
        let mut parts = key.splitn(4, ':');
        let what = parts.next().ok_or_else(unreadable)?;
        let tenant = TenantId::parse(parts.next().ok_or_else(unreadable)?).map_err(|_| unreadable())?;
        let mut rest = || parts.next().ok_or_else(unreadable);
        let room = |kind: &str, slug: &str| {
            let kind = RoomKind::from_path(kind).map_err(|_| unreadable())?;
            Ok::<_, UnreadableEntity>((kind, Slug::parse(slug).map_err(|_| unreadable())?))
        };
        let entity = match what {
            "tenant" => CutoverEntity::Tenant(tenant),
            "user" => CutoverEntity::User(tenant, UserSlug::parse(rest()?).map_err(|_| unreadable())?),
            "room" => {
                let (kind, slug) = room(rest()?, rest()?)?;
                CutoverEntity::Room(tenant, kind, slug)
            }
            "members" => {
                let (kind, slug) = room(rest()?, rest()?)?;
                CutoverEntity::Members(tenant, kind, slug)
            }
            _ => return Err(unreadable()),
        };
        if parts.next().is_some() { Err(unreadable()) } else { Ok(entity) }
    }
}

/// `{room id}`, `{room id}:{topic key}` or `{room id}:{user id}`: a room id holds no `@`, a user id starts with it,
/// and a topic key is 24 hex digits after the last `:` (a room id of version 12 has no `:`; an older one's server
/// name is not 24 hex digits).
fn zulip_entity(stream: i64, rest: &str) -> CutoverEntity {
    // Neither a room id nor a user id holds `#`: a block number follows it.
    if let Some((room, block)) = rest.rsplit_once('#')
        && let Ok(block) = block.parse::<u32>()
    {
        return CutoverEntity::Block { stream, room: room.to_owned(), block };
    }
    if let Some(at) = rest.find(":@") {
        let (room, user) = (rest[..at].to_owned(), rest[at + 1..].to_owned());
        return CutoverEntity::Joined { stream, room, user };
    }
    if let Some((room, topic)) = rest.rsplit_once(':')
        && room.len() > 1
        && topic.len() == 24
        && topic.chars().all(|c| c.is_ascii_hexdigit())
    {
        return CutoverEntity::Thread { stream, room: room.to_owned(), topic: topic.to_owned() };
    }
    CutoverEntity::Stream { stream, room: rest.to_owned() }
}

/// The unfinished run of a snapshot, which a re-run continues.
pub fn cutover_snapshot(digest: &str) -> Key {
    Key::new(format!("CUTOVER#SNAPSHOT#{digest}"), "RUN")
}

/// The newest complete cutover run of a set of tenants (`tenants`: a digest of the sorted set), a delta's base.
pub fn cutover_base(tenants: &str) -> Key {
    Key::new(format!("CUTOVER#BASE#{tenants}"), "RUN")
}

/// The index of runs, by start (epoch seconds, zero-padded to 12 digits so that keys sort by time).
pub const CUTOVER_RUNS: &str = "CUTOVER#RUNS";

pub fn cutover_index(started: u64, run: &str) -> Key {
    Key::new(CUTOVER_RUNS.to_owned(), format!("{started:012}#{run}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_records_start_with_their_tenant() {
        let tenant = TenantId::parse("acme").expect("tenant");
        let user = UserSlug::parse("jane").expect("user");
        assert_eq!(user_profile(&tenant, &user), Key { pk: "T#acme#U#jane".into(), sk: "PROFILE".into() });
        assert_eq!(operation_ref(&tenant, &user, "op1").sk, "OPREF#op1");
        assert_eq!(idempotency(&tenant, "ab").pk, "T#acme#IDEM#ab");
        assert_eq!(member_intent("acme", "group", "g", "jane").pk, "T#acme#R#group#g");
        assert_eq!(member_intent("acme", "group", "g", "jane").sk, "MEMBER#jane");
    }

    #[test]
    fn self_healing_keys_are_as_first_written() {
        assert_eq!(managed_room("acme/groups/g"), Key { pk: "MANAGED".into(), sk: "acme/groups/g".into() });
        assert_eq!(desired_member("acme/groups/g", "jane").pk, "DESIRED#acme/groups/g");
        assert_eq!(desired_member("acme/groups/g", "jane").sk, "M#jane");
        assert_eq!(job_cursor("sweep"), Key { pk: "SELFHEAL".into(), sk: "CURSOR#sweep".into() });
        let marker = reminder_marker("acme/events/e", "soon", "2026-12-01T18:00:00Z");
        assert_eq!((marker.pk.as_str(), marker.sk.as_str()), ("REMINDER#acme/events/e", "soon@2026-12-01T18:00:00Z"));
    }

    #[test]
    fn cutover_entities_read_back_as_written() {
        let tenant = TenantId::parse("acme").expect("tenant");
        let slug = Slug::parse("g.1").expect("slug");
        let room = "!abc:localhost:8008".to_owned();
        let entities = [
            CutoverEntity::Tenant(tenant.clone()),
            CutoverEntity::User(tenant.clone(), UserSlug::parse("jane").expect("user")),
            CutoverEntity::Room(tenant.clone(), RoomKind::Event, slug.clone()),
            CutoverEntity::Members(tenant, RoomKind::Group, slug),
            CutoverEntity::Stream { stream: 7, room: room.clone() },
            CutoverEntity::Thread { stream: 7, room: room.clone(), topic: "0123456789abcdef01234567".into() },
            CutoverEntity::Joined { stream: 7, room: room.clone(), user: "@ann:localhost:8008".into() },
            CutoverEntity::Block { stream: 7, room, block: 12 },
        ];
        let v12 = "!t5q5HGoIK1kuArDvv5_mJ4o7I7rxX7U3oREtd5SmnI0".to_owned();
        let topic = "0123456789abcdef01234567".to_owned();
        let v12_entities = [
            CutoverEntity::Stream { stream: 3, room: v12.clone() },
            CutoverEntity::Thread { stream: 3, room: v12.clone(), topic },
            CutoverEntity::Joined { stream: 3, room: v12, user: "@ann:localhost".into() },
        ];
        for entity in entities.into_iter().chain(v12_entities) {
            assert_eq!(entity.to_string().parse::<CutoverEntity>(), Ok(entity.clone()), "{entity}");
        }
        assert_eq!(CutoverEntity::Stream { stream: 1, room: "!r:x".into() }.to_string(), "1@!r:x");
        assert_eq!(
            "members:acme:groups:g".parse::<CutoverEntity>().map(|e| e.to_string()),
            Ok("members:acme:groups:g".into())
        );
        for bad in ["", "user:acme", "room:acme:rooms:g", "user:Acme:jane", "room:acme:groups:g:x", "x:acme:y"] {
            assert!(bad.parse::<CutoverEntity>().is_err(), "{bad}");
        }
        assert_eq!(cutover_entry("r1", CutoverEntry::Before, "user:acme:jane").sk, "BEFORE#user:acme:jane");
    }

    #[test]
    fn record_kinds_never_share_a_partition() {
        let keys = [operation("x").pk, backlog("x").pk, alias_mapping("x").pk, alias_creation_lock("x").pk];
        let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
    }
}
