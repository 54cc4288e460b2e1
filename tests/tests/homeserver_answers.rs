//! What a caller gets when the homeserver refuses (issue 27, "docs agree with the code"): the functions' own `serve`
//! runs in this process against a mock homeserver (wiremock) and the local stack's AWS emulator (a missing stack
//! fails these tests).
//! - The appservice token refused (`401 M_UNKNOWN_TOKEN`: the token is being rotated, ADR 0004) is a retryable
//!   `503 homeserver_unavailable` with `Retry-After`, so a caller following docs/integration.md retries the write
//!   instead of dropping it.
//! - Any other refusal is `502 homeserver_error` with the `Retry-After` openapi declares for it.

use std::collections::HashMap;

use integration_tests::{repo_root, stack, unique};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use shared::App;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The functions' clients from the stack's environment, talking to `homeserver`.
async fn app(homeserver: &MockServer) -> App {
    let s = stack();
    let overrides =
        HashMap::from([("MATRIX_HOMESERVER_URL", homeserver.uri()), ("MATRIX_CIRCUIT_THRESHOLD", "1000".to_owned())]);
    let config = shared::config::Config::from_lookup(|name| {
        overrides.get(name).cloned().or_else(|| s.env.get(name).cloned()).filter(|v| !v.is_empty())
    })
    .expect("configuration from stack.env");
    App::new(config, &s.aws().await).await.expect("the functions' clients")
}

/// A homeserver that answers every request with `status` and `errcode`.
async fn refusing(status: u16, errcode: &str) -> MockServer {
    let server = MockServer::start().await;
    let body = json!({"errcode": errcode, "error": "refused"});
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&server)
        .await;
    server
}

/// The sample `putUser` event of `events/` for a fresh user of a fresh tenant.
fn put_user() -> Request {
    let tenant = unique("hsa").replace('-', "");
    let service = stack().service_jwt(&tenant);
    let mut text = std::fs::read_to_string(repo_root().join("events/putUser.json")).expect("the sample event");
    text = text.replace("__NEW_USER__", &unique("u")).replace("__SERVICE_JWT__", &service);
    let event: ApiGatewayV2httpRequest = serde_json::from_str(&text).expect("an API Gateway v2 event");
    Request::from(LambdaRequest::ApiGatewayV2(event))
}

fn answer(response: &Response<Body>) -> Value {
    match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        Body::Binary(bytes) => serde_json::from_slice(bytes).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn retry_after(response: &Response<Body>) -> Option<u64> {
    response.headers().get("retry-after")?.to_str().ok()?.parse().ok()
}

#[tokio::test]
async fn a_refused_appservice_token_is_a_retryable_503_with_retry_after() {
    let server = refusing(401, "M_UNKNOWN_TOKEN").await;
    let app = app(&server).await;
    let response = provisioning::serve(&app, put_user()).await;
    let body = answer(&response);
    assert_eq!(response.status(), 503, "{body}");
    assert_eq!(body["error"]["code"], "homeserver_unavailable", "{body}");
    assert_eq!(body["error"]["retryable"], true, "{body}");
    assert!(retry_after(&response).is_some_and(|s| s >= 1), "{:?}", response.headers());
}

#[tokio::test]
async fn a_homeserver_refusal_is_502_with_retry_after() {
    let server = refusing(403, "M_FORBIDDEN").await;
    let app = app(&server).await;
    let response = provisioning::serve(&app, put_user()).await;
    let body = answer(&response);
    assert_eq!(response.status(), 502, "{body}");
    assert_eq!(body["error"]["code"], "homeserver_error", "{body}");
    assert_eq!(body["error"]["retryable"], false, "{body}");
    assert!(retry_after(&response).is_some_and(|s| s >= 1), "{:?}", response.headers());
}
