//! Tenant walls, the platform's side: group spaces follow group membership, reconciles and listings see everyone
//! (strangers included), direct rooms re-invite, and rooms made before the walls migrate.

use integration_tests::{Stack, encode_path, repo_root, stack, unique};
use reqwest::Method;
use serde_json::{Value, json};

const TENANT: &str = "it-wall-rooms";

fn service(s: &Stack) -> String {
    s.service_jwt(TENANT)
}

async fn resolve(s: &Stack, alias: &str) -> Option<String> {
    let path = format!("/_matrix/client/v3/directory/room/{}", encode_path(alias));
    let (status, body) = s.matrix(Method::GET, &path, None, None).await;
    (status == 200).then(|| body["room_id"].as_str().expect("room_id").to_owned())
}

async fn membership(s: &Stack, room_id: &str, user_id: &str) -> Option<String> {
    let path =
        format!("/_matrix/client/v3/rooms/{}/state/m.room.member/{}", encode_path(room_id), encode_path(user_id));
    let (status, content) = s.matrix(Method::GET, &path, None, None).await;
    (status == 200).then(|| content["membership"].as_str().unwrap_or_default().to_owned())
}

async fn state_content(s: &Stack, room_id: &str, event_type: &str) -> Value {
    let path = format!("/_matrix/client/v3/rooms/{}/state/{event_type}/", encode_path(room_id));
    let (status, content) = s.matrix(Method::GET, &path, None, None).await;
    assert_eq!(status, 200, "{event_type}: {content}");
    content
}

async fn directory_visibility(s: &Stack, room_id: &str) -> String {
    let path = format!("/_matrix/client/v3/directory/list/room/{}", encode_path(room_id));
    let (_, body) = s.matrix(Method::GET, &path, None, None).await;
    body["visibility"].as_str().unwrap_or_default().to_owned()
}

/// A local account outside OpenMeet's namespace that is in a room nobody put it in: made a server admin so that
/// its admin join passes the module, as an operator's hand-made change would.
async fn stranger_in(s: &Stack, room_id: &str) -> String {
    let stranger = format!("@{}:localhost", unique("it-stranger"));
    let path = format!("/_synapse/admin/v2/users/{}", encode_path(&stranger));
    let (status, body) = s.matrix(Method::PUT, &path, None, Some(json!({"admin": true}))).await;
    assert!(status == 200 || status == 201, "{body}");
    let path = format!("/_synapse/admin/v1/join/{}", encode_path(room_id));
    let (status, body) = s.matrix(Method::POST, &path, None, Some(json!({"user_id": stranger}))).await;
    assert_eq!(status, 200, "{body}");
    stranger
}

#[tokio::test]
async fn group_members_are_in_the_groups_space_and_leave_it_with_the_group() {
    let s = stack();
    let slug = unique("sp");
    let (status, room) = s
        .api(
            Method::PUT,
            &format!("/v1/groups/{slug}/room"),
            Some(&service(s)),
            Some(json!({"name": "Spaced", "visibility": "private"})),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let space = resolve(s, &format!("#om_{TENANT}.space.{slug}:localhost")).await.expect("the group's space");
    let (a, b) = (unique("a"), unique("b"));
    let members = format!("/v1/groups/{slug}/members");
    let (status, body) =
        s.api(Method::PUT, &format!("{members}/{a}"), Some(&service(s)), Some(json!({"role": "member"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(membership(s, &space, &s.matrix_user_id(TENANT, &a)).await.as_deref(), Some("join"));
    // A reconcile moves the space along: b joins it, a leaves it.
    let (status, body) = s
        .api(Method::PUT, &members, Some(&service(s)), Some(json!({"members": [{"userId": b, "role": "owner"}]})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(membership(s, &space, &s.matrix_user_id(TENANT, &b)).await.as_deref(), Some("join"));
    assert_eq!(membership(s, &space, &s.matrix_user_id(TENANT, &a)).await.as_deref(), Some("leave"));
    // The member sees the hierarchy with their own token.
    let (token, _) = s.session(TENANT, &b, None).await;
    let path = format!("/_matrix/client/v1/rooms/{}/hierarchy", encode_path(&space));
    let (status, hierarchy) = s.matrix(Method::GET, &path, Some(&token), None).await;
    assert_eq!(status, 200, "{hierarchy}");
    let room_id = room["roomId"].as_str().expect("roomId");
    assert!(hierarchy["rooms"].as_array().expect("rooms").iter().any(|r| r["room_id"] == room_id), "{hierarchy}");
    let (status, _) = s.api(Method::DELETE, &format!("{members}/{b}?force=true"), Some(&service(s)), None).await;
    assert_eq!(status, 204);
    assert_eq!(membership(s, &space, &s.matrix_user_id(TENANT, &b)).await.as_deref(), Some("leave"));
}

#[tokio::test]
async fn listings_show_strangers_and_a_reconcile_removes_them() {
    let s = stack();
    let slug = unique("st");
    let (status, room) = s
        .api(
            Method::PUT,
            &format!("/v1/groups/{slug}/room"),
            Some(&service(s)),
            Some(json!({"name": "Strangers", "visibility": "public"})),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let room_id = room["roomId"].as_str().expect("roomId").to_owned();
    let stranger = stranger_in(s, &room_id).await;
    let members = format!("/v1/groups/{slug}/members");
    let (status, listed) = s.api(Method::GET, &members, Some(&service(s)), None).await;
    assert_eq!(status, 200, "{listed}");
    let entry = listed["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["matrixUserId"] == stranger.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("the stranger is hidden: {listed}"));
    assert_eq!((entry["userId"].clone(), entry["membership"].as_str()), (Value::Null, Some("join")));
    let owner = unique("own");
    let (status, report) = s
        .api(Method::PUT, &members, Some(&service(s)), Some(json!({"members": [{"userId": owner, "role": "owner"}]})))
        .await;
    assert_eq!(status, 200, "{report}");
    assert!(report["removed"].as_array().expect("removed").iter().any(|r| r == stranger.as_str()), "{report}");
    assert_eq!(membership(s, &room_id, &stranger).await.as_deref(), Some("leave"));
}

#[tokio::test]
async fn a_user_who_left_a_direct_room_is_invited_again_never_joined() {
    let s = stack();
    let (ann, bob) = (unique("ann"), unique("bob"));
    s.provision(TENANT, &ann, "Ann").await;
    s.provision(TENANT, &bob, "Bob").await;
    let ann_jwt = s.user_jwt(TENANT, &ann, Some("Ann"));
    let (status, room) = s.api(Method::POST, &format!("/v1/me/direct/{bob}"), Some(&ann_jwt), None).await;
    assert_eq!(status, 201, "{room}");
    let room_id = room["roomId"].as_str().expect("roomId").to_owned();
    let (bob_token, _) = s.session(TENANT, &bob, None).await;
    let leave = format!("/_matrix/client/v3/rooms/{}/leave", encode_path(&room_id));
    let (status, body) = s.matrix(Method::POST, &leave, Some(&bob_token), Some(json!({}))).await;
    assert_eq!(status, 200, "{body}");
    let (status, again) = s.api(Method::POST, &format!("/v1/me/direct/{bob}"), Some(&ann_jwt), None).await;
    assert_eq!((status.as_u16(), &again["roomId"]), (200, &room["roomId"]));
    assert_eq!(membership(s, &room_id, &s.matrix_user_id(TENANT, &bob)).await.as_deref(), Some("invite"));
    // Nobody else gets in: a direct room is invite-only and its members cannot invite.
    let rules = state_content(s, &room_id, "m.room.join_rules").await;
    assert_eq!(rules["join_rule"], "invite");
    assert!(state_content(s, &room_id, "m.room.power_levels").await["invite"].as_i64() > Some(100));
}

/// A room as the platform made them before the walls: public, published, moderators own the state.
async fn legacy_room(s: &Stack, tenant: &str, slug: &str, member: &str) -> String {
    let body = json!({
        "room_alias_name": format!("om_{tenant}.group.{slug}"),
        "name": "Legacy",
        "preset": "public_chat",
        "visibility": "public",
        "power_level_content_override": {"invite": 50, "state_default": 50, "events": {"m.room.join_rules": 100}},
    });
    let (status, created) = s.matrix(Method::POST, "/_matrix/client/v3/createRoom", None, Some(body)).await;
    assert_eq!(status, 200, "{created}");
    let room_id = created["room_id"].as_str().expect("room_id").to_owned();
    let path = format!("/_synapse/admin/v1/join/{}", encode_path(&room_id));
    let (status, body) = s.matrix(Method::POST, &path, None, Some(json!({"user_id": member}))).await;
    assert_eq!(status, 200, "{body}");
    room_id
}

async fn assert_walled(s: &Stack, room_id: &str) {
    assert_eq!(state_content(s, room_id, "m.room.join_rules").await["join_rule"], "restricted");
    let levels = state_content(s, room_id, "m.room.power_levels").await;
    assert_eq!((levels["invite"].as_i64(), levels["state_default"].as_i64()), (Some(150), Some(150)));
    assert_eq!(levels["events"]["m.room.join_rules"], 150);
    assert_eq!(directory_visibility(s, room_id).await, "private");
}

#[tokio::test]
async fn rooms_made_before_the_walls_migrate_on_ensure_and_with_the_one_shot_command() {
    let s = stack();
    // A tenant of its own: the command below upgrades exactly this tenant's rooms.
    let tenant = format!("it-legacy-{}", &unique("t")[2..]);
    let member = unique("old");
    let member_id = s.matrix_user_id(&tenant, &member);
    let (status, body) = s
        .matrix(
            Method::POST,
            "/_matrix/client/v3/register",
            None,
            Some(json!({"type": "m.login.application_service", "username": format!("om_{tenant}.{member}"), "inhibit_login": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (by_ensure, by_command) = (unique("lg"), unique("lg"));
    let ensured = legacy_room(s, &tenant, &by_ensure, &member_id).await;
    let commanded = legacy_room(s, &tenant, &by_command, &member_id).await;
    assert_eq!(directory_visibility(s, &ensured).await, "public");

    let (status, room) = s
        .api(
            Method::PUT,
            &format!("/v1/groups/{by_ensure}/room"),
            Some(&s.service_jwt(&tenant)),
            Some(json!({"name": "Legacy", "visibility": "public"})),
        )
        .await;
    assert_eq!((status.as_u16(), room["roomId"].as_str()), (200, Some(ensured.as_str())), "{room}");
    assert_walled(s, &ensured).await;

    let binary = repo_root().join("target/debug/openmeet-local");
    let run = || {
        std::process::Command::new(&binary)
            .args(["ops", "upgrade-rooms"])
            .arg(&tenant)
            .envs(&s.env)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()))
    };
    let first = run();
    let printed = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(first.status.success(), "{printed}{}", String::from_utf8_lossy(&first.stderr));
    eprintln!("upgrade-rooms: {printed}");
    assert_walled(s, &commanded).await;
    let space = resolve(s, &format!("#om_{tenant}.tenant:localhost")).await.expect("the tenant's space");
    assert_eq!(membership(s, &space, &member_id).await.as_deref(), Some("join"), "{printed}");
    let second = run();
    let again = String::from_utf8_lossy(&second.stdout).into_owned();
    assert!(second.status.success() && again.contains("0 changed"), "a second run changed something: {again}");
}
