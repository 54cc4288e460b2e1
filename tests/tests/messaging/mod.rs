//! What the message tests share: the gateway and homeserver calls, a group room with members and their browser
//! sessions. Two test binaries include it and each uses part of it.
#![allow(dead_code)]

use integration_tests::{encode_path, remember_session, stack, unique};
use reqwest::Method;
use serde_json::{Value, json};

pub const TENANT: &str = "it-msg";

/// A 4×3 RGB PNG, valid enough for the homeserver to thumbnail.
pub const PNG: [u8; 96] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x04, 0x00, 0x00, 0x00, 0x03, 0x08, 0x02, 0x00, 0x00, 0x00, 0x3b, 0x96, 0x39, 0x91, 0x00, 0x00, 0x00, 0x27, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x0d, 0xc7, 0x31, 0x01, 0x00, 0x30, 0x0c, 0xc3, 0x30, 0xc3, 0x09, 0x88, 0x80, 0x28,
    0x9c, 0x9c, 0x86, 0xbe, 0xe9, 0x13, 0x60, 0xf0, 0x70, 0x08, 0x35, 0xf5, 0xea, 0xfa, 0x33, 0x33, 0x6f, 0x6e, 0x3e,
    0xc0, 0x3f, 0x0b, 0xa1, 0x15, 0xb6, 0x02, 0x84, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60,
    0x82,
];

thread_local! {
    /// One HTTP client per test: each `#[tokio::test]` has its own runtime (and thread), and a pooled connection
    /// made under a runtime that has ended fails the next request that picks it up.
    static CLIENT: reqwest::Client = reqwest::Client::new();
}

pub fn client() -> reqwest::Client {
    CLIENT.with(reqwest::Client::clone)
}

pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap_or_else(|e| panic!("no answer: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
}

/// Calls the API through the gateway.
pub async fn api(method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut request = client().request(method, format!("{}{path}", stack().api));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    send(request).await
}

/// Calls the homeserver directly with a member's own session (renewed by the harness once it expires).
pub async fn matrix(method: Method, path: &str, session: &str) -> (u16, Value) {
    let (status, body) = stack().matrix(method, path, Some(session), None).await;
    (status.as_u16(), body)
}

/// A group room with members, and a browser session per member for reading the homeserver directly.
pub struct Room {
    pub path: String,
    pub room_id: String,
    pub members: Vec<Member>,
}

pub struct Member {
    pub user: String,
    pub jwt: String,
    pub session: String,
}

impl Room {
    /// Creates a group room and adds each `(name, role)` as a member.
    pub async fn with(members: &[(&str, &str)]) -> Room {
        let s = stack();
        let service = s.service_jwt(TENANT);
        let slug = unique("chat");
        let room_body = json!({"name": format!("Chat {slug}"), "visibility": "public"});
        let (status, room) =
            api(Method::PUT, &format!("/v1/groups/{slug}/room"), Some(&service), Some(room_body)).await;
        assert_eq!(status, 201, "creating the room: {room}");
        let mut joined = Vec::new();
        for (name, role) in members {
            let user = unique(name);
            let profile = json!({"displayName": capitalised(name)});
            let (status, body) = api(Method::PUT, &format!("/v1/users/{user}"), Some(&service), Some(profile)).await;
            assert!(status == 201 || status == 200, "provisioning {user}: {body}");
            let member_path = format!("/v1/groups/{slug}/members/{user}");
            let (status, body) = api(Method::PUT, &member_path, Some(&service), Some(json!({"role": role}))).await;
            assert_eq!(status, 200, "adding {user}: {body}");
            let jwt = s.user_jwt(TENANT, &user, None);
            let (status, session) =
                api(Method::POST, "/v1/me/matrix-session", Some(&jwt), Some(json!({"deviceId": "TESTS"}))).await;
            assert_eq!(status, 200, "session for {user}: {session}");
            let session = remember_session(&session);
            joined.push(Member { jwt, user, session });
        }
        Room {
            path: format!("/v1/groups/{slug}"),
            room_id: room["roomId"].as_str().expect("roomId").to_owned(),
            members: joined,
        }
    }

    pub fn member(&self, index: usize) -> &Member {
        &self.members[index]
    }

    pub async fn post(&self, jwt: &str, body: Value) -> (u16, Value) {
        let (status, answer) = api(Method::POST, &format!("{}/messages", self.path), Some(jwt), Some(body)).await;
        (status, answer)
    }

    pub async fn post_ok(&self, jwt: &str, body: Value) -> String {
        let (status, answer) = self.post(jwt, body).await;
        assert_eq!(status, 201, "{answer}");
        answer["eventId"].as_str().expect("eventId").to_owned()
    }

    pub async fn list(&self, jwt: &str, query: &str) -> Value {
        let (status, page) = api(Method::GET, &format!("{}/messages{query}", self.path), Some(jwt), None).await;
        assert_eq!(status, 200, "{page}");
        page
    }

    /// The raw event, read with a member's own session.
    pub async fn raw_event(&self, session: &str, event_id: &str) -> Value {
        let path = format!("/_matrix/client/v3/rooms/{}/event/{}", encode_path(&self.room_id), encode_path(event_id));
        let (status, event) = matrix(Method::GET, &path, session).await;
        assert_eq!(status, 200, "{event}");
        event
    }

    /// Every `m.room.message` event of the room, newest first, read with a member's own session.
    pub async fn raw_messages(&self, session: &str) -> Vec<Value> {
        let filter = encode_path(&json!({"types": ["m.room.message"]}).to_string());
        let path = format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=1000&filter={filter}",
            encode_path(&self.room_id)
        );
        let (status, page) = matrix(Method::GET, &path, session).await;
        assert_eq!(status, 200, "{page}");
        page["chunk"].as_array().expect("chunk").clone()
    }
}

pub fn capitalised(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

pub fn mxid(user: &str) -> String {
    stack().matrix_user_id(TENANT, user)
}

/// No element may run script: only the Matrix-allowed tags, no event handler, no script URL.
pub fn assert_harmless(html: &str) {
    let allowed = ["p", "strong", "em", "del", "a", "code", "pre", "br", "ul", "ol", "li", "blockquote", "h1", "h2"];
    for tag in html.split('<').skip(1).map(|rest| rest.split('>').next().unwrap_or("")) {
        let name = tag.trim_start_matches('/').split([' ', '/']).next().unwrap_or("").to_lowercase();
        assert!(allowed.contains(&name.as_str()), "<{tag}> in {html}");
        let lowered = tag.to_lowercase();
        assert!(!lowered.contains(" on") && !lowered.contains("javascript:"), "<{tag}> in {html}");
        if let Some(href) = lowered.split("href=\"").nth(1) {
            assert!(href.starts_with("https://"), "<{tag}> in {html}");
        }
    }
}

pub fn find<'a>(page: &'a Value, event_id: &str) -> &'a Value {
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["eventId"] == event_id)
        .unwrap_or_else(|| panic!("{event_id} not in {page}"))
}
