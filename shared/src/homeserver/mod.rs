//! The homeserver client: Matrix client-server and Synapse admin endpoints over one `reqwest` client.
//!
//! Typed client-server calls go through `ruma` request/response types ([`Homeserver::send`]); Synapse's admin API,
//! which ruma does not model, goes through [`Homeserver::admin`] with JSON bodies. Every answer is classified
//! once, here, into transient (retry later), rate-limited, unknown token (re-mint), or permanently rejected.

pub mod admin_rooms;
mod circuit;
mod error;
mod history;
mod ops;
pub mod timeline;

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ruma::api::auth_scheme::{AuthScheme, SendAccessToken};
use ruma::api::path_builder::VersionHistory;
use ruma::api::{
    AppserviceUserIdentity, IncomingResponse, MatrixVersion, OutgoingRequest, OutgoingRequestAppserviceExt,
    SupportedVersions,
};
use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, UserId};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::token::AccessToken;
pub use circuit::{CircuitBreaker, CircuitState};
pub use error::HomeserverError;
pub use ops::{
    AdminDevice, AdminRoom, AdminRoomsPage, AdminUser, HttpPusher, MemberAction, PusherEntry, RoomMember, RoomRule,
    RoomState, StateEntry, Visibility,
};
pub(crate) use ops::{event_id, room_id, user_id};
pub use timeline::{MessageContent, TimelineEvent};

/// How long the one probe of a half-open circuit may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Who a request acts as.
#[derive(Clone, Copy)]
pub enum Acting<'a> {
    /// The platform's own user: the appservice sender, a server admin.
    Platform,
    /// An appservice-namespaced user, asserted with the appservice token (identity assertion).
    Masquerade { user: &'a UserId, device: Option<&'a DeviceId> },
    /// A user, as the platform acts for them: the appservice asserting the user on one of their devices (see
    /// `crate::credentials`).
    User(&'a UserDevice),
}

/// A user and one of their devices, for appservice identity assertion (`?user_id=…&device_id=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDevice {
    pub user: OwnedUserId,
    pub device: OwnedDeviceId,
}

/// Configuration of the homeserver connection.
#[derive(Clone)]
pub struct HomeserverConfig {
    pub base_url: url::Url,
    pub server_name: String,
    pub appservice_token: AccessToken,
    pub request_timeout: Duration,
    /// Consecutive transient failures that open the circuit, and how long it stays open.
    pub circuit_threshold: u32,
    pub circuit_cool_down: Duration,
}

/// A cheap-to-clone handle; built once per container.
#[derive(Clone)]
pub struct Homeserver {
    http: reqwest::Client,
    base_url: String,
    server_name: String,
    appservice_token: AccessToken,
    versions: SupportedVersions,
    circuit: std::sync::Arc<CircuitBreaker>,
    request_timeout: Duration,
}

impl Homeserver {
    pub fn new(config: HomeserverConfig) -> Result<Self, HomeserverError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(config.request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("openmeet-matrix/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HomeserverError::Transient { detail: format!("building HTTP client: {e}") })?;
        Ok(Homeserver {
            http,
            base_url: config.base_url.as_str().trim_end_matches('/').to_owned(),
            server_name: config.server_name,
            appservice_token: config.appservice_token,
            versions: SupportedVersions { versions: BTreeSet::from([MatrixVersion::V1_11]), features: BTreeSet::new() },
            circuit: std::sync::Arc::new(CircuitBreaker::new(config.circuit_threshold, config.circuit_cool_down)),
            request_timeout: config.request_timeout,
        })
    }

    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn circuit_state(&self) -> CircuitState {
        self.circuit.state()
    }

    /// Sends a typed client-server request.
    pub async fn send<R>(&self, request: R, acting: Acting<'_>) -> Result<R::IncomingResponse, HomeserverError>
    where
        R: OutgoingRequest<PathBuilder = VersionHistory>,
        for<'a> R::Authentication: AuthScheme<Input<'a> = SendAccessToken<'a>>,
    {
        let (token, identity) = match acting {
            Acting::Platform => (self.appservice_token.expose(), AppserviceUserIdentity::default()),
            Acting::Masquerade { user, device } => {
                let mut identity = AppserviceUserIdentity::new(user);
                identity.device_id = device;
                (self.appservice_token.expose(), identity)
            }
            Acting::User(UserDevice { user, device }) => {
                let mut identity = AppserviceUserIdentity::new(user);
                identity.device_id = Some(device);
                (self.appservice_token.expose(), identity)
            }
        };
        let http_request: http::Request<Vec<u8>> = request
            .try_into_http_request_with_identity(
                &self.base_url,
                SendAccessToken::Always(token),
                identity,
                Cow::Borrowed(&self.versions),
            )
            .map_err(|e| HomeserverError::InvalidResponse(format!("building request: {e}")))?;
        let (parts, body) = http_request.into_parts();
        let mut builder = self.http.request(parts.method.clone(), parts.uri.to_string()).body(body);
        for (name, value) in &parts.headers {
            builder = builder.header(name, value);
        }
        let (status, headers, bytes) = self.execute(parts.method.as_str(), parts.uri.path(), builder).await?;
        let mut response = http::Response::builder().status(status);
        if let Some(response_headers) = response.headers_mut() {
            *response_headers = headers;
        }
        let response = response.body(bytes.as_ref()).map_err(|e| HomeserverError::InvalidResponse(e.to_string()))?;
        R::IncomingResponse::try_from_http_response_inner(response)
            .map_err(|e| HomeserverError::InvalidResponse(format!("{}: {e}", parts.uri.path())))
    }

    /// Calls an endpoint ruma does not model (Synapse admin API, a few client endpoints) with a JSON body.
    /// `path` must already be percent-encoded (see [`encode`]).
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        acting: Acting<'_>,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, HomeserverError> {
        let url = format!("{}{}", self.base_url, path);
        let mut builder = self.http.request(method.clone(), &url);
        builder = self.authorise(builder, acting);
        if let Some(body) = body {
            builder = builder.json(body);
        }
        let path_only = path.split('?').next().unwrap_or(path);
        let (_, _, bytes) = self.execute(method.as_str(), path_only, builder).await?;
        let bytes = if bytes.is_empty() { bytes::Bytes::from_static(b"{}") } else { bytes };
        serde_json::from_slice(&bytes).map_err(|e| HomeserverError::InvalidResponse(format!("{path_only}: {e}")))
    }

    /// Uploads raw bytes (media) as a user.
    pub async fn upload(
        &self,
        filename: Option<&str>,
        content_type: &str,
        body: bytes::Bytes,
        acting: Acting<'_>,
    ) -> Result<String, HomeserverError> {
        let length = body.len() as u64;
        self.upload_body(filename, content_type, body.into(), length, acting).await
    }

    /// Uploads a file as a user, streamed from the file in 64 KiB reads: memory stays bounded whatever its size.
    /// `length` bytes are sent (the size checked by the caller; a file that grew is cut there).
    pub async fn upload_file(
        &self,
        filename: Option<&str>,
        content_type: &str,
        file: std::fs::File,
        length: u64,
        acting: Acting<'_>,
    ) -> Result<String, HomeserverError> {
        use tokio::io::AsyncReadExt;
        let reader = tokio::fs::File::from_std(file).take(length);
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(reader, 1 << 16));
        self.upload_body(filename, content_type, body, length, acting).await
    }

    /// `POST /_matrix/media/v3/upload` of `length` bytes; answers the stored `content_uri`.
    async fn upload_body(
        &self,
        filename: Option<&str>,
        content_type: &str,
        body: reqwest::Body,
        length: u64,
        acting: Acting<'_>,
    ) -> Result<String, HomeserverError> {
        #[derive(serde::Deserialize)]
        struct Stored {
            content_uri: String,
        }
        const PATH: &str = "/_matrix/media/v3/upload";
        let mut url = format!("{}{PATH}", self.base_url);
        if let Some(filename) = filename {
            let query = url::form_urlencoded::Serializer::new(String::new()).append_pair("filename", filename).finish();
            url = format!("{url}?{query}");
        }
        let builder = self
            .authorise(self.http.post(&url), acting)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::CONTENT_LENGTH, length)
            .body(body);
        let (_, _, bytes) = self.execute("POST", PATH, builder).await?;
        let stored: Stored =
            serde_json::from_slice(&bytes).map_err(|e| HomeserverError::InvalidResponse(e.to_string()))?;
        Ok(stored.content_uri)
    }

    /// The largest upload the media repository accepts (`m.upload.size`), if it states one.
    pub async fn upload_limit(&self) -> Result<Option<u64>, HomeserverError> {
        let config: serde_json::Value =
            self.call(reqwest::Method::GET, "/_matrix/client/v1/media/config", Acting::Platform, None::<&()>).await?;
        Ok(config.get("m.upload.size").and_then(serde_json::Value::as_u64))
    }

    /// The appservice token, with the asserted identity in the query when acting for someone.
    fn authorise(&self, builder: reqwest::RequestBuilder, acting: Acting<'_>) -> reqwest::RequestBuilder {
        let builder = builder.bearer_auth(self.appservice_token.expose());
        let (user, device) = match acting {
            Acting::Platform => return builder,
            Acting::Masquerade { user, device } => (user, device),
            Acting::User(UserDevice { user, device }) => (user.as_ref(), Some(device.as_ref())),
        };
        let mut query = vec![("user_id", user.as_str())];
        if let Some(device) = device {
            query.push(("device_id", device.as_str()));
        }
        builder.query(&query)
    }

    /// Runs a request and classifies its answer. Logs the path only: queries may carry identities or tokens.
    async fn execute(
        &self,
        method: &str,
        path: &str,
        builder: reqwest::RequestBuilder,
    ) -> Result<(http::StatusCode, http::HeaderMap, bytes::Bytes), HomeserverError> {
        // Held to the end of this call: if this future is dropped, a half-open probe frees its slot.
        let Some(permit) = self.circuit.allow() else { return Err(HomeserverError::CircuitOpen) };
        // A probe of a half-open circuit must not hold its caller for a full timeout.
        let builder =
            if permit.is_probe() { builder.timeout(PROBE_TIMEOUT.min(self.request_timeout)) } else { builder };
        let started = Instant::now();
        let outcome = builder.send().await;
        let response = match outcome {
            Ok(response) => response,
            Err(error) => {
                let detail = if error.is_timeout() {
                    "timed out"
                } else if error.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                self.circuit.record_failure();
                tracing::warn!(
                    homeserver.method = method,
                    homeserver.path = path,
                    latency_ms = started.elapsed().as_millis() as u64,
                    error = detail,
                    "homeserver call failed"
                );
                return Err(HomeserverError::Transient { detail: detail.to_owned() });
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(_) => {
                self.circuit.record_failure();
                return Err(HomeserverError::Transient { detail: "reading the response failed".into() });
            }
        };
        if opens_circuit(status) {
            self.circuit.record_failure();
        } else {
            self.circuit.record_success();
        }
        tracing::info!(
            homeserver.method = method,
            homeserver.path = path,
            homeserver.status = status.as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            "homeserver call"
        );
        if status.is_success() {
            return Ok((status, headers, bytes));
        }
        Err(HomeserverError::classify(status, &headers, &bytes))
    }
}

/// Only a server fault counts against the circuit: a 4xx (a bad token in a query, a refusal, a rate limit) means the
/// homeserver is up and answering.
fn opens_circuit(status: http::StatusCode) -> bool {
    status.is_server_error()
}

/// Percent-encodes one path segment (user ids, room ids, aliases, event ids).
pub fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>().replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_never_count_against_the_circuit() {
        for status in [400, 401, 403, 404, 409, 413, 429] {
            assert!(!opens_circuit(http::StatusCode::from_u16(status).expect("status")), "{status}");
        }
        assert!(opens_circuit(http::StatusCode::BAD_GATEWAY));
    }

    #[test]
    fn segments_are_encoded_for_paths() {
        assert_eq!(encode("@om_a.b:localhost"), "%40om_a.b%3Alocalhost");
        assert_eq!(encode("#x y"), "%23x%20y");
        assert_eq!(encode("!r/oom"), "%21r%2Foom");
    }
}
