//! The API's own limits: per user, per tenant, and a separate, higher budget for the service; one set of budgets
//! for writes (every method but GET), another, with a longer window and larger figures, for reads (GET: a page of
//! history costs the homeserver dozens of calls through the appservice, which Synapse does not rate-limit).
//!
//! Fixed windows counted in DynamoDB, so every container (every Lambda instance, every function) shares one count:
//! one conditional `UpdateItem` per budget (`ADD n 1` only while `n < limit`), the budgets of a request checked
//! concurrently, each window's record dropped by TTL. A refused request is answered `429` with `Retry-After` (the
//! seconds left in the window). A fixed window lets through at most twice the limit around a window's boundary;
//! that is the price of one round trip per budget instead of a read-modify-write.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use crate::aws::store::{self, Store};
use crate::aws::{BackendError, keys};
use crate::identity::{Caller, Role};
use crate::settings::{ConfigError, number};

/// Requests allowed per window; 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Each user of the tenant.
    pub user: u64,
    /// All users of the tenant together.
    pub tenant: u64,
    /// The service's own calls for the tenant.
    pub service: u64,
}

/// What a request draws on: writes and reads have budgets (and counters) of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Writes,
    Reads,
}

/// The budgets of one kind.
#[derive(Debug, Clone)]
pub struct Limits {
    pub window: Duration,
    pub default: Budget,
    /// Per-tenant budgets: an exact tenant id, or a prefix ending in `*`.
    pub overrides: Vec<(String, Budget)>,
}

#[derive(Debug, Clone)]
pub struct RateLimits {
    pub writes: Limits,
    pub reads: Limits,
}

/// The variables and defaults of one kind's budgets.
struct Names {
    window: (&'static str, u64),
    user: (&'static str, u64),
    tenant: (&'static str, u64),
    service: (&'static str, u64),
    overrides: &'static str,
}

const WRITES: Names = Names {
    window: ("OPENMEET_RATE_WINDOW_SECS", 60),
    user: ("OPENMEET_RATE_USER", 120),
    tenant: ("OPENMEET_RATE_TENANT", 3_000),
    service: ("OPENMEET_RATE_SERVICE", 30_000),
    overrides: "OPENMEET_RATE_OVERRIDES",
};

/// Reads: a 5-minute window; a user may read 2 pages a second on average, a tenant's users 50.
const READS: Names = Names {
    window: ("OPENMEET_READ_WINDOW_SECS", 300),
    user: ("OPENMEET_READ_USER", 600),
    tenant: ("OPENMEET_READ_TENANT", 15_000),
    service: ("OPENMEET_READ_SERVICE", 150_000),
    overrides: "OPENMEET_READ_OVERRIDES",
};

impl RateLimits {
    /// Writes: `OPENMEET_RATE_WINDOW_SECS` (60), `OPENMEET_RATE_USER` (120), `OPENMEET_RATE_TENANT` (3000),
    /// `OPENMEET_RATE_SERVICE` (30000) and `OPENMEET_RATE_OVERRIDES` (`tenant=user/tenant/service,prefix*=…`).
    /// Reads: `OPENMEET_READ_WINDOW_SECS` (300), `OPENMEET_READ_USER` (600), `OPENMEET_READ_TENANT` (15000),
    /// `OPENMEET_READ_SERVICE` (150000) and `OPENMEET_READ_OVERRIDES` (same shape).
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<RateLimits, ConfigError> {
        Ok(RateLimits { writes: Limits::from_lookup(get, &WRITES)?, reads: Limits::from_lookup(get, &READS)? })
    }

    pub fn of(&self, kind: Kind) -> &Limits {
        match kind {
            Kind::Writes => &self.writes,
            Kind::Reads => &self.reads,
        }
    }
}

impl Limits {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>, names: &Names) -> Result<Limits, ConfigError> {
        let window = number(get, names.window.0, names.window.1)?.max(1);
        let default = Budget {
            user: number(get, names.user.0, names.user.1)?,
            tenant: number(get, names.tenant.0, names.tenant.1)?,
            service: number(get, names.service.0, names.service.1)?,
        };
        let overrides = match get(names.overrides) {
            None => Vec::new(),
            Some(text) => {
                parse_overrides(&text).map_err(|reason| ConfigError::Invalid { name: names.overrides, reason })?
            }
        };
        Ok(Limits { window: Duration::from_secs(window), default, overrides })
    }

    /// The tenant's budget: its exact override, else the longest matching prefix, else the default.
    pub fn budget(&self, tenant: &str) -> Budget {
        if let Some((_, budget)) = self.overrides.iter().find(|(key, _)| key == tenant) {
            return *budget;
        }
        self.overrides
            .iter()
            .filter_map(|(key, budget)| key.strip_suffix('*').filter(|p| tenant.starts_with(p)).map(|p| (p, budget)))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, budget)| *budget)
            .unwrap_or(self.default)
    }
}

fn parse_overrides(text: &str) -> Result<Vec<(String, Budget)>, String> {
    let mut overrides = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        let bad = || format!("`{entry}`: expected tenant=user/tenant/service");
        let (tenant, figures) = entry.split_once('=').ok_or_else(bad)?;
        let figures: Vec<u64> =
            figures.split('/').map(|n| n.trim().parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
        let [user, tenant_budget, service] = figures[..] else {
            return Err(bad());
        };
        overrides.push((tenant.trim().to_owned(), Budget { user, tenant: tenant_budget, service }));
    }
    Ok(overrides)
}

/// The counters a request of this kind by this caller draws on: `(partition key, limit)`, unlimited ones left out.
fn counters(caller: &Caller, kind: Kind, budget: Budget) -> Vec<(String, u64)> {
    let tenant = &caller.tenant;
    let wanted = match (&caller.role, kind) {
        (Role::Service, Kind::Writes) => vec![(keys::rate_service(tenant), budget.service)],
        (Role::Service, Kind::Reads) => vec![(keys::read_service(tenant), budget.service)],
        (Role::User(user), Kind::Writes) => {
            vec![(keys::rate_user(tenant, user), budget.user), (keys::rate_tenant_users(tenant), budget.tenant)]
        }
        (Role::User(user), Kind::Reads) => {
            vec![(keys::read_user(tenant, user), budget.user), (keys::read_tenant_users(tenant), budget.tenant)]
        }
    };
    wanted.into_iter().filter(|(_, limit)| *limit > 0).collect()
}

/// Runs a request counted against the caller's budgets of its kind; `429`, and the request not run, when one is
/// spent for this window. (Below, "write" stands for either kind: reads are counted the same way.) A write far below every limit (this container's last count of the window plus its own unanswered ones at
/// most half the limit) does not wait for its count: both run side by side, and the answer still comes before the
/// reply (a Lambda container is frozen after it). Other containers' writes since that count can make such a write
/// go over (README "What a warm send costs", ADR 0006): at most one per container that writes for the counter in
/// the window while the limit is reached, and with it each container knows and waits again. The counts start when
/// the write calls [`crate::long_step::begins`] (right before its long step, the homeserver request, so that the
/// counts overlap that rather than its own DynamoDB reads: in DynamoDB they would merely run side by side, in the
/// emulator they queue for one process), or when it ends.
pub async fn limited<T, E: From<Refused>>(
    store: &Store,
    limits: &RateLimits,
    observed: &Observed,
    caller: &Caller,
    kind: Kind,
    write: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let (limits, seen) = (limits.of(kind), observed.of(kind));
    let counters = counters(caller, kind, limits.budget(caller.tenant.as_str()));
    if counters.is_empty() {
        return write.await;
    }
    let window = Window::now(limits.window);
    let Some(reservation) = seen.reserve(&counters, window.start) else {
        check(store, &counters, &window, seen).await.map_err(E::from)?;
        return write.await;
    };
    let gate = Arc::new(Notify::new());
    let opened = gate.clone();
    let write = crate::long_step::watch(gate.clone(), async move {
        let outcome = write.await;
        opened.notify_one();
        outcome
    });
    let counted = async {
        gate.notified().await;
        count(store, &counters, &window, seen).await
    };
    let (outcome, counted) = tokio::join!(write, counted);
    drop(reservation);
    // The write is done: a count that failed or came back spent changes nothing for it now.
    for ((pk, _), counted) in counters.iter().zip(counted) {
        match counted {
            Ok(Some(_)) => {}
            Ok(None) => tracing::info!(counter = %pk, "a write far below the limit here found it reached elsewhere"),
            Err(error) => tracing::warn!(error = %error, "could not count a write against the rate limit"),
        }
    }
    outcome
}

/// The fixed window a write falls in.
struct Window {
    start: u64,
    sort_key: String,
    /// Kept a little past the window's end (TTL lags anyway; expired records also read as absent).
    expires_at: u64,
    retry_after: Duration,
}

impl Window {
    fn now(length: Duration) -> Window {
        let length = length.as_secs().max(1);
        let now = store::now_secs();
        let start = now - now % length;
        Window {
            start,
            sort_key: keys::rate_window(start),
            expires_at: start + length + 60,
            retry_after: Duration::from_secs((start + length).saturating_sub(now).max(1)),
        }
    }
}

/// Counts one write on each counter, concurrently: each one's count after it, `None` where it was spent.
async fn count(
    store: &Store,
    counters: &[(String, u64)],
    window: &Window,
    seen: &Counts,
) -> Vec<Result<Option<u64>, BackendError>> {
    match counters {
        [(pk, limit)] => vec![count_one(store, pk, *limit, window, seen).await],
        [(pk_a, limit_a), (pk_b, limit_b)] => {
            let (a, b) = tokio::join!(
                count_one(store, pk_a, *limit_a, window, seen),
                count_one(store, pk_b, *limit_b, window, seen)
            );
            vec![a, b]
        }
        more => {
            let mut all = Vec::with_capacity(more.len());
            for (pk, limit) in more {
                all.push(count_one(store, pk, *limit, window, seen).await);
            }
            all
        }
    }
}

async fn count_one(
    store: &Store,
    pk: &str,
    limit: u64,
    window: &Window,
    seen: &Counts,
) -> Result<Option<u64>, BackendError> {
    let counted = store.count_below(pk, &window.sort_key, limit, window.expires_at).await;
    if let Ok(count) = &counted {
        seen.record(pk, window.start, count.unwrap_or(limit));
    }
    counted
}

/// Why a write was not run.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// A budget is spent for this window; `scope` says whose, and of which kind.
    #[error("too many {scope} in this window")]
    OverBudget { retry_after: Duration, scope: &'static str },
    /// The counters could not be read: the write is not run blind.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Counts one write and waits for the answer; refused when a counter is spent.
async fn check(store: &Store, counters: &[(String, u64)], window: &Window, seen: &Counts) -> Result<(), Refused> {
    let mut refused = None;
    let mut counted = Vec::new();
    for ((pk, _), outcome) in counters.iter().zip(count(store, counters, window, seen).await) {
        if outcome?.is_some() {
            counted.push(pk);
        } else {
            refused = Some(match (pk.starts_with("RR#"), pk.ends_with("#users")) {
                (false, true) => "writes by this tenant's users",
                (false, false) => "writes by this caller",
                (true, true) => "reads by this tenant's users",
                (true, false) => "reads by this caller",
            });
        }
    }
    match refused {
        None => Ok(()),
        Some(scope) => {
            // A refused write spends no budget: give back what the other counter took (one user's burst must not
            // use up the rest of the tenant).
            for pk in counted {
                if let Err(error) = store.add(pk, &window.sort_key, "n", -1).await {
                    tracing::warn!(error = %error, "could not give back a rate-limit count");
                }
            }
            tracing::info!(scope, "write refused by the API's rate limit");
            Err(Refused::OverBudget { retry_after: window.retry_after, scope })
        }
    }
}

/// What this container last learned of each counter in the current window, and its own counts still unanswered:
/// writes and reads apart (their windows differ).
#[derive(Default)]
pub struct Observed {
    writes: Counts,
    reads: Counts,
}

impl Observed {
    fn of(&self, kind: Kind) -> &Counts {
        match kind {
            Kind::Writes => &self.writes,
            Kind::Reads => &self.reads,
        }
    }
}

#[derive(Default)]
struct Counts(Mutex<HashMap<String, Seen>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    window_start: u64,
    count: u64,
    unanswered: u64,
}

impl Counts {
    fn counts(&self) -> MutexGuard<'_, HashMap<String, Seen>> {
        // Single-field updates: a panic elsewhere cannot leave the map inconsistent.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes one count on every counter when all are far below their limits (see [`limited`]); `None` otherwise,
    /// also when this container has no count of the window yet.
    fn reserve(&self, counters: &[(String, u64)], window_start: u64) -> Option<Reservation<'_>> {
        let mut counts = self.counts();
        let far_below = counters.iter().all(|(pk, limit)| {
            counts.get(pk).is_some_and(|s| s.window_start == window_start && (s.count + s.unanswered + 1) * 2 <= *limit)
        });
        if !far_below {
            return None;
        }
        for (pk, _) in counters {
            if let Some(seen) = counts.get_mut(pk) {
                seen.unanswered += 1;
            }
        }
        Some(Reservation { seen: self, pks: counters.iter().map(|(pk, _)| pk.clone()).collect(), window_start })
    }

    /// A counter's count as DynamoDB answered it (answers may arrive out of order: the highest wins).
    fn record(&self, pk: &str, window_start: u64, count: u64) {
        let mut counts = self.counts();
        counts.retain(|_, seen| seen.window_start >= window_start);
        let seen = counts.entry(pk.to_owned()).or_insert(Seen { window_start, count, unanswered: 0 });
        if seen.window_start == window_start {
            seen.count = seen.count.max(count);
        }
    }
}

/// The counts a write took in [`Counts::reserve`], given back when it has its answers (or is dropped).
struct Reservation<'a> {
    seen: &'a Counts,
    pks: Vec<String>,
    window_start: u64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut counts = self.seen.counts();
        for pk in &self.pks {
            if let Some(seen) = counts.get_mut(pk).filter(|seen| seen.window_start == self.window_start) {
                seen.unanswered = seen.unanswered.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
#[path = "ratelimit_tests.rs"]
mod tests;
