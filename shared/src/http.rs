//! The HTTP edge shared by every function: match the route, authenticate, enforce the route's access rule, parse
//! the body, call the function's handler, and map the outcome (including every error) to the contract's shape.

use std::future::Future;
use std::time::Instant;

use bytes::Bytes;
use lambda_http::{Body, Request, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::app::App;
use crate::auth::{Caller, JwtVerifier, Role};
use crate::domain::{OperationId, Outcome};
use crate::error::ApiError;
use crate::routes::{
    Access, Function, FunctionRoute, PathParams, ProvisioningRoute, Route, RouteId, RouteMatch, match_route,
};

/// JSON bodies are small; media uploads have their own limit.
const MAX_JSON_BODY: usize = 1024 * 1024;

/// A request that matched a route and passed its access rule.
pub struct ApiRequest {
    pub route: &'static Route,
    pub params: PathParams,
    pub query: Vec<(String, String)>,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    caller: Option<Caller>,
}

impl ApiRequest {
    /// The verified caller (every route but health has one).
    pub fn caller(&self) -> Result<&Caller, ApiError> {
        self.caller.as_ref().ok_or(ApiError::Unauthorized("a bearer token is required"))
    }

    /// A path parameter, parsed by `parse` (which answers 400 for bad values).
    pub fn param<T, E>(&self, name: &str, parse: impl FnOnce(&str) -> Result<T, E>) -> Result<T, ApiError>
    where
        ApiError: From<E>,
    {
        let value = self.params.get(name).ok_or(ApiError::Internal)?;
        Ok(parse(value)?)
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The JSON body; unknown fields are refused by the target types (`deny_unknown_fields`).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &self.body };
        serde_json::from_slice(body).map_err(|error| ApiError::bad_request("invalid_body", error.to_string()))
    }
}

/// A successful answer.
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    /// Seconds for a `Retry-After` header (a 503 that is not an error, such as a degraded health answer).
    pub retry_after: Option<u64>,
}

impl Reply {
    pub fn json(status: u16, body: impl serde::Serialize) -> Reply {
        Reply { status, body: Some(serde_json::to_value(body).unwrap_or(Value::Null)), retry_after: None }
    }

    pub fn ok(body: impl serde::Serialize) -> Reply {
        Reply::json(200, body)
    }

    pub fn no_content() -> Reply {
        Reply { status: 204, body: None, retry_after: None }
    }

    pub fn with_retry_after(self, seconds: u64) -> Reply {
        Reply { retry_after: Some(seconds), ..self }
    }

    /// `202 {"status":"queued","operationId"}`: the write was deferred to the retry worker.
    pub fn queued(operation_id: &OperationId) -> Reply {
        Reply::json(202, QueuedAnswer { status: "queued", operation_id })
    }

    /// A deferrable write's answer: `done` renders what was done now; a queued write is `202`.
    pub fn outcome<T>(outcome: Outcome<T>, done: impl FnOnce(T) -> Reply) -> Reply {
        match outcome {
            Outcome::Done(value) => done(value),
            Outcome::Queued(operation_id) => Reply::queued(&operation_id),
        }
    }
}

/// The body of a `202`: the contract's shape for a deferred write.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedAnswer<'a> {
    pub status: &'static str,
    pub operation_id: &'a OperationId,
}

/// Serves one Lambda (or local gateway) request for the function that owns the routes `R`: `handler` gets the
/// matched route as `R`, which it matches exhaustively.
pub async fn serve<R, F, Fut>(app: &App, request: Request, handler: F) -> Response<Body>
where
    R: FunctionRoute,
    F: FnOnce(R, ApiRequest) -> Fut,
    Fut: Future<Output = Result<Reply, ApiError>>,
{
    let function = R::FUNCTION;
    let started = Instant::now();
    let method = request.method().clone();
    let request_id = request_id(&request);
    let path = request.uri().path().to_owned();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        route = tracing::field::Empty,
        tenant = tracing::field::Empty
    );
    let (route, tenant, outcome) = match prepare(&app.jwt, function, request) {
        Ok(prepared) => {
            let route = prepared.route;
            let tenant = prepared.caller.as_ref().map(|c| c.tenant.to_string()).unwrap_or_default();
            span.record("route", route.operation_id).record("tenant", tenant.as_str());
            // The handler's future on the heap: routes' futures are large (tens of KB in debug builds), and nested
            // inline they would be copied through every frame of the poll chain.
            let outcome = budgeted(app, prepared, |request| {
                // `prepare` kept only this function's routes, so the conversion always succeeds.
                let route = R::from_id(request.route.id);
                Box::pin(async move { handler(route.ok_or(ApiError::Internal)?, request).await })
            });
            let outcome = tracing::Instrument::instrument(outcome, span.clone()).await;
            (Some(route), tenant, outcome)
        }
        // Refused before the handler (token, access rule, body size): still name the route when the path matched.
        Err(error) => {
            let route = route_of(function, &method, &path);
            if let Some(route) = route {
                span.record("route", route.operation_id);
            }
            (route, String::new(), Err(error))
        }
    };
    let mut response = match outcome {
        Ok(reply) => reply_response(reply),
        Err(error) => error_response(&error),
    };
    // Lets a caller (or a support request) find this request's log lines.
    if let Ok(value) = http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_millis() as u64;
    let route = route.map(|r| r.operation_id).unwrap_or("unmatched");
    crate::metrics::api_latency(route, status, latency_ms);
    let _entered = span.enter();
    if status >= 500 {
        tracing::warn!(%method, %request_id, route, %tenant, status, latency_ms, "request failed");
    } else {
        tracing::info!(%method, %request_id, route, %tenant, status, latency_ms, "request served");
    }
    response
}

/// Every request but health counts against the caller's budgets, here, around the handler: a GET against the read
/// budgets, any other method against the write budgets.
async fn budgeted<F, Fut>(app: &App, request: ApiRequest, handler: F) -> Result<Reply, ApiError>
where
    F: FnOnce(ApiRequest) -> Fut,
    Fut: Future<Output = Result<Reply, ApiError>>,
{
    use crate::ratelimit::Kind;
    let caller = match (request.route.id, &request.caller) {
        (RouteId::Provisioning(ProvisioningRoute::Health), _) | (_, None) => return handler(request).await,
        (_, Some(caller)) => caller.clone(),
    };
    let kind = if request.route.method == http::Method::GET { Kind::Reads } else { Kind::Writes };
    let (limits, seen) = (&app.config.rate_limits, &app.container.rate_counts);
    crate::ratelimit::limited(&app.store, limits, seen, &caller, kind, handler(request)).await
}

fn route_of(function: Function, method: &http::Method, path: &str) -> Option<&'static Route> {
    match match_route(method, path) {
        RouteMatch::Found(route, _) if route.function == function => Some(route),
        _ => None,
    }
}

/// The Lambda request id when the runtime supplied one (never in the local gateway), else a fresh uuid v4.
fn request_id(request: &Request) -> String {
    use lambda_http::RequestExt;
    request
        .lambda_context_ref()
        .map(|context| context.request_id.clone())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

fn prepare(verifier: &JwtVerifier, function: Function, request: Request) -> Result<ApiRequest, ApiError> {
    let (route, params) = match match_route(request.method(), request.uri().path()) {
        RouteMatch::Found(route, params) if route.function == function => (route, params),
        RouteMatch::Found(..) | RouteMatch::NotFound => {
            return Err(ApiError::NotFound { code: "route_not_found", message: "no such route".into() });
        }
        RouteMatch::MethodNotAllowed(methods) => {
            let allow = methods.iter().map(http::Method::as_str).collect::<Vec<_>>().join(", ");
            return Err(ApiError::MethodNotAllowed { allow });
        }
    };
    let caller = match route.access {
        // A valid token on an open route is still known (health tells the service more); a bad one is ignored.
        Access::Anyone => {
            let header = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            header.and_then(|header| verifier.verify(Some(header)).ok())
        }
        _ => {
            let header = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            Some(verifier.verify(header)?)
        }
    };
    authorize(route.access, caller.as_ref(), &params)?;
    let query = request
        .uri()
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let (parts, body) = request.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    if body.len() > MAX_JSON_BODY && !route.id.takes_raw_body() {
        return Err(ApiError::PayloadTooLarge(format!("request bodies are limited to {MAX_JSON_BODY} bytes")));
    }
    // GET routes read no body; every other route but the upload reads JSON.
    let reads_json = !route.id.takes_raw_body() && route.method != http::Method::GET;
    if reads_json && !body.iter().all(u8::is_ascii_whitespace) && !is_json(&parts.headers) {
        return Err(ApiError::UnsupportedMediaType(
            "this route takes a JSON body: send Content-Type: application/json",
        ));
    }
    Ok(ApiRequest { route, params, query, headers: parts.headers, body, caller })
}

/// `application/json` or a `+json` type, with any parameters (`; charset=utf-8`). A JSON route's body under any
/// other type (or none) is refused, so a form or `text/plain` post can never be read as JSON (CSRF-style).
fn is_json(headers: &http::HeaderMap) -> bool {
    let Some(value) = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn authorize(access: Access, caller: Option<&Caller>, params: &PathParams) -> Result<(), ApiError> {
    let Some(caller) = caller else {
        return if access == Access::Anyone {
            Ok(())
        } else {
            Err(ApiError::Unauthorized("a bearer token is required"))
        };
    };
    let allowed = match (access, &caller.role) {
        (Access::Anyone | Access::ServiceOrUser, _) => true,
        (Access::Service, role) => *role == Role::Service,
        (Access::User, role) => matches!(role, Role::User(_)),
        (Access::ServiceOrSelf, Role::Service) => true,
        (Access::ServiceOrSelf, Role::User(user)) => params.get("userId") == Some(user.as_str()),
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::forbidden(match access {
            Access::Service => "only the OpenMeet service may call this route",
            Access::User => "only a user may call this route, for themselves",
            _ => "this token may not act on that user",
        }))
    }
}

fn reply_response(reply: Reply) -> Response<Body> {
    let mut builder = Response::builder().status(reply.status);
    if let Some(seconds) = reply.retry_after {
        builder = builder.header(http::header::RETRY_AFTER, seconds.to_string());
    }
    let body = match reply.body {
        Some(value) => {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
            Body::Text(value.to_string())
        }
        None => Body::Empty,
    };
    builder.body(body).unwrap_or_else(|_| Response::new(Body::Empty))
}

/// The one place an error becomes HTTP.
pub fn error_response(error: &ApiError) -> Response<Body> {
    let mut builder = Response::builder().status(error.status()).header(http::header::CONTENT_TYPE, "application/json");
    if let ApiError::MethodNotAllowed { allow } = error {
        builder = builder.header(http::header::ALLOW, allow.as_str());
    }
    // RFC 6750: a refused bearer token says which scheme to use.
    if let ApiError::Unauthorized(_) = error {
        builder = builder.header(http::header::WWW_AUTHENTICATE, "Bearer");
    }
    if let Some(seconds) = error.retry_after_secs() {
        builder = builder.header(http::header::RETRY_AFTER, seconds.to_string());
    }
    builder.body(Body::Text(error.body().to_string())).unwrap_or_else(|_| Response::new(Body::Empty))
}

#[cfg(test)]
#[path = "http_props.rs"]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{TenantId, UserSlug};

    fn caller(role: Role) -> Caller {
        Caller { tenant: TenantId::parse("t").expect("tenant"), role, subject: "x".into(), display_name: None }
    }

    fn params_for(path: &str) -> PathParams {
        match match_route(&http::Method::GET, path) {
            RouteMatch::Found(_, params) => params,
            _ => PathParams::default(),
        }
    }

    #[test]
    fn service_routes_refuse_users_with_403() {
        let user = caller(Role::User(UserSlug::parse("jane").expect("slug")));
        let error = authorize(Access::Service, Some(&user), &PathParams::default()).expect_err("refused");
        assert_eq!(error.status(), 403);
        assert!(authorize(Access::Service, Some(&caller(Role::Service)), &PathParams::default()).is_ok());
    }

    #[test]
    fn self_routes_allow_only_the_same_user() {
        let jane = caller(Role::User(UserSlug::parse("jane").expect("slug")));
        assert!(authorize(Access::ServiceOrSelf, Some(&jane), &params_for("/v1/users/jane")).is_ok());
        assert!(authorize(Access::ServiceOrSelf, Some(&jane), &params_for("/v1/users/john")).is_err());
    }

    #[test]
    fn refusals_and_degraded_answers_carry_their_headers() {
        let unauthorized = error_response(&ApiError::Unauthorized("a bearer token is required"));
        assert_eq!(
            unauthorized.headers().get(http::header::WWW_AUTHENTICATE).map(|v| v.as_bytes()),
            Some(&b"Bearer"[..])
        );
        let degraded = reply_response(Reply::json(503, serde_json::json!({"status": "degraded"})).with_retry_after(5));
        assert_eq!(degraded.headers().get(http::header::RETRY_AFTER).map(|v| v.as_bytes()), Some(&b"5"[..]));
    }

    #[test]
    fn user_routes_refuse_services() {
        assert_eq!(
            authorize(Access::User, Some(&caller(Role::Service)), &PathParams::default()).expect_err("no").status(),
            403
        );
    }
}
