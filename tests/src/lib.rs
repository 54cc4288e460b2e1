//! Harness for the integration tests: the running local stack (`scripts/stack.sh start`), described by
//! `.local/stack.env`. A missing stack fails the tests; it never skips them.

use std::collections::HashMap;
use std::io::Write;
use std::sync::OnceLock;

use jsonwebtoken::{EncodingKey, Header, encode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub mod cutover_cli;
pub mod fault;
pub mod mock_homeserver;

pub struct Stack {
    pub env: HashMap<String, String>,
    pub api: String,
    pub homeserver: String,
    pub http: reqwest::Client,
}

pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The running stack. Panics with instructions when it is not running: a missing service is a failure.
pub fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        // OPENMEET_STACK_ENV points at another stack description (a second gateway on another port, say).
        let path = std::env::var("OPENMEET_STACK_ENV")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| repo_root().join(".local/stack.env"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{} is missing ({e}): start the stack with `scripts/stack.sh start` (the test command does)",
                path.display()
            )
        });
        let env: HashMap<String, String> = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let api = format!("http://{}", env.get("OPENMEET_LISTEN").map(String::as_str).unwrap_or("127.0.0.1:3000"));
        let homeserver = env.get("MATRIX_HOMESERVER_URL").cloned().unwrap_or_else(|| "http://127.0.0.1:8008".into());
        // Each #[tokio::test] has its own runtime: pooled connections must not outlive the runtime that made them.
        let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("HTTP client");
        Stack { env, api, homeserver, http }
    })
}

/// A unique suffix so tests never share users or rooms, across runs too.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Stack {
    pub fn var(&self, name: &str) -> &str {
        self.env.get(name).map(String::as_str).unwrap_or_else(|| panic!("{name} missing from stack.env"))
    }

    /// AWS SDK configuration for the emulator the stack runs.
    pub async fn aws(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(self.var("AWS_ENDPOINT_URL"))
            .region(aws_config::Region::new(self.var("AWS_REGION").to_owned()))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("local", "local", None, None, "tests"))
            .load()
            .await
    }

    pub fn jwt_with(&self, claims: Value) -> String {
        let secret = self.var("OPENMEET_JWT_SECRET");
        let token =
            encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).expect("claims encode");
        record_secret(&token);
        token
    }

    pub fn service_jwt(&self, tenant: &str) -> String {
        self.jwt_with(json!({"sub": "openmeet-api", "tenant": tenant, "role": "service", "exp": now() + 600}))
    }

    pub fn user_jwt(&self, tenant: &str, user: &str, name: Option<&str>) -> String {
        let mut claims = json!({"sub": user, "tenant": tenant, "role": "user", "exp": now() + 600});
        if let Some(name) = name {
            claims["name"] = json!(name);
        }
        self.jwt_with(claims)
    }

    /// Calls the API through the local gateway; returns status and JSON body (Null when empty).
    pub async fn api(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.request(&self.api, method, path, token, &[], body).await
    }

    /// How many homeserver calls the gateway logged for one request (its `x-request-id`): a structural measure of
    /// the work a request did, independent of the machine's speed.
    pub fn homeserver_calls(&self, request_id: &str) -> usize {
        let log = std::path::PathBuf::from(self.var("STACK_LOG_DIR")).join("gateway.log");
        let text = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let marker = format!("\"request_id\":\"{request_id}\"");
        text.lines().filter(|line| line.contains(&marker) && line.contains("\"homeserver call\"")).count()
    }

    /// Calls an API (this stack's, or another gateway's at `base`) with extra headers.
    pub async fn call(
        &self,
        base: &str,
        method: Method,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.request(base, method, path, Some(token), headers, body).await
    }

    async fn request(
        &self,
        base: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request, base).await
    }

    /// Calls the homeserver directly with the given token (the platform's appservice token by default). A browser
    /// session's token (from [`Stack::session`]) is refreshed when it has expired, as a Matrix client does.
    pub async fn matrix(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let Some(held) = token else {
            return self.matrix_raw(method, path, self.var("MATRIX_AS_TOKEN"), body).await;
        };
        let current = refreshed_token(held);
        let (status, value) = self.matrix_raw(method.clone(), path, &current, body.clone()).await;
        if status == StatusCode::UNAUTHORIZED && value["soft_logout"] == true && self.refresh_session(held).await {
            return self.matrix_raw(method, path, &refreshed_token(held), body).await;
        }
        (status, value)
    }

    /// Calls the homeserver directly with exactly this token (never refreshed).
    pub async fn matrix_raw(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.homeserver)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("the homeserver is not answering: {e}"));
        let status = response.status();
        let value = response.json::<Value>().await.unwrap_or(Value::Null);
        (status, value)
    }

    /// Renews a session token held by a test with its refresh token (`POST /refresh`); `false` if it cannot be.
    async fn refresh_session(&self, held: &str) -> bool {
        let Some(refresh) = sessions().lock().ok().and_then(|map| map.get(held).map(|(_, refresh)| refresh.clone()))
        else {
            return false;
        };
        let response = self
            .http
            .post(format!("{}/_matrix/client/v3/refresh", self.homeserver))
            .json(&json!({"refresh_token": refresh}))
            .send()
            .await;
        let Ok(response) = response else { return false };
        let Ok(body) = response.json::<Value>().await else { return false };
        let (Some(access), Some(refresh)) = (body["access_token"].as_str(), body["refresh_token"].as_str()) else {
            return false;
        };
        record_secret(access);
        record_secret(refresh);
        if let Ok(mut map) = sessions().lock() {
            map.insert(held.to_owned(), (access.to_owned(), refresh.to_owned()));
        }
        true
    }

    /// Bodies of a room's text messages (the last 500), oldest first, read with `token` (the platform's by default).
    pub async fn text_bodies(&self, room_id: &str, token: Option<&str>) -> Vec<String> {
        let path = format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=500", encode_path(room_id));
        let (status, page) = self.matrix(Method::GET, &path, token, None).await;
        assert_eq!(status, 200, "{page}");
        let mut bodies: Vec<String> = page["chunk"]
            .as_array()
            .expect("chunk")
            .iter()
            .filter(|e| e["type"] == "m.room.message" && e["content"]["msgtype"] == "m.text")
            .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
            .collect();
        bodies.reverse();
        bodies
    }

    pub fn matrix_user_id(&self, tenant: &str, user: &str) -> String {
        format!("@{}{tenant}.{user}:{}", self.var("MATRIX_USER_PREFIX"), self.var("MATRIX_SERVER_NAME"))
    }

    /// Provisions a user through the API and returns its Matrix id.
    pub async fn provision(&self, tenant: &str, user: &str, name: &str) -> String {
        let (status, body) = self
            .api(
                Method::PUT,
                &format!("/v1/users/{user}"),
                Some(&self.service_jwt(tenant)),
                Some(json!({"displayName": name})),
            )
            .await;
        assert!(status == 201 || status == 200, "provisioning {user}: {status} {body}");
        body["matrixUserId"].as_str().expect("matrixUserId").to_owned()
    }

    /// Creates a private group room `slug` in `tenant` and adds each user as a member (provisioned on the way);
    /// returns the room id.
    pub async fn group_room(&self, tenant: &str, slug: &str, members: &[&str]) -> String {
        let service = self.service_jwt(tenant);
        let body = json!({"name": format!("Room {slug}"), "visibility": "private"});
        let (status, room) =
            self.api(Method::PUT, &format!("/v1/groups/{slug}/room"), Some(&service), Some(body)).await;
        assert_eq!(status, 201, "creating {slug}: {room}");
        for member in members {
            let path = format!("/v1/groups/{slug}/members/{member}");
            let (status, body) = self.api(Method::PUT, &path, Some(&service), Some(json!({"role": "member"}))).await;
            assert_eq!(status, 200, "adding {member}: {body}");
        }
        room["roomId"].as_str().expect("roomId").to_owned()
    }

    /// Opens a browser session for a user and returns (accessToken, deviceId).
    pub async fn session(&self, tenant: &str, user: &str, device: Option<&str>) -> (String, String) {
        let body = device.map(|d| json!({"deviceId": d})).unwrap_or(json!({}));
        let (status, session) =
            self.api(Method::POST, "/v1/me/matrix-session", Some(&self.user_jwt(tenant, user, None)), Some(body)).await;
        assert_eq!(status, 200, "session for {user}: {session}");
        let token = remember_session(&session);
        (token, session["deviceId"].as_str().expect("deviceId").to_owned())
    }
}

/// Remembers a `POST /v1/me/matrix-session` answer so that [`Stack::matrix`] renews its token once it expires, as a
/// Matrix client does; returns the access token.
pub fn remember_session(session: &Value) -> String {
    let token = session["accessToken"].as_str().expect("accessToken").to_owned();
    let refresh = session["refreshToken"].as_str().expect("refreshToken").to_owned();
    record_secret(&token);
    record_secret(&refresh);
    if let Ok(mut map) = sessions().lock() {
        map.insert(token.clone(), (token.clone(), refresh));
    }
    token
}

/// Session tokens handed out by [`Stack::session`]: the token a test holds → (its current renewal, refresh token).
fn sessions() -> &'static std::sync::Mutex<HashMap<String, (String, String)>> {
    static SESSIONS: OnceLock<std::sync::Mutex<HashMap<String, (String, String)>>> = OnceLock::new();
    SESSIONS.get_or_init(Default::default)
}

fn refreshed_token(held: &str) -> String {
    sessions()
        .lock()
        .ok()
        .and_then(|map| map.get(held).map(|(current, _)| current.clone()))
        .unwrap_or_else(|| held.to_owned())
}

/// Sends an API request; returns status and JSON body (Null when empty, the text when not JSON).
async fn answer(request: reqwest::RequestBuilder, base: &str) -> (StatusCode, Value) {
    let response = request.send().await.unwrap_or_else(|e| panic!("the gateway at {base} is not answering: {e}"));
    let status = response.status();
    let text = response.text().await.expect("response body");
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
}

pub fn encode_path(segment: &str) -> String {
    url_encode(segment)
}

fn url_encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Remembers a secret the tests handled, for the log scan that runs after every other test.
pub fn record_secret(secret: &str) {
    let path = repo_root().join(".local/secrets-seen.txt");
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(file, "{secret}");
    }
}
