//! User profiles (`crate::domain::users` decides what they hold) and everything a user owns in the table.

use serde::{Deserialize, Serialize};

use super::keys;
use super::store::Store;
use crate::aws::BackendError;
use crate::identity::{TenantId, UserSlug};

/// A provisioned user's profile as last synced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Where the avatar was copied from (an `mxc://` URI or the URL fetched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_source: Option<String>,
    /// Epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<u64>,
}

/// The users repository over the table.
#[derive(Clone, Copy)]
pub struct Users<'a>(pub &'a Store);

impl Users<'_> {
    pub async fn profile(&self, tenant: &TenantId, user: &UserSlug) -> Result<Option<ProfileRecord>, BackendError> {
        self.0.record(&keys::user_profile(tenant, user)).await
    }

    pub async fn put_profile(
        &self,
        tenant: &TenantId,
        user: &UserSlug,
        profile: &ProfileRecord,
    ) -> Result<(), BackendError> {
        self.0.put_record(&keys::user_profile(tenant, user), profile).await
    }

    /// Whether the user's profile is recorded (the user was provisioned).
    pub async fn exists(&self, tenant: &TenantId, user: &UserSlug) -> Result<bool, BackendError> {
        let key = keys::user_profile(tenant, user);
        Ok(self.0.get(&key.pk, &key.sk).await?.is_some())
    }

    /// Deletes everything the user owns (profile, operation references); how many items went.
    pub async fn forget(&self, tenant: &TenantId, user: &UserSlug) -> Result<usize, BackendError> {
        self.0.delete_partition(&keys::user_partition(tenant, user)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::records::tests::{item, round_trips};

    #[test]
    fn profiles_keep_the_first_versions_layout() {
        let synced = [("matrixUserId", "@acme_jane:localhost"), ("displayName", "Jane"), ("updatedAt", "n:1764000000")];
        let profile = round_trips::<ProfileRecord>(item("T#acme#U#jane", "PROFILE", &synced));
        assert_eq!(profile.avatar_source, None);
        let with_avatar = [&synced[..], &[("avatarSource", "https://example.org/a.png")]].concat();
        let profile = round_trips::<ProfileRecord>(item("T#acme#U#jane", "PROFILE", &with_avatar));
        assert_eq!(profile.display_name.as_deref(), Some("Jane"));
    }
}
