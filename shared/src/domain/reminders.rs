//! Event reminders: a notice in an event's room a configurable time before it starts, and one when it starts.
//! Each is posted once for a given start time: a marker in the table (checked first) and a transaction id derived
//! from the room, the kind of reminder and the start time (the homeserver returns the first event for a repeat),
//! so a schedule that fires twice, or two runs at once, post one notice. A moved event has a new start time (the
//! old one's reminders are never due again); a cancelled or archived one gets none.

use serde::Serialize;

use crate::app::App;
use crate::aws::desired_state::{DesiredStates, ManagedRoom};
use crate::aws::keys;
use crate::domain::DomainError;
use crate::domain::drift::SelfHealSettings;
use crate::domain::messages::idempotency::derived_txn_id;
use crate::domain::platform;
use crate::identity::RoomKind;

/// Markers outlive the start by this much (then the table's TTL removes them).
const MARKER_LIFETIME_SECS: u64 = 30 * 24 * 60 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reminder {
    /// `reminder_lead` before the start.
    Soon,
    Start,
}

impl Reminder {
    fn as_str(self) -> &'static str {
        match self {
            Reminder::Soon => "soon",
            Reminder::Start => "start",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReminderReport {
    pub event_rooms: usize,
    /// `{tenant}/events/{slug} soon|start`.
    pub posted: Vec<String>,
    /// Due, but posted before.
    pub already_posted: usize,
    pub failed: Vec<String>,
}

fn epoch(rfc3339: &str) -> Option<u64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
}

/// The reminder due for an active event room at `now`, pure: "soon" from `lead` before the start until the start;
/// "start" from the start until its end (or `lead` after the start when it has none), so a late schedule still
/// posts it and a very late one does not.
pub fn due(room: &ManagedRoom, lead: std::time::Duration, now: u64) -> Option<Reminder> {
    if room.lifecycle != "active" {
        return None;
    }
    let event = room.settings.event.as_ref()?;
    let starts = epoch(&event.starts_at)?;
    let ends = event.ends_at.as_deref().and_then(epoch).filter(|end| *end > starts);
    let lead = lead.as_secs();
    if now < starts && now >= starts.saturating_sub(lead) {
        return Some(Reminder::Soon);
    }
    let until = ends.unwrap_or(starts.saturating_add(lead.max(60)));
    (now >= starts && now < until).then_some(Reminder::Start)
}

fn text(name: &str, starts_at: &str, reminder: Reminder) -> String {
    let when = starts_at.replace('T', " ").replace('Z', " UTC");
    match reminder {
        Reminder::Soon => format!("Reminder: “{name}” starts at {when}."),
        Reminder::Start => format!("“{name}” is starting now."),
    }
}

pub async fn run(
    app: &App,
    settings: &SelfHealSettings,
    now: u64,
    tenant: Option<&str>,
) -> Result<ReminderReport, DomainError> {
    let mut report = ReminderReport::default();
    let desired_states = DesiredStates(&app.store);
    let prefix = tenant.map(|t| format!("{t}/"));
    let mut after: Option<String> = None;
    loop {
        let (rooms, last) = desired_states.page(prefix.as_deref(), after.as_deref(), 100).await?;
        for room in rooms.iter().filter(|room| room.key.kind == RoomKind::Event.path_segment()) {
            report.event_rooms += 1;
            let Some(reminder) = due(room, settings.reminder_lead, now) else { continue };
            let name = format!("{} {}", room.key.sort_key(), reminder.as_str());
            match post_once(app, room, reminder).await {
                Ok(true) => report.posted.push(name),
                Ok(false) => report.already_posted += 1,
                Err(error) => {
                    tracing::warn!(room = %room.key.sort_key(), error = %error, "reminder failed");
                    report.failed.push(name);
                }
            }
        }
        match last {
            Some(last) => after = Some(last),
            None => break,
        }
    }
    tracing::info!(posted = report.posted.len(), failed = report.failed.len(), "reminder run finished");
    Ok(report)
}

/// `Ok(false)` when the marker says it was posted.
async fn post_once(app: &App, room: &ManagedRoom, reminder: Reminder) -> Result<bool, DomainError> {
    let Some(event) = &room.settings.event else { return Ok(false) };
    let desired_states = DesiredStates(&app.store);
    let marker = keys::reminder_marker(&room.key.sort_key(), reminder.as_str(), &event.starts_at);
    if desired_states.marker(&marker).await? {
        return Ok(false);
    }
    let txn = derived_txn_id(&["event-reminder", &room.settings.room_id, reminder.as_str(), &event.starts_at]);
    platform::send_notice(app, &room.settings.room_id, &txn, &text(&room.settings.name, &event.starts_at, reminder))
        .await?;
    let expires = epoch(&event.starts_at).unwrap_or(0).saturating_add(MARKER_LIFETIME_SECS);
    desired_states.set_marker(&marker, expires).await?;
    tracing::info!(room = %room.key.sort_key(), reminder = reminder.as_str(), "event reminder posted");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::aws::desired_state::{EventTimes, RoomKey, RoomSettings};

    fn room(lifecycle: &str, ends_at: Option<&str>) -> ManagedRoom {
        ManagedRoom {
            key: RoomKey { tenant: "acme".into(), kind: "events".into(), slug: "e".into() },
            settings: RoomSettings {
                room_id: "!r:l".into(),
                name: "Walk".into(),
                join_rules: serde_json::json!({"join_rule": "invite"}),
                parent: None,
                event: Some(EventTimes { starts_at: "1970-01-01T10:00:00Z".into(), ends_at: ends_at.map(Into::into) }),
            },
            settings_version: 1,
            lifecycle: lifecycle.into(),
            cancelled_at: None,
            archived_at: None,
        }
    }

    #[test]
    fn each_reminder_has_its_window() {
        let lead = Duration::from_secs(3600);
        let start = 10 * 3600;
        let active = room("active", Some("1970-01-01T12:00:00Z"));
        assert_eq!(due(&active, lead, start - 3601), None);
        assert_eq!(due(&active, lead, start - 3600), Some(Reminder::Soon));
        assert_eq!(due(&active, lead, start - 1), Some(Reminder::Soon));
        assert_eq!(due(&active, lead, start), Some(Reminder::Start));
        assert_eq!(due(&active, lead, start + 7199), Some(Reminder::Start), "a late run within the event");
        assert_eq!(due(&active, lead, start + 7200), None);
        assert_eq!(due(&room("active", None), lead, start + 3599), Some(Reminder::Start));
        assert_eq!(due(&room("cancelled", None), lead, start), None);
        assert_eq!(due(&room("archived", None), lead, start - 10), None);
    }

    #[test]
    fn notices_name_the_event_and_time() {
        assert_eq!(
            text("Walk", "2026-12-01T18:00:00Z", Reminder::Soon),
            "Reminder: “Walk” starts at 2026-12-01 18:00:00 UTC."
        );
        assert!(text("Walk", "x", Reminder::Start).contains("starting now"));
    }
}
