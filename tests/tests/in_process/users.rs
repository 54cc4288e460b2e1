//! Users (provisioning function): registration, the deleted-user wall, bad input, deletion.

use serde_json::json;

use super::support::{World, answer, body, request, room_id};

/// A new user is registered once through the appservice, named as themselves and admitted to the tenant's space.
#[tokio::test]
async fn a_new_user_is_registered_named_and_admitted() {
    let w = World::new("users").await;
    let (user, space) = ("ada", room_id("space"));
    let user_id = w.mxid(user);
    w.hs.mock_register().ok(&user_id).expect(1).mount().await;
    w.hs.mock_admin_user(&user_id).ok(&user_id, user).mount().await;
    w.hs.mock_set_profile(&user_id, "displayname").as_user(&user_id).ok().mount().await;
    w.hs.mock_admin_create_device(&user_id).ok().mount().await;
    w.hs.mock_resolve_alias(&w.alias("tenant")).ok(&space).mount().await;
    w.hs.mock_state_event(&space, "m.room.member", &user_id).not_found().mount().await;
    w.hs.mock_admin_join(&space).ok(&space).expect(1).mount().await;

    let put = request("PUT", &format!("/v1/users/{user}"), Some(&w.service_jwt()), Some(json!({"displayName": "Ada"})));
    let (status, reply) = answer(&provisioning::serve(&w.app, put).await);
    assert_eq!(status, 201, "{reply} after {:?}", w.hs.calls().await);
    let registered = w.hs.requests("POST", "/_matrix/client/v3/register").await;
    let registration = body(&registered[0]);
    assert_eq!(registration["username"], user_id[1..user_id.find(':').unwrap_or(user_id.len())]);
    assert_eq!(registration["inhibit_login"], true);
    let named = w.hs.requests("PUT", &format!("/_matrix/client/v3/profile/{user_id}/displayname")).await;
    assert_eq!(named.last().map(body), Some(json!({"displayname": "Ada"})));
    let joined = w.hs.requests("POST", &format!("/_synapse/admin/v1/join/{space}")).await;
    assert_eq!(body(&joined[0])["user_id"], user_id.as_str());
    w.hs.verify().await;
}

/// A deleted user's identity is retired: provisioning them again is 409 and writes nothing to the homeserver.
#[tokio::test]
async fn a_deleted_user_is_not_provisioned_again() {
    let w = World::new("users-gone").await;
    let user_id = w.mxid("gone");
    w.hs.mock_register().user_in_use().expect(1).mount().await;
    w.hs.mock_admin_user(&user_id).deactivated(&user_id).mount().await;

    let put = request("PUT", "/v1/users/gone", Some(&w.service_jwt()), Some(json!({"displayName": "Gone"})));
    let (status, reply) = answer(&provisioning::serve(&w.app, put).await);
    assert_eq!(status, 409, "{reply}");
    assert_eq!(reply["error"]["code"], "user_deleted", "{reply}");
    let calls = w.hs.calls().await;
    assert!(calls.iter().all(|c| c.starts_with("GET ") || c.ends_with("/register")), "{calls:?}");
}

/// Bad input is refused before any homeserver call; a deletion deactivates the account once.
#[tokio::test]
async fn bad_input_calls_nothing_and_deletion_deactivates() {
    let w = World::new("users-bad").await;
    let service = w.service_jwt();
    for bad in [json!({"displayName": "   "}), json!({"displayName": "a".repeat(300)}), json!({"display": "x"})] {
        let put = request("PUT", "/v1/users/bea", Some(&service), Some(bad.clone()));
        let (status, reply) = answer(&provisioning::serve(&w.app, put).await);
        assert_eq!(status, 400, "{bad}: {reply}");
    }
    let as_user = request("PUT", "/v1/users/bea", Some(&w.user_jwt("bea")), Some(json!({"displayName": "Bea"})));
    assert_eq!(answer(&provisioning::serve(&w.app, as_user).await).0, 403);
    assert!(w.hs.calls().await.is_empty(), "refusals call nothing: {:?}", w.hs.calls().await);

    let user_id = w.mxid("bea");
    w.hs.mock_deactivate(&user_id).ok().expect(1).mount().await;
    let delete = request("DELETE", "/v1/users/bea", Some(&service), None);
    let (status, reply) = answer(&provisioning::serve(&w.app, delete).await);
    assert_eq!(status, 204, "{reply} after {:?}", w.hs.calls().await);
    w.hs.verify().await;
}

/// A user the homeserver does not know reads as 404; one it knows, with their name.
#[tokio::test]
async fn a_user_reads_back_as_the_homeserver_has_them() {
    let w = World::new("users-get").await;
    let (known, unknown) = (w.mxid("kim"), w.mxid("nobody"));
    w.hs.mock_admin_user(&known).ok(&known, "Kim K.").expect(1).mount().await;
    w.hs.mock_admin_user(&unknown).not_found().expect(1).mount().await;
    let service = w.service_jwt();
    let (status, user) =
        answer(&provisioning::serve(&w.app, request("GET", "/v1/users/kim", Some(&service), None)).await);
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["displayName"], "Kim K.", "{user}");
    assert_eq!(user["matrixUserId"], known.as_str(), "{user}");
    let missing = answer(&provisioning::serve(&w.app, request("GET", "/v1/users/nobody", Some(&service), None)).await);
    assert_eq!(missing.0, 404, "{}", missing.1);
    w.hs.verify().await;
}
