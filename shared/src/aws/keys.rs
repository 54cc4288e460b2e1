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
//!
//! Records of later features (rate-limit windows, desired state, reminders) keep their keys beside their
//! repositories (`crate::ratelimit`, `crate::aws::desired_state`) and follow the same rules.

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
    fn record_kinds_never_share_a_partition() {
        let keys = [operation("x").pk, backlog("x").pk, alias_mapping("x").pk, alias_creation_lock("x").pk];
        let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
    }
}
