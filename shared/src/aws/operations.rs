//! Queued operations (`crate::domain::operations` decides what they mean): the operation record, the room backlog
//! counter and a user's operation references.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::keys;
use super::records::Bare;
use super::store::Store;
use crate::aws::BackendError;
use crate::identity::{TenantId, UserSlug};

pub const QUEUED: &str = "queued";
pub const DELIVERED: &str = "delivered";
pub const FAILED: &str = "failed";

/// One operation's record. Every attribute is optional on reading, as the first version read them one by one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// `user:{slug}` or `service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// `queued`, `delivered` or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u64>,
    /// The operation, JSON (removed once delivered or discarded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Reconcile slices run so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slices: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

impl OperationRecord {
    pub fn has_status(&self, status: &str) -> bool {
        self.status.as_deref() == Some(status)
    }

    /// The stored operation: `None` when discarded, an error when unreadable.
    pub fn operation<T: serde::de::DeserializeOwned>(&self) -> Option<Result<T, serde_json::Error>> {
        self.operation.as_deref().map(serde_json::from_str)
    }
}

/// A room's count of queued operations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct BacklogRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<i64>,
}

/// The operations repository over the table.
#[derive(Clone, Copy)]
pub struct Operations<'a>(pub &'a Store);

impl Operations<'_> {
    /// Writes the record unless the operation is already recorded; `false` when it was.
    pub async fn create(&self, operation_id: &str, record: &OperationRecord) -> Result<bool, BackendError> {
        Ok(self.0.put_record_if_absent(&keys::operation(operation_id), record).await?.is_none())
    }

    pub async fn get(&self, operation_id: &str) -> Result<Option<OperationRecord>, BackendError> {
        self.0.record(&keys::operation(operation_id)).await
    }

    pub async fn delete(&self, operation_id: &str) -> Result<(), BackendError> {
        self.0.delete_key(&keys::operation(operation_id)).await
    }

    /// Counts one more in `attempts` or `slices`.
    pub async fn count(&self, operation_id: &str, counter: Counter) -> Result<(), BackendError> {
        let key = keys::operation(operation_id);
        let attribute = match counter {
            Counter::Attempts => "attempts",
            Counter::Slices => "slices",
        };
        self.0.add(&key.pk, &key.sk, attribute, 1).await
    }

    /// Marks the operation delivered (with the event id of a send).
    pub async fn delivered(&self, operation_id: &str, event_id: Option<&str>) -> Result<(), BackendError> {
        let mut updates = vec![("status", text(DELIVERED))];
        if let Some(event_id) = event_id {
            updates.push(("eventId", text(event_id)));
        }
        self.set(operation_id, &updates).await
    }

    pub async fn failed(&self, operation_id: &str, reason: &str) -> Result<(), BackendError> {
        self.set(operation_id, &[("status", text(FAILED)), ("error", text(reason))]).await
    }

    /// Queued again from the first attempt, its last error forgotten.
    pub async fn requeue(&self, operation_id: &str) -> Result<(), BackendError> {
        self.set(operation_id, &[("status", text(QUEUED)), ("attempts", AttributeValue::N("0".into()))]).await?;
        self.remove(operation_id, "error").await
    }

    /// Drops the operation's content (a message's text), keeping the outcome.
    pub async fn drop_content(&self, operation_id: &str) -> Result<(), BackendError> {
        self.remove(operation_id, "operation").await
    }

    async fn set(&self, operation_id: &str, values: &[(&str, AttributeValue)]) -> Result<(), BackendError> {
        let key = keys::operation(operation_id);
        self.0.set(&key.pk, &key.sk, values).await
    }

    async fn remove(&self, operation_id: &str, attribute: &str) -> Result<(), BackendError> {
        let key = keys::operation(operation_id);
        self.0.remove_attribute(&key.pk, &key.sk, attribute).await
    }

    /// The room's queued operations (0 when none were counted).
    pub async fn backlog(&self, room_id: &str) -> Result<i64, BackendError> {
        let record: Option<BacklogRecord> = self.0.record(&keys::backlog(room_id)).await?;
        Ok(record.and_then(|record| record.pending).unwrap_or(0))
    }

    pub async fn adjust_backlog(&self, room_id: &str, delta: i64) -> Result<(), BackendError> {
        let key = keys::backlog(room_id);
        self.0.add(&key.pk, &key.sk, "pending", delta).await
    }

    /// Makes a user's operation findable from the user (deleting the user discards it).
    pub async fn add_reference(
        &self,
        tenant: &TenantId,
        user: &UserSlug,
        operation_id: &str,
    ) -> Result<(), BackendError> {
        self.0.put_record(&keys::operation_ref(tenant, user, operation_id), &Bare {}).await
    }

    /// The ids of a user's referenced operations.
    pub async fn references(&self, tenant: &TenantId, user: &UserSlug) -> Result<Vec<String>, BackendError> {
        let partition = keys::user_partition(tenant, user);
        let references = self.0.records::<Bare>(&partition, keys::OPERATION_REF_PREFIX).await?;
        Ok(references.into_iter().map(|(operation_id, _)| operation_id).collect())
    }
}

/// The counters of an operation record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Attempts,
    Slices,
}

fn text(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::records::tests::{item, round_trips};

    #[test]
    fn records_keep_the_first_versions_layout() {
        // As the first version wrote a queued operation, then after two attempts and its delivery.
        let accepted = [("tenant", "acme"), ("owner", "user:jane"), ("acceptedAt", "n:1764000000123")];
        let queued = [("status", "queued"), ("operation", "{}"), ("attempts", "n:0"), ("expiresAt", "n:1764600000")];
        let record: OperationRecord = round_trips(item("OP#op1", "OP", &[&accepted[..], &queued[..]].concat()));
        assert!(record.has_status(QUEUED));
        assert_eq!(record.accepted_at, Some(1_764_000_000_123));
        assert!(matches!(record.operation::<serde_json::Value>(), Some(Ok(_))));
        let sent = [("status", "delivered"), ("eventId", "$e"), ("attempts", "n:2"), ("slices", "n:1")];
        let delivered: OperationRecord = round_trips(item("OP#op1", "OP", &[&accepted[..], &sent[..]].concat()));
        assert_eq!((delivered.event_id.as_deref(), delivered.attempts), (Some("$e"), Some(2)));
        assert!(delivered.operation::<serde_json::Value>().is_none());
    }

    #[test]
    fn backlogs_count_below_zero_too() {
        assert_eq!(
            round_trips::<BacklogRecord>(item("BACKLOG#!r", "BACKLOG", &[("pending", "n:-1")])).pending,
            Some(-1)
        );
    }
}
