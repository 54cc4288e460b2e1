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
//! | index of cutover runs          | `CUTOVER#RUNS`                  | `{started:012}#{run}`     |
//! | write budget: a user's         | `RL#{tenant}#U#{user}`          | `W#{windowStart}`         |
//! | write budget: a tenant's users | `RL#{tenant}#users`             | `W#{windowStart}`         |
//! | write budget: the service's    | `RL#{tenant}#service`           | `W#{windowStart}`         |
//! | chat push: preference, pusher  | `T#{tenant}#U#{user}`           | `PUSH`                    |
//! | chat push: event delivered     | `T#{tenant}#U#{user}`           | `PUSHED#{event id}` (TTL) |
//! | read budget: a user's          | `RR#{tenant}#U#{user}`          | `W#{windowStart}`         |
//! | read budget: a tenant's users  | `RR#{tenant}#users`             | `W#{windowStart}`         |
//! | read budget: the service's     | `RR#{tenant}#service`           | `W#{windowStart}`         |

use crate::identity::{TenantId, UserSlug};

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

/// One entry of a run: `kind` is its sort-key prefix (`BEFORE#`, `DONE#`, `FAIL#`, `CKPT#`, ...).
pub fn cutover_entry(run: &str, kind: &str, entity: &str) -> Key {
    Key::new(cutover_run(run), format!("{kind}{entity}"))
}

/// The unfinished run of a snapshot, which a re-run continues.
pub fn cutover_snapshot(digest: &str) -> Key {
    Key::new(format!("CUTOVER#SNAPSHOT#{digest}"), "RUN")
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
    fn record_kinds_never_share_a_partition() {
        let keys = [operation("x").pk, backlog("x").pk, alias_mapping("x").pk, alias_creation_lock("x").pk];
        let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
    }
}
