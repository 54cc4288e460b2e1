//! One local HTTP gateway for every function, dispatching by the shared route table as API Gateway would.

use std::sync::Arc;

use axum::body::Body as AxumBody;
use axum::extract::{Request, State};
use axum::response::Response;
use shared::App;
use shared::routes::{RouteId, RouteMatch, match_route};

/// API Gateway's payload limit (HTTP API quota "Payload size": 10 MB).
const MAX_BODY: usize = 10 * 1024 * 1024;
/// API Gateway's HTTP API quota "Total combined size of request line and header values": 10240 bytes, not raisable.
const MAX_REQUEST_LINE_AND_HEADERS: usize = 10240;

/// Every route of the route table, plus what only the local stack serves: the example chat page (`/web/`) and
/// its demo sign-in (`/local/demo/`, see demo.rs). Neither exists in the Lambda functions.
pub fn router(app: Arc<App>) -> axum::Router {
    let demo = Arc::new(crate::demo::Demo::new(app.clone()));
    axum::Router::new()
        .route("/", axum::routing::get(crate::web::home))
        .route("/web", axum::routing::get(crate::web::home))
        .route("/web/", axum::routing::get(crate::web::serve))
        .route("/web/{*path}", axum::routing::get(crate::web::serve))
        .merge(crate::demo::router(demo))
        // Served here for the local Synapse's pushers; in AWS it is private, not on the HTTP API (template.yaml).
        .route(push_gateway::NOTIFY_PATH, axum::routing::post(notify))
        .fallback(dispatch)
        .with_state(app)
}

async fn dispatch(State(app): State<Arc<App>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if request_line_and_headers(&parts) > MAX_REQUEST_LINE_AND_HEADERS {
        return plain(
            431,
            r#"{"error":{"code":"headers_too_large","message":"the request line and headers are over 10240 bytes","retryable":false}}"#,
        );
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return plain(
            413,
            r#"{"error":{"code":"payload_too_large","message":"the body is over 10 MB","retryable":false}}"#,
        );
    };
    let body = if bytes.is_empty() { lambda_http::Body::Empty } else { lambda_http::Body::Binary(bytes.to_vec()) };
    let response = call(&app, lambda_http::Request::from_parts(parts, body)).await;
    let (parts, body) = response.into_parts();
    let bytes: Vec<u8> = match body {
        lambda_http::Body::Empty => Vec::new(),
        lambda_http::Body::Text(text) => text.into_bytes(),
        lambda_http::Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    Response::from_parts(parts, AxumBody::from(bytes))
}

/// The push gateway's notify, as the internal load balancer hands it to the function in AWS.
async fn notify(State(app): State<Arc<App>>, request: Request) -> Response {
    static BUS: tokio::sync::OnceCell<shared::aws::events::EventBus> = tokio::sync::OnceCell::const_new();
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return plain(
            413,
            r#"{"error":{"code":"payload_too_large","message":"the body is over 10 MB","retryable":false}}"#,
        );
    };
    let bus = BUS
        .get_or_try_init(|| async {
            let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            push_gateway::event_bus(&app, &sdk)
        })
        .await;
    let Ok(bus) = bus else {
        return plain(
            503,
            r#"{"error":{"code":"dependency_unavailable","message":"OPENMEET_EVENT_BUS is not set","retryable":true}}"#,
        );
    };
    let request = lambda_http::Request::from_parts(parts, lambda_http::Body::Binary(bytes.to_vec()));
    let (parts, body) = push_gateway::serve(&app, bus, request).await.into_parts();
    let bytes: Vec<u8> = match body {
        lambda_http::Body::Text(text) => text.into_bytes(),
        lambda_http::Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    Response::from_parts(parts, AxumBody::from(bytes))
}

/// Hands a request to the function that owns its route (the route's group), as API Gateway would.
pub async fn call(app: &App, lambda_request: lambda_http::Request) -> lambda_http::Response<lambda_http::Body> {
    let id = match match_route(lambda_request.method(), lambda_request.uri().path()) {
        RouteMatch::Found(route, _) => Some(route.id),
        RouteMatch::MethodNotAllowed(_) | RouteMatch::NotFound => None,
    };
    match id {
        Some(RouteId::Rooms(_)) => rooms::serve(app, lambda_request).await,
        Some(RouteId::Membership(_)) => membership::serve(app, lambda_request).await,
        Some(RouteId::Messages(_)) => messages::serve(app, lambda_request).await,
        // Unmatched requests get the same 404/405 answer from any function; API Gateway's `$default` route (every
        // path no function's prefix claims) is provisioning's too (template.yaml).
        Some(RouteId::Provisioning(_)) | None => provisioning::serve(app, lambda_request).await,
    }
}

/// What API Gateway counts against its header quota: the request line and every header value.
fn request_line_and_headers(parts: &http::request::Parts) -> usize {
    let target = parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
    let line = parts.method.as_str().len() + 1 + target + " HTTP/1.1".len();
    line + parts.headers.values().map(http::HeaderValue::len).sum::<usize>()
}

fn plain(status: u16, body: &'static str) -> Response {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(AxumBody::from(body))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(header_bytes: usize) -> http::request::Parts {
        let request = http::Request::builder()
            .method("PUT")
            .uri("/v1/groups/x/room")
            .header("x-big", "a".repeat(header_bytes))
            .body(())
            .expect("request");
        request.into_parts().0
    }

    #[test]
    fn headers_are_measured_as_api_gateway_counts_them() {
        let line = "PUT /v1/groups/x/room HTTP/1.1".len();
        assert_eq!(request_line_and_headers(&parts(100)), line + 100);
        assert!(request_line_and_headers(&parts(MAX_REQUEST_LINE_AND_HEADERS - line)) <= MAX_REQUEST_LINE_AND_HEADERS);
        assert!(request_line_and_headers(&parts(64 * 1024)) > MAX_REQUEST_LINE_AND_HEADERS);
    }
}
