//! Self-healing (issue 17): the desired state of every managed room is recorded where the service changes it
//! ([`intent`]), a scheduled pass compares it with the homeserver and repairs what drifted ([`compare`],
//! [`repair`]). Retention, housekeeping and reminders ride on the same records (`crate::domain::retention`,
//! `housekeeping`, `reminders`).

pub mod compare;
pub mod intent;
pub mod repair;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::settings::ConfigError;

/// Retention periods of one tenant's event rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// An event room is archived this long after the event ends (its start, when it has no end).
    pub archive_after: Duration,
    /// A cancelled event's room is archived this long after the cancellation.
    pub cancelled_after: Duration,
    /// An archived room is purged this long after the event ends (or after the cancellation); `None`, the
    /// default, never purges: deleting history is an operator's explicit choice.
    pub purge_after: Option<Duration>,
}

/// Settings of the self-healing jobs, from the environment (see the README's configuration table).
#[derive(Debug, Clone)]
pub struct SelfHealSettings {
    /// Rooms one drift-repair invocation looks at; the next one resumes after them.
    pub rooms_per_run: usize,
    /// Homeserver requests per second a pass may make.
    pub requests_per_sec: u32,
    /// Matrix ids (bots) a pass never removes or demotes.
    pub keep_users: BTreeSet<String>,
    pub retention: Retention,
    /// Per-tenant retention.
    pub retention_overrides: BTreeMap<String, Retention>,
    /// How long before an event starts its reminder is posted.
    pub reminder_lead: Duration,
    /// Items one housekeeping invocation scans (DynamoDB reads), at most.
    pub sweep_items: usize,
}

const DAY: u64 = 24 * 60 * 60;

/// `0` days: never purge (the default).
fn purge_days(days: u64) -> Option<Duration> {
    (days > 0).then(|| Duration::from_secs(days * DAY))
}

impl SelfHealSettings {
    pub fn from_env() -> Result<SelfHealSettings, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<SelfHealSettings, ConfigError> {
        let number = |name, default| crate::settings::number(&get, name, default);
        let retention = Retention {
            archive_after: Duration::from_secs(number("OPENMEET_RETENTION_ARCHIVE_DAYS", 30)? * DAY),
            cancelled_after: Duration::from_secs(number("OPENMEET_RETENTION_CANCELLED_DAYS", 7)? * DAY),
            purge_after: purge_days(number("OPENMEET_RETENTION_PURGE_DAYS", 0)?),
        };
        let mut retention_overrides = BTreeMap::new();
        for entry in get("OPENMEET_RETENTION_OVERRIDES").unwrap_or_default().split(',').filter(|e| !e.trim().is_empty())
        {
            let invalid = || ConfigError::Invalid {
                name: "OPENMEET_RETENTION_OVERRIDES",
                reason: format!("{entry:?}: use tenant=archiveDays/cancelledDays/purgeDays"),
            };
            let (tenant, days) = entry.trim().split_once('=').ok_or_else(invalid)?;
            let days: Vec<u64> =
                days.split('/').map(|d| d.trim().parse().map_err(|_| invalid())).collect::<Result<_, _>>()?;
            let [archive, cancelled, purge] = days.as_slice() else { return Err(invalid()) };
            retention_overrides.insert(
                tenant.trim().to_owned(),
                Retention {
                    archive_after: Duration::from_secs(archive * DAY),
                    cancelled_after: Duration::from_secs(cancelled * DAY),
                    purge_after: purge_days(*purge),
                },
            );
        }
        Ok(SelfHealSettings {
            rooms_per_run: number("OPENMEET_DRIFT_ROOMS_PER_RUN", 200)?.max(1) as usize,
            requests_per_sec: number("OPENMEET_DRIFT_REQUESTS_PER_SEC", 20)?.max(1) as u32,
            keep_users: get("OPENMEET_DRIFT_KEEP_USERS")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect(),
            retention,
            retention_overrides,
            reminder_lead: Duration::from_secs(number("OPENMEET_REMINDER_LEAD_SECS", 3600)?),
            sweep_items: number("OPENMEET_SWEEP_ITEMS", 5000)?.max(1) as usize,
        })
    }

    pub fn retention_of(&self, tenant: &str) -> Retention {
        self.retention_overrides.get(tenant).copied().unwrap_or(self.retention)
    }
}

/// Paces homeserver requests: at most `per_sec` a second, counted.
pub struct Pacer {
    interval: Duration,
    next: tokio::time::Instant,
    pub requests: usize,
}

impl Pacer {
    pub fn new(per_sec: u32) -> Pacer {
        Pacer { interval: Duration::from_secs(1) / per_sec.max(1), next: tokio::time::Instant::now(), requests: 0 }
    }

    /// Waits for the slot of `n` more requests.
    pub async fn take(&mut self, n: usize) {
        tokio::time::sleep_until(self.next).await;
        self.requests += n;
        self.next = self.next.max(tokio::time::Instant::now()) + self.interval * n as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_per_tenant_overrides() {
        let settings = SelfHealSettings::from_lookup(|name| match name {
            "OPENMEET_RETENTION_OVERRIDES" => Some("acme=10/1/90, globex=0/0/1".into()),
            "OPENMEET_DRIFT_KEEP_USERS" => Some("@bot:l, @b2:l".into()),
            _ => None,
        })
        .expect("valid");
        assert_eq!(settings.retention.archive_after, Duration::from_secs(30 * DAY));
        assert_eq!(settings.retention_of("acme").cancelled_after, Duration::from_secs(DAY));
        assert_eq!(settings.retention_of("other"), settings.retention);
        assert_eq!(settings.reminder_lead, Duration::from_secs(3600));
        assert_eq!(settings.retention.purge_after, None, "purging is opt-in");
        assert_eq!(settings.retention_of("globex").purge_after, Some(Duration::from_secs(DAY)));
        assert_eq!(settings.retention_of("acme").purge_after, Some(Duration::from_secs(90 * DAY)));
        assert_eq!(settings.keep_users.len(), 2);
        let bad = SelfHealSettings::from_lookup(|name| {
            (name == "OPENMEET_RETENTION_OVERRIDES").then(|| "acme=10/1".to_owned())
        });
        assert!(bad.is_err());
    }
}
