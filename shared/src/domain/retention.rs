//! Retention of event rooms: archived (read-only, history kept, members stay and can read) a configurable time
//! after the event ends, a cancelled event's room sooner; purged from the homeserver after a longer period only when
//! an operator set one (`OPENMEET_RETENTION_PURGE_DAYS`, default 0: never). Runs
//! over the managed-room records (`crate::aws::desired_state`); time is a parameter, so tests need no sleeps.

use serde::Serialize;

use crate::app::App;
use crate::aws::desired_state::{DesiredStates, ManagedRoom};
use crate::domain::DomainError;
use crate::domain::drift::{SelfHealSettings, intent};
use crate::domain::operations::now_version;
use crate::domain::room_lifecycle::{self, DeleteMode};
use crate::identity::{RoomKind, Slug, TenantId};

/// What a retention run did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionReport {
    pub dry_run: bool,
    pub event_rooms: usize,
    pub archived: Vec<String>,
    pub purged: Vec<String>,
    pub failed: Vec<String>,
}

/// What is due for one room at `now` (epoch seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Nothing,
    Archive,
    Purge,
}

fn epoch(rfc3339: &str) -> Option<u64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
}

/// The rule, pure: archive after the end (+ period), a cancelled one after its cancellation (+ shorter period);
/// purge an archived one after the end or cancellation (+ the longest period).
pub fn due(room: &ManagedRoom, settings: &SelfHealSettings, now: u64) -> Due {
    let Some(event) = &room.settings.event else { return Due::Nothing };
    let Some(end) = event.ends_at.as_deref().or(Some(event.starts_at.as_str())).and_then(epoch) else {
        return Due::Nothing;
    };
    let retention = settings.retention_of(&room.key.tenant);
    let after = |from: u64, period: std::time::Duration| now >= from.saturating_add(period.as_secs());
    let finished = room.cancelled_at.map_or(end, |cancelled| cancelled.min(end));
    match room.lifecycle.as_str() {
        "archived" if retention.purge_after.is_some_and(|period| after(finished, period)) => Due::Purge,
        "archived" => Due::Nothing,
        "cancelled" if room.cancelled_at.is_some_and(|at| after(at, retention.cancelled_after)) => Due::Archive,
        _ if after(end, retention.archive_after) => Due::Archive,
        _ => Due::Nothing,
    }
}

pub async fn run(
    app: &App,
    settings: &SelfHealSettings,
    now: u64,
    tenant: Option<&str>,
    dry_run: bool,
) -> Result<RetentionReport, DomainError> {
    let mut report = RetentionReport { dry_run, ..RetentionReport::default() };
    let prefix = tenant.map(|t| format!("{t}/"));
    let mut after: Option<String> = None;
    loop {
        let (rooms, last) = DesiredStates(&app.store).page(prefix.as_deref(), after.as_deref(), 100).await?;
        for room in rooms.iter().filter(|room| room.key.kind == RoomKind::Event.path_segment()) {
            report.event_rooms += 1;
            let due = due(room, settings, now);
            if due == Due::Nothing {
                continue;
            }
            let name = room.key.sort_key();
            let outcome = if dry_run { Ok(()) } else { apply(app, room, due, now).await };
            match (outcome, due) {
                (Ok(()), Due::Archive) => report.archived.push(name),
                (Ok(()), _) => report.purged.push(name),
                (Err(error), _) => {
                    tracing::warn!(room = %name, error = %error, "retention failed");
                    report.failed.push(name);
                }
            }
        }
        match last {
            Some(last) => after = Some(last),
            None => break,
        }
    }
    tracing::info!(
        archived = report.archived.len(),
        purged = report.purged.len(),
        failed = report.failed.len(),
        dry_run,
        "retention run finished"
    );
    Ok(report)
}

async fn apply(app: &App, room: &ManagedRoom, due: Due, now: u64) -> Result<(), DomainError> {
    let tenant = TenantId::parse(&room.key.tenant)?;
    let slug = Slug::parse(&room.key.slug)?;
    match due {
        Due::Archive => {
            // The same archive as `DELETE …/room?mode=archive`: read-only, out of the directory, members and history
            // kept, so former members go on reading it.
            room_lifecycle::delete(app, &tenant, RoomKind::Event, &slug, DeleteMode::Archive).await?;
            intent::record_lifecycle(app, &tenant, RoomKind::Event, &slug, "archived", now_version(), now).await?;
            tracing::info!(room = %room.key.sort_key(), "event room archived by retention");
        }
        Due::Purge => {
            room_lifecycle::delete(app, &tenant, RoomKind::Event, &slug, DeleteMode::Purge).await?;
            intent::forget_room(app, &tenant, RoomKind::Event, &slug).await?;
            tracing::info!(room = %room.key.sort_key(), "event room purged by retention");
        }
        Due::Nothing => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::desired_state::{EventTimes, RoomKey, RoomSettings};

    fn room(lifecycle: &str, ends_at: Option<&str>, cancelled_at: Option<u64>) -> ManagedRoom {
        ManagedRoom {
            key: RoomKey { tenant: "acme".into(), kind: "events".into(), slug: "e".into() },
            settings: RoomSettings {
                room_id: "!r:l".into(),
                name: "E".into(),
                join_rules: serde_json::json!({"join_rule": "invite"}),
                parent: None,
                event: Some(EventTimes { starts_at: "1970-01-31T00:00:00Z".into(), ends_at: ends_at.map(Into::into) }),
            },
            settings_version: 1,
            lifecycle: lifecycle.into(),
            cancelled_at,
            archived_at: None,
        }
    }

    const DAY: u64 = 86_400;

    #[test]
    fn archive_after_the_end_cancelled_sooner_purge_later() {
        let settings = SelfHealSettings::from_lookup(|_| None).expect("defaults");
        let start = 30 * DAY;
        let active = room("active", None, None);
        assert_eq!(due(&active, &settings, start + 29 * DAY), Due::Nothing);
        assert_eq!(due(&active, &settings, start + 30 * DAY), Due::Archive);
        let ends_later = room("active", Some("1970-02-01T00:00:00Z"), None);
        assert_eq!(due(&ends_later, &settings, start + 30 * DAY), Due::Nothing, "counted from the end");
        let cancelled = room("cancelled", None, Some(start - 10 * DAY));
        assert_eq!(due(&cancelled, &settings, start - 3 * DAY), Due::Archive, "7 days after the cancellation");
        let archived = room("archived", None, None);
        assert_eq!(due(&archived, &settings, u64::MAX / 2), Due::Nothing, "never purged by default");
        let purging =
            SelfHealSettings::from_lookup(|name| (name == "OPENMEET_RETENTION_PURGE_DAYS").then(|| "365".to_owned()))
                .expect("valid");
        assert_eq!(due(&archived, &purging, start + 364 * DAY), Due::Nothing);
        assert_eq!(due(&archived, &purging, start + 365 * DAY), Due::Purge);
        let overridden = SelfHealSettings::from_lookup(|name| {
            (name == "OPENMEET_RETENTION_OVERRIDES").then(|| "acme=1/1/2".to_owned())
        })
        .expect("valid");
        assert_eq!(due(&active, &overridden, start + DAY), Due::Archive);
        let group = ManagedRoom { settings: RoomSettings { event: None, ..active.settings.clone() }, ..active };
        assert_eq!(due(&group, &settings, u64::MAX / 2), Due::Nothing, "only event rooms have a retention");
    }
}
