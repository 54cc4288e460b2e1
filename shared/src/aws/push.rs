//! Chat push records (`crate::domain::push` decides what they mean): a user's notification preference with the
//! state of their pusher, and the markers that make a retried notify put no second event.

use serde::{Deserialize, Serialize};

use super::keys;
use super::store::{self, Store};
use crate::aws::BackendError;
use crate::identity::{TenantId, UserSlug};

/// How long a delivered marker lives: the homeserver gives up retrying a notify after 24 h.
pub const DELIVERED_TTL_SECS: u64 = 48 * 60 * 60;

/// A user's chat push settings. Absent: chat notifications on, no pusher set yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushSettings {
    /// `false` once the user turned chat notifications off.
    #[serde(default = "on")]
    pub chat: bool,
    /// The gateway URL the user's pusher was last set with; `None`: no pusher (never set, removed, or a set that
    /// failed and waits for the next session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pusher_url: Option<String>,
}

fn on() -> bool {
    true
}

impl Default for PushSettings {
    fn default() -> Self {
        PushSettings { chat: true, pusher_url: None }
    }
}

/// The marker of a delivered notification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeliveredRecord {
    expires_at: u64,
}

/// The push repository over the table.
#[derive(Clone, Copy)]
pub struct PushRecords<'a>(pub &'a Store);

impl PushRecords<'_> {
    pub async fn settings(&self, tenant: &TenantId, user: &UserSlug) -> Result<Option<PushSettings>, BackendError> {
        self.0.record(&keys::push_settings(tenant, user)).await
    }

    pub async fn put_settings(
        &self,
        tenant: &TenantId,
        user: &UserSlug,
        settings: &PushSettings,
    ) -> Result<(), BackendError> {
        self.0.put_record(&keys::push_settings(tenant, user), settings).await
    }

    /// Claims the delivery of `event_id` to the user: `true` for the first claim, `false` when a notify for it was
    /// already turned into an event.
    pub async fn claim_delivery(
        &self,
        tenant: &TenantId,
        user: &UserSlug,
        event_id: &str,
    ) -> Result<bool, BackendError> {
        let record = DeliveredRecord { expires_at: store::now_secs() + DELIVERED_TTL_SECS };
        let key = keys::push_delivered(tenant, user, event_id);
        Ok(self.0.put_record_if_absent(&key, &record).await?.is_none())
    }

    /// Gives a claim back (the event could not be put: the homeserver's retry must find no claim).
    pub async fn release_delivery(
        &self,
        tenant: &TenantId,
        user: &UserSlug,
        event_id: &str,
    ) -> Result<(), BackendError> {
        self.0.delete_key(&keys::push_delivered(tenant, user, event_id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_attributes_read_as_on_without_a_pusher() {
        let settings: PushSettings = serde_json::from_str("{}").expect("settings");
        assert_eq!(settings, PushSettings { chat: true, pusher_url: None });
        let off = serde_json::to_value(PushSettings { chat: false, pusher_url: None }).expect("json");
        assert_eq!(off, serde_json::json!({"chat": false}));
    }
}
