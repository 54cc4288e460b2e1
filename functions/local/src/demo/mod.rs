//! The demo, served by the local gateway only: the example chat page (web.rs) and this local-only demo sign-in, in
//! which a person picks a demo user and gets that user's JWT.
//! It exists only in this binary (never in the Lambda functions): in production OpenMeet's own login mints JWTs.
//!
//! Minting a token first ensures the tenant's demo world through the ordinary API routes, as OpenMeet's backend
//! would: three users, a group room (and its space), an event room of that group, and their memberships.
//!
//! It answers only a loopback peer that names a loopback host: a page on another site could otherwise make the
//! person's browser mint tokens for it, through a DNS name it re-points at 127.0.0.1 (DNS rebinding), and anyone
//! who reaches a gateway listening beyond loopback could sign in as anyone.

pub mod web;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::App;
use shared::identity::TenantId;
use tokio::sync::Mutex;

pub const DEFAULT_TENANT: &str = "demo";
pub const GROUP: &str = "riverside-hikers";
pub const EVENT: &str = "sunday-ridge-walk";
/// (userId, display name, group role, event role)
pub const USERS: [(&str, &str, &str, &str); 3] = [
    ("alice", "Alice Adams", "owner", "owner"),
    ("bob", "Bob Baker", "member", "member"),
    ("carol", "Carol Chen", "moderator", "member"),
];
const USER_TOKEN_TTL_S: u64 = 12 * 3600;
const SERVICE_SUBJECT: &str = "openmeet-demo";

pub struct Demo {
    app: Arc<App>,
    /// Tenants whose demo world this process has already ensured.
    seeded: Mutex<HashSet<String>>,
}

impl Demo {
    pub fn new(app: Arc<App>) -> Self {
        Demo { app, seeded: Mutex::new(HashSet::new()) }
    }
}

pub fn router<S: Clone + Send + Sync + 'static>(demo: Arc<Demo>) -> axum::Router<S> {
    axum::Router::new()
        .route("/local/demo/users", axum::routing::get(users))
        .route("/local/demo/token", axum::routing::post(token))
        .with_state(demo)
        .layer(axum::middleware::from_fn(loopback_only))
}

/// `403` unless the peer is a loopback address and the `Host` header names a loopback host (a missing peer
/// address, as when the router is served without connect info, is refused too).
async fn loopback_only(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let peer = request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|info| info.0.ip());
    let host = request.headers().get(http::header::HOST).and_then(|value| value.to_str().ok());
    if peer.is_some_and(|ip| ip.is_loopback()) && host.is_some_and(is_loopback_host) {
        return next.run(request).await;
    }
    tracing::warn!(?peer, "demo sign-in refused: not a loopback peer and host");
    error(StatusCode::FORBIDDEN, "forbidden", "the demo sign-in answers only on this machine (localhost, 127.0.0.1)")
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map(|(inside, _)| inside).unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, port)| if port.is_empty() { "" } else { name }),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

async fn users() -> Response {
    let users: Vec<Value> = USERS.iter().map(|(id, name, _, _)| json!({"userId": id, "displayName": name})).collect();
    reply(StatusCode::OK, &json!({"tenant": DEFAULT_TENANT, "users": users}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TokenInput {
    user_id: String,
    tenant: Option<String>,
}

async fn token(State(demo): State<Arc<Demo>>, body: axum::body::Bytes) -> Response {
    let Ok(input) = serde_json::from_slice::<TokenInput>(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_body", "body must be {\"userId\", \"tenant\"?}");
    };
    let Some(&(user, name, _, _)) = USERS.iter().find(|(id, ..)| *id == input.user_id) else {
        return error(StatusCode::NOT_FOUND, "not_found", "not a demo user (alice, bob or carol)");
    };
    let tenant = input.tenant.unwrap_or_else(|| DEFAULT_TENANT.to_owned());
    if TenantId::parse(&tenant).is_err() {
        return error(StatusCode::BAD_REQUEST, "invalid_parameter", "tenant must be 1-32 characters of [a-z0-9_-]");
    }
    let Ok(secret) = std::env::var("OPENMEET_JWT_SECRET") else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "OPENMEET_JWT_SECRET is not set");
    };
    if let Err(message) = ensure_world(&demo, &tenant, &secret).await {
        tracing::warn!(%tenant, %message, "demo world could not be ensured");
        return error(StatusCode::BAD_GATEWAY, "homeserver_error", &message);
    }
    let expires_at = now() + USER_TOKEN_TTL_S;
    match mint(&secret, user, &tenant, "user", Some(name), expires_at) {
        Ok(token) => reply(
            StatusCode::OK,
            &json!({"token": token, "tenant": tenant, "userId": user, "displayName": name, "expiresAt": expires_at}),
        ),
        Err(message) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", &message),
    }
}

/// Once per tenant and process; every call is an idempotent API write, so a half-done world is finished later.
async fn ensure_world(demo: &Demo, tenant: &str, secret: &str) -> Result<(), String> {
    let mut seeded = demo.seeded.lock().await;
    if seeded.contains(tenant) {
        return Ok(());
    }
    let service = mint(secret, SERVICE_SUBJECT, tenant, "service", None, now() + 300)?;
    for (user, name, _, _) in USERS {
        put(demo, &service, &format!("/v1/users/{user}"), json!({"displayName": name})).await?;
    }
    let group =
        json!({"name": "Riverside Hikers", "topic": "Walks along the river, every weekend", "visibility": "public"});
    put(demo, &service, &format!("/v1/groups/{GROUP}/room"), group).await?;
    let event = json!({
        "name": "Sunday ridge walk", "topic": "Meet at the bridge; bring water", "startsAt": "2030-06-02T09:00:00Z",
        "location": "North bridge", "groupSlug": GROUP, "visibility": "public",
    });
    put(demo, &service, &format!("/v1/events/{EVENT}/room"), event).await?;
    let members = |event: bool| {
        let list: Vec<Value> = USERS
            .iter()
            .map(|(id, _, group_role, event_role)| json!({"userId": id, "role": if event { event_role } else { group_role }}))
            .collect();
        json!({ "members": list })
    };
    put(demo, &service, &format!("/v1/groups/{GROUP}/members"), members(false)).await?;
    put(demo, &service, &format!("/v1/events/{EVENT}/members"), members(true)).await?;
    seeded.insert(tenant.to_owned());
    Ok(())
}

async fn put(demo: &Demo, token: &str, path: &str, body: Value) -> Result<(), String> {
    let request = http::Request::builder()
        .method("PUT")
        .uri(path)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(lambda_http::Body::Text(body.to_string()))
        .map_err(|e| e.to_string())?;
    let response = crate::gateway::call(&demo.app, request).await;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let detail = match response.body() {
        lambda_http::Body::Text(text) => text.clone(),
        lambda_http::Body::Binary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    };
    Err(format!("PUT {path} answered {status}: {detail}"))
}

fn mint(secret: &str, sub: &str, tenant: &str, role: &str, name: Option<&str>, exp: u64) -> Result<String, String> {
    let mut claims = json!({"sub": sub, "tenant": tenant, "role": role, "iat": now(), "exp": exp});
    if let Some(name) = name {
        claims["name"] = json!(name);
    }
    encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).map_err(|e| e.to_string())
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message, "retryable": status.is_server_error()}});
    reply(status, &body)
}

fn reply(status: StatusCode, body: &Value) -> Response {
    let mut response = Response::new(axum::body::Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    // A token must not be cached anywhere.
    response.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_pass() {
        for good in [
            "localhost",
            "localhost:3000",
            "LOCALHOST:3000",
            "127.0.0.1",
            "127.0.0.1:3000",
            "127.9.9.9:1",
            "[::1]:3000",
        ] {
            assert!(is_loopback_host(good), "{good}");
        }
        for bad in [
            "evil.example",
            "evil.example:3000",
            "localhost.evil.example",
            "10.0.0.1:3000",
            "0.0.0.0:3000",
            "",
            "127.0.0.1.nip.io",
            "[::2]:3000",
            "localhost:",
            "[::1",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
