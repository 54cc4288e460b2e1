//! The `Idempotency-Key` records (`crate::domain::messages::idempotency` decides what they mean): first writer
//! wins, the answer replaces the claim, a failed request releases it.

use serde::{Deserialize, Serialize};

use super::keys::Key;
use super::store::Store;
use crate::aws::BackendError;

/// Where a key's request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdempotencyState {
    Pending,
    Done,
    Queued,
}

/// One key's record. Every attribute is optional on reading, as the first version read them one by one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdempotencyRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<IdempotencyState>,
    /// The request's fingerprint: another request under the same key is a conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// The idempotency repository over the table.
#[derive(Clone, Copy)]
pub struct Idempotency<'a>(pub &'a Store);

impl Idempotency<'_> {
    /// Writes `record` unless the key holds a live record; that record when it does.
    pub async fn claim(
        &self,
        key: &Key,
        record: &IdempotencyRecord,
    ) -> Result<Option<IdempotencyRecord>, BackendError> {
        self.0.put_record_if_absent(key, record).await
    }

    /// Replaces the record (with the answer).
    pub async fn put(&self, key: &Key, record: &IdempotencyRecord) -> Result<(), BackendError> {
        self.0.put_record(key, record).await
    }

    pub async fn release(&self, key: &Key) -> Result<(), BackendError> {
        self.0.delete_key(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::records::tests::{item, round_trips};

    #[test]
    fn records_keep_the_first_versions_layout() {
        // As the first version wrote a claim, then an answer.
        let claimed = [("fingerprint", "f1"), ("txnId", "omx"), ("createdAt", "n:1000"), ("expiresAt", "n:87400")];
        let pending = item("T#acme#IDEM#ab", "IDEM", &[&claimed[..], &[("state", "pending")]].concat());
        let claim: IdempotencyRecord = round_trips(pending);
        assert_eq!(claim.state, Some(IdempotencyState::Pending));
        assert_eq!((claim.txn_id.as_deref(), claim.created_at), (Some("omx"), Some(1000)));
        let done = item("T#acme#IDEM#ab", "IDEM", &[&claimed[..], &[("state", "done"), ("eventId", "$e")]].concat());
        assert_eq!(round_trips::<IdempotencyRecord>(done).event_id.as_deref(), Some("$e"));
    }
}
