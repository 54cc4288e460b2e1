//! In-process tests of the I/O paths: the functions' own code (`serve` → `http::serve` → the domain, and the retry
//! worker's `process_batch` → `operations::replay`) runs in this process against a mock homeserver (wiremock) and
//! the AWS emulator of the local stack (moto, from `.local/stack.env`: a missing stack fails these tests). Each test
//! has its own tenant and its own FIFO queue, so nothing here meets the gateway's worker or another test.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use integration_tests::{repo_root, stack, unique};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use shared::App;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

/// The functions' clients, as `main` builds them from the stack's environment, but talking to `homeserver` and
/// queueing to `queue`. The circuit never opens: the tests make the homeserver fail on purpose.
async fn app(homeserver: &MockServer, queue: &str) -> App {
    let s = stack();
    let overrides = HashMap::from([
        ("MATRIX_HOMESERVER_URL", homeserver.uri()),
        ("MATRIX_CIRCUIT_THRESHOLD", "1000".to_owned()),
        ("OPENMEET_QUEUE_NAME", queue.to_owned()),
        ("OPENMEET_QUEUE_URL", String::new()),
    ]);
    let config = shared::config::Config::from_lookup(|name| {
        overrides.get(name).cloned().or_else(|| s.env.get(name).cloned()).filter(|v| !v.is_empty())
    })
    .expect("configuration from stack.env");
    App::new(config, &s.aws().await).await.expect("the functions' clients")
}

/// A sample event of `events/` with its placeholders replaced.
fn sample(name: &str, values: &[(&str, &str)]) -> Request {
    let mut text = std::fs::read_to_string(repo_root().join(format!("events/{name}.json"))).expect("a sample event");
    for (placeholder, value) in values {
        text = text.replace(placeholder, value);
    }
    let event: ApiGatewayV2httpRequest = serde_json::from_str(&text).expect("an API Gateway v2 event");
    Request::from(LambdaRequest::ApiGatewayV2(event))
}

/// A fresh FIFO queue on the emulator; its URL.
async fn queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    let created = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("creating a queue on the AWS emulator (is the local stack running?)");
    created.queue_url.expect("a queue URL")
}

/// The sample `postMessage` event of `events/`, for `slug` and bearer `jwt`, with `body` as the request body.
fn post_message(slug: &str, jwt: &str, body: &str) -> Request {
    let sample = sample("postMessage", &[("__SLUG__", slug)]);
    let (mut parts, _) = sample.into_parts();
    let bearer = format!("Bearer {jwt}").parse().expect("a header value");
    parts.headers.insert(lambda_http::http::header::AUTHORIZATION, bearer);
    Request::from_parts(parts, Body::Text(body.to_owned()))
}

fn answer(response: &Response<Body>) -> Value {
    match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        Body::Binary(bytes) => serde_json::from_slice(bytes).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// The homeserver of one group's room: its alias resolves to `room_id` (the group's space has none) and its
/// lifecycle is active.
async fn room(server: &MockServer, slug: &str, room_id: &str) {
    Mock::given(method("GET"))
        .and(path_regex(format!(r"^/_matrix/client/v3/directory/room/.*\.group\.{slug}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"room_id": room_id, "servers": ["localhost"]})))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(format!(r"^/_matrix/client/v3/rooms/{}/state/org\.openmeet\.room", encoded(room_id))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"state": "active"})))
        .mount(server)
        .await;
}

/// A room id in a request path, however its client encodes the sigil and the colon.
fn encoded(room_id: &str) -> String {
    room_id
        .chars()
        .map(|c| match c {
            '!' => "(?:!|%21)".to_owned(),
            ':' => "(?::|%3A)".to_owned(),
            '.' => r"\.".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

fn sends_to(room_id: &str) -> wiremock::MockBuilder {
    Mock::given(method("PUT"))
        .and(path_regex(format!(r"^/_matrix/client/v3/rooms/{}/send/m\.room\.message/", encoded(room_id))))
}

fn sends_received(requests: &[wiremock::Request], room_id: &str) -> usize {
    let prefix = format!("/_matrix/client/v3/rooms/{room_id}/send/");
    let decoded = |request: &wiremock::Request| request.url.path().replace("%21", "!").replace("%3A", ":");
    requests.iter().filter(|r| r.method.as_str() == "PUT" && decoded(r).starts_with(&prefix)).count()
}

/// `http::serve` end to end in-process: refusals before any homeserver call, then a send as the member.
#[tokio::test]
async fn serve_checks_then_sends_as_the_member() {
    let server = MockServer::start().await;
    let sqs = aws_sdk_sqs::Client::new(&stack().aws().await);
    let queue_name = format!("{}.fifo", unique("inproc-serve"));
    queue(&sqs, &queue_name).await;
    let app = app(&server, &queue_name).await;
    let (tenant, user, slug, room_id) =
        (unique("inp"), unique("u"), unique("g"), format!("!{}:localhost", unique("r")));
    room(&server, &slug, &room_id).await;
    sends_to(&room_id)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"event_id": "$sent:localhost"})))
        .mount(&server)
        .await;
    let jwt = stack().user_jwt(&tenant, &user, None);

    let unauthenticated =
        messages::serve(&app, post_message(&slug, "not-a-jwt", r#"{"body":"hi","format":"plain"}"#)).await;
    assert_eq!(unauthenticated.status(), 401, "{}", answer(&unauthenticated));
    let malformed = messages::serve(&app, post_message(&slug, &jwt, r#"{"body":"#)).await;
    assert_eq!(malformed.status(), 400, "{}", answer(&malformed));
    assert!(server.received_requests().await.unwrap_or_default().is_empty(), "refusals call nothing");
    let blank = messages::serve(&app, post_message(&slug, &jwt, r#"{"body":"  ","format":"plain"}"#)).await;
    assert_eq!(blank.status(), 400, "{}", answer(&blank));

    let sent =
        messages::serve(&app, post_message(&slug, &jwt, r#"{"body":"Hello **all**","format":"markdown"}"#)).await;
    assert_eq!(sent.status(), 201, "{}", answer(&sent));
    assert_eq!(answer(&sent)["eventId"], "$sent:localhost");
    let requests = server.received_requests().await.unwrap_or_default();
    let send = requests.iter().find(|r| r.method.as_str() == "PUT").expect("a send");
    let query: HashMap<_, _> = send.url.query_pairs().into_owned().collect();
    assert_eq!(query.get("user_id").map(String::as_str), Some(stack().matrix_user_id(&tenant, &user).as_str()));
    let content: Value = serde_json::from_slice(&send.body).expect("JSON content");
    assert_eq!(content["msgtype"], "m.text");
    assert_eq!(content["body"], "Hello **all**");
    let html = content["formatted_body"].as_str().unwrap_or_default();
    assert!(html.contains("Hello <strong>all</strong>"), "{content}");
}

/// Sends met by a homeserver outage are queued (202); the worker's batch then delivers room A's, and room B's
/// first failure holds B's later record back untried (partial batch failure), while an unreadable record is
/// acknowledged.
#[tokio::test]
async fn queued_sends_replay_in_order_with_partial_batch_failures() {
    let server = MockServer::start().await;
    let sqs = aws_sdk_sqs::Client::new(&stack().aws().await);
    let queue_name = format!("{}.fifo", unique("inproc-worker"));
    let queue_url = queue(&sqs, &queue_name).await;
    let app = app(&server, &queue_name).await;
    let (tenant, user) = (unique("inp"), unique("u"));
    let (slug_a, slug_b) = (unique("ga"), unique("gb"));
    let (room_a, room_b) = (format!("!{}:localhost", unique("ra")), format!("!{}:localhost", unique("rb")));
    room(&server, &slug_a, &room_a).await;
    room(&server, &slug_b, &room_b).await;
    Mock::given(method("PUT")).respond_with(ResponseTemplate::new(502)).mount(&server).await;
    let jwt = stack().user_jwt(&tenant, &user, None);

    for (slug, text) in [(&slug_a, "a1"), (&slug_b, "b1"), (&slug_b, "b2")] {
        let body = json!({"body": text, "format": "plain"}).to_string();
        let queued = messages::serve(&app, post_message(slug, &jwt, &body)).await;
        assert_eq!(queued.status(), 202, "{text}: {}", answer(&queued));
    }
    // b2 queued behind b1 without being tried: the room had a backlog.
    assert_eq!(sends_received(&server.received_requests().await.unwrap_or_default(), &room_b), 1);
    server.reset().await;
    room(&server, &slug_a, &room_a).await;
    room(&server, &slug_b, &room_b).await;
    sends_to(&room_a)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"event_id": "$a1:localhost"})))
        .mount(&server)
        .await;
    sends_to(&room_b).respond_with(ResponseTemplate::new(503)).mount(&server).await;

    let mut records = Vec::new();
    for _ in 0..5 {
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receiving from the emulator");
        records.extend(received.messages.unwrap_or_default().into_iter().map(|message| {
            let mut record = SqsMessage::default();
            record.message_id = message.message_id;
            record.body = message.body;
            record.attributes = message
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(name, value)| (name.as_str().to_owned(), value))
                .collect();
            record
        }));
        if records.len() == 3 {
            break;
        }
    }
    assert_eq!(records.len(), 3, "three queued operations");
    let mut unreadable = SqsMessage::default();
    unreadable.message_id = Some("unreadable".into());
    unreadable.body = Some("{\"not\": \"an operation\"}".into());
    records.push(unreadable);
    let ids: Vec<String> = records.iter().map(|r| r.message_id.clone().unwrap_or_default()).collect();
    let mut event = SqsEvent::default();
    event.records = records;

    let outcome = retry_worker::process_batch(&app, event, None).await;
    let failed: Vec<String> = outcome.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    let requests = server.received_requests().await.unwrap_or_default();
    assert_eq!(sends_received(&requests, &room_a), 1, "room A's record is delivered");
    assert_eq!(sends_received(&requests, &room_b), 1, "room B's later record is not tried after its first failed");
    assert_eq!(failed.len(), 2, "both of room B's records come back: {failed:?} of {ids:?}");
    assert!(!failed.contains(&"unreadable".to_owned()), "an unreadable record is acknowledged");
}

/// A room's power levels as the homeserver keeps them: a write replaces them, a read returns the last write.
#[derive(Clone)]
struct PowerLevels(Arc<Mutex<Value>>);

impl Respond for PowerLevels {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let Ok(mut levels) = self.0.lock() else {
            return ResponseTemplate::new(500);
        };
        if request.method.as_str() == "PUT" {
            *levels = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            return ResponseTemplate::new(200).set_body_json(json!({"event_id": "$levels:localhost"}));
        }
        ResponseTemplate::new(200).set_body_json(levels.clone())
    }
}

/// `membership::put` through the membership function: a member who left is joined again (admin join) and given
/// the moderator level by a merge that keeps the room's other power-level keys.
#[tokio::test]
async fn put_member_joins_and_merges_the_level() {
    let server = MockServer::start().await;
    let sqs = aws_sdk_sqs::Client::new(&stack().aws().await);
    let queue_name = format!("{}.fifo", unique("inproc-member"));
    queue(&sqs, &queue_name).await;
    let app = app(&server, &queue_name).await;
    let (tenant, user, slug, room_id) =
        (unique("inp"), unique("u"), unique("g"), format!("!{}:localhost", unique("r")));
    let user_id = stack().matrix_user_id(&tenant, &user);
    room(&server, &slug, &room_id).await;
    let levels = PowerLevels(Arc::new(Mutex::new(json!({
        "users": {}, "users_default": 0, "events_default": 0, "state_default": 150, "com.example.kept": 7,
    }))));
    Mock::given(path_regex(format!(r"^/_matrix/client/v3/rooms/{}/state/m\.room\.power_levels", encoded(&room_id))))
        .respond_with(levels.clone())
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(format!(r"^/_matrix/client/v3/rooms/{}/state/m\.room\.member/", encoded(&room_id))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"membership": "leave"})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/_synapse/admin/v2/users/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"displayname": "Mo", "deactivated": false})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/_synapse/admin/v1/join/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"room_id": room_id})))
        .expect(1)
        .mount(&server)
        .await;

    let service = stack().service_jwt(&tenant);
    let request = sample("putMember", &[("__SLUG__", &slug), ("__OTHER_USER__", &user), ("__SERVICE_JWT__", &service)]);
    let response = membership::serve(&app, request).await;
    assert_eq!(response.status(), 200, "{}", answer(&response));
    assert_eq!(answer(&response)["role"], "moderator");
    let levels = levels.0.lock().map(|levels| levels.clone()).unwrap_or(Value::Null);
    assert_eq!(levels["users"][&user_id], 50, "{levels}");
    assert_eq!(levels["com.example.kept"], 7, "unknown keys survive the merge: {levels}");
    let requests = server.received_requests().await.unwrap_or_default();
    let join = requests.iter().find(|r| r.url.path().starts_with("/_synapse/admin/v1/join/")).expect("an admin join");
    let body: Value = serde_json::from_slice(&join.body).expect("JSON");
    assert_eq!(body["user_id"], user_id.as_str());
}
