//! Unit tests of the pure parts and of the in-process helpers.

use std::time::Duration;

use serde_json::json;

use super::*;

fn slug(name: &str) -> UserSlug {
    UserSlug::parse(name).expect("valid slug")
}

fn view(members: &[(&str, Membership, Option<i64>)]) -> TenantView {
    let mut view = TenantView::default();
    for (name, membership, level) in members {
        if *membership != Membership::Leave {
            view.memberships.insert(slug(name), *membership);
        }
        if let Some(level) = level {
            view.levels.insert(slug(name), *level);
        }
    }
    view
}

fn wanted(list: &[(&str, Role)]) -> Vec<(UserSlug, Role)> {
    list.iter().map(|(name, role)| (slug(name), *role)).collect()
}

#[test]
fn roles_map_to_the_contracts_power_levels() {
    let expected =
        [(Role::Owner, 100), (Role::Admin, 75), (Role::Moderator, 50), (Role::Speaker, 25), (Role::Member, 0)];
    for (role, level) in expected {
        assert_eq!(role.power_level(), level);
        assert_eq!(Role::from_power_level(level), role);
        assert_eq!(serde_json::to_value(role).expect("serializes"), json!(role.as_str()));
    }
}

#[test]
fn a_level_between_two_roles_reads_as_the_lower() {
    assert_eq!(Role::from_power_level(99), Role::Admin);
    assert_eq!(Role::from_power_level(74), Role::Moderator);
    assert_eq!(Role::from_power_level(60), Role::Moderator);
    assert_eq!(Role::from_power_level(49), Role::Speaker);
    assert_eq!(Role::from_power_level(24), Role::Member);
    assert_eq!(Role::from_power_level(1), Role::Member);
    assert_eq!(Role::from_power_level(-10), Role::Member);
    assert_eq!(Role::from_power_level(9000), Role::Owner);
}

#[test]
fn roles_parse_strictly() {
    let input: PutMemberInput = serde_json::from_str(r#"{"role":"moderator"}"#).expect("valid");
    assert_eq!(input.role, Role::Moderator);
    for bad in [r#"{"role":"Owner"}"#, r#"{"role":"god"}"#, r#"{"role":50}"#, r#"{}"#, r#"{"role":"member","x":1}"#] {
        assert!(serde_json::from_str::<PutMemberInput>(bad).is_err(), "{bad}");
    }
}

#[test]
fn reconcile_lists_are_validated_as_a_whole() {
    let parse = |text: &str| {
        serde_json::from_str::<ReconcileInput>(text)
            .map_err(|_| ())
            .and_then(|input| input.validate().map_err(|error| assert_eq!(error.code(), "invalid_body")))
    };
    let ok = parse(r#"{"members":[{"userId":"a","role":"owner"},{"userId":"b.c","role":"member"}]}"#).expect("valid");
    assert_eq!(ok, wanted(&[("a", Role::Owner), ("b.c", Role::Member)]));
    assert_eq!(parse(r#"{"members":[]}"#), Ok(vec![]));
    assert!(parse(r#"{"members":[{"userId":"a","role":"owner"},{"userId":"a","role":"member"}]}"#).is_err());
    assert!(parse(r#"{"members":[{"userId":"A","role":"owner"}]}"#).is_err());
    assert!(parse(r#"{"members":[{"userId":"a","role":"owner","extra":1}]}"#).is_err());
    assert!(parse(r#"{"members":[],"extra":1}"#).is_err());
    assert!(parse(r#"{"members":[{"userId":"a"}]}"#).is_err());
    let too_many: Vec<Value> =
        (0..=MAX_RECONCILE_MEMBERS).map(|i| json!({"userId": format!("u{i}"), "role": "member"})).collect();
    assert!(parse(&json!({ "members": too_many }).to_string()).is_err());
}

#[test]
fn merge_keeps_every_other_entry_and_key() {
    let content = json!({
        "users": {"@om_t.a:x": 100, "@foreign:elsewhere": 50, "@om_t.b:x": 25},
        "users_default": 0,
        "events": {"m.room.name": 50},
        "kick": 50,
    });
    let wanted = BTreeMap::from([("@om_t.b:x".to_owned(), 50), ("@om_t.c:x".to_owned(), 75)]);
    let merged = merge_power_levels(&content, &wanted, "@openmeet:x").expect("changes");
    assert_eq!(merged["users"], json!({"@om_t.a:x": 100, "@foreign:elsewhere": 50, "@om_t.b:x": 50, "@om_t.c:x": 75}));
    assert_eq!(merged["events"], content["events"]);
    assert_eq!(merged["kick"], 50);
}

#[test]
fn merge_drops_members_entries_and_skips_no_ops() {
    let content = json!({"users": {"@om_t.a:x": 100, "@om_t.b:x": 50}, "users_default": 0});
    let demoted =
        merge_power_levels(&content, &BTreeMap::from([("@om_t.b:x".to_owned(), 0)]), "@p:x").expect("changes");
    assert_eq!(demoted["users"], json!({"@om_t.a:x": 100}));
    let same = BTreeMap::from([("@om_t.a:x".to_owned(), 100), ("@om_t.z:x".to_owned(), 0)]);
    assert_eq!(merge_power_levels(&content, &same, "@p:x"), None);
    // Without a `users` map, a member-only change must not invent one.
    assert_eq!(merge_power_levels(&json!({}), &BTreeMap::from([("@om_t.z:x".to_owned(), 0)]), "@p:x"), None);
}

#[test]
fn merge_honours_a_nonzero_users_default() {
    let content = json!({"users": {}, "users_default": 10});
    let wanted = BTreeMap::from([("@om_t.a:x".to_owned(), 0), ("@om_t.b:x".to_owned(), 10)]);
    let merged = merge_power_levels(&content, &wanted, "@p:x").expect("changes");
    assert_eq!(merged["users"], json!({"@om_t.a:x": 0}));
}

#[test]
fn merge_never_lists_the_room_creator() {
    let content = json!({"users": {"@om_t.a:x": 100}});
    let wanted = BTreeMap::from([("@openmeet:x".to_owned(), 100)]);
    assert_eq!(merge_power_levels(&content, &wanted, "@openmeet:x"), None);
}

#[test]
fn power_levels_read_defaults_and_string_levels() {
    let power = PowerLevels::from_content(&json!({"users": {"@a:x": "50", "@b:x": 75, "@c:x": "junk"}}));
    assert_eq!(power.users_default, 0);
    assert_eq!(power.level_of("@a:x"), 50);
    assert_eq!(power.level_of("@b:x"), 75);
    assert_eq!(power.level_of("@c:x"), 0);
    assert_eq!(power.level_of("@nobody:x"), 0);
    assert_eq!(PowerLevels::from_content(&json!({"users_default": 5})).level_of("@a:x"), 5);
    // Who may post, as old rooms may carry it (a string) and as absent (the caller knows the default).
    assert_eq!(PowerLevels::from_content(&json!({"events_default": "50"})).events_default, Some(50));
    assert_eq!(PowerLevels::from_content(&json!({})).events_default, None);
}

#[test]
fn reconcile_plan_reaches_the_list_exactly() {
    use crate::domain::membership::Membership::*;
    let room = view(&[("a", Join, Some(100)), ("b", Join, None), ("c", Join, None)]);
    let plan = plan_reconcile(&wanted(&[("a", Role::Owner), ("b", Role::Moderator), ("d", Role::Member)]), &room);
    assert_eq!(plan.report.added, ["d"]);
    assert_eq!(plan.report.removed, ["c"]);
    assert_eq!(plan.report.role_changed, ["b"]);
    assert_eq!(plan.report.unchanged, 1);
    assert_eq!(plan.joins, [PlannedJoin { user: slug("d"), current: None }]);
    assert_eq!(plan.kicks, [slug("c")]);
    assert_eq!(plan.levels, BTreeMap::from([(slug("b"), 50)]));
    assert_eq!(plan.owners_after, BTreeSet::from([slug("a")]));
}

#[test]
fn a_reconciled_room_plans_nothing() {
    use crate::domain::membership::Membership::*;
    let room = view(&[("a", Join, Some(100)), ("b", Join, Some(50)), ("d", Join, None)]);
    let plan = plan_reconcile(&wanted(&[("a", Role::Owner), ("b", Role::Moderator), ("d", Role::Member)]), &room);
    assert!(plan.joins.is_empty() && plan.kicks.is_empty() && plan.levels.is_empty());
    assert_eq!(plan.report, ReconcileReport { unchanged: 3, ..ReconcileReport::default() });
}

#[test]
fn reconcile_plan_handles_every_membership_state() {
    use crate::domain::membership::Membership::*;
    let room = view(&[
        ("invited", Invite, None),
        ("invited-extra", Invite, None),
        ("banned", Ban, Some(50)),
        ("banned-extra", Ban, None),
        ("knocking", Knock, None),
        ("gone", Leave, Some(75)),
        ("ex-owner", Leave, Some(100)),
    ]);
    let plan = plan_reconcile(
        &wanted(&[
            ("invited", Role::Speaker),
            ("banned", Role::Member),
            ("knocking", Role::Member),
            ("gone", Role::Admin),
        ]),
        &room,
    );
    // Invited, banned and knocking users on the list are joined; a ban is lifted on the way.
    assert_eq!(plan.report.added, ["banned", "gone", "invited", "knocking"]);
    assert!(plan.joins.contains(&PlannedJoin { user: slug("banned"), current: Some(Ban) }));
    // An invite not on the list is withdrawn; a ban not on the list stays.
    assert_eq!(plan.report.removed, ["invited-extra"]);
    assert_eq!(plan.kicks, [slug("invited-extra")]);
    // Levels: set where they differ, and the stale owner entry of someone who left is dropped.
    assert_eq!(plan.levels, BTreeMap::from([(slug("banned"), 0), (slug("ex-owner"), 0), (slug("invited"), 25)]));
    assert_eq!(plan.report.unchanged, 0);
    assert!(plan.report.role_changed.is_empty());
}

#[test]
fn a_level_that_only_reads_as_the_role_is_normalised() {
    let room = view(&[("a", Membership::Join, Some(60))]);
    let plan = plan_reconcile(&wanted(&[("a", Role::Moderator)]), &room);
    assert_eq!(plan.report.role_changed, ["a"]);
    assert_eq!(plan.levels, BTreeMap::from([(slug("a"), 50)]));
}

#[test]
fn owners_are_joined_or_invited_users_at_owner_level() {
    use crate::domain::membership::Membership::*;
    let room = view(&[
        ("a", Join, Some(100)),
        ("b", Invite, Some(100)),
        ("c", Leave, Some(100)),
        ("d", Ban, Some(100)),
        ("e", Join, Some(75)),
    ]);
    assert_eq!(room.owners(), BTreeSet::from([slug("a"), slug("b")]));
}

#[test]
fn the_last_owner_is_kept_unless_forced() {
    let one = BTreeSet::from([slug("a")]);
    let none = BTreeSet::new();
    let error = check_last_owner(&one, &none, false).expect_err("refused");
    assert_eq!((error.status(), error.code()), (409, "last_owner"));
    assert!(check_last_owner(&one, &none, true).is_ok());
    assert!(check_last_owner(&one, &BTreeSet::from([slug("b")]), false).is_ok());
    // A room that had no owner may stay without one.
    assert!(check_last_owner(&none, &none, false).is_ok());
}

#[test]
fn reconcile_removing_every_owner_is_refused() {
    let room = view(&[("a", Membership::Join, Some(100)), ("b", Membership::Join, None)]);
    let plan = plan_reconcile(&wanted(&[("a", Role::Admin), ("b", Role::Member)]), &room);
    assert!(check_last_owner(&room.owners(), &plan.owners_after, false).is_err());
    let handed_over = plan_reconcile(&wanted(&[("b", Role::Owner)]), &room);
    assert!(check_last_owner(&room.owners(), &handed_over.owners_after, false).is_ok());
}

#[tokio::test]
async fn bounded_runs_respect_the_limit_and_stop_after_a_failure() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (running, peak, started) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
    let outcome = run_bounded((0..40).collect(), 8, None, |i: usize| {
        let (running, peak, started) = (&running, &peak, &started);
        async move {
            started.fetch_add(1, Ordering::SeqCst);
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2)).await;
            running.fetch_sub(1, Ordering::SeqCst);
            if i == 20 { Err(DomainError::Internal) } else { Ok(()) }
        }
    })
    .await;
    assert!(outcome.is_err());
    assert_eq!(peak.load(Ordering::SeqCst), 8);
    assert!(started.load(Ordering::SeqCst) < 40, "kept starting after a failure");
    assert_eq!(running.load(Ordering::SeqCst), 0, "left work in flight");

    let done = AtomicUsize::new(0);
    let complete = run_bounded((0..17).collect(), 8, None, |_: usize| {
        let done = &done;
        async move {
            done.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .await
    .expect("all succeed");
    assert!(complete);
    assert_eq!(done.load(Ordering::SeqCst), 17);
}

#[tokio::test]
async fn bounded_runs_start_nothing_after_the_deadline_and_say_so() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let started = AtomicUsize::new(0);
    let deadline = Instant::now() + Duration::from_millis(25);
    let complete = run_bounded((0..100).collect(), 4, Some(deadline), |_: usize| {
        let started = &started;
        async move {
            started.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(())
        }
    })
    .await
    .expect("no failure");
    assert!(!complete, "reported complete with items left");
    let started = started.load(Ordering::SeqCst);
    assert!((4..100).contains(&started), "started {started} of 100");

    let nothing_left = run_bounded(Vec::<usize>::new(), 4, Some(Instant::now()), |_| async { Ok(()) }).await;
    assert!(nothing_left.expect("no failure"), "an empty list is complete even past the deadline");
}

#[test]
fn a_sparing_plan_leaves_users_with_a_newer_intent_alone() {
    let room =
        view(&[("a", Membership::Join, Some(100)), ("b", Membership::Join, None), ("c", Membership::Join, Some(50))]);
    // b was promoted and c removed by the service after the reconcile was accepted: both are spared.
    let spared: BTreeSet<UserSlug> = ["b", "c"].into_iter().map(slug).collect();
    let plan = plan_reconcile_sparing(
        &wanted(&[("a", Role::Owner), ("b", Role::Member), ("d", Role::Member)]),
        &room,
        &spared,
    );
    assert_eq!(plan.kicks, Vec::<UserSlug>::new(), "c was kicked though spared");
    assert_eq!(plan.joins.iter().map(|j| j.user.as_str()).collect::<Vec<_>>(), ["d"]);
    assert!(!plan.levels.keys().any(|user| spared.contains(user)), "a spared user's level changed");
    assert_eq!(plan.report.added, ["d"]);
    assert!(plan.report.removed.is_empty() && plan.report.role_changed.is_empty());
    assert_eq!(plan.report.unchanged, 1);
}
