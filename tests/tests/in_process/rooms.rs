//! Rooms (rooms function): a group's room and space created once, on the platform's policy; a repeat creates
//! nothing; bad input calls nothing.

use std::sync::{Arc, Mutex};

use integration_tests::mock_homeserver::state_event;
use serde_json::{Value, json};
use wiremock::{Respond, ResponseTemplate};

use super::support::{World, answer, body, request, room_id};

/// `createRoom` as Synapse answers it: a new id per room, the space's when the request creates a space.
#[derive(Clone)]
pub struct Creations {
    pub space: String,
    pub room: String,
    pub bodies: Arc<Mutex<Vec<Value>>>,
}

impl Respond for Creations {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let created = body(request);
        let is_space = created["creation_content"]["type"] == "m.space";
        if let Ok(mut bodies) = self.bodies.lock() {
            bodies.push(created);
        }
        let id = if is_space { &self.space } else { &self.room };
        ResponseTemplate::new(200).set_body_json(json!({"room_id": id}))
    }
}

impl Creations {
    /// What `createRoom` received for the space, or for the room.
    pub fn created(&self, space: bool) -> Value {
        let bodies = self.bodies.lock().map(|b| b.clone()).unwrap_or_default();
        bodies.into_iter().find(|b| (b["creation_content"]["type"] == "m.space") == space).unwrap_or_default()
    }
}

/// The state a room has right after `createRoom` with `created` (its name replaced by `name` when given).
pub fn created_state(room_id: &str, created: &Value, name: Option<&str>) -> Vec<Value> {
    let event = |e: &Value| {
        let (kind, key) = (e["type"].as_str().unwrap_or(""), e["state_key"].as_str().unwrap_or(""));
        state_event(room_id, kind, key, e["content"].clone())
    };
    let mut state: Vec<Value> = created["initial_state"].as_array().into_iter().flatten().map(event).collect();
    let name = name.or(created["name"].as_str()).unwrap_or("");
    state.push(state_event(room_id, "m.room.name", "", json!({"name": name})));
    if let Some(topic) = created["topic"].as_str() {
        state.push(state_event(room_id, "m.room.topic", "", json!({"topic": topic})));
    }
    state.push(state_event(room_id, "m.room.power_levels", "", created["power_level_content_override"].clone()));
    state.push(state_event(room_id, "m.room.member", "@openmeet:localhost", json!({"membership": "join"})));
    state
}

/// `GET …/state` of a room created through [`Creations`]: the state its `createRoom` made.
struct StateOf(Creations, bool);

impl Respond for StateOf {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        let id = if self.1 { &self.0.space } else { &self.0.room };
        ResponseTemplate::new(200).set_body_json(created_state(id, &self.0.created(self.1), None))
    }
}

/// Creates the private group room `slug` through the rooms function on a homeserver that has neither it nor its
/// space yet (any state write answered); what `createRoom` received.
pub async fn group_room(w: &World, slug: &str, name: &str) -> Creations {
    let creations = Creations { space: room_id("space"), room: room_id("room"), bodies: Arc::default() };
    for alias in [w.alias(&format!("space.{slug}")), w.alias(&format!("group.{slug}"))] {
        w.hs.mock_resolve_alias(&alias).not_found().up_to_n_times(1).mount().await;
    }
    w.hs.mock_resolve_alias(&w.alias(&format!("space.{slug}"))).ok(&creations.space).mount().await;
    w.hs.mock_resolve_alias(&w.alias(&format!("group.{slug}"))).ok(&creations.room).mount().await;
    w.hs.mock_create_room().respond_with(creations.clone()).mount().await;
    for (id, space) in [(&creations.space, true), (&creations.room, false)] {
        w.hs.mock_room_state(id).respond_with(StateOf(creations.clone(), space)).mount().await;
        w.hs.mock_directory_visibility(id).ok(false).mount().await;
        w.hs.mock_put_any_state(id).ok("$linked").mount().await;
    }
    let put = request(
        "PUT",
        &format!("/v1/groups/{slug}/room"),
        Some(&w.service_jwt()),
        Some(json!({"name": name, "visibility": "private"})),
    );
    let (status, reply) = answer(&rooms::serve(&w.app, put).await);
    assert_eq!(status, 201, "{reply} after {:?}", w.hs.calls().await);
    assert_eq!(reply["roomId"], creations.room.as_str(), "{reply}");
    creations
}

#[tokio::test]
async fn a_group_room_and_its_space_are_created_once_on_the_platforms_policy() {
    let w = World::new("rooms").await;
    let creations = group_room(&w, "chess", "Chess club").await;
    let bodies = creations.bodies.lock().map(|b| b.clone()).unwrap_or_default();
    assert_eq!(bodies.len(), 2, "the space and the room: {bodies:?}");
    let room = &creations.created(false);
    let alias = w.alias("group.chess");
    assert_eq!(room["room_alias_name"], alias[1..alias.find(':').unwrap_or(alias.len())], "{room}");
    assert_eq!(room["name"], "Chess club");
    assert_ne!(room["visibility"], "public", "never in the server-wide directory: {room}");
    let levels = &room["power_level_content_override"];
    assert_eq!(levels["state_default"], 150, "managed state above every role: {room}");
    assert_eq!(levels["invite"], 150, "{room}");
    let space_links =
        w.hs.requests("PUT", &format!("/_matrix/client/v3/rooms/{}/state/m.space.child/", creations.space)).await;
    assert_eq!(space_links.len(), 1, "the space links its room: {:?}", w.hs.calls().await);

    // The same request again finds both by alias and creates nothing.
    let again = request(
        "PUT",
        "/v1/groups/chess/room",
        Some(&w.service_jwt()),
        Some(json!({"name": "Chess club", "visibility": "private"})),
    );
    let (status, reply) = answer(&rooms::serve(&w.app, again).await);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(w.hs.requests("POST", "/_matrix/client/v3/createRoom").await.len(), 2, "no third room");
}

#[tokio::test]
async fn bad_room_input_calls_nothing() {
    let w = World::new("rooms-bad").await;
    let service = w.service_jwt();
    for (path, bad) in [
        ("/v1/groups/ok/room", json!({"name": "x", "visibility": "secret"})),
        ("/v1/groups/ok/room", json!({"name": "", "visibility": "public"})),
        ("/v1/groups/Not%20A%20Slug/room", json!({"name": "x", "visibility": "public"})),
        ("/v1/events/ev/room", json!({"name": "x", "visibility": "public", "startsAt": "tomorrow"})),
    ] {
        let (status, reply) =
            answer(&rooms::serve(&w.app, request("PUT", path, Some(&service), Some(bad.clone()))).await);
        assert_eq!(status, 400, "{path} {bad}: {reply}");
    }
    let as_user = request(
        "PUT",
        "/v1/groups/ok/room",
        Some(&w.user_jwt("eve")),
        Some(json!({"name": "x", "visibility": "public"})),
    );
    assert_eq!(answer(&rooms::serve(&w.app, as_user).await).0, 403);
    assert!(w.hs.calls().await.is_empty(), "{:?}", w.hs.calls().await);
}

/// Creates the private event room `slug` (no group) on a homeserver that does not have it yet.
async fn event_room(w: &World, slug: &str) -> Creations {
    let creations = Creations { space: room_id("unused"), room: room_id("event"), bodies: Arc::default() };
    let alias = w.alias(&format!("event.{slug}"));
    w.hs.mock_resolve_alias(&alias).not_found().up_to_n_times(1).mount().await;
    w.hs.mock_resolve_alias(&alias).ok(&creations.room).mount().await;
    w.hs.mock_create_room().respond_with(creations.clone()).expect(1).mount().await;
    w.hs.mock_room_state(&creations.room).respond_with(StateOf(creations.clone(), false)).mount().await;
    w.hs.mock_directory_visibility(&creations.room).ok(false).mount().await;
    w.hs.mock_put_any_state(&creations.room).ok("$state").mount().await;
    let body = json!({"name": "Ridge walk", "visibility": "private", "startsAt": "2027-03-20T18:00:00Z"});
    let put = request("PUT", &format!("/v1/events/{slug}/room"), Some(&w.service_jwt()), Some(body));
    let (status, reply) = answer(&rooms::serve(&w.app, put).await);
    assert_eq!(status, 201, "{reply} after {:?}", w.hs.calls().await);
    creations
}

/// Cancelling an event posts the reason as the platform and stops members posting (power levels) before the
/// room's lifecycle is marked cancelled.
#[tokio::test]
async fn a_cancelled_event_room_says_why_and_stops_posting() {
    let w = World::new("cancel").await;
    let creations = event_room(&w, "walk").await;
    let room = creations.room.clone();
    let platform = "@openmeet:localhost";
    w.hs.mock_admin_create_device(platform).ok().mount().await;
    w.hs.mock_room_send(&room).ok("$notice").expect(1).mount().await;

    let cancel =
        request("POST", "/v1/events/walk/room/cancel", Some(&w.service_jwt()), Some(json!({"reason": "Rain"})));
    let (status, reply) = answer(&rooms::serve(&w.app, cancel).await);
    assert_eq!(status, 200, "{reply} after {:?}", w.hs.calls().await);
    let notices = w.hs.requests("PUT", &format!("/_matrix/client/v3/rooms/{room}/send/")).await;
    assert!(body(&notices[0])["body"].as_str().unwrap_or_default().contains("Rain"), "{}", body(&notices[0]));
    let state = |kind: &str| format!("/_matrix/client/v3/rooms/{room}/state/{kind}");
    let levels = w.hs.requests("PUT", &state("m.room.power_levels")).await;
    let events_default = levels.last().map(|r| body(r)["events_default"].as_i64().unwrap_or(0)).unwrap_or(0);
    assert!(events_default > 0, "members can no longer post: {:?}", levels.last().map(body));
    let lifecycle = w.hs.requests("PUT", &state("org.openmeet.room")).await;
    assert_eq!(
        lifecycle.last().map(|r| body(r)["state"].clone()),
        Some(json!("cancelled")),
        "{:?}",
        w.hs.calls().await
    );
    w.hs.verify().await;
}
