//! A mock homeserver for in-process tests, in the spirit of matrix-rust-sdk's `MatrixMockServer`: one typed
//! endpoint per Matrix or Synapse admin call the functions make, each matching the real request (method, path,
//! the appservice token, the asserted `user_id`) and answering what Synapse 1.163 answers (the bodies below were
//! copied from the local stack's Synapse). Read as a sentence:
//!
//! ```ignore
//! hs.mock_room_send(&room).ok("$sent").expect(1).mount().await;
//! hs.mock_register().user_in_use().mount().await;
//! hs.mock_resolve_alias(&alias).not_found().mount().await;
//! ```
//!
//! Anything not mocked answers 404 with no body, which the client reads as a refusal: a test fails loudly on a
//! call it did not expect. `expect(n)` is verified when the server is dropped (or by [`MockHomeserver::verify`]).

mod answers;

pub use answers::*;

use std::marker::PhantomData;
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path_regex, query_param};
use wiremock::{Mock, MockBuilder, MockGuard, MockServer, Respond, ResponseTemplate};

/// The homeserver's `server_name` in the local stack, which the mocked answers use.
pub const SERVER_NAME: &str = "localhost";

pub struct MockHomeserver {
    server: MockServer,
    token: String,
}

impl MockHomeserver {
    /// A fresh server; requests must carry `appservice_token` as their bearer token to match.
    pub async fn start(appservice_token: &str) -> Self {
        MockHomeserver { server: MockServer::start().await, token: appservice_token.to_owned() }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    pub fn server(&self) -> &MockServer {
        &self.server
    }

    /// Every request received so far, as `METHOD path` (percent-decoded), in order: for assertion messages.
    pub async fn calls(&self) -> Vec<String> {
        let requests = self.server.received_requests().await.unwrap_or_default();
        requests.iter().map(|r| format!("{} {}", r.method, decoded(r.url.path()))).collect()
    }

    /// The requests received so far whose decoded path starts with `prefix` and whose method is `verb`.
    pub async fn requests(&self, verb: &str, prefix: &str) -> Vec<wiremock::Request> {
        let requests = self.server.received_requests().await.unwrap_or_default();
        requests
            .into_iter()
            .filter(|r| r.method.as_str() == verb && decoded(r.url.path()).starts_with(prefix))
            .collect()
    }

    /// Forgets every mock and every recorded request.
    pub async fn reset(&self) {
        self.server.reset().await;
    }

    /// Checks every `expect(n)` now (they are checked on drop too).
    pub async fn verify(&self) {
        self.server.verify().await;
    }

    fn endpoint<T>(&self, verb: &str, path: String) -> Endpoint<'_, T> {
        let mock = Mock::given(method(verb))
            .and(path_regex(path))
            .and(header("authorization", format!("Bearer {}", self.token).as_str()));
        Endpoint { server: &self.server, mock, _kind: PhantomData }
    }

    /// `POST /_matrix/client/v3/register` (appservice registration, `inhibit_login`).
    pub fn mock_register(&self) -> Endpoint<'_, Register> {
        self.endpoint("POST", r"^/_matrix/client/v3/register$".into())
    }

    /// `POST /_matrix/client/v3/login` (`m.login.application_service`, refreshable).
    pub fn mock_login(&self) -> Endpoint<'_, Login> {
        self.endpoint("POST", r"^/_matrix/client/v3/login$".into())
    }

    /// `GET /_synapse/admin/v2/users/{user_id}`.
    pub fn mock_admin_user(&self, user_id: &str) -> Endpoint<'_, AdminUser> {
        self.endpoint("GET", format!(r"^/_synapse/admin/v2/users/{}$", segment(user_id)))
    }

    /// `POST /_synapse/admin/v1/deactivate/{user_id}`.
    pub fn mock_deactivate(&self, user_id: &str) -> Endpoint<'_, Empty> {
        self.endpoint("POST", format!(r"^/_synapse/admin/v1/deactivate/{}$", segment(user_id)))
    }

    /// `GET /_synapse/admin/v2/users/{user_id}/devices`.
    pub fn mock_admin_devices(&self, user_id: &str) -> Endpoint<'_, Devices> {
        self.endpoint("GET", format!(r"^/_synapse/admin/v2/users/{}/devices$", segment(user_id)))
    }

    /// `POST /_synapse/admin/v2/users/{user_id}/devices` (creates a device; Synapse answers 201 `{}`).
    pub fn mock_admin_create_device(&self, user_id: &str) -> Endpoint<'_, Empty> {
        self.endpoint("POST", format!(r"^/_synapse/admin/v2/users/{}/devices$", segment(user_id)))
    }

    /// `DELETE /_synapse/admin/v2/users/{user_id}/devices/{device_id}`.
    pub fn mock_admin_delete_device(&self, user_id: &str, device_id: &str) -> Endpoint<'_, Empty> {
        let path = format!(r"^/_synapse/admin/v2/users/{}/devices/{}$", segment(user_id), segment(device_id));
        self.endpoint("DELETE", path)
    }

    /// `PUT /_matrix/client/v3/profile/{user_id}/{field}` as the user.
    pub fn mock_set_profile(&self, user_id: &str, field: &str) -> Endpoint<'_, Empty> {
        self.endpoint("PUT", format!(r"^/_matrix/client/v3/profile/{}/{}$", segment(user_id), segment(field)))
    }

    /// `GET /_matrix/client/v3/directory/room/{alias}`.
    pub fn mock_resolve_alias(&self, alias: &str) -> Endpoint<'_, Alias> {
        self.endpoint("GET", format!(r"^/_matrix/client/v3/directory/room/{}$", segment(alias)))
    }

    /// `POST /_matrix/client/v3/createRoom`.
    pub fn mock_create_room(&self) -> Endpoint<'_, CreateRoom> {
        self.endpoint("POST", r"^/_matrix/client/v3/createRoom$".into())
    }

    /// `GET /_matrix/client/v3/rooms/{room_id}/state` (the whole state, as events).
    pub fn mock_room_state(&self, room_id: &str) -> Endpoint<'_, RoomState> {
        self.endpoint("GET", format!(r"^/_matrix/client/v3/rooms/{}/state$", segment(room_id)))
    }

    /// `GET /_matrix/client/v3/rooms/{room_id}/state/{type}/{state_key}` (one event's content).
    pub fn mock_state_event(&self, room_id: &str, event_type: &str, state_key: &str) -> Endpoint<'_, StateContent> {
        let path = format!(
            r"^/_matrix/client/v3/rooms/{}/state/{}/?{}$",
            segment(room_id),
            segment(event_type),
            segment(state_key)
        );
        self.endpoint("GET", path)
    }

    /// `PUT /_matrix/client/v3/rooms/{room_id}/state/{type}/…` (any state key).
    pub fn mock_put_state(&self, room_id: &str, event_type: &str) -> Endpoint<'_, EventSent> {
        let path = format!(r"^/_matrix/client/v3/rooms/{}/state/{}(/.*)?$", segment(room_id), segment(event_type));
        self.endpoint("PUT", path)
    }

    /// `PUT /_matrix/client/v3/rooms/{room_id}/send/m.room.message/{txn_id}`.
    pub fn mock_room_send(&self, room_id: &str) -> Endpoint<'_, EventSent> {
        self.endpoint("PUT", format!(r"^/_matrix/client/v3/rooms/{}/send/m\.room\.message/[^/]+$", segment(room_id)))
    }

    /// `PUT /_matrix/client/v3/rooms/{room_id}/state/…` (any type and state key).
    pub fn mock_put_any_state(&self, room_id: &str) -> Endpoint<'_, EventSent> {
        self.endpoint("PUT", format!(r"^/_matrix/client/v3/rooms/{}/state/.+$", segment(room_id)))
    }

    /// `PUT /_matrix/client/v3/rooms/{room_id}/send/{event_type}/{txn_id}`.
    pub fn mock_room_send_type(&self, room_id: &str, event_type: &str) -> Endpoint<'_, EventSent> {
        let path = format!(r"^/_matrix/client/v3/rooms/{}/send/{}/[^/]+$", segment(room_id), segment(event_type));
        self.endpoint("PUT", path)
    }

    /// `GET /_matrix/client/v3/rooms/{room_id}/messages` (a page of the timeline).
    pub fn mock_room_messages(&self, room_id: &str) -> Endpoint<'_, Timeline> {
        self.endpoint("GET", format!(r"^/_matrix/client/v3/rooms/{}/messages$", segment(room_id)))
    }

    /// `GET /_matrix/client/v3/rooms/{room_id}/joined_members`.
    pub fn mock_joined_members(&self, room_id: &str) -> Endpoint<'_, JoinedMembers> {
        self.endpoint("GET", format!(r"^/_matrix/client/v3/rooms/{}/joined_members$", segment(room_id)))
    }

    /// `GET /_matrix/client/v3/rooms/{room_id}/members` (member events).
    pub fn mock_members(&self, room_id: &str) -> Endpoint<'_, Members> {
        self.endpoint("GET", format!(r"^/_matrix/client/v3/rooms/{}/members$", segment(room_id)))
    }

    /// `GET /_matrix/client/v3/directory/list/room/{room_id}`.
    pub fn mock_directory_visibility(&self, room_id: &str) -> Endpoint<'_, DirectoryVisibility> {
        self.endpoint("GET", format!(r"^/_matrix/client/v3/directory/list/room/{}$", segment(room_id)))
    }

    /// `POST /_synapse/admin/v1/join/{room_id}`.
    pub fn mock_admin_join(&self, room_id: &str) -> Endpoint<'_, Joined> {
        self.endpoint("POST", format!(r"^/_synapse/admin/v1/join/{}$", segment(room_id)))
    }

    /// `POST /_matrix/client/v3/rooms/{room_id}/kick` or `/ban`.
    pub fn mock_member_action(&self, room_id: &str, action: &str) -> Endpoint<'_, Empty> {
        self.endpoint("POST", format!(r"^/_matrix/client/v3/rooms/{}/{action}$", segment(room_id)))
    }

    /// `GET /_synapse/admin/v1/rooms/{room_id}/state`.
    pub fn mock_admin_room_state(&self, room_id: &str) -> Endpoint<'_, AdminRoomState> {
        self.endpoint("GET", format!(r"^/_synapse/admin/v1/rooms/{}/state$", segment(room_id)))
    }

    /// `GET /_synapse/admin/v1/rooms/{room_id}` (details).
    pub fn mock_admin_room_details(&self, room_id: &str) -> Endpoint<'_, AdminRoomDetails> {
        self.endpoint("GET", format!(r"^/_synapse/admin/v1/rooms/{}$", segment(room_id)))
    }
}

/// One endpoint about to be mocked; `T` names it and gives it its typed answers.
pub struct Endpoint<'a, T> {
    server: &'a MockServer,
    mock: MockBuilder,
    _kind: PhantomData<T>,
}

impl<'a, T> Endpoint<'a, T> {
    /// Only requests that assert this user (appservice `?user_id=`).
    pub fn as_user(mut self, user_id: &str) -> Self {
        self.mock = self.mock.and(query_param("user_id", user_id));
        self
    }

    /// Any answer.
    pub fn respond_with(self, responder: impl Respond + 'static) -> Mounted<'a> {
        Mounted { server: self.server, mock: self.mock.respond_with(responder) }
    }

    /// A JSON answer with this status.
    pub fn json(self, status: u16, body: Value) -> Mounted<'a> {
        self.respond_with(ResponseTemplate::new(status).set_body_json(body))
    }

    /// A Matrix error, as Synapse shapes it.
    pub fn error(self, status: u16, errcode: &str, error: &str) -> Mounted<'a> {
        self.json(status, json!({"errcode": errcode, "error": error}))
    }

    pub fn forbidden(self, error: &str) -> Mounted<'a> {
        self.error(403, "M_FORBIDDEN", error)
    }

    /// The homeserver down behind its proxy.
    pub fn outage(self) -> Mounted<'a> {
        self.respond_with(ResponseTemplate::new(502))
    }

    /// No answer within the functions' request timeout (`MATRIX_REQUEST_TIMEOUT_MS`).
    pub fn hangs(self, longer_than: Duration) -> Mounted<'a> {
        let delay = longer_than + Duration::from_millis(500);
        self.respond_with(ResponseTemplate::new(200).set_body_json(json!({})).set_delay(delay))
    }
}

/// A mocked endpoint with its answer; mount it.
pub struct Mounted<'a> {
    server: &'a MockServer,
    mock: Mock,
}

impl Mounted<'_> {
    /// Exactly `n` matching requests by the time the server is verified.
    pub fn expect(mut self, n: u64) -> Self {
        self.mock = self.mock.expect(n);
        self
    }

    /// Answers at most `n` requests; later ones fall through to the next mock.
    pub fn up_to_n_times(mut self, n: u64) -> Self {
        self.mock = self.mock.up_to_n_times(n);
        self
    }

    /// The name a failed expectation is reported by.
    pub fn named(mut self, name: &str) -> Self {
        self.mock = self.mock.named(name);
        self
    }

    pub async fn mount(self) {
        self.mock.mount(self.server).await;
    }

    /// Mounted until the guard is dropped (its expectation checked then).
    pub async fn mount_as_scoped(self) -> MockGuard {
        self.mock.mount_as_scoped(self.server).await
    }
}

/// A state event as the client-server and admin APIs return it.
pub fn state_event(room_id: &str, event_type: &str, state_key: &str, content: Value) -> Value {
    json!({
        "type": event_type, "state_key": state_key, "content": content, "room_id": room_id,
        "sender": format!("@openmeet:{SERVER_NAME}"), "origin_server_ts": 1796439573429u64,
        "event_id": format!("${}", uuid::Uuid::new_v4().simple()), "unsigned": {"age": 111},
    })
}

pub fn member_event(room_id: &str, user_id: &str, membership: &str) -> Value {
    state_event(room_id, "m.room.member", user_id, json!({"membership": membership}))
}

/// A path segment as a regular expression that matches it however its client encodes it (ruma leaves `!`, `@`
/// and `:` as they are; the admin calls percent-encode them).
pub fn segment(id: &str) -> String {
    id.chars()
        .map(|c| match c {
            '!' => "(?:!|%21)".to_owned(),
            ':' => "(?::|%3A)".to_owned(),
            '@' => "(?:@|%40)".to_owned(),
            '#' => "%23".to_owned(),
            '$' => r"(?:\$|%24)".to_owned(),
            '=' => "(?:=|%3D)".to_owned(),
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' => c.to_string(),
            c => regex_escape(c),
        })
        .collect()
}

fn regex_escape(c: char) -> String {
    if r"\.+*?()|[]{}^$/".contains(c) { format!(r"\{c}") } else { c.to_string() }
}

/// A request path with the percent-encodings of ids undone.
pub fn decoded(path: &str) -> String {
    path.replace("%21", "!")
        .replace("%3A", ":")
        .replace("%40", "@")
        .replace("%23", "#")
        .replace("%24", "$")
        .replace("%3D", "=")
}
