//! The sample Lambda payloads of `events/`: one API Gateway HTTP API (v2) event per route of the route table and
//! one SQS batch for the retry worker. Each is deserialised exactly as the Lambda runtime does and handed to the
//! owning function's `serve` (or the worker's `process_batch`), against the running local stack.
//!
//! Placeholders in the files (so they stay valid payloads): `__SERVICE_JWT__` / `__USER_JWT__` (minted here),
//! `__USER__` (a member of the group `__SLUG__`), `__OTHER_USER__`, `__GONE_USER__` (deleted by `deleteUser`),
//! `__NEW_USER__` / `__NEW_SLUG__` (fresh per file), `__EVENT_SLUG__` (an event room), `__GONE_SLUG__` (a group
//! room `deleteRoom` removes), `__EVENT_ID__` / `__REACT_EVENT_ID__` (messages of `__USER__`; `_URL` suffixed
//! forms are percent-encoded for paths), `__OPERATION_ID__` (unknown), `__RECEIPT__` and `__GROUP__`.

use std::collections::HashMap;
use std::path::PathBuf;

use aws_lambda_events::event::sqs::SqsEvent;
use integration_tests::{encode_path, repo_root, stack, unique};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, Request, Response};
use reqwest::Method;
use serde_json::{Value, json};
use shared::App;
use shared::routes::{Function, ROUTES, RouteMatch, match_route};

// The samples carry the `routeKey` API Gateway would send: template.yaml's events are per-function prefixes.
#[allow(dead_code)]
#[path = "contract_files/api_gateway.rs"]
mod api_gateway;

const TENANT: &str = "evfiles";

/// The status each route's sample answers, run in the order of the route table against the fixture below.
const EXPECTED: &[(&str, u16)] = &[
    ("getHealth", 200),
    ("putUser", 201),
    ("getUser", 200),
    ("deleteUser", 204),
    ("createMatrixSession", 200),
    ("deleteMatrixSession", 204),
    ("getOperation", 404),
    ("putGroupRoom", 201),
    ("putEventRoom", 201),
    ("cancelEventRoom", 200),
    ("getRoom", 200),
    ("deleteRoom", 204),
    ("ensureDirectRoom", 201),
    ("putMember", 200),
    ("deleteMember", 204),
    ("reconcileMembers", 200),
    ("listMembers", 200),
    ("postMessage", 201),
    ("listMessages", 200),
    ("editMessage", 200),
    ("deleteMessage", 204),
    ("putReaction", 204),
    ("deleteReaction", 204),
    ("putNotifications", 200),
    ("getNotifications", 200),
    ("uploadMedia", 201),
    ("getNotificationPreferences", 200),
    ("putNotificationPreferences", 200),
];

fn event_file(name: &str) -> PathBuf {
    repo_root().join("events").join(format!("{name}.json"))
}

fn read_event(name: &str) -> String {
    std::fs::read_to_string(event_file(name)).unwrap_or_else(|e| panic!("events/{name}.json: {e}"))
}

fn substitute(text: &str, values: &[(&str, String)]) -> String {
    let mut text = text.to_owned();
    for (placeholder, value) in values {
        text = text.replace(placeholder, value);
    }
    text
}

/// What the Lambda runtime hands `lambda_http`'s service: the v2 event, turned into an `http::Request`.
fn to_request(text: &str) -> Request {
    let event: ApiGatewayV2httpRequest = serde_json::from_str(text).expect("an API Gateway v2 event");
    Request::from(LambdaRequest::ApiGatewayV2(event))
}

/// An `App` built from the stack's environment, as the functions' `main` builds theirs.
async fn app() -> App {
    let s = stack();
    let config = shared::config::Config::from_lookup(|name| s.env.get(name).cloned().filter(|v| !v.is_empty()))
        .expect("configuration from stack.env");
    App::new(config, &s.aws().await).await.expect("the functions' clients")
}

async fn serve(app: &App, function: Function, request: Request) -> Response<Body> {
    match function {
        Function::Provisioning => provisioning::serve(app, request).await,
        Function::Rooms => rooms::serve(app, request).await,
        Function::Membership => membership::serve(app, request).await,
        Function::Messages => messages::serve(app, request).await,
    }
}

fn body_text(response: &Response<Body>) -> String {
    match response.body() {
        Body::Text(text) => text.clone(),
        Body::Binary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    }
}

/// The prerequisites of every sample, created through the stack's API.
async fn fixture() -> Vec<(&'static str, String)> {
    let s = stack();
    let service = s.service_jwt(TENANT);
    let (user, other, gone_user) = (unique("evu"), unique("evo"), unique("evg"));
    for (slug, name) in [(&user, "Eve"), (&other, "Otto"), (&gone_user, "Gus")] {
        s.provision(TENANT, slug, name).await;
    }
    let room = |kind: &str, slug: &str| format!("/v1/{kind}/{slug}/room");
    let (slug, gone_slug, event_slug) = (unique("evgrp"), unique("evdel"), unique("evevt"));
    for group in [&slug, &gone_slug] {
        let body = json!({"name": format!("Group {group}"), "visibility": "public"});
        let (status, answer) = s.api(Method::PUT, &room("groups", group), Some(&service), Some(body)).await;
        assert_eq!(status, 201, "group room: {answer}");
    }
    let body = json!({"name": "Meet-up", "startsAt": "2027-03-20T18:00:00Z", "visibility": "public"});
    let (status, answer) = s.api(Method::PUT, &room("events", &event_slug), Some(&service), Some(body)).await;
    assert_eq!(status, 201, "event room: {answer}");
    let member = format!("/v1/groups/{slug}/members/{user}");
    let (status, answer) = s.api(Method::PUT, &member, Some(&service), Some(json!({"role": "member"}))).await;
    assert_eq!(status, 200, "member: {answer}");
    let user_jwt = s.user_jwt(TENANT, &user, Some("Eve"));
    let mut messages = Vec::new();
    for text in ["first draft", "react to me"] {
        let body = json!({"body": text, "format": "plain"});
        let path = format!("/v1/groups/{slug}/messages");
        let (status, answer) = s.api(Method::POST, &path, Some(&user_jwt), Some(body)).await;
        assert_eq!(status, 201, "message: {answer}");
        messages.push(answer["eventId"].as_str().expect("eventId").to_owned());
    }
    vec![
        ("__SERVICE_JWT__", service),
        ("__USER_JWT__", user_jwt),
        ("__USER__", user),
        ("__OTHER_USER__", other),
        ("__GONE_USER__", gone_user),
        ("__SLUG__", slug),
        ("__GONE_SLUG__", gone_slug),
        ("__EVENT_SLUG__", event_slug),
        ("__EVENT_ID_URL__", encode_path(&messages[0])),
        ("__EVENT_ID__", messages[0].clone()),
        ("__REACT_EVENT_ID_URL__", encode_path(&messages[1])),
        ("__REACT_EVENT_ID__", messages[1].clone()),
    ]
}

#[test]
fn every_route_has_a_valid_event_file() {
    let dummy = [
        ("__EVENT_ID_URL__", "%24e%3Alocalhost".to_owned()),
        ("__REACT_EVENT_ID_URL__", "%24r%3Alocalhost".to_owned()),
    ];
    let template = std::fs::read_to_string(repo_root().join("template.yaml")).expect("template.yaml");
    let template = yaml_rust2::YamlLoader::load_from_str(&template).expect("template.yaml parses");
    let (api_events, _) = api_gateway::template_api_events(&template[0]);
    for route in ROUTES {
        let text = read_event(route.operation_id);
        let event: Value = serde_json::from_str(&text).expect("JSON");
        let route_key = api_gateway::route_key(&api_events, route).expect("template.yaml routes it");
        assert_eq!(event["version"], "2.0", "{}", route.operation_id);
        assert_eq!(event["routeKey"], route_key.as_str(), "{}", route.operation_id);
        assert_eq!(event["requestContext"]["routeKey"], route_key.as_str(), "{}", route.operation_id);
        assert_eq!(event["requestContext"]["http"]["method"], route.method.as_str(), "{}", route.operation_id);
        assert_eq!(event["rawPath"], event["requestContext"]["http"]["path"], "{}", route.operation_id);
        let request = to_request(&substitute(&text, &dummy));
        match match_route(request.method(), request.uri().path()) {
            RouteMatch::Found(found, _) => assert_eq!(found.id, route.id, "{}", route.operation_id),
            other => panic!("{}: {other:?}", route.operation_id),
        }
        assert!(
            EXPECTED.iter().any(|(name, _)| *name == route.operation_id),
            "{} has no expectation",
            route.operation_id
        );
    }
    assert_eq!(EXPECTED.len(), ROUTES.len());
    let batch: SqsEvent = serde_json::from_str(&read_event("retry-worker-batch")).expect("an SQS event");
    assert_eq!(batch.records.len(), 1);
}

#[tokio::test]
async fn every_event_file_is_served_by_its_function() {
    let s = stack();
    let app = app().await;
    let fixture = fixture().await;
    let expected: HashMap<&str, u16> = EXPECTED.iter().copied().collect();
    let mut failures = Vec::new();
    for route in ROUTES {
        let mut values = vec![
            ("__NEW_USER__", unique("evn")),
            ("__NEW_SLUG__", unique("evnew")),
            ("__OPERATION_ID__", uuid::Uuid::new_v4().to_string()),
        ];
        values.extend(fixture.iter().cloned());
        let request = to_request(&substitute(&read_event(route.operation_id), &values));
        let response = serve(&app, route.function, request).await;
        let status = response.status().as_u16();
        if status != expected[route.operation_id] {
            failures.push(format!("{}: {status} {}", route.operation_id, body_text(&response)));
        }
    }
    assert!(failures.is_empty(), "unexpected answers (stack at {}):\n{}", s.api, failures.join("\n"));
}

#[tokio::test]
async fn the_worker_drops_a_message_naming_an_unknown_operation() {
    let app = app().await;
    let values = [
        ("__OPERATION_ID__", uuid::Uuid::new_v4().to_string()),
        ("__RECEIPT__", unique("receipt")),
        ("__GROUP__", unique("group")),
    ];
    let batch: SqsEvent =
        serde_json::from_str(&substitute(&read_event("retry-worker-batch"), &values)).expect("an SQS event");
    let response = retry_worker::process_batch(&app, batch, None).await;
    assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);
}
