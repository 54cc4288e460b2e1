//! The API side of issue 24's smaller holes, each proven against the running stack: reactions closed where posting
//! is (the tenant's space, a cancelled room) with a browser's own token; the platform's devices reserved; `nbf`
//! and the default maximum JWT lifetime checked; the local demo sign-in answering only loopback hosts.

use integration_tests::{Stack, encode_path, stack, unique};
use reqwest::Method;
use serde_json::{Value, json};

const TENANT: &str = "it-api-walls";

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

/// A raw Matrix reaction to `event_id` in `room_id`, sent with a browser session's own token.
async fn react(s: &Stack, token: &str, room_id: &str, event_id: &str, key: &str) -> (u16, Value) {
    let path = format!("/_matrix/client/v3/rooms/{}/send/m.reaction/{}", encode_path(room_id), unique("txn"));
    let content = json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}});
    let (status, body) = s.matrix(Method::PUT, &path, Some(token), Some(content)).await;
    (status.as_u16(), body)
}

/// Any event of the room, for a reaction to point at.
async fn some_event(s: &Stack, room_id: &str) -> String {
    let path = format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=1", encode_path(room_id));
    let (status, body) = s.matrix(Method::GET, &path, None, None).await;
    assert_eq!(status, 200, "{body}");
    body["chunk"][0]["event_id"].as_str().expect("an event").to_owned()
}

#[tokio::test]
async fn a_browser_token_cannot_react_in_the_tenants_space() {
    let s = stack();
    let user = unique("sue");
    s.provision(TENANT, &user, "Sue").await;
    let (token, _) = s.session(TENANT, &user, None).await;
    let alias = format!("#om_{TENANT}.tenant:{}", s.var("MATRIX_SERVER_NAME"));
    let (status, space) =
        s.matrix(Method::GET, &format!("/_matrix/client/v3/directory/room/{}", encode_path(&alias)), None, None).await;
    assert_eq!(status, 200, "{space}");
    let space_id = space["room_id"].as_str().expect("the tenant's space").to_owned();
    let event = some_event(s, &space_id).await;
    let (status, body) = react(s, &token, &space_id, &event, "👍").await;
    assert_eq!(status, 403, "a member reacted in the tenant's space: {body}");
    assert_eq!(body["errcode"], "M_FORBIDDEN", "{body}");
}

#[tokio::test]
async fn a_browser_token_cannot_react_in_a_cancelled_room_but_could_before() {
    let s = stack();
    let service = s.service_jwt(TENANT);
    let slug = unique("gala");
    let room = json!({"name": "Gala", "startsAt": "2030-12-31T20:00:00Z", "visibility": "private"});
    let (status, body) = s.api(Method::PUT, &format!("/v1/events/{slug}/room"), Some(&service), Some(room)).await;
    assert_eq!(status, 201, "{body}");
    let room_id = body["roomId"].as_str().expect("roomId").to_owned();
    let user = unique("uma");
    s.provision(TENANT, &user, "Uma").await;
    let path = format!("/v1/events/{slug}/members/{user}");
    let (status, body) = s.api(Method::PUT, &path, Some(&service), Some(json!({"role": "member"}))).await;
    assert_eq!(status, 200, "{body}");
    let (token, _) = s.session(TENANT, &user, None).await;
    let jwt = s.user_jwt(TENANT, &user, None);
    let (status, sent) = s
        .api(
            Method::POST,
            &format!("/v1/events/{slug}/messages"),
            Some(&jwt),
            Some(json!({"body": "hi", "format": "plain"})),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    let event = sent["eventId"].as_str().expect("eventId").to_owned();
    assert_eq!(react(s, &token, &room_id, &event, "👍").await.0, 200, "an active room takes reactions");

    let (status, body) = s.api(Method::POST, &format!("/v1/events/{slug}/room/cancel"), Some(&service), None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = react(s, &token, &room_id, &event, "🎉").await;
    assert_eq!(status, 403, "a member reacted in a cancelled room: {body}");
    // Nor may they take back what they said there (a redaction is a message-like event too).
    let path =
        format!("/_matrix/client/v3/rooms/{}/redact/{}/{}", encode_path(&room_id), encode_path(&event), unique("r"));
    let (status, body) = s.matrix(Method::PUT, &path, Some(&token), Some(json!({}))).await;
    assert_eq!(status.as_u16(), 403, "a member redacted in a cancelled room: {body}");
}

#[tokio::test]
async fn the_platforms_devices_cannot_be_claimed_or_deleted() {
    let s = stack();
    let user = unique("dev");
    s.provision(TENANT, &user, "Dev").await;
    let jwt = s.user_jwt(TENANT, &user, None);
    for device in ["OPENMEET_SERVER", "OPENMEET_IMPORT", "OPENMEET_PLATFORM", "openmeet_import", "OPENMEET_ANY"] {
        for method in [Method::POST, Method::DELETE] {
            let body = json!({"deviceId": device});
            let (status, answer) = s.api(method.clone(), "/v1/me/matrix-session", Some(&jwt), Some(body)).await;
            assert_eq!(
                (status.as_u16(), answer["error"]["code"].as_str()),
                (400, Some("reserved_device_id")),
                "{method} {device}: {answer}"
            );
        }
    }
}

#[tokio::test]
async fn a_jwt_not_yet_valid_or_valid_for_over_a_day_is_refused() {
    let s = stack();
    let user = unique("nbf");
    s.provision(TENANT, &user, "Nbf").await;
    let claims = |extra: Value| {
        let mut claims = json!({"sub": user, "tenant": TENANT, "role": "user", "exp": now() + 600});
        claims.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        s.jwt_with(claims)
    };
    let path = format!("/v1/users/{user}");
    let me = |jwt: String| {
        let path = path.clone();
        async move { s.api(Method::GET, &path, Some(&jwt), None).await }
    };
    let (status, body) = me(claims(json!({"nbf": now() - 5}))).await;
    assert_ne!(status.as_u16(), 401, "an already valid nbf passes: {body}");
    for (why, extra) in [
        ("nbf a minute ahead", json!({"nbf": now() + 60})),
        ("exp two days ahead", json!({"exp": now() + 2 * 86_400})),
        ("iat to exp over a day", json!({"iat": now() - 2 * 86_400, "exp": now() + 60})),
    ] {
        let (status, body) = me(claims(extra)).await;
        assert_eq!((status.as_u16(), body["error"]["code"].as_str()), (401, Some("unauthorized")), "{why}: {body}");
    }
}

#[tokio::test]
async fn the_demo_sign_in_answers_loopback_hosts_only() {
    let s = stack();
    let ask = |host: &'static str| async move {
        let response = s
            .http
            .get(format!("{}/local/demo/users", s.api))
            .header(reqwest::header::HOST, host)
            .send()
            .await
            .expect("the gateway answers");
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap_or(Value::Null))
    };
    for host in ["127.0.0.1:3000", "localhost:3000"] {
        assert_eq!(ask(host).await.0, 200, "{host}");
    }
    for host in ["evil.example", "evil.example:3000", "localhost.evil.example:3000"] {
        let (status, body) = ask(host).await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{host}: {body}");
    }
    let response = s
        .http
        .post(format!("{}/local/demo/token", s.api))
        .header(reqwest::header::HOST, "rebound.example:3000")
        .json(&json!({"userId": "alice"}))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(response.status().as_u16(), 403, "a token minted for a rebound host");
}
