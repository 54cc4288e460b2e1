//! What the in-process modules share: the functions' `App` built on a mock homeserver and the AWS emulator, a
//! queue of its own per test, API requests as the functions receive them, and the homeserver of a provisioned
//! user and of a group's room.

use std::collections::HashMap;

use integration_tests::mock_homeserver::MockHomeserver;
use integration_tests::{stack, unique};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use shared::App;

/// One test's world: its tenant, its mock homeserver and the functions' clients talking to it.
pub struct World {
    pub hs: MockHomeserver,
    pub app: App,
    pub tenant: String,
    pub queue_url: String,
    pub sqs: aws_sdk_sqs::Client,
}

impl World {
    /// A fresh tenant, homeserver and FIFO queue. The circuit never opens: tests make the homeserver fail.
    pub async fn new(name: &str) -> World {
        World::with(name, &[]).await
    }

    /// [`World::new`] with more configuration (`MATRIX_REQUEST_TIMEOUT_MS`, say).
    pub async fn with(name: &str, settings: &[(&'static str, &str)]) -> World {
        let s = stack();
        let hs = MockHomeserver::start(s.var("MATRIX_AS_TOKEN")).await;
        let sqs = aws_sdk_sqs::Client::new(&s.aws().await);
        let queue_name = format!("{}.fifo", unique(&format!("inproc-{name}")));
        let created = sqs
            .create_queue()
            .queue_name(&queue_name)
            .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
            .send()
            .await
            .expect("creating a queue on the AWS emulator (is the local stack running?)");
        let queue_url = created.queue_url.expect("a queue URL");
        let overrides = HashMap::from([
            ("MATRIX_HOMESERVER_URL", hs.uri()),
            ("MATRIX_CIRCUIT_THRESHOLD", "1000".to_owned()),
            ("OPENMEET_QUEUE_NAME", queue_name),
            ("OPENMEET_QUEUE_URL", String::new()),
        ]);
        let mut overrides = overrides;
        overrides.extend(settings.iter().map(|(name, value)| (*name, value.to_string())));
        let config = shared::config::Config::from_lookup(|name| {
            overrides.get(name).cloned().or_else(|| s.env.get(name).cloned()).filter(|v| !v.is_empty())
        })
        .expect("configuration from stack.env");
        let app = App::new(config, &s.aws().await).await.expect("the functions' clients");
        World { hs, app, tenant: unique("inp"), queue_url, sqs }
    }

    pub fn service_jwt(&self) -> String {
        stack().service_jwt(&self.tenant)
    }

    pub fn user_jwt(&self, user: &str) -> String {
        stack().user_jwt(&self.tenant, user, None)
    }

    pub fn mxid(&self, user: &str) -> String {
        stack().matrix_user_id(&self.tenant, user)
    }

    /// `#{prefix}{tenant}.{rest}:localhost`.
    pub fn alias(&self, rest: &str) -> String {
        format!("#{}{}.{rest}:localhost", stack().var("MATRIX_USER_PREFIX"), self.tenant)
    }

    /// The homeserver of a user the platform provisioned before: registered, in the tenant's space.
    pub async fn known_user(&self, user: &str, space_id: &str) {
        let user_id = self.mxid(user);
        self.hs.mock_admin_user(&user_id).ok(&user_id, user).mount().await;
        self.hs.mock_resolve_alias(&self.alias("tenant")).ok(space_id).mount().await;
        self.hs.mock_state_event(space_id, "m.room.member", &user_id).ok(json!({"membership": "join"})).mount().await;
    }

    /// The homeserver of a group's active room: its alias resolves to `room_id`, its lifecycle is active.
    pub async fn active_room(&self, slug: &str, room_id: &str) {
        self.hs.mock_resolve_alias(&self.alias(&format!("group.{slug}"))).ok(room_id).mount().await;
        self.hs.mock_state_event(room_id, "org.openmeet.room", "").ok(json!({"state": "active"})).mount().await;
    }

    /// Every operation record queued so far (polled: the emulator hands FIFO records out in batches).
    pub async fn queued(&self, expected: usize) -> Vec<aws_sdk_sqs::types::Message> {
        let mut records = Vec::new();
        for _ in 0..5 {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .send()
                .await
                .expect("receiving from the emulator");
            records.extend(received.messages.unwrap_or_default());
            if records.len() >= expected {
                break;
            }
        }
        records
    }
}

/// An API request as API Gateway hands it to a function.
pub fn request(verb: &str, path: &str, jwt: Option<&str>, body: Option<Value>) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method(verb)
        .uri(format!("https://api.openmeet.test{path}"))
        .header("content-type", "application/json");
    if let Some(jwt) = jwt {
        builder = builder.header("authorization", format!("Bearer {jwt}"));
    }
    let body = body.map(|b| Body::Text(b.to_string())).unwrap_or(Body::Empty);
    builder.body(body).expect("a request")
}

/// The status and JSON body of an answer (Null when empty).
pub fn answer(response: &Response<Body>) -> (u16, Value) {
    let body = match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        Body::Binary(bytes) => serde_json::from_slice(bytes).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (response.status().as_u16(), body)
}

/// A room id as Synapse 1.163 makes them (version 12: no server name).
pub fn room_id(prefix: &str) -> String {
    format!("!{}", unique(prefix).replace('-', ""))
}

/// The JSON body of a recorded request.
pub fn body(request: &wiremock::Request) -> Value {
    serde_json::from_slice(&request.body).unwrap_or(Value::Null)
}

/// The request with one more header.
pub fn with_header(request: Request, name: &'static str, value: &str) -> Request {
    let (mut parts, body) = request.into_parts();
    parts.headers.insert(name, value.parse().expect("a header value"));
    Request::from_parts(parts, body)
}
