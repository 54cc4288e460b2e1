//! Tenant walls, proven at the homeserver: every attack is a raw Matrix call made with the token a browser gets from
//! `POST /v1/me/matrix-session`, never a call through the API (which has its own checks).

use integration_tests::{Stack, encode_path, stack, unique};
use reqwest::Method;
use serde_json::{Value, json};

const HOME: &str = "it-wall-a";
const OTHER: &str = "it-wall-b";

fn alias_of(tenant: &str, kind: &str, slug: &str) -> String {
    format!("#om_{tenant}.{kind}.{slug}:localhost")
}

/// Ensures a group room through the API as the tenant's service; returns its room id.
async fn group(s: &Stack, tenant: &str, slug: &str, visibility: &str) -> String {
    let body = json!({"name": format!("Group {slug}"), "visibility": visibility});
    let (status, room) =
        s.api(Method::PUT, &format!("/v1/groups/{slug}/room"), Some(&s.service_jwt(tenant)), Some(body)).await;
    assert!(status == 201 || status == 200, "{status} {room}");
    room["roomId"].as_str().expect("roomId").to_owned()
}

async fn put_member(s: &Stack, tenant: &str, kind: &str, slug: &str, user: &str, role: &str) {
    let path = format!("/v1/{kind}/{slug}/members/{user}");
    let (status, body) = s.api(Method::PUT, &path, Some(&s.service_jwt(tenant)), Some(json!({"role": role}))).await;
    assert_eq!(status, 200, "{body}");
}

/// A provisioned user of `tenant` and their browser token.
async fn browser(s: &Stack, tenant: &str, name: &str) -> (String, String) {
    let user = unique(name);
    s.provision(tenant, &user, name).await;
    let (token, _) = s.session(tenant, &user, None).await;
    (user, token)
}

async fn membership(s: &Stack, room_id: &str, user_id: &str) -> Option<String> {
    let path =
        format!("/_matrix/client/v3/rooms/{}/state/m.room.member/{}", encode_path(room_id), encode_path(user_id));
    let (status, content) = s.matrix(Method::GET, &path, None, None).await;
    (status == 200).then(|| content["membership"].as_str().unwrap_or_default().to_owned())
}

fn refused(status: reqwest::StatusCode, body: &Value, what: &str) {
    assert!(status == 403 || status == 404, "{what} must be refused by the homeserver, got {status} {body}");
}

#[tokio::test]
async fn a_foreign_token_can_neither_join_nor_read_nor_find_another_tenants_rooms() {
    let s = stack();
    let slug = unique("bg");
    let public_room = group(s, OTHER, &slug, "public").await;
    let (bob, _) = browser(s, OTHER, "bob").await;
    put_member(s, OTHER, "groups", &slug, &bob, "owner").await;
    let (_, eve) = browser(s, HOME, "eve").await;

    let alias = alias_of(OTHER, "group", &slug);
    for target in [encode_path(&alias), encode_path(&public_room)] {
        let (status, body) =
            s.matrix(Method::POST, &format!("/_matrix/client/v3/join/{target}"), Some(&eve), Some(json!({}))).await;
        refused(status, &body, "joining another tenant's public group");
    }
    let (status, body) = s
        .matrix(
            Method::POST,
            &format!("/_matrix/client/v3/knock/{}", encode_path(&public_room)),
            Some(&eve),
            Some(json!({})),
        )
        .await;
    refused(status, &body, "knocking");
    for read in ["messages?dir=b&limit=5", "state", "members"] {
        let path = format!("/_matrix/client/v3/rooms/{}/{read}", encode_path(&public_room));
        let (status, body) = s.matrix(Method::GET, &path, Some(&eve), None).await;
        refused(status, &body, read);
    }
    // Previews: the room summary and the group's space hierarchy.
    let (status, body) = s
        .matrix(Method::GET, &format!("/_matrix/client/v1/room_summary/{}", encode_path(&alias)), Some(&eve), None)
        .await;
    refused(status, &body, "a room summary");
    let (_, space) = s
        .matrix(
            Method::GET,
            &format!("/_matrix/client/v3/directory/room/{}", encode_path(&alias_of(OTHER, "space", &slug))),
            None,
            None,
        )
        .await;
    let space_id = space["room_id"].as_str().expect("the group's space");
    let (status, body) = s
        .matrix(Method::GET, &format!("/_matrix/client/v1/rooms/{}/hierarchy", encode_path(space_id)), Some(&eve), None)
        .await;
    refused(status, &body, "the space hierarchy");
    // No directory lists any tenant's rooms.
    let (status, listed) = s.matrix(Method::GET, "/_matrix/client/v3/publicRooms?limit=500", Some(&eve), None).await;
    assert_eq!(status, 200, "{listed}");
    let ours: Vec<&Value> = listed["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .filter(|room| room["canonical_alias"].as_str().is_some_and(|a| a.starts_with("#om_")))
        .collect();
    assert!(ours.is_empty(), "tenant rooms in the server-wide directory: {ours:?}");
    // Profiles of another tenant's users are not available.
    let bob_id = s.matrix_user_id(OTHER, &bob);
    let (status, body) =
        s.matrix(Method::GET, &format!("/_matrix/client/v3/profile/{}", encode_path(&bob_id)), Some(&eve), None).await;
    refused(status, &body, "another tenant's profile");
}

#[tokio::test]
async fn nobody_invites_across_tenants_and_own_rooms_stay_in_their_tenant() {
    let s = stack();
    let (_, eve) = browser(s, HOME, "eve").await;
    let (mallory_slug, mallory) = browser(s, HOME, "mallory").await;
    let (bob, bob_token) = browser(s, OTHER, "bob").await;
    let bob_id = s.matrix_user_id(OTHER, &bob);
    let mallory_id = s.matrix_user_id(HOME, &mallory_slug);

    let (status, body) =
        s.matrix(Method::POST, "/_matrix/client/v3/createRoom", Some(&eve), Some(json!({"invite": [bob_id]}))).await;
    refused(status, &body, "creating a room that invites another tenant's user");
    let (status, body) = s
        .matrix(Method::POST, "/_matrix/client/v3/createRoom", Some(&eve), Some(json!({"preset": "public_chat"})))
        .await;
    refused(status, &body, "creating a public room");
    let (status, own) = s
        .matrix(
            Method::POST,
            "/_matrix/client/v3/createRoom",
            Some(&eve),
            Some(json!({"preset": "private_chat", "invite": [mallory_id]})),
        )
        .await;
    assert_eq!(status, 200, "a private room with a same-tenant invite is fine: {own}");
    let own_room = own["room_id"].as_str().expect("room_id");
    let (status, body) = s
        .matrix(
            Method::POST,
            &format!("/_matrix/client/v3/rooms/{}/invite", encode_path(own_room)),
            Some(&eve),
            Some(json!({"user_id": bob_id})),
        )
        .await;
    refused(status, &body, "inviting another tenant's user");
    let (status, body) = s
        .matrix(
            Method::PUT,
            &format!("/_matrix/client/v3/rooms/{}/state/m.room.join_rules/", encode_path(own_room)),
            Some(&eve),
            Some(json!({"join_rule": "public"})),
        )
        .await;
    refused(status, &body, "opening one's own room");
    // The foreign user cannot join it even by room id, and not after an invite made by the platform either.
    let join = format!("/_matrix/client/v3/rooms/{}/join", encode_path(own_room));
    let (status, body) = s.matrix(Method::POST, &join, Some(&bob_token), Some(json!({}))).await;
    refused(status, &body, "joining a user-made room of another tenant");
    let (status, body) = s
        .matrix(
            Method::PUT,
            &format!("/_matrix/client/v3/directory/list/room/{}", encode_path(own_room)),
            Some(&eve),
            Some(json!({"visibility": "public"})),
        )
        .await;
    refused(status, &body, "publishing a room");
    let (status, body) = s
        .matrix(
            Method::PUT,
            &format!("/_matrix/client/v3/directory/room/{}", encode_path("#hangout:localhost")),
            Some(&eve),
            Some(json!({"room_id": own_room})),
        )
        .await;
    assert!(status.is_client_error(), "a tenant user made a server-wide alias: {status} {body}");
    // The mallory invite stands and works: same tenant.
    let (status, body) = s.matrix(Method::POST, &join, Some(&mallory), Some(json!({}))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_platform_cannot_be_used_to_carry_a_user_across() {
    let s = stack();
    let slug = unique("pg");
    let room_id = group(s, OTHER, &slug, "private").await;
    let (eve_slug, eve) = browser(s, HOME, "eve").await;
    let eve_id = s.matrix_user_id(HOME, &eve_slug);
    // An invite sent by the platform itself (a server admin: the module is not asked) still lets nobody in.
    let (status, body) = s
        .matrix(
            Method::POST,
            &format!("/_matrix/client/v3/rooms/{}/invite", encode_path(&room_id)),
            None,
            Some(json!({"user_id": eve_id})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s
        .matrix(
            Method::POST,
            &format!("/_matrix/client/v3/rooms/{}/join", encode_path(&room_id)),
            Some(&eve),
            Some(json!({})),
        )
        .await;
    refused(status, &body, "joining after the platform's invite");
    // The admin join is checked on the joining user too.
    let (status, body) = s
        .matrix(
            Method::POST,
            &format!("/_synapse/admin/v1/join/{}", encode_path(&room_id)),
            None,
            Some(json!({"user_id": eve_id})),
        )
        .await;
    refused(status, &body, "an admin join of another tenant's user");
    assert_ne!(membership(s, &room_id, &eve_id).await.as_deref(), Some("join"), "eve of {HOME} got in");
}

#[tokio::test]
async fn public_means_tenant_public_and_private_stays_invite_only() {
    let s = stack();
    let (open, closed) = (unique("open"), unique("closed"));
    let open_room = group(s, OTHER, &open, "public").await;
    group(s, OTHER, &closed, "private").await;
    let (carol, carol_token) = browser(s, OTHER, "carol").await;
    let join = |slug: &str| format!("/_matrix/client/v3/join/{}", encode_path(&alias_of(OTHER, "group", slug)));
    let (status, body) = s.matrix(Method::POST, &join(&open), Some(&carol_token), Some(json!({}))).await;
    assert_eq!(status, 200, "a same-tenant user joins a public group by alias with their token: {body}");
    let (status, body) = s
        .matrix(
            Method::GET,
            &format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=5", encode_path(&open_room)),
            Some(&carol_token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s.matrix(Method::POST, &join(&closed), Some(&carol_token), Some(json!({}))).await;
    refused(status, &body, "joining a private group uninvited");
    // The API sees the self-joined member like any other.
    let (status, listed) =
        s.api(Method::GET, &format!("/v1/groups/{open}/members"), Some(&s.service_jwt(OTHER)), None).await;
    assert_eq!(status, 200, "{listed}");
    assert!(listed["members"].as_array().expect("members").iter().any(|m| m["userId"] == carol.as_str()));
}

#[tokio::test]
async fn owners_moderate_but_cannot_change_what_the_platform_manages() {
    let s = stack();
    let slug = unique("og");
    let room_id = group(s, OTHER, &slug, "private").await;
    let (owner, owner_token) = browser(s, OTHER, "owner").await;
    let (member, _) = browser(s, OTHER, "member").await;
    let (outsider, _) = browser(s, OTHER, "outsider").await;
    put_member(s, OTHER, "groups", &slug, &owner, "owner").await;
    put_member(s, OTHER, "groups", &slug, &member, "member").await;
    let room = encode_path(&room_id);
    for (event_type, content) in [
        ("m.room.join_rules", json!({"join_rule": "public"})),
        ("m.room.power_levels", json!({"users": {s.matrix_user_id(OTHER, &owner): 150}})),
        ("m.room.history_visibility", json!({"history_visibility": "world_readable"})),
        ("m.room.guest_access", json!({"guest_access": "can_join"})),
        ("m.room.canonical_alias", json!({})),
        ("m.room.encryption", json!({"algorithm": "m.megolm.v1.aes-sha2"})),
        ("m.room.server_acl", json!({"allow": ["*"]})),
        ("m.room.tombstone", json!({"body": "moved", "replacement_room": "!x:localhost"})),
        ("m.room.name", json!({"name": "Renamed by hand"})),
        ("org.openmeet.room", json!({"tenant": OTHER, "state": "active"})),
    ] {
        let path = format!("/_matrix/client/v3/rooms/{room}/state/{event_type}/");
        let (status, body) = s.matrix(Method::PUT, &path, Some(&owner_token), Some(content)).await;
        assert_eq!(status, 403, "an owner changed {event_type}: {body}");
    }
    let (status, body) = s
        .matrix(
            Method::PUT,
            &format!("/_matrix/client/v3/rooms/{room}/state/m.space.child/{}", encode_path("!x:localhost")),
            Some(&owner_token),
            Some(json!({"via": ["localhost"]})),
        )
        .await;
    assert_eq!(status, 403, "an owner linked a space child: {body}");
    let outsider_id = s.matrix_user_id(OTHER, &outsider);
    let (status, body) = s
        .matrix(
            Method::POST,
            &format!("/_matrix/client/v3/rooms/{room}/invite"),
            Some(&owner_token),
            Some(json!({"user_id": outsider_id})),
        )
        .await;
    assert_eq!(status, 403, "an owner invited into a private group: {body}");
    let (status, body) = s
        .matrix(
            Method::PUT,
            &format!("/_matrix/client/v3/directory/list/room/{room}"),
            Some(&owner_token),
            Some(json!({"visibility": "public"})),
        )
        .await;
    assert_eq!(status, 403, "an owner published the room: {body}");
    // Moderation stays theirs.
    let member_id = s.matrix_user_id(OTHER, &member);
    let (status, body) = s
        .matrix(
            Method::POST,
            &format!("/_matrix/client/v3/rooms/{room}/kick"),
            Some(&owner_token),
            Some(json!({"user_id": member_id, "reason": "spam"})),
        )
        .await;
    assert_eq!(status, 200, "an owner kicks a member: {body}");
    // The room version is pinned, not the server's default.
    let (_, create) =
        s.matrix(Method::GET, &format!("/_matrix/client/v3/rooms/{room}/state/m.room.create/"), None, None).await;
    assert_eq!(create["room_version"], "12");
}

#[tokio::test]
async fn a_cancelled_event_stays_cancelled_whatever_its_owner_does() {
    let s = stack();
    let slug = unique("ev");
    let body = json!({"name": "Launch", "startsAt": "2031-01-01T18:00:00Z", "visibility": "public"});
    let (status, room) =
        s.api(Method::PUT, &format!("/v1/events/{slug}/room"), Some(&s.service_jwt(OTHER)), Some(body)).await;
    assert_eq!(status, 201, "{room}");
    let room = encode_path(room["roomId"].as_str().expect("roomId"));
    let (host, host_token) = browser(s, OTHER, "host").await;
    put_member(s, OTHER, "events", &slug, &host, "owner").await;
    let (status, _) = s
        .api(Method::POST, &format!("/v1/events/{slug}/room/cancel"), Some(&s.service_jwt(OTHER)), Some(json!({})))
        .await;
    assert_eq!(status, 200);
    let (_, levels) =
        s.matrix(Method::GET, &format!("/_matrix/client/v3/rooms/{room}/state/m.room.power_levels/"), None, None).await;
    let mut reopened = levels.clone();
    reopened["events_default"] = json!(0);
    for (event_type, content) in
        [("m.room.power_levels", reopened), ("org.openmeet.room", json!({"tenant": OTHER, "state": "active"}))]
    {
        let path = format!("/_matrix/client/v3/rooms/{room}/state/{event_type}/");
        let (status, body) = s.matrix(Method::PUT, &path, Some(&host_token), Some(content)).await;
        assert_eq!(status, 403, "the host un-cancelled through {event_type}: {body}");
    }
}
