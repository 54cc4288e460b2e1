//! Membership and roles against the real homeserver: joins, role changes, removals, the last owner and refusals;
//! every effect is read back from Synapse itself. Reconciling a whole list is in `membership_reconcile.rs`.

mod membership_support;

use integration_tests::{encode_path, stack, unique};
use membership_support::*;
use reqwest::Method;
use serde_json::{Value, json};

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
