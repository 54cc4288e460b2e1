//! Membership and roles against the real homeserver: every effect is read back from Synapse itself.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use integration_tests::{encode_path, stack, unique};
use reqwest::Method;
use serde_json::{Value, json};

const TENANT: &str = "it-mem";

fn service() -> String {
    stack().service_jwt(TENANT)
}

/// Creates a group room (or an event room) through the API and returns (members path, room id).
async fn room(kind: &str, visibility: &str) -> (String, String) {
    let slug = unique("room");
    let mut body = json!({"name": format!("Room {slug}"), "visibility": visibility});
    if kind == "events" {
        body["startsAt"] = json!("2026-12-01T18:00:00Z");
    }
    let (status, room) =
        stack().api(Method::PUT, &format!("/v1/{kind}/{slug}/room"), Some(&service()), Some(body)).await;
    assert_eq!(status, 201, "creating the room: {room}");
    (format!("/v1/{kind}/{slug}/members"), room["roomId"].as_str().expect("roomId").to_owned())
}

async fn put_member(members: &str, user: &str, role: &str) -> (u16, Value) {
    let (status, body) =
        stack().api(Method::PUT, &format!("{members}/{user}"), Some(&service()), Some(json!({"role": role}))).await;
    (status.as_u16(), body)
}

async fn reconcile(members: &str, query: &str, list: &[(&str, &str)]) -> (u16, Value) {
    let list: Vec<Value> = list.iter().map(|(user, role)| json!({"userId": user, "role": role})).collect();
    let (status, body) =
        stack().api(Method::PUT, &format!("{members}{query}"), Some(&service()), Some(json!({"members": list}))).await;
    (status.as_u16(), body)
}

fn mxid(user: &str) -> String {
    stack().matrix_user_id(TENANT, user)
}

/// The room's `users` power-level map as the homeserver holds it.
async fn power_users(room_id: &str) -> BTreeMap<String, i64> {
    let path = format!("/_matrix/client/v3/rooms/{}/state/m.room.power_levels/", encode_path(room_id));
    let (status, content) = stack().matrix(Method::GET, &path, None, None).await;
    assert_eq!(status, 200, "{content}");
    content["users"]
        .as_object()
        .map(|users| users.iter().map(|(user, level)| (user.clone(), level.as_i64().expect("integer"))).collect())
        .unwrap_or_default()
}

/// How many `m.room.power_levels` events the room has had: each write is one.
async fn power_level_writes(room_id: &str) -> usize {
    let filter = encode_path(&json!({"types": ["m.room.power_levels"]}).to_string());
    let path = format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=1000&filter={filter}", encode_path(room_id));
    let (status, body) = stack().matrix(Method::GET, &path, None, None).await;
    assert_eq!(status, 200, "{body}");
    body["chunk"].as_array().expect("chunk").len()
}

/// Every membership but `leave`, by Matrix user id, as the homeserver holds it.
async fn memberships(room_id: &str) -> BTreeMap<String, String> {
    let path = format!("/_matrix/client/v3/rooms/{}/members?not_membership=leave", encode_path(room_id));
    let (status, body) = stack().matrix(Method::GET, &path, None, None).await;
    assert_eq!(status, 200, "{body}");
    body["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .map(|event| {
            let user = event["state_key"].as_str().expect("state_key").to_owned();
            (user, event["content"]["membership"].as_str().expect("membership").to_owned())
        })
        .collect()
}

/// The joined users of this test tenant.
async fn joined_here(room_id: &str) -> BTreeSet<String> {
    let prefix = format!("@{}{TENANT}.", stack().var("MATRIX_USER_PREFIX"));
    memberships(room_id)
        .await
        .into_iter()
        .filter(|(user, membership)| user.starts_with(&prefix) && membership == "join")
        .map(|(user, _)| user)
        .collect()
}

fn platform_user() -> String {
    format!("@{}:{}", stack().var("MATRIX_PLATFORM_LOCALPART"), stack().var("MATRIX_SERVER_NAME"))
}

fn report(body: &Value) -> (Vec<&str>, Vec<&str>, Vec<&str>, u64) {
    let names = |key: &str| -> Vec<&str> {
        body[key].as_array().unwrap_or_else(|| panic!("{key} in {body}")).iter().filter_map(Value::as_str).collect()
    };
    (names("added"), names("removed"), names("roleChanged"), body["unchanged"].as_u64().expect("unchanged"))
}

#[tokio::test]
async fn joining_shows_the_room_in_the_users_own_sync_at_once() {
    let s = stack();
    let (members, room_id) = room("groups", "private").await;
    // The user already exists with a real name; joining must not overwrite it with the userId.
    let user = unique("sia");
    s.provision(TENANT, &user, "Sia Real").await;
    let (token, _) = s.session(TENANT, &user, Some("WEB")).await;
    let (status, first) = s.matrix(Method::GET, "/_matrix/client/v3/sync?timeout=0", Some(&token), None).await;
    assert_eq!(status, 200, "{first}");
    let since = first["next_batch"].as_str().expect("next_batch");

    let (status, member) = put_member(&members, &user, "speaker").await;
    assert_eq!(status, 200, "{member}");
    assert_eq!(member, json!({"userId": user, "matrixUserId": mxid(&user), "role": "speaker", "membership": "join"}));
    let (status, sync) =
        s.matrix(Method::GET, &format!("/_matrix/client/v3/sync?timeout=0&since={since}"), Some(&token), None).await;
    assert_eq!(status, 200, "{sync}");
    assert!(sync["rooms"]["join"].get(&room_id).is_some(), "the joined room is not in the user's sync: {sync}");
    assert_eq!(power_users(&room_id).await.get(&mxid(&user)), Some(&25));
    let path = format!("/_matrix/client/v3/profile/{}", encode_path(&mxid(&user)));
    let (_, profile) = s.matrix(Method::GET, &path, None, None).await;
    assert_eq!(profile["displayname"], "Sia Real");

    // A user never seen before is provisioned on the way, named after their userId until putUser names them.
    let (events_members, event_room_id) = room("events", "public").await;
    let newcomer = unique("new");
    let (status, body) = put_member(&events_members, &newcomer, "member").await;
    assert_eq!(status, 200, "{body}");
    assert!(joined_here(&event_room_id).await.contains(&mxid(&newcomer)));
    let path = format!("/_matrix/client/v3/profile/{}", encode_path(&mxid(&newcomer)));
    let (_, profile) = s.matrix(Method::GET, &path, None, None).await;
    assert_eq!(profile["displayname"], newcomer.as_str());
}

#[tokio::test]
async fn a_role_change_writes_power_levels_once_and_keeps_other_entries() {
    let s = stack();
    let (members, room_id) = room("groups", "public").await;
    let (owner, other) = (unique("own"), unique("oth"));
    assert_eq!(put_member(&members, &owner, "owner").await.0, 200);
    assert_eq!(put_member(&members, &other, "member").await.0, 200);
    // Someone else's entry, written behind the API's back, must survive our writes.
    let path = format!("/_matrix/client/v3/rooms/{}/state/m.room.power_levels/", encode_path(&room_id));
    let (_, mut content) = s.matrix(Method::GET, &path, None, None).await;
    content["users"]["@someone:elsewhere.example"] = json!(10);
    let (status, body) = s.matrix(Method::PUT, &path, None, Some(content)).await;
    assert_eq!(status, 200, "{body}");

    let writes = power_level_writes(&room_id).await;
    let (status, body) = put_member(&members, &other, "moderator").await;
    assert_eq!((status, body["role"].as_str()), (200, Some("moderator")), "{body}");
    assert_eq!(power_level_writes(&room_id).await, writes + 1, "a role change must be exactly one write");
    let users = power_users(&room_id).await;
    assert_eq!(users.get(&mxid(&other)), Some(&50));
    assert_eq!(users.get(&mxid(&owner)), Some(&100));
    assert_eq!(users.get("@someone:elsewhere.example"), Some(&10));
    assert!(!users.contains_key(&platform_user()), "the room creator must not be listed: {users:?}");

    // The same request again writes nothing; a demotion to member drops the entry in one write.
    assert_eq!(put_member(&members, &other, "moderator").await.0, 200);
    assert_eq!(power_level_writes(&room_id).await, writes + 1);
    assert_eq!(put_member(&members, &other, "member").await.0, 200);
    assert_eq!(power_level_writes(&room_id).await, writes + 2);
    let users = power_users(&room_id).await;
    assert!(!users.contains_key(&mxid(&other)), "{users:?}");
    assert_eq!(users.get("@someone:elsewhere.example"), Some(&10));
}

#[tokio::test]
async fn reconcile_reaches_the_list_exactly_and_a_repeat_does_nothing() {
    let s = stack();
    let (members, room_id) = room("groups", "private").await;
    let [a, b, c, d] = ["ann", "bob", "cyd", "dee"].map(unique);
    // A user of another tenant cannot even be put in by an admin join (tenant walls, ADR 0003); strangers who got
    // in some other way are listed and removed by a reconcile (tests/tests/tenant_rooms.rs).
    let foreign = s.provision("it-mem-other", &unique("fox"), "Fox").await;
    let path = format!("/_synapse/admin/v1/join/{}", encode_path(&room_id));
    let (status, body) = s.matrix(Method::POST, &path, None, Some(json!({"user_id": foreign}))).await;
    assert_eq!(status, 403, "{body}");
    // Synapse lets a server admin's invite through (no module callback for it): the invite dangles until the next
    // reconcile withdraws it, as it does for anyone not on the list.
    assert_eq!(memberships(&room_id).await.get(&foreign).map(String::as_str), Some("invite"));

    let (status, body) = reconcile(&members, "", &[(&a, "owner"), (&b, "member"), (&c, "member")]).await;
    assert_eq!(status, 200, "{body}");
    let mut expected = vec![a.as_str(), b.as_str(), c.as_str()];
    expected.sort();
    assert_eq!(report(&body), (expected, vec![foreign.as_str()], vec![], 0));

    // A dry run tells what would change and changes nothing.
    let target = [(a.as_str(), "owner"), (b.as_str(), "moderator"), (d.as_str(), "member")];
    let (before_members, before_levels, before_writes) =
        (memberships(&room_id).await, power_users(&room_id).await, power_level_writes(&room_id).await);
    let (status, dry) = reconcile(&members, "?dryRun=true", &target).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(report(&dry), (vec![d.as_str()], vec![c.as_str()], vec![b.as_str()], 1));
    assert_eq!(memberships(&room_id).await, before_members);
    assert_eq!(power_users(&room_id).await, before_levels);
    assert_eq!(power_level_writes(&room_id).await, before_writes);
    assert_eq!(
        s.matrix(Method::GET, &format!("/_synapse/admin/v2/users/{}", encode_path(&mxid(&d))), None, None).await.0,
        404
    );

    let (status, applied) = reconcile(&members, "", &target).await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied, dry);
    assert_eq!(power_level_writes(&room_id).await, before_writes + 1, "role changes must be one write");
    assert_eq!(joined_here(&room_id).await, BTreeSet::from([mxid(&a), mxid(&b), mxid(&d)]));
    let all = memberships(&room_id).await;
    assert_eq!(all.get(&foreign), None, "a foreign user got in");
    assert_eq!(all.get(&platform_user()).map(String::as_str), Some("join"));
    assert!(!all.contains_key(&mxid(&c)));
    let users = power_users(&room_id).await;
    let ours: BTreeMap<&str, i64> =
        users.iter().filter(|(user, _)| user.contains(&format!("{TENANT}."))).map(|(u, l)| (u.as_str(), *l)).collect();
    assert_eq!(ours, BTreeMap::from([(mxid(&a).as_str(), 100), (mxid(&b).as_str(), 50)]));
    assert!(!users.contains_key(&platform_user()));

    // Stable: a repeat reports everyone unchanged and writes nothing.
    let writes = power_level_writes(&room_id).await;
    let (status, again) = reconcile(&members, "", &target).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(report(&again), (vec![], vec![], vec![], 3));
    assert_eq!(power_level_writes(&room_id).await, writes);

    // The list read back from the homeserver agrees.
    let (status, listed) = s.api(Method::GET, &members, Some(&service()), None).await;
    assert_eq!(status, 200, "{listed}");
    let roles: BTreeMap<&str, &str> = listed["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| (m["userId"].as_str().expect("userId"), m["role"].as_str().expect("role")))
        .collect();
    assert_eq!(roles, BTreeMap::from([(a.as_str(), "owner"), (b.as_str(), "moderator"), (d.as_str(), "member")]));
}

#[tokio::test]
async fn the_last_owner_stays_unless_forced() {
    let (members, room_id) = room("groups", "public").await;
    let (a, b) = (unique("first"), unique("second"));
    assert_eq!(put_member(&members, &a, "owner").await.0, 200);
    let refused = |(status, body): (u16, Value)| {
        assert_eq!((status, body["error"]["code"].as_str()), (409, Some("last_owner")), "{body}");
    };
    let service = service();
    refused(stack().api(Method::DELETE, &format!("{members}/{a}"), Some(&service), None).await.map_status());
    refused(put_member(&members, &a, "admin").await);
    refused(reconcile(&members, "", &[(&a, "member")]).await);
    refused(reconcile(&members, "?dryRun=true", &[]).await);
    assert_eq!(power_users(&room_id).await.get(&mxid(&a)), Some(&100));
    assert!(joined_here(&room_id).await.contains(&mxid(&a)));

    // With another owner, the first may go; the second is then the last one, and only force removes them.
    assert_eq!(put_member(&members, &b, "owner").await.0, 200);
    let (status, _) = stack().api(Method::DELETE, &format!("{members}/{a}"), Some(&service), None).await;
    assert_eq!(status, 204);
    refused(stack().api(Method::DELETE, &format!("{members}/{b}"), Some(&service), None).await.map_status());
    let (status, _) = stack().api(Method::DELETE, &format!("{members}/{b}?force=true"), Some(&service), None).await;
    assert_eq!(status, 204);
    assert!(joined_here(&room_id).await.is_empty());
    let users = power_users(&room_id).await;
    assert!(!users.contains_key(&mxid(&a)) && !users.contains_key(&mxid(&b)), "{users:?}");
    // A room without owners may stay without one.
    let (status, body) = reconcile(&members, "", &[(&a, "member")]).await;
    assert_eq!(status, 200, "{body}");
}

trait MapStatus {
    fn map_status(self) -> (u16, Value);
}

impl MapStatus for (reqwest::StatusCode, Value) {
    fn map_status(self) -> (u16, Value) {
        (self.0.as_u16(), self.1)
    }
}

#[tokio::test]
async fn removal_kicks_or_bans_and_is_idempotent() {
    let s = stack();
    let (members, room_id) = room("groups", "public").await;
    let (owner, user) = (unique("own"), unique("leo"));
    assert_eq!(put_member(&members, &owner, "owner").await.0, 200);
    assert_eq!(put_member(&members, &user, "admin").await.0, 200);
    for _ in 0..2 {
        let (status, body) = s.api(Method::DELETE, &format!("{members}/{user}"), Some(&service()), None).await;
        assert_eq!(status, 204, "{body}");
    }
    assert!(!memberships(&room_id).await.contains_key(&mxid(&user)));
    assert!(!power_users(&room_id).await.contains_key(&mxid(&user)));
    // Never a member at all: still 204.
    let (status, _) = s.api(Method::DELETE, &format!("{members}/{}", unique("ghost")), Some(&service()), None).await;
    assert_eq!(status, 204);

    // A ban holds (a later plain removal does not lift it); putting the user back lifts it.
    assert_eq!(put_member(&members, &user, "member").await.0, 200);
    for query in ["?ban=true", "?ban=true", ""] {
        let (status, body) = s.api(Method::DELETE, &format!("{members}/{user}{query}"), Some(&service()), None).await;
        assert_eq!(status, 204, "{query}: {body}");
        assert_eq!(memberships(&room_id).await.get(&mxid(&user)).map(String::as_str), Some("ban"));
    }
    let (_, listed) = s.api(Method::GET, &members, Some(&service()), None).await;
    assert!(
        listed["members"]
            .as_array()
            .expect("members")
            .iter()
            .any(|m| m["userId"] == user.as_str() && m["membership"] == "ban"),
        "{listed}"
    );
    assert_eq!(put_member(&members, &user, "member").await.0, 200);
    assert_eq!(memberships(&room_id).await.get(&mxid(&user)).map(String::as_str), Some("join"));
}

#[tokio::test]
async fn bad_input_is_400_and_changes_nothing() {
    let s = stack();
    let (members, room_id) = room("groups", "public").await;
    let owner = unique("own");
    assert_eq!(put_member(&members, &owner, "owner").await.0, 200);
    let newcomer = unique("nob");
    let (before_members, before_levels) = (memberships(&room_id).await, power_users(&room_id).await);
    let service = service();
    let put = format!("{members}/{newcomer}");
    let cases: Vec<(Method, String, Value, &str)> = vec![
        (Method::PUT, put.clone(), json!({"role": "god"}), "invalid_body"),
        (Method::PUT, put.clone(), json!({"role": "member", "admin": true}), "invalid_body"),
        (Method::PUT, put.clone(), json!({}), "invalid_body"),
        (Method::PUT, put.clone(), json!("member"), "invalid_body"),
        (Method::PUT, format!("{put}?force=yes"), json!({"role": "member"}), "invalid_parameter"),
        (Method::PUT, format!("{members}/Not%20Valid"), json!({"role": "member"}), "invalid_parameter"),
        (Method::DELETE, format!("{members}/{owner}?ban=maybe"), Value::Null, "invalid_parameter"),
        (
            Method::PUT,
            members.clone(),
            json!({"members": [{"userId": newcomer, "role": "member"}, {"userId": newcomer, "role": "owner"}]}),
            "invalid_body",
        ),
        (Method::PUT, members.clone(), json!({"members": [{"userId": "UPPER", "role": "member"}]}), "invalid_body"),
        (
            Method::PUT,
            members.clone(),
            json!({"members": [{"userId": newcomer, "role": "member", "x": 1}]}),
            "invalid_body",
        ),
        (
            Method::PUT,
            members.clone(),
            json!({"members": [{"userId": newcomer, "role": "member"}], "extra": 1}),
            "invalid_body",
        ),
        (Method::PUT, members.clone(), json!({}), "invalid_body"),
        (Method::PUT, format!("{members}?dryRun=1"), json!({"members": []}), "invalid_parameter"),
    ];
    for (method, path, body, code) in cases {
        let body = if body.is_null() { None } else { Some(body) };
        let (status, answer) = s.api(method.clone(), &path, Some(&service), body.clone()).await;
        assert_eq!(
            (status.as_u16(), answer["error"]["code"].as_str()),
            (400, Some(code)),
            "{method} {path} {body:?}: {answer}"
        );
    }
    assert_eq!(memberships(&room_id).await, before_members);
    assert_eq!(power_users(&room_id).await, before_levels);
    let (status, _) =
        s.matrix(Method::GET, &format!("/_synapse/admin/v2/users/{}", encode_path(&mxid(&newcomer))), None, None).await;
    assert_eq!(status, 404, "a refused request provisioned the user");

    // A room that does not exist, or an unknown kind, is 404.
    let (status, _) = put_member(&format!("/v1/groups/{}/members", unique("none")), &newcomer, "member").await;
    assert_eq!(status, 404);
    let (status, _) = s.api(Method::GET, &format!("/v1/things/{}/members", unique("none")), Some(&service), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn users_may_only_list_rooms_they_joined_and_never_manage_members() {
    let s = stack();
    let (members, _) = room("groups", "public").await;
    let (member, outsider) = (unique("mem"), unique("out"));
    assert_eq!(put_member(&members, &member, "member").await.0, 200);
    let member_token = s.user_jwt(TENANT, &member, None);
    let writes = [
        (Method::PUT, format!("{members}/{member}"), Some(json!({"role": "owner"}))),
        (Method::DELETE, format!("{members}/{member}"), None),
        (Method::PUT, members.clone(), Some(json!({"members": [{"userId": member, "role": "owner"}]}))),
    ];
    for (method, path, body) in writes {
        let (status, answer) = s.api(method.clone(), &path, Some(&member_token), body).await;
        assert_eq!((status.as_u16(), answer["error"]["code"].as_str()), (403, Some("forbidden")), "{method} {path}");
    }
    let (status, listed) = s.api(Method::GET, &members, Some(&member_token), None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["members"][0]["userId"], member.as_str());
    let (status, body) = s.api(Method::GET, &members, Some(&s.user_jwt(TENANT, &outsider, None)), None).await;
    assert_eq!((status.as_u16(), body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    // Another tenant cannot even see the room.
    let (status, _) = s.api(Method::GET, &members, Some(&s.service_jwt("it-mem-other")), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn reconcile_of_many_members_costs_no_request_per_unchanged_member() {
    const MEMBERS: usize = 60;
    let (members, room_id) = room("groups", "private").await;
    let run = unique("bulk");
    let users: Vec<String> = (0..MEMBERS).map(|i| format!("{run}-{i}")).collect();
    let list: Vec<(&str, &str)> = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            (
                user.as_str(),
                if i == 0 {
                    "owner"
                } else if i % 10 == 0 {
                    "moderator"
                } else {
                    "member"
                },
            )
        })
        .collect();
    let started = Instant::now();
    let (status, body) = reconcile(&members, "", &list).await;
    let cold = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(report(&body).0.len(), MEMBERS);
    assert_eq!(joined_here(&room_id).await.len(), MEMBERS);

    let writes = power_level_writes(&room_id).await;
    let started = Instant::now();
    let wanted: Vec<Value> = list.iter().map(|(user, role)| json!({"userId": user, "role": role})).collect();
    let response = reqwest::Client::new()
        .put(format!("{}{members}", stack().api))
        .bearer_auth(service())
        .json(&json!({"members": wanted}))
        .send()
        .await
        .expect("the gateway answers");
    let no_op = started.elapsed();
    let request_id =
        response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).expect("x-request-id").to_owned();
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("JSON report");
    assert_eq!(status, 200, "{body}");
    assert_eq!(report(&body), (vec![], vec![], vec![], MEMBERS as u64));
    assert_eq!(power_level_writes(&room_id).await, writes);
    eprintln!("reconcile of {MEMBERS} members: cold {cold:?}, no-op {no_op:?}");
    // A no-op reads the room twice, whatever its size: never a request per member.
    let calls = stack().homeserver_calls(&request_id);
    assert!((1..=4).contains(&calls), "a no-op reconcile of {MEMBERS} members made {calls} homeserver calls");
}

#[tokio::test]
async fn concurrent_role_changes_in_one_room_all_hold() {
    let (members, room_id) = room("groups", "public").await;
    let roles = ["owner", "admin", "moderator", "speaker", "member", "admin", "moderator", "speaker"];
    let users: Vec<String> = roles.iter().map(|_| unique("par")).collect();
    let mut handles = Vec::new();
    for (user, role) in users.iter().zip(roles) {
        let (members, user) = (members.clone(), user.clone());
        handles.push(tokio::spawn(async move { put_member(&members, &user, role).await }));
    }
    for handle in handles {
        let (status, body) = handle.await.expect("task");
        assert_eq!(status, 200, "{body}");
    }
    let levels = power_users(&room_id).await;
    for (user, role) in users.iter().zip(roles) {
        let expected = match role {
            "owner" => Some(100),
            "admin" => Some(75),
            "moderator" => Some(50),
            "speaker" => Some(25),
            _ => None,
        };
        assert_eq!(levels.get(&mxid(user)).copied(), expected, "{user} as {role}: {levels:?}");
    }
}

#[tokio::test]
async fn a_reconcile_too_large_for_one_request_is_queued_and_finishes_in_slices() {
    let s = stack();
    let inline: usize = s.var("OPENMEET_RECONCILE_INLINE_CHANGES").parse().expect("a number");
    let count = inline + 30;
    let (members, room_id) = room("groups", "private").await;
    let run = unique("big");
    let users: Vec<String> = (0..count).map(|i| format!("{run}-{i}")).collect();
    let role_of = |i: usize| match i {
        0 => "owner",
        _ if i.is_multiple_of(25) => "moderator",
        _ => "member",
    };
    let list: Vec<(&str, &str)> = users.iter().enumerate().map(|(i, user)| (user.as_str(), role_of(i))).collect();

    let (status, body) = reconcile(&members, "", &list).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "queued");
    assert_eq!(report(&body).0.len(), count, "the answer says what the reconcile is going to add");
    let operation_id = body["operationId"].as_str().expect("operationId").to_owned();

    // The worker delivers it in slices; wait (not a timing assertion: the bound only ends a hung test).
    let waited = Instant::now();
    let outcome = loop {
        let (status, outcome) =
            s.api(Method::GET, &format!("/v1/operations/{operation_id}"), Some(&service()), None).await;
        assert_eq!(status, 200, "{outcome}");
        if outcome["status"] != "queued" {
            break outcome;
        }
        assert!(waited.elapsed() < std::time::Duration::from_secs(600), "still queued: {outcome}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    assert_eq!(outcome["status"], "delivered", "{outcome}");
    eprintln!("reconcile of {count} members queued and delivered in {:?}", waited.elapsed());

    let expected: BTreeSet<String> = users.iter().map(|user| mxid(user)).collect();
    assert_eq!(joined_here(&room_id).await, expected);
    let levels = power_users(&room_id).await;
    for (i, user) in users.iter().enumerate() {
        let want = match role_of(i) {
            "owner" => 100,
            "moderator" => 50,
            _ => 0,
        };
        assert_eq!(levels.get(&mxid(user)).copied().unwrap_or(0), want, "{user}");
    }

    // It took more than one slice (the local stack's slices are short), each starting from the homeserver's state.
    let sdk = s.aws().await;
    let record = aws_sdk_dynamodb::Client::new(&sdk)
        .get_item()
        .table_name(s.var("OPENMEET_TABLE"))
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("OP#{operation_id}")))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("OP".into()))
        .send()
        .await
        .expect("get")
        .item
        .expect("the operation has a record");
    let slices = record.get("slices").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    eprintln!("continued {slices} time(s)");
    assert!(
        slices >= 1,
        "a {count}-member reconcile finished in one slice of {} ms",
        s.var("OPENMEET_RECONCILE_SLICE_MS")
    );

    // Now it holds: the same list is a no-op answered at once.
    let (status, again) = reconcile(&members, "", &list).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(report(&again), (vec![], vec![], vec![], count as u64));
}
