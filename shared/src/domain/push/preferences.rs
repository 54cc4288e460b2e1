//! A user's chat notification preference (`GET`/`PUT /v1/me/notification-preferences`). It is applied where it
//! takes effect: `off` removes the user's pusher, so the homeserver does no push work for them at all; `on` sets it
//! again. Stored, so that a later session does not set a pusher for a user who turned it off.

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::aws::push::PushRecords;
use crate::domain::DomainError;
use crate::identity::{TenantId, UserSlug};

use super::pushers;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Switch {
    On,
    Off,
}

/// The route's body, both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationPreferences {
    pub chat: Switch,
}

pub async fn get(app: &App, tenant: &TenantId, user: &UserSlug) -> Result<NotificationPreferences, DomainError> {
    let settings = PushRecords(&app.store).settings(tenant, user).await?.unwrap_or_default();
    Ok(NotificationPreferences { chat: if settings.chat { Switch::On } else { Switch::Off } })
}

/// Records the preference first (so a session racing this call sees it), then applies it to the pushers. When the
/// homeserver is down the preference stays recorded and the error says so (503): the next session or `PUT`
/// applies it; a notify arriving meanwhile for an `off` user is refused by the gateway.
pub async fn put(
    app: &App,
    tenant: &TenantId,
    user: &UserSlug,
    wanted: NotificationPreferences,
) -> Result<NotificationPreferences, DomainError> {
    let records = PushRecords(&app.store);
    let mut settings = records.settings(tenant, user).await?.unwrap_or_default();
    let chat = wanted.chat == Switch::On;
    if settings.chat != chat {
        settings.chat = chat;
        records.put_settings(tenant, user, &settings).await?;
    }
    // A user never provisioned has no pusher yet: their first session applies the recorded preference.
    if crate::domain::users::is_provisioned(app, tenant, user).await? {
        pushers::ensure(app, tenant, user).await?;
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_on_or_off_and_nothing_else() {
        let on: NotificationPreferences = serde_json::from_str(r#"{"chat":"on"}"#).expect("on");
        assert_eq!(on.chat, Switch::On);
        assert_eq!(
            serde_json::to_string(&NotificationPreferences { chat: Switch::Off }).ok().as_deref(),
            Some(r#"{"chat":"off"}"#)
        );
        for bad in [r#"{"chat":"maybe"}"#, r#"{"chat":true}"#, r#"{}"#, r#"{"chat":"on","x":1}"#] {
            assert!(serde_json::from_str::<NotificationPreferences>(bad).is_err(), "{bad}");
        }
    }
}
