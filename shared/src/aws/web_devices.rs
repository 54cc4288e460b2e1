//! The web device index (`crate::domain::sessions` decides what it means): each browser device a session was
//! issued to, with when it was last issued, spread over shard partitions.

use serde::{Deserialize, Serialize};

use super::keys;
use super::store::Store;
use crate::aws::BackendError;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebDeviceRecord {
    /// Epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    issued_at_ms: Option<u64>,
}

/// The web device repository over the table.
#[derive(Clone, Copy)]
pub struct WebDevices<'a>(pub &'a Store);

impl WebDevices<'_> {
    /// Records that a session was issued to the device at `at_ms`.
    pub async fn issued(
        &self,
        shard: u64,
        tenant: &str,
        user: &str,
        device: &str,
        at_ms: u64,
    ) -> Result<(), BackendError> {
        let record = WebDeviceRecord { issued_at_ms: Some(at_ms) };
        self.0.put_record(&keys::web_device(shard, tenant, user, device), &record).await
    }

    /// The user's indexed devices, with when each was last issued (0 when unknown).
    pub async fn of_user(&self, shard: u64, tenant: &str, user: &str) -> Result<Vec<(String, u64)>, BackendError> {
        let prefix = keys::web_device_user_prefix(tenant, user);
        let records = self.0.records::<WebDeviceRecord>(&keys::web_device_shard(shard), &prefix).await?;
        Ok(records.into_iter().map(|(device, record)| (device, record.issued_at_ms.unwrap_or(0))).collect())
    }

    /// The (tenant, user) of every device indexed in the shard (of `tenant` only, when given), one per device.
    pub async fn users(&self, shard: u64, tenant: Option<&str>) -> Result<Vec<(String, String)>, BackendError> {
        let prefix = tenant.map(keys::web_device_tenant_prefix).unwrap_or_default();
        let records = self.0.records::<WebDeviceRecord>(&keys::web_device_shard(shard), &prefix).await?;
        Ok(records
            .into_iter()
            .filter_map(|(rest, _)| {
                let sk = format!("{prefix}{rest}");
                let mut parts = sk.splitn(3, '/');
                Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
            })
            .collect())
    }

    pub async fn forget(&self, shard: u64, tenant: &str, user: &str, device: &str) -> Result<(), BackendError> {
        self.0.delete_key(&keys::web_device(shard, tenant, user, device)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::records::tests::{item, round_trips};

    #[test]
    fn records_keep_the_first_versions_layout() {
        let device = item("WEBDEV#3", "acme/jane/WEBABC", &[("issuedAtMs", "n:1764000000123")]);
        assert_eq!(round_trips::<WebDeviceRecord>(device).issued_at_ms, Some(1_764_000_000_123));
        assert_eq!(keys::web_device(3, "acme", "jane", "WEBABC").sk, "acme/jane/WEBABC");
    }
}
