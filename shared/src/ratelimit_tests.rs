//! Unit tests of `ratelimit`.

use super::*;
use crate::identity::{TenantId, UserSlug};

fn limits(overrides: &str) -> Limits {
    let pairs = [("OPENMEET_RATE_OVERRIDES", overrides.to_owned()), ("OPENMEET_RATE_USER", "7".to_owned())];
    RateLimits::from_lookup(&|name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()))
        .expect("valid limits")
        .writes
}

#[test]
fn reads_have_their_own_larger_budgets_and_overrides() {
    let pairs = [("OPENMEET_READ_OVERRIDES", "rbt-*=4/6/8"), ("OPENMEET_RATE_OVERRIDES", "rbt-*=1/1/1")];
    let get = |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned());
    let limits = RateLimits::from_lookup(&get).expect("valid limits");
    let (reads, writes) = (limits.of(Kind::Reads), limits.of(Kind::Writes));
    assert!(reads.window > writes.window);
    let (read, write) = (reads.budget("acme"), writes.budget("acme"));
    assert!(read.user > write.user && read.tenant > write.tenant && read.service > write.service);
    assert_eq!(reads.budget("rbt-a"), Budget { user: 4, tenant: 6, service: 8 });
    assert_eq!(writes.budget("rbt-a"), Budget { user: 1, tenant: 1, service: 1 });
    let bad = |name: &str| (name == "OPENMEET_READ_OVERRIDES").then(|| "x=1".to_owned());
    assert!(RateLimits::from_lookup(&bad).is_err());
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
fn only_writes_far_below_every_limit_skip_the_wait_and_unanswered_ones_count() {
    let seen = Counts::default();
    let counters = [("RL#a#U#x".to_owned(), 5), ("RL#a#users".to_owned(), 8)];
    // Nothing known of this window yet: wait.
    assert!(seen.reserve(&counters, 60).is_none());
    seen.record("RL#a#U#x", 60, 1);
    assert!(seen.reserve(&counters, 60).is_none(), "the tenant's count is still unknown");
    seen.record("RL#a#users", 60, 3);
    let first = seen.reserve(&counters, 60).expect("1 + 1 of 5 and 3 + 1 of 8: far below");
    assert!(seen.reserve(&counters, 60).is_none(), "with the unanswered one, 4 + 1 of 8 is over half");
    drop(first);
    assert!(seen.reserve(&counters, 60).is_some(), "answered (given back): far below again");
    // Answers out of order: the highest count wins; a new window starts unknown.
    seen.record("RL#a#U#x", 60, 3);
    seen.record("RL#a#U#x", 60, 2);
    assert!(seen.reserve(&counters, 60).is_none(), "3 + 1 of 5 is over half");
    assert!(seen.reserve(&counters, 120).is_none());
    seen.record("RL#a#U#x", 120, 1);
    assert!(!seen.counts().values().any(|s| s.window_start == 60), "older windows are forgotten");
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
    assert_eq!(counters(&user, Kind::Writes, budget), vec![("RL#acme#U#jane".to_owned(), 5)]);
    assert_eq!(counters(&user, Kind::Reads, budget), vec![("RR#acme#U#jane".to_owned(), 5)]);
    let service = Caller { tenant, role: Role::Service, subject: "api".into(), display_name: None };
    assert_eq!(counters(&service, Kind::Writes, budget), vec![("RL#acme#service".to_owned(), 9)]);
    assert_eq!(counters(&service, Kind::Reads, budget), vec![("RR#acme#service".to_owned(), 9)]);
}
