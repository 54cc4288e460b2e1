//! The Push Gateway API's notify (`POST /_matrix/push/v1/notify`), as the homeserver calls it for a pusher with
//! `format: event_id_only`: `{"notification": {event_id, room_id, counts, prio, devices: [{app_id, pushkey,
//! pushkey_ts, data, tweaks}]}}`, answered with `{"rejected": [pushkeys]}` (the homeserver deletes a rejected
//! pusher). Each genuine notification becomes exactly one [`ChatNotification`] on the event bus.
//!
//! Genuine: the route is private (only the homeserver reaches it), the device's `app_id` is ours and its pushkey
//! is the one the platform derives for the user its `data` names (`super::pushers`). Anything else is rejected.
//! Exactly once: the homeserver retries a notify that failed; a conditional marker per (user, event) makes the
//! retry put no second event. Content never leaves: unknown fields of the notify (a `content`, should a
//! misconfigured homeserver send one) are not even parsed, and the event is built from ids and counts only.

use ruma::UserId;
use ruma::events::room::canonical_alias::RoomCanonicalAliasEventContent;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::aws::events::{BusEvent, EventBus};
use crate::aws::push::PushRecords;
use crate::domain::DomainError;
use crate::domain::messages::content::IMPORT_ORIGIN_FIELD;
use crate::homeserver::Acting;
use crate::identity::{TenantId, UserSlug};

use super::{APP_ID, pushers};

pub const SOURCE: &str = "openmeet.chat";
pub const DETAIL_TYPE: &str = "ChatNotification";

#[derive(Debug, Deserialize)]
pub struct NotifyRequest {
    pub notification: Notification,
}

/// The fields of a notification the gateway uses; every other field is ignored.
#[derive(Debug, Deserialize)]
pub struct Notification {
    /// Absent (or empty) in a badge-only update, which carries no event.
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub room_id: Option<String>,
    #[serde(default)]
    pub counts: Counts,
    #[serde(default)]
    pub prio: Option<String>,
    #[serde(default)]
    pub devices: Vec<Device>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    #[serde(default)]
    pub unread: u64,
    #[serde(default, rename(deserialize = "missed_calls", serialize = "missedCalls"))]
    pub missed_calls: u64,
}

#[derive(Deserialize)]
pub struct Device {
    pub app_id: String,
    pub pushkey: String,
    #[serde(default)]
    pub pushkey_ts: Option<u64>,
    #[serde(default, deserialize_with = "crate::homeserver::timeline::lenient")]
    pub data: Option<DeviceData>,
}

/// The pusher's `data` as the platform set it (`super::pushers`): the Matrix user it pushes for, under
/// [`super::DATA_USER`].
#[derive(Debug, Default, Deserialize)]
pub struct DeviceData {
    #[serde(rename = "org.openmeet.user", default, deserialize_with = "crate::homeserver::timeline::lenient")]
    pub user: Option<String>,
}

// The pushkey is a secret: never in a debug print.
impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("app_id", &self.app_id)
            .field("pushkey_ts", &self.pushkey_ts)
            .finish_non_exhaustive()
    }
}

/// The notify body, or `invalid_body` (answered 400).
pub fn parse(body: &[u8]) -> Result<NotifyRequest, DomainError> {
    serde_json::from_slice(body).map_err(|e| DomainError::invalid("invalid_body", format!("not a notify request: {e}")))
}

/// The answer: pushkeys the homeserver should stop using.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct NotifyAnswer {
    pub rejected: Vec<String>,
}

/// OpenMeet's notification event (`detail` of `ChatNotification` on the bus). Ids and counts only: no content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatNotification {
    pub tenant: String,
    pub user: String,
    pub room: RoomOf,
    pub event_id: String,
    pub sender: Sender,
    pub counts: Counts,
    /// `high` (a highlight or a sound) or `low`, as the homeserver chose it.
    pub priority: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomOf {
    pub room_id: String,
    /// `group`, `event`, `direct`, `space`, `tenant`; `None` for a room without an OpenMeet alias.
    pub kind: Option<String>,
    pub slug: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sender {
    pub matrix_user_id: String,
    /// The OpenMeet user id, when the sender is an OpenMeet user of the same tenant.
    pub user: Option<String>,
}

/// Kind and slug of a room from its canonical alias `#{prefix}{tenant}.{kind}.{slug}:{server}` (the tenant's
/// space is `#{prefix}{tenant}.tenant`); `None` when the alias is not one of the tenant's.
pub fn kind_and_slug(alias: &str, prefix: &str, server_name: &str, tenant: &TenantId) -> Option<(String, String)> {
    let localpart = alias.strip_prefix('#')?.strip_suffix(server_name)?.strip_suffix(':')?;
    let rest = localpart.strip_prefix(prefix)?.strip_prefix(tenant.as_str())?.strip_prefix('.')?;
    match rest.split_once('.') {
        Some((kind, slug)) if !kind.is_empty() && !slug.is_empty() => Some((kind.to_owned(), slug.to_owned())),
        None if rest == "tenant" => Some((rest.to_owned(), String::new())),
        _ => None,
    }
}

/// Handles a notify: rejects what is not genuine, puts one event per new (user, event).
pub async fn handle(app: &App, bus: &EventBus, request: NotifyRequest) -> Result<NotifyAnswer, DomainError> {
    let notification = request.notification;
    let mut answer = NotifyAnswer::default();
    for device in &notification.devices {
        let Some((tenant, user)) = owner(app, device) else {
            tracing::warn!(?device, "notify for a pusher the platform did not set: rejected");
            answer.rejected.push(device.pushkey.clone());
            continue;
        };
        if !PushRecords(&app.store).settings(&tenant, &user).await?.unwrap_or_default().chat {
            tracing::info!(tenant = %tenant, user = %user, "notify for a user with chat notifications off: rejected");
            answer.rejected.push(device.pushkey.clone());
            continue;
        }
        let (Some(event_id), Some(room_id)) = (
            notification.event_id.as_deref().filter(|id| !id.is_empty()),
            notification.room_id.as_deref().filter(|id| !id.is_empty()),
        ) else {
            continue; // A badge-only update: nothing to tell OpenMeet.
        };
        deliver(app, bus, &tenant, &user, &notification, room_id, event_id).await?;
    }
    Ok(answer)
}

/// The OpenMeet user a device's pusher belongs to, if the platform set it (our app id, the user's own pushkey).
fn owner(app: &App, device: &Device) -> Option<(TenantId, UserSlug)> {
    if device.app_id != APP_ID {
        return None;
    }
    let user_id = UserId::parse(device.data.as_ref()?.user.as_deref()?).ok()?;
    let (tenant, user) = app.identities.openmeet_user(&user_id)?;
    pushers::is_pushkey_of(app, &tenant, &user, &device.pushkey).then_some((tenant, user))
}

async fn deliver(
    app: &App,
    bus: &EventBus,
    tenant: &TenantId,
    user: &UserSlug,
    notification: &Notification,
    room_id: &str,
    event_id: &str,
) -> Result<(), DomainError> {
    let event = match describe(app, tenant, user, notification, room_id, event_id).await? {
        Some(Described::Notification(event)) => *event,
        Some(Described::Imported) => return Ok(()),
        None => {
            tracing::warn!(tenant = %tenant, user = %user, event_id, "notify for an event the user cannot see: nothing put");
            return Ok(());
        }
    };
    let records = PushRecords(&app.store);
    if !records.claim_delivery(tenant, user, event_id).await? {
        tracing::info!(tenant = %tenant, user = %user, event_id, "notify retried: the event was already put");
        return Ok(());
    }
    let detail = serde_json::to_string(&event).map_err(|_| DomainError::Internal)?;
    if let Err(error) = bus.put(&BusEvent { source: SOURCE, detail_type: DETAIL_TYPE, detail }).await {
        // Give the claim back so that the homeserver's retry puts it; if that fails too, the event is lost (logged).
        if let Err(release) = records.release_delivery(tenant, user, event_id).await {
            tracing::error!(tenant = %tenant, user = %user, event_id, %release, "notification lost: claim not released");
        }
        return Err(error.into());
    }
    tracing::info!(tenant = %tenant, user = %user, event_id, "chat notification put");
    Ok(())
}

/// What a notified event becomes.
enum Described {
    Notification(Box<ChatNotification>),
    /// Imported history (it carries [`IMPORT_ORIGIN_FIELD`]): never an OpenMeet notification.
    Imported,
}

/// The event's sender and the room's kind and slug, read as the user on their server device; `None` when the user
/// cannot see the event.
async fn describe(
    app: &App,
    tenant: &TenantId,
    user: &UserSlug,
    notification: &Notification,
    room_id: &str,
    event_id: &str,
) -> Result<Option<Described>, DomainError> {
    let room = crate::homeserver::room_id(room_id)?;
    let homeserver = &app.homeserver;
    let (room_ref, event_ref) = (&room, event_id);
    let as_user = app
        .credentials
        .as_user(tenant, user, |me| async move { homeserver.room_event(room_ref, event_ref, Acting::User(&me)).await })
        .await;
    // An invited user cannot read the room yet (their invite notifies them): the platform, which created the room,
    // reads it instead. Only the sender's id and the alias leave, to the user the homeserver chose to notify.
    let event = match readable(as_user)? {
        Some(event) => Some(event),
        None => readable(homeserver.room_event(room_ref, event_ref, Acting::Platform).await)?,
    };
    let Some(event) = event else {
        return Ok(None);
    };
    // Imported history notifies nobody, whatever the homeserver's push rules made of it (an imported mention).
    if event.content.json().contains_key(IMPORT_ORIGIN_FIELD) {
        tracing::info!(tenant = %tenant, user = %user, event_id, "notify for imported history: nothing put");
        return Ok(Some(Described::Imported));
    }
    let Some(sender) = event.sender else {
        return Ok(None);
    };
    let alias = match readable(
        app.credentials
            .as_user(tenant, user, |me| async move {
                homeserver.state_content(room_ref, "m.room.canonical_alias", "", Acting::User(&me)).await
            })
            .await,
    )? {
        Some(alias) => Some(alias),
        None => readable(homeserver.state_content(room_ref, "m.room.canonical_alias", "", Acting::Platform).await)?,
    };
    let kind_slug = alias
        .and_then(|content| serde_json::from_value::<RoomCanonicalAliasEventContent>(content).ok())
        .and_then(|content| content.alias)
        .and_then(|alias| kind_and_slug(alias.as_str(), &app.config.user_prefix, app.identities.server_name(), tenant));
    let sender_user = app
        .identities
        .openmeet_user(&sender)
        .filter(|(their_tenant, _)| their_tenant == tenant)
        .map(|(_, slug)| slug.to_string());
    Ok(Some(Described::Notification(Box::new(ChatNotification {
        tenant: tenant.to_string(),
        user: user.to_string(),
        room: RoomOf {
            room_id: room_id.to_owned(),
            kind: kind_slug.as_ref().map(|(kind, _)| kind.clone()),
            slug: kind_slug.map(|(_, slug)| slug),
        },
        event_id: event_id.to_owned(),
        sender: Sender { matrix_user_id: sender.to_string(), user: sender_user },
        counts: notification.counts,
        priority: notification.prio.clone().unwrap_or_else(|| "high".to_owned()),
    }))))
}

/// A read's answer; a refusal (not visible to whoever asked) is `None`, only a passing failure is an error (the
/// homeserver then retries the notify).
fn readable<T>(answer: Result<Option<T>, crate::homeserver::HomeserverError>) -> Result<Option<T>, DomainError> {
    match answer {
        Ok(value) => Ok(value),
        Err(error) if error.is_transient() => Err(error.into()),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;
