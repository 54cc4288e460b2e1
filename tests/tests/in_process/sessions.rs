//! Browser sessions (provisioning function): a refreshable login on the browser's device, logout, bad devices.

use serde_json::json;

use super::support::{World, answer, body, request, room_id};

/// Provisions `user` through the provisioning function on a homeserver that registers them.
async fn provisioned(w: &World, user: &str) -> String {
    let (user_id, space) = (w.mxid(user), room_id("space"));
    w.hs.mock_register().ok(&user_id).mount().await;
    w.hs.mock_set_profile(&user_id, "displayname").ok().mount().await;
    w.hs.mock_admin_create_device(&user_id).ok().mount().await;
    w.known_user(user, &space).await;
    let put = request("PUT", &format!("/v1/users/{user}"), Some(&w.service_jwt()), Some(json!({"displayName": user})));
    assert_eq!(answer(&provisioning::serve(&w.app, put).await).0, 201, "{:?}", w.hs.calls().await);
    user_id
}

/// A session for a provisioned user is one appservice login on the browser's device; its tokens reach the
/// browser, and a logout deletes that device once.
#[tokio::test]
async fn a_session_is_a_login_on_the_browsers_device() {
    let w = World::new("sessions").await;
    let user = "cid";
    let user_id = provisioned(&w, user).await;

    w.hs.mock_login().ok(&user_id, "WEB1").expect(1).mount().await;
    w.hs.mock_admin_devices(&user_id).ok(&user_id, &["WEB1", "OPENMEET_SERVER"]).mount().await;
    let create = request("POST", "/v1/me/matrix-session", Some(&w.user_jwt(user)), Some(json!({"deviceId": "WEB1"})));
    let (status, session) = answer(&provisioning::serve(&w.app, create).await);
    assert_eq!(status, 200, "{session} after {:?}", w.hs.calls().await);
    assert_eq!(session["matrixUserId"], user_id.as_str());
    assert_eq!(session["deviceId"], "WEB1");
    assert_eq!(session["accessToken"], "syt_bW9jaw_mockAccessToken_0000");
    assert_eq!(session["refreshToken"], "syr_bW9jaw_mockRefreshToken_0000");
    assert_eq!(session["expiresInMs"], 29993);
    let logins = w.hs.requests("POST", "/_matrix/client/v3/login").await;
    let login = body(&logins[0]);
    assert_eq!(login["type"], "m.login.application_service", "{login}");
    assert_eq!(login["device_id"], "WEB1");
    assert_eq!(login["refresh_token"], true);

    w.hs.mock_admin_delete_device(&user_id, "WEB1").ok().expect(1).mount().await;
    let delete = request("DELETE", "/v1/me/matrix-session", Some(&w.user_jwt(user)), Some(json!({"deviceId": "WEB1"})));
    let (status, reply) = answer(&provisioning::serve(&w.app, delete).await);
    assert_eq!(status, 204, "{reply} after {:?}", w.hs.calls().await);
    w.hs.verify().await;
}

/// The platform's own devices and malformed ids are refused before any homeserver call.
#[tokio::test]
async fn platform_devices_and_bad_ids_are_refused() {
    let w = World::new("sessions-bad").await;
    let jwt = w.user_jwt("dee");
    for device in ["OPENMEET_SERVER", "", "has space", "x".repeat(300).as_str()] {
        let create = request("POST", "/v1/me/matrix-session", Some(&jwt), Some(json!({"deviceId": device})));
        let (status, reply) = answer(&provisioning::serve(&w.app, create).await);
        assert_eq!(status, 400, "{device}: {reply}");
    }
    let service = request("POST", "/v1/me/matrix-session", Some(&w.service_jwt()), Some(json!({})));
    assert_eq!(answer(&provisioning::serve(&w.app, service).await).0, 403);
    assert!(w.hs.calls().await.is_empty(), "{:?}", w.hs.calls().await);
}

/// Past the cap on web devices a new session logs out the least recently used one (deleting that device once).
#[tokio::test]
async fn a_session_past_the_cap_logs_out_the_oldest_device() {
    let w = World::with("sessions-cap", &[("OPENMEET_MAX_WEB_DEVICES", "1")]).await;
    let user = "dot";
    let user_id = provisioned(&w, user).await;
    w.hs.mock_login().ok(&user_id, "WEB1").up_to_n_times(1).mount().await;
    w.hs.mock_login().ok(&user_id, "WEB2").mount().await;
    w.hs.mock_admin_delete_device(&user_id, "WEB1").ok().expect(1).mount().await;
    w.hs.mock_admin_delete_device(&user_id, "WEB2").ok().expect(0).mount().await;
    for (device, devices) in
        [("WEB1", ["WEB1", "OPENMEET_SERVER"].as_slice()), ("WEB2", &["WEB1", "WEB2", "OPENMEET_SERVER"])]
    {
        let _listed = w.hs.mock_admin_devices(&user_id).ok(&user_id, devices).mount_as_scoped().await;
        let create =
            request("POST", "/v1/me/matrix-session", Some(&w.user_jwt(user)), Some(json!({"deviceId": device})));
        let (status, session) = answer(&provisioning::serve(&w.app, create).await);
        assert_eq!(status, 200, "{device}: {session} after {:?}", w.hs.calls().await);
    }
    w.hs.verify().await;
}
