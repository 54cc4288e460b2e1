//! Browser sessions against the real homeserver: tokens expire and renew, DELETE ends every token of a device, the
//! web device cap logs out the least recently used, the scheduled sweep logs out idle devices. Homeserver-side
//! checks call Synapse directly with the browser's token, never through the API.

use std::time::Duration;

use integration_tests::{Stack, encode_path, record_secret, repo_root, stack, unique};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TENANT: &str = "it-sessions";

/// A session straight from the API (not [`Stack::session`], whose tokens the harness refreshes by itself).
async fn open_session(s: &Stack, tenant: &str, user: &str, device: &str) -> Value {
    let jwt = s.user_jwt(tenant, user, None);
    let (status, session) =
        s.api(Method::POST, "/v1/me/matrix-session", Some(&jwt), Some(json!({"deviceId": device}))).await;
    assert_eq!(status, 200, "{session}");
    for token in ["accessToken", "refreshToken"] {
        record_secret(session[token].as_str().unwrap_or_else(|| panic!("{token} in {session}")));
    }
    session
}

async fn whoami(s: &Stack, token: &str) -> (StatusCode, Value) {
    s.matrix_raw(Method::GET, "/_matrix/client/v3/account/whoami", token, None).await
}

async fn refresh(s: &Stack, refresh_token: &str) -> (StatusCode, Value) {
    let response = s
        .http
        .post(format!("{}/_matrix/client/v3/refresh", s.homeserver))
        .json(&json!({"refresh_token": refresh_token}))
        .send()
        .await
        .expect("the homeserver answers");
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    for token in ["access_token", "refresh_token"] {
        if let Some(token) = body[token].as_str() {
            record_secret(token);
        }
    }
    (status, body)
}

fn token(value: &Value, field: &str) -> String {
    value[field].as_str().unwrap_or_else(|| panic!("{field} in {value}")).to_owned()
}

#[tokio::test]
async fn a_session_token_expires_and_a_refresh_renews_it() {
    let s = stack();
    let user = unique("exp");
    let session = open_session(s, TENANT, &user, "EXPIRING").await;
    let expires_in_ms = session["expiresInMs"].as_u64().expect("expiresInMs");
    assert!(expires_in_ms > 0, "{session}");
    let access = token(&session, "accessToken");
    assert_eq!(whoami(s, &access).await.0, 200);

    // Wait out the token's own lifetime (the local stack sets it short: MATRIX_SESSION_LIFETIME).
    tokio::time::sleep(Duration::from_millis(expires_in_ms + 1_500)).await;
    let (status, expired) = whoami(s, &access).await;
    assert_eq!(
        (status.as_u16(), &expired["errcode"], &expired["soft_logout"]),
        (401, &json!("M_UNKNOWN_TOKEN"), &json!(true))
    );

    let (status, renewed) = refresh(s, &token(&session, "refreshToken")).await;
    assert_eq!(status, 200, "{renewed}");
    assert!(renewed["expires_in_ms"].as_u64().is_some(), "{renewed}");
    let (status, me) = whoami(s, &token(&renewed, "access_token")).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["device_id"], "EXPIRING", "the same device, renewed");

    // Calling the route again with the same deviceId renews too.
    let again = open_session(s, TENANT, &user, "EXPIRING").await;
    assert_eq!(whoami(s, &token(&again, "accessToken")).await.1["device_id"], "EXPIRING");
}

#[tokio::test]
async fn after_delete_every_token_of_the_device_is_refused_by_the_homeserver() {
    let s = stack();
    let user = unique("out");
    let session = open_session(s, TENANT, &user, "LEAVING").await;
    let (status, renewed) = refresh(s, &token(&session, "refreshToken")).await;
    assert_eq!(status, 200, "{renewed}");
    let tokens = [token(&session, "accessToken"), token(&renewed, "access_token")];
    for access in &tokens {
        assert_eq!(whoami(s, access).await.0, 200);
    }
    let jwt = s.user_jwt(TENANT, &user, None);
    let (status, body) =
        s.api(Method::DELETE, "/v1/me/matrix-session", Some(&jwt), Some(json!({"deviceId": "LEAVING"}))).await;
    assert_eq!(status, 204, "{body}");
    for access in &tokens {
        let (status, refused) = whoami(s, access).await;
        assert_eq!((status.as_u16(), &refused["soft_logout"]), (401, &json!(false)), "{refused}");
    }
    assert_eq!(refresh(s, &token(&renewed, "refresh_token")).await.0, 401, "the refresh token died with the device");
}

#[tokio::test]
async fn device_ids_outside_the_contract_are_400_and_change_nothing() {
    let s = stack();
    let user = unique("bad");
    let jwt = s.user_jwt(TENANT, &user, None);
    let long = "a".repeat(65);
    for device in ["..", "a.b", "", "a b", "a/b", long.as_str()] {
        for method in [Method::POST, Method::DELETE] {
            let (status, body) =
                s.api(method.clone(), "/v1/me/matrix-session", Some(&jwt), Some(json!({"deviceId": device}))).await;
            assert_eq!(
                (status.as_u16(), body["error"]["code"].as_str()),
                (400, Some("invalid_body")),
                "{method} {device:?}"
            );
        }
    }
    let (status, _) = s.api(Method::GET, &format!("/v1/users/{user}"), Some(&s.service_jwt(TENANT)), None).await;
    assert_eq!(status, 404, "a refused session provisioned the user");
}

async fn web_devices(s: &Stack, user: &str) -> Vec<String> {
    let matrix_id = s.matrix_user_id(TENANT, user);
    let (status, listed) = s
        .matrix(Method::GET, &format!("/_synapse/admin/v2/users/{}/devices", encode_path(&matrix_id)), None, None)
        .await;
    assert_eq!(status, 200, "{listed}");
    let mut ids: Vec<String> = listed["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .filter_map(|d| d["device_id"].as_str())
        .filter(|id| *id != "OPENMEET_SERVER")
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn the_web_device_cap_logs_out_the_least_recently_used() {
    let s = stack();
    let cap: usize = s.var("OPENMEET_MAX_WEB_DEVICES").parse().expect("cap");
    let user = unique("cap");
    let mut sessions = Vec::new();
    for n in 0..cap {
        sessions.push(token(&open_session(s, TENANT, &user, &format!("D{n:02}")).await, "accessToken"));
    }
    // D00 is the oldest issued but used since: D01 is now the least recently used.
    assert_eq!(whoami(s, &sessions[0]).await.0, 200);
    let newest = open_session(s, TENANT, &user, "NEWEST").await;

    let devices = web_devices(s, &user).await;
    assert_eq!(devices.len(), cap, "{devices:?}");
    assert!(!devices.contains(&"D01".to_owned()), "{devices:?}");
    assert_eq!(whoami(s, &sessions[1]).await.0, 401, "the least recently used device was logged out");
    assert_eq!(whoami(s, &sessions[0]).await.0, 200, "a device in use stays");
    assert_eq!(whoami(s, &token(&newest, "accessToken")).await.0, 200);
}

/// Runs the scheduled sweep once, for one tenant, with the given idle period.
fn sweep(s: &Stack, tenant: &str, idle_secs: u64) -> String {
    let output = std::process::Command::new(repo_root().join("target/debug/openmeet-local"))
        .args(["ops", "sweep-sessions", tenant])
        .envs(s.env.iter())
        .env("OPENMEET_SESSION_IDLE_SECS", idle_secs.to_string())
        .env("RUST_LOG", "warn")
        .output()
        .expect("the stack's openmeet-local binary (built by scripts/stack.sh start)");
    assert!(output.status.success(), "sweep: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn the_sweep_logs_out_idle_devices() {
    let s = stack();
    // A tenant of its own: the sweep below logs out everything of it idle for a second.
    let tenant = format!("sw-{}", &unique("t")[2..]);
    let user = unique("idle");
    let session = open_session(s, &tenant, &user, "IDLE").await;
    let access = token(&session, "accessToken");

    let report = sweep(s, &tenant, 3600);
    assert!(report.contains("logged out 0"), "{report}");
    assert_eq!(whoami(s, &access).await.0, 200, "a device used within the idle period stays");

    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = sweep(s, &tenant, 1);
    assert!(report.contains("logged out 1"), "{report}");
    assert_eq!(whoami(s, &access).await.0, 401, "the idle device was logged out");
    assert!(sweep(s, &tenant, 1).contains("checked 0"), "its index entry is gone too");
}
