//! The API's own write limits: per user, per tenant, and a separate, higher budget for the service.
//!
//! Fixed windows counted in DynamoDB, so every container (every Lambda instance, every function) shares one count:
//! one conditional `UpdateItem` per budget (`ADD n 1` only while `n < limit`), the budgets of a request checked
//! concurrently, each window's record dropped by TTL. A refused write is answered `429` with `Retry-After` (the
//! seconds left in the window). A fixed window lets through at most twice the limit around a window's boundary;
//! that is the price of one round trip per budget instead of a read-modify-write.

use std::time::Duration;

use crate::auth::{Caller, Role};
use crate::aws::store::{self, Store};
use crate::config::{ConfigError, number};
use crate::error::ApiError;

/// Writes allowed per window; 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Each user of the tenant.
    pub user: u64,
    /// All users of the tenant together.
    pub tenant: u64,
    /// The service's own calls for the tenant.
    pub service: u64,
}

#[derive(Debug, Clone)]
pub struct RateLimits {
    pub window: Duration,
    pub default: Budget,
    /// Per-tenant budgets: an exact tenant id, or a prefix ending in `*`.
    pub overrides: Vec<(String, Budget)>,
}

impl RateLimits {
    /// `OPENMEET_RATE_WINDOW_SECS` (60), `OPENMEET_RATE_USER` (120), `OPENMEET_RATE_TENANT` (3000),
    /// `OPENMEET_RATE_SERVICE` (30000) and `OPENMEET_RATE_OVERRIDES` (`tenant=user/tenant/service,prefix*=…`).
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<RateLimits, ConfigError> {
        let window = number(get, "OPENMEET_RATE_WINDOW_SECS", 60)?.max(1);
        let default = Budget {
            user: number(get, "OPENMEET_RATE_USER", 120)?,
            tenant: number(get, "OPENMEET_RATE_TENANT", 3_000)?,
            service: number(get, "OPENMEET_RATE_SERVICE", 30_000)?,
        };
        let overrides = match get("OPENMEET_RATE_OVERRIDES") {
            None => Vec::new(),
            Some(text) => parse_overrides(&text)
                .map_err(|reason| ConfigError::Invalid { name: "OPENMEET_RATE_OVERRIDES", reason })?,
        };
        Ok(RateLimits { window: Duration::from_secs(window), default, overrides })
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

/// The counters a write by this caller draws on: `(partition key, limit)`, unlimited ones left out.
fn counters(caller: &Caller, budget: Budget) -> Vec<(String, u64)> {
    let tenant = &caller.tenant;
    let wanted = match &caller.role {
        Role::Service => vec![(format!("RL#{tenant}#service"), budget.service)],
        Role::User(user) => {
            vec![(format!("RL#{tenant}#U#{user}"), budget.user), (format!("RL#{tenant}#users"), budget.tenant)]
        }
    };
    wanted.into_iter().filter(|(_, limit)| *limit > 0).collect()
}

/// Counts one write against the caller's budgets; `429` when one of them is spent for this window.
pub async fn check(store: &Store, limits: &RateLimits, caller: &Caller) -> Result<(), ApiError> {
    let counters = counters(caller, limits.budget(caller.tenant.as_str()));
    if counters.is_empty() {
        return Ok(());
    }
    let window = limits.window.as_secs();
    let now = store::now_secs();
    let window_start = now - now % window;
    let sort_key = format!("W#{window_start}");
    // Kept a little past the window's end (TTL lags anyway; expired records also read as absent).
    let expires_at = window_start + window + 60;
    let sort_key = sort_key.as_str();
    let outcomes = match counters.as_slice() {
        [(pk, limit)] => vec![store.count_below(pk, sort_key, *limit, expires_at).await],
        [(pk_a, limit_a), (pk_b, limit_b)] => {
            let (a, b) = tokio::join!(
                store.count_below(pk_a, sort_key, *limit_a, expires_at),
                store.count_below(pk_b, sort_key, *limit_b, expires_at)
            );
            vec![a, b]
        }
        _ => return Err(ApiError::Internal),
    };
    let mut refused = None;
    let mut counted = Vec::new();
    for ((pk, _), outcome) in counters.iter().zip(outcomes) {
        if outcome? {
            counted.push(pk);
        } else {
            refused = Some(if pk.ends_with("#users") { "this tenant's users" } else { "this caller" });
        }
    }
    match refused {
        None => Ok(()),
        Some(scope) => {
            // A refused write spends no budget: give back what the other counter took (one user's burst must not
            // use up the rest of the tenant).
            for pk in counted {
                if let Err(error) = store.add(pk, sort_key, "n", -1).await {
                    tracing::warn!(error = %error, "could not give back a rate-limit count");
                }
            }
            tracing::info!(scope, "write refused by the API's rate limit");
            let retry_after = Duration::from_secs((window_start + window).saturating_sub(now).max(1));
            Err(ApiError::TooManyRequests { retry_after, scope })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{TenantId, UserSlug};

    fn limits(overrides: &str) -> RateLimits {
        let pairs = [("OPENMEET_RATE_OVERRIDES", overrides.to_owned()), ("OPENMEET_RATE_USER", "7".to_owned())];
        RateLimits::from_lookup(&|name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()))
            .expect("valid limits")
    }

    #[test]
    fn overrides_match_exactly_then_by_longest_prefix() {
        let limits = limits("rlt-*=5/8/9, rlt-x*=1/2/3, bench=0/0/0");
        assert_eq!(limits.budget("acme"), Budget { user: 7, tenant: 3_000, service: 30_000 });
        assert_eq!(limits.budget("rlt-abc"), Budget { user: 5, tenant: 8, service: 9 });
        assert_eq!(limits.budget("rlt-xyz"), Budget { user: 1, tenant: 2, service: 3 });
        assert_eq!(limits.budget("bench"), Budget { user: 0, tenant: 0, service: 0 });
    }

    #[test]
    fn malformed_overrides_are_refused() {
        for text in ["x", "x=1/2", "x=a/b/c", "x=1/2/3/4"] {
            let get = |name: &str| (name == "OPENMEET_RATE_OVERRIDES").then(|| text.to_owned());
            assert!(RateLimits::from_lookup(&get).is_err(), "{text}");
        }
    }

    #[test]
    fn users_draw_on_their_own_and_the_tenants_budget_and_unlimited_ones_are_skipped() {
        let tenant = TenantId::parse("acme").expect("tenant");
        let user = Caller {
            tenant: tenant.clone(),
            role: Role::User(UserSlug::parse("jane").expect("slug")),
            subject: "jane".into(),
            display_name: None,
        };
        let budget = Budget { user: 5, tenant: 0, service: 9 };
        assert_eq!(counters(&user, budget), vec![("RL#acme#U#jane".to_owned(), 5)]);
        let service = Caller { tenant, role: Role::Service, subject: "api".into(), display_name: None };
        assert_eq!(counters(&service, budget), vec![("RL#acme#service".to_owned(), 9)]);
    }
}
