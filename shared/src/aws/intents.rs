//! Membership intents (`crate::domain::operations` decides what they mean): the version of the service's latest
//! word per member of a room, and of the room's latest reconcile. Versions only rise.

use serde::{Deserialize, Serialize};

use super::keys::{self, Key};
use super::store::Store;
use crate::aws::BackendError;

/// One intent: its version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct IntentRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
}

/// A room, as its intents are keyed: `kind` as in paths (`groups`, `events`).
#[derive(Debug, Clone, Copy)]
pub struct IntentRoom<'r> {
    pub tenant: &'r str,
    pub kind: &'r str,
    pub slug: &'r str,
}

/// The intents repository over the table.
#[derive(Clone, Copy)]
pub struct Intents<'a>(pub &'a Store);

impl Intents<'_> {
    /// Raises `user`'s intent to `version` (a lower one stays).
    pub async fn raise_member(&self, room: IntentRoom<'_>, user: &str, version: u64) -> Result<(), BackendError> {
        self.raise(&keys::member_intent(room.tenant, room.kind, room.slug, user), version).await
    }

    /// Raises the room's reconcile intent to `version`.
    pub async fn raise_reconcile(&self, room: IntentRoom<'_>, version: u64) -> Result<(), BackendError> {
        self.raise(&keys::reconcile_intent(room.tenant, room.kind, room.slug), version).await
    }

    pub async fn member(&self, room: IntentRoom<'_>, user: &str) -> Result<Option<u64>, BackendError> {
        self.version(&keys::member_intent(room.tenant, room.kind, room.slug, user)).await
    }

    pub async fn reconcile(&self, room: IntentRoom<'_>) -> Result<Option<u64>, BackendError> {
        self.version(&keys::reconcile_intent(room.tenant, room.kind, room.slug)).await
    }

    /// The members whose own intent is newer than `version`.
    pub async fn members_above(&self, room: IntentRoom<'_>, version: u64) -> Result<Vec<String>, BackendError> {
        let pk = keys::room_intents(room.tenant, room.kind, room.slug);
        self.0.keys_above(&pk, keys::MEMBER_INTENT_PREFIX, "version", version).await
    }

    async fn raise(&self, key: &Key, version: u64) -> Result<(), BackendError> {
        self.0.raise(&key.pk, &key.sk, "version", version).await
    }

    async fn version(&self, key: &Key) -> Result<Option<u64>, BackendError> {
        Ok(self.0.record::<IntentRecord>(key).await?.and_then(|record| record.version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::records::tests::{item, round_trips};

    #[test]
    fn records_keep_the_first_versions_layout() {
        let intent = item("T#acme#R#group#g", "MEMBER#jane", &[("version", "n:17")]);
        assert_eq!(round_trips::<IntentRecord>(intent).version, Some(17));
    }
}
