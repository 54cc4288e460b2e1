//! Drift (the self-healing pass): a room renamed by hand on the homeserver is found by a dry run, which changes
//! nothing, and put back by a repair pass with one state write.

use integration_tests::mock_homeserver::state_event;
use serde_json::{Value, json};
use shared::domain::drift::{SelfHealSettings, repair};

use super::rooms::{created_state, group_room};
use super::support::World;

#[tokio::test]
async fn a_room_renamed_by_hand_is_found_then_repaired_once() {
    let w = World::new("drift").await;
    let creations = group_room(&w, "hikers", "Hikers").await;
    let created = creations.created(false);
    let (room, space) = (creations.room.clone(), creations.space.clone());
    w.hs.reset().await;
    w.hs.mock_admin_room_state(&room).ok(created_state(&room, &created, Some("Renamed by hand"))).mount().await;
    let child = state_event(&space, "m.space.child", &room, json!({"via": ["localhost"]}));
    w.hs.mock_admin_room_state(&space).ok(vec![child]).mount().await;
    w.hs.mock_admin_room_details(&room).ok(&room, "Renamed by hand", 1).mount().await;

    let settings = SelfHealSettings::from_lookup(|_| None).expect("default settings");
    let dry = repair::PassOptions { dry_run: true, tenant: Some(w.tenant.clone()), ..Default::default() };
    let report = repair::run(&w.app, &settings, &dry).await.expect("a dry pass");
    let report = serde_json::to_value(&report).unwrap_or_default();
    assert_eq!(report["roomsChecked"], 1, "{report}");
    let drift = report["rooms"][0]["drift"].to_string();
    assert!(drift.contains("name differs (wanted \\\"Hikers\\\")"), "{report}");
    let writes: Vec<String> = w.hs.calls().await.into_iter().filter(|c| !c.starts_with("GET ")).collect();
    assert!(writes.is_empty(), "a dry run writes nothing: {writes:?}");

    w.hs.mock_put_state(&room, "m.room.name").ok("$renamed").expect(1).mount().await;
    w.hs.mock_put_any_state(&room).ok("$other").mount().await;
    w.hs.mock_put_any_state(&space).ok("$link").mount().await;
    let pass = repair::PassOptions { tenant: Some(w.tenant.clone()), ..Default::default() };
    let report = repair::run(&w.app, &settings, &pass).await.expect("a repair pass");
    assert!(report.repairs >= 1 && report.failures == 0, "{report:?} after {:?}", w.hs.calls().await);
    let renamed = w.hs.requests("PUT", &format!("/_matrix/client/v3/rooms/{room}/state/m.room.name")).await;
    assert_eq!(serde_json::from_slice::<Value>(&renamed[0].body).unwrap_or_default(), json!({"name": "Hikers"}));
    w.hs.verify().await;
}
