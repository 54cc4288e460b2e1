//! Membership (membership function): a member joined and given their level by a merge that keeps the room's
//! other power-level keys; removal kicks once; bad roles call nothing.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::{Respond, ResponseTemplate};

use super::support::{World, answer, body, request, room_id};

/// A room's power levels as the homeserver keeps them: a write replaces them, a read returns the last write.
#[derive(Clone)]
struct PowerLevels(Arc<Mutex<Value>>);

impl Respond for PowerLevels {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let Ok(mut levels) = self.0.lock() else {
            return ResponseTemplate::new(500);
        };
        if request.method.as_str() == "PUT" {
            *levels = body(request);
            return ResponseTemplate::new(200).set_body_json(json!({"event_id": "$levels"}));
        }
        ResponseTemplate::new(200).set_body_json(levels.clone())
    }
}

/// A member who left is joined again (admin join) and given the moderator level; unknown keys survive.
#[tokio::test]
async fn put_member_joins_and_merges_the_level() {
    let w = World::new("member").await;
    let (user, slug, room, space) = ("mo", "g", room_id("r"), room_id("s"));
    let user_id = w.mxid(user);
    w.active_room(slug, &room).await;
    let levels = PowerLevels(Arc::new(Mutex::new(json!({
        "users": {}, "users_default": 0, "events_default": 0, "state_default": 150, "com.example.kept": 7,
    }))));
    w.hs.mock_state_event(&room, "m.room.power_levels", "").respond_with(levels.clone()).mount().await;
    w.hs.mock_put_state(&room, "m.room.power_levels").respond_with(levels.clone()).mount().await;
    w.hs.mock_state_event(&room, "m.room.member", &user_id).ok(json!({"membership": "leave"})).mount().await;
    w.hs.mock_admin_user(&user_id).ok(&user_id, "Mo").mount().await;
    w.hs.mock_resolve_alias(&w.alias(&format!("space.{slug}"))).ok(&space).mount().await;
    w.hs.mock_state_event(&space, "m.room.member", &user_id).ok(json!({"membership": "join"})).mount().await;
    w.hs.mock_admin_join(&room).ok(&room).expect(1).mount().await;

    let put = request(
        "PUT",
        &format!("/v1/groups/{slug}/members/{user}"),
        Some(&w.service_jwt()),
        Some(json!({"role": "moderator"})),
    );
    let (status, reply) = answer(&membership::serve(&w.app, put).await);
    assert_eq!(status, 200, "{reply} after {:?}", w.hs.calls().await);
    assert_eq!(reply["role"], "moderator");
    let levels = levels.0.lock().map(|levels| levels.clone()).unwrap_or(Value::Null);
    assert_eq!(levels["users"][&user_id], 50, "{levels}");
    assert_eq!(levels["com.example.kept"], 7, "unknown keys survive the merge: {levels}");
    let joins = w.hs.requests("POST", &format!("/_synapse/admin/v1/join/{room}")).await;
    assert_eq!(body(&joins[0])["user_id"], user_id.as_str());
    w.hs.verify().await;
}

/// A removal kicks the member from the room and from the group's space, once: a repeat after they left kicks
/// nothing and is still 204.
#[tokio::test]
async fn removal_kicks_once_and_a_repeat_does_nothing() {
    let w = World::new("member-rm").await;
    let (user, slug, room, space) = ("rex", "g", room_id("r"), room_id("s"));
    let user_id = w.mxid(user);
    w.active_room(slug, &room).await;
    w.hs.mock_resolve_alias(&w.alias(&format!("space.{slug}"))).ok(&space).mount().await;
    let levels = json!({"users": {}, "users_default": 0, "events_default": 0, "state_default": 150});
    w.hs.mock_state_event(&room, "m.room.power_levels", "").ok(levels).mount().await;
    for id in [&room, &space] {
        let joined = json!({"membership": "join"});
        w.hs.mock_state_event(id, "m.room.member", &user_id).ok(joined).up_to_n_times(1).mount().await;
        w.hs.mock_state_event(id, "m.room.member", &user_id).ok(json!({"membership": "leave"})).mount().await;
        w.hs.mock_member_action(id, "kick").ok().expect(1).mount().await;
    }

    for attempt in ["first", "repeat"] {
        let delete = request("DELETE", &format!("/v1/groups/{slug}/members/{user}"), Some(&w.service_jwt()), None);
        let (status, reply) = answer(&membership::serve(&w.app, delete).await);
        assert_eq!(status, 204, "{attempt}: {reply} after {:?}", w.hs.calls().await);
    }
    let kicks = w.hs.requests("POST", &format!("/_matrix/client/v3/rooms/{room}/kick")).await;
    assert_eq!(body(&kicks[0])["user_id"], user_id.as_str());
    w.hs.verify().await;
}

/// Unknown roles and bodies are refused before any homeserver write; users may not manage members.
#[tokio::test]
async fn bad_roles_call_nothing() {
    let w = World::new("member-bad").await;
    w.active_room("g", &room_id("r")).await;
    let service = w.service_jwt();
    for bad in [json!({"role": "superuser"}), json!({"role": 50}), json!({}), json!({"role": "member", "x": 1})] {
        let put = request("PUT", "/v1/groups/g/members/zed", Some(&service), Some(bad.clone()));
        let (status, reply) = answer(&membership::serve(&w.app, put).await);
        assert_eq!(status, 400, "{bad}: {reply}");
    }
    let as_user = request("PUT", "/v1/groups/g/members/zed", Some(&w.user_jwt("zed")), Some(json!({"role": "owner"})));
    assert_eq!(answer(&membership::serve(&w.app, as_user).await).0, 403);
    let calls = w.hs.calls().await;
    assert!(calls.iter().all(|c| c.starts_with("GET ")), "refusals write nothing: {calls:?}");
}
