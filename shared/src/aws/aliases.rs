//! The alias cache (alias → room id, so a container starting during a homeserver outage still finds rooms; the
//! homeserver stays the source of truth) and the short lock that makes parallel requests create one room.

use serde::{Deserialize, Serialize};

use super::keys;
use super::store::{self, Store};
use crate::aws::BackendError;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AliasRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    room_id: Option<String>,
}

/// A lock: it expires on its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LockRecord {
    expires_at: u64,
}

/// The aliases repository over the table.
#[derive(Clone, Copy)]
pub struct Aliases<'a>(pub &'a Store);

impl Aliases<'_> {
    /// The room id recorded for `alias`.
    pub async fn room_id(&self, alias: &str) -> Result<Option<String>, BackendError> {
        let record: Option<AliasRecord> = self.0.record(&keys::alias_mapping(alias)).await?;
        Ok(record.and_then(|record| record.room_id))
    }

    pub async fn remember(&self, alias: &str, room_id: &str) -> Result<(), BackendError> {
        self.0.put_record(&keys::alias_mapping(alias), &AliasRecord { room_id: Some(room_id.to_owned()) }).await
    }

    pub async fn forget(&self, alias: &str) -> Result<(), BackendError> {
        self.0.delete_key(&keys::alias_mapping(alias)).await
    }

    /// Takes the creation lock of `alias` for `seconds`; `false` when someone else holds it.
    pub async fn lock(&self, alias: &str, seconds: u64) -> Result<bool, BackendError> {
        let lock = LockRecord { expires_at: store::now_secs() + seconds };
        let theirs = self.0.put_record_if_absent(&keys::alias_creation_lock(alias), &lock).await;
        match theirs {
            Ok(theirs) => Ok(theirs.is_none()),
            // Held by an item that is no lock record: held all the same.
            Err(BackendError::Corrupt { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    pub async fn unlock(&self, alias: &str) -> Result<(), BackendError> {
        self.0.delete_key(&keys::alias_creation_lock(alias)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::records::tests::{item, round_trips};

    #[test]
    fn records_keep_the_first_versions_layout() {
        let mapping = item("ALIAS##g-acme:localhost", "ROOM", &[("roomId", "!r:localhost")]);
        assert_eq!(round_trips::<AliasRecord>(mapping).room_id.as_deref(), Some("!r:localhost"));
        let lock = item("LOCK##g-acme:localhost", "CREATING", &[("expiresAt", "n:1764000030")]);
        assert_eq!(round_trips::<LockRecord>(lock).expires_at, 1_764_000_030);
    }
}
