//! The desired state of managed rooms (what the service last said each room should be), versioned records in the
//! one table. The domain (`crate::domain::drift`) decides what they mean; this file only stores them.
//!
//! - `MANAGED` / `{tenant}/{kind}/{slug}`: the room's settings (`settings`, JSON, `settingsVersion`) and lifecycle
//!   (`lifecycle`, `lifecycleVersion`, `cancelledAt`, `archivedAt`). One partition, so a pass pages through every
//!   managed room in key order and resumes from a cursor.
//! - `DESIRED#{tenant}/{kind}/{slug}` / `ROSTER`: the latest reconcile's whole list (`roster`, JSON role → users).
//! - `DESIRED#{tenant}/{kind}/{slug}` / `M#{user}`: one member's latest change (`role`, or `absent`).
//!
//! Every write is conditional on its version: an older intent never overwrites a newer one.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::keys::{self, Key};
use super::store::{self, Item, Store};
use super::unavailable;
use crate::aws::BackendError;

const MANAGED_PK: &str = keys::MANAGED_ROOMS;

/// A managed room's identity: `{tenant}/{kind}/{slug}` (`kind` as in paths: `groups`, `events`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RoomKey {
    pub tenant: String,
    pub kind: String,
    pub slug: String,
}

impl RoomKey {
    pub fn sort_key(&self) -> String {
        format!("{}/{}/{}", self.tenant, self.kind, self.slug)
    }

    fn parse(sort_key: &str) -> Option<RoomKey> {
        let mut parts = sort_key.splitn(3, '/');
        let (tenant, kind, slug) = (parts.next()?, parts.next()?, parts.next()?);
        Some(RoomKey { tenant: tenant.to_owned(), kind: kind.to_owned(), slug: slug.to_owned() })
    }

    fn members_pk(&self) -> String {
        keys::desired_members(&self.sort_key())
    }
}

/// What a room should look like besides its members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomSettings {
    pub room_id: String,
    pub name: String,
    /// The `m.room.join_rules` content.
    pub join_rules: Value,
    /// The space this room is a child of (a group's own space, or an event's group's space).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventTimes>,
}

/// An event's times (RFC 3339, UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventTimes {
    pub starts_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
}

/// One managed room as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedRoom {
    pub key: RoomKey,
    pub settings: RoomSettings,
    pub settings_version: u64,
    /// `active`, `cancelled` or `archived`.
    pub lifecycle: String,
    pub cancelled_at: Option<u64>,
    pub archived_at: Option<u64>,
}

/// The member intents of a room: the latest reconcile's list and every later single change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemberIntents {
    /// Role → users, and the reconcile's version.
    pub roster: Option<(BTreeMap<String, Vec<String>>, u64)>,
    /// User → (role, or `None` when removed; version).
    pub changes: BTreeMap<String, (Option<String>, u64)>,
}

/// The desired-state repository over the table.
#[derive(Clone, Copy)]
pub struct DesiredStates<'a>(pub &'a Store);

impl DesiredStates<'_> {
    /// Records a room's settings unless a newer version is recorded.
    pub async fn put_settings(&self, key: &RoomKey, settings: &RoomSettings, version: u64) -> Result<(), BackendError> {
        let json = serde_json::to_string(settings).map_err(|e| BackendError::Unavailable {
            service: "dynamodb",
            detail: format!("encoding settings: {e}"),
        })?;
        let values = [("settings", AttributeValue::S(json))];
        self.versioned(MANAGED_PK, &key.sort_key(), "settingsVersion", version, &values, false).await
    }

    /// Records a lifecycle change of a room already recorded (an unrecorded room is not managed by the pass).
    pub async fn put_lifecycle(
        &self,
        key: &RoomKey,
        lifecycle: &str,
        version: u64,
        at_secs: u64,
    ) -> Result<(), BackendError> {
        let mut values = vec![("lifecycle", AttributeValue::S(lifecycle.to_owned()))];
        match lifecycle {
            "cancelled" => values.push(("cancelledAt", AttributeValue::N(at_secs.to_string()))),
            "archived" => values.push(("archivedAt", AttributeValue::N(at_secs.to_string()))),
            _ => {}
        }
        self.versioned(MANAGED_PK, &key.sort_key(), "lifecycleVersion", version, &values, true).await
    }

    /// Records one member's change (`None`: removed).
    pub async fn put_member(
        &self,
        key: &RoomKey,
        user: &str,
        role: Option<&str>,
        version: u64,
    ) -> Result<(), BackendError> {
        let role = AttributeValue::S(role.unwrap_or("absent").to_owned());
        let member = keys::desired_member(&key.sort_key(), user);
        self.versioned(&member.pk, &member.sk, "version", version, &[("role", role)], false).await
    }

    /// Records a reconcile's whole list.
    pub async fn put_roster(
        &self,
        key: &RoomKey,
        roster: &BTreeMap<String, Vec<String>>,
        version: u64,
    ) -> Result<(), BackendError> {
        let json = serde_json::to_string(roster)
            .map_err(|e| BackendError::Unavailable { service: "dynamodb", detail: format!("encoding roster: {e}") })?;
        self.versioned(
            &key.members_pk(),
            keys::DESIRED_ROSTER_SK,
            "version",
            version,
            &[("roster", AttributeValue::S(json))],
            false,
        )
        .await
    }

    pub async fn members(&self, key: &RoomKey) -> Result<MemberIntents, BackendError> {
        let mut intents = MemberIntents::default();
        let pk = key.members_pk();
        let mut items = self.0.items(&pk, keys::DESIRED_MEMBER_PREFIX).await?;
        items.extend(self.0.get(&pk, keys::DESIRED_ROSTER_SK).await?);
        for item in items {
            let (Some(sk), Some(version)) = (store::string(&item, "sk"), store::number(&item, "version")) else {
                continue;
            };
            if sk == keys::DESIRED_ROSTER_SK {
                let roster = store::string(&item, "roster").and_then(|raw| serde_json::from_str(&raw).ok());
                intents.roster = roster.map(|roster| (roster, version));
            } else if let Some(user) = sk.strip_prefix(keys::DESIRED_MEMBER_PREFIX) {
                let role = store::string(&item, "role").filter(|role| role != "absent");
                intents.changes.insert(user.to_owned(), (role, version));
            }
        }
        Ok(intents)
    }

    pub async fn room(&self, key: &RoomKey) -> Result<Option<ManagedRoom>, BackendError> {
        Ok(self.0.get(MANAGED_PK, &key.sort_key()).await?.and_then(|item| managed_room(&item)))
    }

    /// Forgets a room (purged: no longer managed).
    pub async fn forget(&self, key: &RoomKey) -> Result<(), BackendError> {
        self.0.delete_partition(&key.members_pk()).await?;
        self.0.delete(MANAGED_PK, &key.sort_key()).await
    }

    /// Up to `limit` managed rooms (whose sort key starts with `prefix`) after `after` in key order, and the last
    /// key read (`None` at the end).
    pub async fn page(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ManagedRoom>, Option<String>), BackendError> {
        let start = after.map(|sk| store::keyed(MANAGED_PK, sk));
        let mut query = self
            .0
            .client()
            .query()
            .table_name(self.0.table())
            .expression_attribute_values(":pk", AttributeValue::S(MANAGED_PK.into()))
            .set_exclusive_start_key(start)
            .limit(limit.clamp(1, 1000) as i32);
        query = match prefix {
            Some(prefix) => query
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned())),
            None => query.key_condition_expression("pk = :pk"),
        };
        let page = query.send().await.map_err(|e| unavailable("dynamodb", e))?;
        let items = page.items();
        let last = items.last().and_then(|item| store::string(item, "sk"));
        let rooms = items.iter().filter_map(managed_room).collect();
        let more = page.last_evaluated_key.is_some_and(|key| !key.is_empty());
        Ok((rooms, if more { last } else { None }))
    }

    /// A job's resume point (`None`: from the start).
    pub async fn cursor(&self, job: &str) -> Result<Option<String>, BackendError> {
        let key = keys::job_cursor(job);
        Ok(self.0.get(&key.pk, &key.sk).await?.and_then(|item| store::string(&item, "after")))
    }

    pub async fn set_cursor(&self, job: &str, after: Option<&str>) -> Result<(), BackendError> {
        let Key { pk, sk } = keys::job_cursor(job);
        match after {
            Some(after) => self.0.set(&pk, &sk, &[("after", AttributeValue::S(after.to_owned()))]).await,
            None => self.0.delete(&pk, &sk).await,
        }
    }

    /// Whether a one-time marker (a reminder posted) is set.
    pub async fn marker(&self, key: &Key) -> Result<bool, BackendError> {
        Ok(self.0.get(&key.pk, &key.sk).await?.is_some())
    }

    /// Sets a one-time marker that expires at `expires_at` (epoch seconds).
    pub async fn set_marker(&self, key: &Key, expires_at: u64) -> Result<(), BackendError> {
        let mut item = store::keyed(&key.pk, &key.sk);
        item.insert(store::TTL_ATTRIBUTE.into(), AttributeValue::N(expires_at.to_string()));
        self.0.put(item).await
    }

    /// `SET values, #v = :v` if the item holds no newer version (and, with `must_exist`, exists).
    async fn versioned(
        &self,
        pk: &str,
        sk: &str,
        version_attribute: &str,
        version: u64,
        values: &[(&str, AttributeValue)],
        must_exist: bool,
    ) -> Result<(), BackendError> {
        let request = self
            .0
            .client()
            .update_item()
            .table_name(self.0.table())
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .expression_attribute_names("#v", version_attribute)
            .expression_attribute_values(":v", AttributeValue::N(version.to_string()));
        let mut assignments = vec!["#v = :v".to_owned()];
        let request = store::assign(request, values, &mut assignments);
        let newer_absent = "(attribute_not_exists(#v) OR #v <= :v)";
        let condition =
            if must_exist { format!("attribute_exists(pk) AND {newer_absent}") } else { newer_absent.to_owned() };
        let result = request
            .update_expression(format!("SET {}", assignments.join(", ")))
            .condition_expression(condition)
            .send()
            .await;
        // Not applied: a newer intent is recorded (or the room is not managed), and it stands.
        store::applied(result).map(|_| ())
    }
}

fn managed_room(item: &Item) -> Option<ManagedRoom> {
    let key = RoomKey::parse(&store::string(item, "sk")?)?;
    let settings = serde_json::from_str(&store::string(item, "settings")?).ok()?;
    Some(ManagedRoom {
        key,
        settings,
        settings_version: store::number(item, "settingsVersion").unwrap_or(0),
        lifecycle: store::string(item, "lifecycle").unwrap_or_else(|| "active".to_owned()),
        cancelled_at: store::number(item, "cancelledAt"),
        archived_at: store::number(item, "archivedAt"),
    })
}

/// Expired items found by a scan, and where the next scan resumes.
pub struct ExpiredPage {
    pub keys: Vec<(String, String)>,
    pub scanned: usize,
    pub next: Option<(String, String)>,
}

/// One scan page (at most `limit` items read) of items whose `expiresAt` is at or before `now`.
pub async fn scan_expired(
    table: &Store,
    start: Option<(String, String)>,
    limit: usize,
    now: u64,
) -> Result<ExpiredPage, BackendError> {
    let start = start.map(|(pk, sk)| store::keyed(&pk, &sk));
    let page = table
        .client()
        .scan()
        .table_name(table.table())
        .filter_expression("#ttl <= :now")
        .expression_attribute_names("#ttl", store::TTL_ATTRIBUTE)
        .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
        .projection_expression("pk, sk")
        .set_exclusive_start_key(start)
        .limit(limit.clamp(1, 1000) as i32)
        .send()
        .await
        .map_err(|e| unavailable("dynamodb", e))?;
    let pair = |item: &Item| Some((store::string(item, "pk")?, store::string(item, "sk")?));
    let keys = page.items().iter().filter_map(pair).collect();
    let next = page.last_evaluated_key.as_ref().filter(|key| !key.is_empty()).and_then(pair);
    Ok(ExpiredPage { keys, scanned: page.scanned_count().max(0) as usize, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_keys_round_trip_through_their_sort_key() {
        let key = RoomKey { tenant: "acme".into(), kind: "events".into(), slug: "a/b".into() };
        assert_eq!(RoomKey::parse(&key.sort_key()), Some(key));
        assert_eq!(RoomKey::parse("acme/groups"), None);
    }

    #[test]
    fn settings_keep_their_shape() {
        let settings = RoomSettings {
            room_id: "!r:localhost".into(),
            name: "N".into(),
            join_rules: serde_json::json!({"join_rule": "invite"}),
            parent: None,
            event: Some(EventTimes { starts_at: "2026-12-01T18:00:00Z".into(), ends_at: None }),
        };
        let json = serde_json::to_value(&settings).expect("encodes");
        assert_eq!(json["event"], serde_json::json!({"startsAt": "2026-12-01T18:00:00Z"}));
        assert_eq!(serde_json::from_value::<RoomSettings>(json).expect("decodes"), settings);
    }
}
