//! Property tests with hostile requests for the HTTP edge's parsing (route match, token, access rule, content type,
//! body), reaching the private `prepare` as a child module of `http`.

use proptest::prelude::*;
use serde::Deserialize;

use super::*;
use crate::config::JwtSecret;
use crate::routes::ROUTES;

const CASES: u32 = 1000;
const SECRET: &str = "request-parsing-secret-of-enough-length";

fn verifier() -> JwtVerifier {
    JwtVerifier::new(&[JwtSecret::new(SECRET)])
}

fn token(role: &str, sub: &str, tenant: &str) -> String {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let claims = serde_json::json!({"sub": sub, "tenant": tenant, "role": role, "exp": exp + 600});
    encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).expect("encodable")
}

fn encode_segment(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A path from the route table with every parameter filled by a hostile (percent-encoded) string, or garbage.
fn path() -> impl Strategy<Value = String> {
    let templated =
        (0..ROUTES.len(), prop::collection::vec(any::<String>(), 4)).prop_map(|(i, values)| {
            let mut values = values.into_iter();
            ROUTES[i]
                .path
                .split('/')
                .map(|part| {
                    if part.starts_with('{') { encode_segment(&values.next().unwrap_or_default()) } else { part.into() }
                })
                .collect::<Vec<_>>()
                .join("/")
        });
    prop_oneof![templated, "/[a-z0-9/%._-]{0,80}", "/v1/[a-z]{1,8}/[%0-9A-Fa-f./]{0,40}/(room|members|messages)"]
}

fn method() -> impl Strategy<Value = http::Method> {
    prop_oneof![
        Just(http::Method::GET),
        Just(http::Method::PUT),
        Just(http::Method::POST),
        Just(http::Method::DELETE),
        Just(http::Method::PATCH),
        Just(http::Method::OPTIONS)
    ]
}

fn authorization() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        any::<String>().prop_map(Some),
        Just(Some(format!("Bearer {}", token("service", "openmeet-api", "acme")))),
        "[a-z0-9._-]{1,10}".prop_map(|u| Some(format!("Bearer {}", token("user", &u, "acme")))),
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json".to_owned())),
        Just(Some("application/json; charset=utf-8".to_owned())),
        Just(Some("text/plain".to_owned())),
        Just(Some("application/x-www-form-urlencoded".to_owned())),
        "[ -~]{0,40}".prop_map(Some),
    ]
}

fn request(
    method: http::Method,
    path: &str,
    query: &str,
    authorization: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Option<Request> {
    let uri = if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") };
    let mut builder = http::Request::builder().method(method).uri(uri);
    if let Some(value) = authorization.filter(|v| http::HeaderValue::from_str(v).is_ok()) {
        builder = builder.header(http::header::AUTHORIZATION, value);
    }
    if let Some(value) = content_type.filter(|v| http::HeaderValue::from_str(v).is_ok()) {
        builder = builder.header(http::header::CONTENT_TYPE, value);
    }
    // Only URIs the http crate accepts can reach a function at all.
    builder.body(if body.is_empty() { Body::Empty } else { Body::Binary(body) }).ok()
}

/// A body type like the handlers' own: unknown fields refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct Sample {
    display_name: String,
    avatar_url: Option<String>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Whatever arrives, the edge answers without panicking, and a refusal is a 4xx (never a 5xx): the caller
    /// sent something wrong, the service is fine.
    #[test]
    fn hostile_requests_are_refused_with_a_4xx_or_accepted(
        method in method(), path in path(), query in "[ -~]{0,40}", auth in authorization(),
        content_type in content_type(), body in prop::collection::vec(any::<u8>(), 0..200), function in 0..4usize,
    ) {
        let Some(request) = request(method, &path, &query, auth.as_deref(), content_type.as_deref(), body) else {
            return Ok(());
        };
        match prepare(&verifier(), Function::ALL[function], request) {
            Ok(prepared) => {
                prop_assert!(prepared.route.function == Function::ALL[function]);
                // An accepted caller and its route agree with the access rule.
                match (prepared.route.access, prepared.caller.as_ref().map(|c| &c.role)) {
                    (Access::Anyone, _) => {}
                    (Access::Service, role) => prop_assert_eq!(role, Some(&Role::Service)),
                    (Access::User, role) => prop_assert!(matches!(role, Some(Role::User(_)))),
                    (Access::ServiceOrSelf, Some(Role::User(user))) => {
                        prop_assert_eq!(prepared.params.get("userId"), Some(user.as_str()))
                    }
                    (_, role) => prop_assert!(role.is_some()),
                }
                let _ = prepared.json::<Sample>().map_err(|e| assert_eq!(e.status(), 400));
            }
            Err(error) => prop_assert!((400..500).contains(&error.status()), "{}: {}", error.status(), error),
        }
    }

    /// A JSON route given a body under any other content type answers 415, never reads it.
    #[test]
    fn json_routes_refuse_other_content_types(
        route in 0..ROUTES.len(), content_type in prop_oneof![Just(None), "(text|image|multipart|application)/[a-z-]{1,12}".prop_map(Some)],
        body in "[ -~]{1,100}",
    ) {
        let route = &ROUTES[route];
        prop_assume!(!route.id.takes_raw_body() && route.method != http::Method::GET);
        prop_assume!(!body.trim().is_empty());
        prop_assume!(content_type.as_deref().is_none_or(|t| t != "application/json" && !t.ends_with("+json")));
        let path = route.path.split('/').map(|p| if p.starts_with('{') { "x" } else { p }).collect::<Vec<_>>().join("/");
        let auth = match route.access {
            Access::User => format!("Bearer {}", token("user", "x", "acme")),
            _ => format!("Bearer {}", token("service", "openmeet-api", "acme")),
        };
        let request = request(route.method.clone(), &path, "", Some(&auth), content_type.as_deref(), body.into_bytes())
            .expect("a well-formed request");
        let error = prepare(&verifier(), route.function, request).err().expect("refused");
        prop_assert_eq!(error.status(), 415);
    }

    /// Any JSON or non-JSON bytes given to a handler's body type: parsed, or a 400, never a panic.
    #[test]
    fn bodies_parse_or_answer_400(body in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        "\\{\"displayName\":\"[ -~]{0,20}\"(,\"[a-zA-Z]{1,10}\":(1|null|\"x\"|\\[\\]))?\\}".prop_map(String::into_bytes),
    ]) {
        let (route, params) = match match_route(&http::Method::PUT, "/v1/users/jane") {
            RouteMatch::Found(route, params) => (route, params),
            _ => unreachable!("the route exists"),
        };
        let request = ApiRequest {
            route, params, query: Vec::new(), headers: http::HeaderMap::new(), body: Bytes::from(body), caller: None,
        };
        if let Err(error) = request.json::<Sample>() {
            prop_assert_eq!(error.status(), 400);
        }
    }

    /// Path parameters: any string, percent-encoded into a segment, comes back exactly (or the path is refused).
    #[test]
    fn path_parameters_round_trip(value in any::<String>()) {
        prop_assume!(!value.is_empty());
        let path = format!("/v1/users/{}", encode_segment(&value));
        match match_route(&http::Method::GET, &path) {
            RouteMatch::Found(route, params) => {
                prop_assert_eq!(route.id, RouteId::Provisioning(ProvisioningRoute::GetUser));
                prop_assert_eq!(params.get("userId"), Some(value.as_str()));
            }
            other => prop_assert!(false, "{}: {:?}", path, other),
        }
    }
}
