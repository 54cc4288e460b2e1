//! Limits that hold under abuse: a browser's own token is rate-limited by the homeserver while the platform's sends
//! for the same user are not starved; the API's write limits answer 429 with Retry-After and send nothing beyond
//! them; a bad pagination token is 400; a send that meets the homeserver's rate limit is delivered later, once; a
//! reused Idempotency-Key after its window, during an outage, is a new message.

use std::time::{Duration, Instant};

use integration_tests::fault::{Proxy, ProxyMode, SecondGateway};
use integration_tests::{Stack, encode_path, stack, unique};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;

const TENANT: &str = "it-limits";

/// The tests that start a second gateway behind the fault proxy run one at a time.
static FAULTS: Mutex<()> = Mutex::const_new(());

/// A group room in `tenant` with the given members; returns (slug, room id).
async fn room_with(s: &Stack, tenant: &str, members: &[&str]) -> (String, String) {
    let slug = unique("lim");
    let room_id = s.group_room(tenant, &slug, members).await;
    (slug, room_id)
}

/// Text bodies in the room, read as the platform (its creator), oldest first.
async fn bodies(s: &Stack, room_id: &str) -> Vec<String> {
    s.text_bodies(room_id, None).await
}

/// Posts a plain message through the gateway at `base`; returns status, `Retry-After` and body.
async fn post(
    s: &Stack,
    base: &str,
    jwt: &str,
    slug: &str,
    text: &str,
    key: Option<&str>,
) -> (u16, Option<u64>, Value) {
    let mut request = s
        .http
        .post(format!("{base}/v1/groups/{slug}/messages"))
        .bearer_auth(jwt)
        .json(&json!({"body": text, "format": "plain"}));
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    (status, retry_after, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_direct_flood_with_a_browser_token_meets_m_limit_exceeded_but_the_platform_is_not_starved() {
    let s = stack();
    let user = unique("flood");
    s.provision(TENANT, &user, "Flood").await;
    let (slug, room_id) = room_with(s, TENANT, &[&user]).await;
    let (token, _) = s.session(TENANT, &user, Some("FLOOD")).await;

    let mut limited = None;
    for n in 0..30 {
        let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/flood{n}", encode_path(&room_id));
        let (status, body) =
            s.matrix(Method::PUT, &path, Some(&token), Some(json!({"msgtype": "m.text", "body": "flood"}))).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(body);
            break;
        }
        assert_eq!(status, 200, "{body}");
    }
    let limited =
        limited.expect("30 direct sends in a burst all went through: the homeserver does not limit the browser");
    assert_eq!(limited["errcode"], "M_LIMIT_EXCEEDED", "{limited}");
    assert!(limited["retry_after_ms"].as_u64().is_some(), "{limited}");

    // The same user's writes through the platform (appservice, not rate-limited) still go through at once.
    let jwt = s.user_jwt(TENANT, &user, None);
    let run = unique("platform");
    for n in 0..12 {
        let (status, _, body) = post(s, &s.api, &jwt, &slug, &format!("{run} {n}"), None).await;
        assert_eq!(status, 201, "send {n} through the API: {body}");
    }
    assert_eq!(bodies(s, &room_id).await.iter().filter(|b| b.starts_with(&run)).count(), 12);
}

/// Waits until the current rate-limit window has at least `margin` seconds left, so a burst is not split.
async fn fresh_window(s: &Stack, margin: u64) {
    let window: u64 = s.env.get("OPENMEET_RATE_WINDOW_SECS").and_then(|w| w.parse().ok()).unwrap_or(60);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let left = window - now % window;
    if left < margin {
        tokio::time::sleep(Duration::from_secs(left + 1)).await;
    }
}

#[tokio::test]
async fn a_burst_through_the_api_gets_429_with_retry_after_and_nothing_beyond_the_limit_is_sent() {
    let s = stack();
    // Tenants `rlt-*` have small budgets in the local stack (stack.env): 5 writes per user, 8 per tenant's users.
    let tenant = format!("rlt-{}", &unique("t")[2..]);
    let (ann, bob) = (unique("ann"), unique("bob"));
    for user in [&ann, &bob] {
        s.provision(&tenant, user, "Limited").await;
    }
    let (slug, room_id) = room_with(s, &tenant, &[&ann, &bob]).await;
    fresh_window(s, 30).await;

    let run = unique("burst");
    let answers = |user: &str, count: usize| {
        let (jwt, slug, run, user) = (s.user_jwt(&tenant, user, None), slug.clone(), run.clone(), user.to_owned());
        async move {
            let mut answers = Vec::new();
            for n in 0..count {
                answers.push(post(s, &s.api, &jwt, &slug, &format!("{run} {user} {n}"), None).await);
            }
            answers
        }
    };
    let ann_answers = answers(&ann, 8).await;
    let statuses: Vec<u16> = ann_answers.iter().map(|(status, _, _)| *status).collect();
    assert_eq!(statuses, [201, 201, 201, 201, 201, 429, 429, 429], "{ann_answers:?}");
    for (_, retry_after, body) in ann_answers.iter().filter(|(status, _, _)| *status == 429) {
        assert!(retry_after.is_some_and(|secs| (1..=60).contains(&secs)), "Retry-After: {retry_after:?}");
        assert_eq!(
            (body["error"]["code"].as_str(), body["error"]["retryable"].as_bool()),
            (Some("rate_limited"), Some(true))
        );
    }
    // The tenant's users share 8: Bob gets the 3 left.
    let bob_statuses: Vec<u16> = answers(&bob, 5).await.iter().map(|(status, _, _)| *status).collect();
    assert_eq!(bob_statuses, [201, 201, 201, 429, 429]);

    let sent = bodies(s, &room_id).await;
    assert_eq!(sent.iter().filter(|b| b.starts_with(&format!("{run} {ann}"))).count(), 5, "{sent:?}");
    assert_eq!(sent.iter().filter(|b| b.starts_with(&format!("{run} {bob}"))).count(), 3, "{sent:?}");

    // The service has a budget of its own.
    let (status, _, body) = post(s, &s.api, &s.service_jwt(&tenant), &slug, &format!("{run} service"), None).await;
    assert_eq!(status, 201, "{body}");
    // Reads are not limited.
    let (status, body) = s
        .api(Method::GET, &format!("/v1/groups/{slug}/messages?limit=5"), Some(&s.user_jwt(&tenant, &ann, None)), None)
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_bad_pagination_token_is_400_and_leaves_the_circuit_closed() {
    let s = stack();
    let user = unique("page");
    s.provision(TENANT, &user, "Page").await;
    let (slug, _) = room_with(s, TENANT, &[&user]).await;
    let jwt = s.user_jwt(TENANT, &user, None);
    for from in ["s99999999999999999999_0", "abc", "s-1", "m1~1.2;x"] {
        let path = format!("/v1/groups/{slug}/messages?from={}", encode_path(from));
        for _ in 0..4 {
            let (status, body) = s.api(Method::GET, &path, Some(&jwt), None).await;
            assert_eq!(
                (status.as_u16(), body["error"]["code"].as_str()),
                (400, Some("invalid_parameter")),
                "{from}: {body}"
            );
        }
    }
    // A token of the right shape the homeserver does not know is its 400 (or a page), never a 5xx.
    let (status, body) = s.api(Method::GET, &format!("/v1/groups/{slug}/messages?from=m1~1.2"), Some(&jwt), None).await;
    assert_eq!(status, 400, "{body}");
    let (status, health) = s.api(Method::GET, "/v1/health", None, None).await;
    assert_eq!((status.as_u16(), health["status"].as_str()), (200, Some("ok")), "{health}");
}

#[tokio::test]
async fn a_history_page_costs_a_bounded_number_of_homeserver_calls() {
    let s = stack();
    let user = unique("hist");
    s.provision(TENANT, &user, "Hist").await;
    let (slug, _) = room_with(s, TENANT, &[&user]).await;
    let jwt = s.user_jwt(TENANT, &user, None);
    for n in 0..12 {
        assert_eq!(post(s, &s.api, &jwt, &slug, &format!("history {n}"), None).await.0, 201);
    }
    let response = s
        .http
        .get(format!("{}/v1/groups/{slug}/messages?limit=10", s.api))
        .bearer_auth(&jwt)
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"].to_str().expect("request id").to_owned();
    // openapi.yaml: at most limit + 5 homeserver calls for the page, plus a few to resolve the room and check
    // membership.
    let calls = s.homeserver_calls(&request_id);
    assert!(calls <= 10 + 5 + 3, "{calls} homeserver calls for a page of 10");
}

async fn operation(s: &Stack, base: &str, jwt: &str, id: &str) -> Value {
    let (status, body) = s.call(base, Method::GET, &format!("/v1/operations/{id}"), jwt, &[], None).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn delivered(s: &Stack, base: &str, jwt: &str, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let state = operation(s, base, jwt, id).await;
        if state["status"] != "queued" {
            return state;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "still queued: {state}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_user_send_that_meets_a_homeserver_429_is_delivered_later_once() {
    let _faults = FAULTS.lock().await;
    let s = stack();
    let user = unique("rl");
    s.provision(TENANT, &user, "Limited").await;
    let (slug, room_id) = room_with(s, TENANT, &[&user]).await;
    let jwt = s.user_jwt(TENANT, &user, None);
    let proxy = Proxy::start(&s.homeserver).await;
    let queue = format!("openmeet-limits-{}.fifo", &unique("q")[2..]);
    let gateway = SecondGateway::start(s, 3211, &proxy.url(), &queue).await;
    let text = unique("rate limited");

    proxy.set(ProxyMode::RateLimitSends);
    let (status, _, queued) = post(s, &gateway.api, &jwt, &slug, &text, Some(&unique("k"))).await;
    assert_eq!((status, queued["status"].as_str()), (202, Some("queued")), "{queued}");
    assert!(!bodies(s, &room_id).await.contains(&text), "nothing reached the homeserver yet");

    proxy.set(ProxyMode::PassThrough);
    let done = delivered(s, &gateway.api, &jwt, queued["operationId"].as_str().expect("operationId")).await;
    assert_eq!(done["status"], "delivered", "{done}");
    assert_eq!(bodies(s, &room_id).await.iter().filter(|b| **b == text).count(), 1);
    gateway.stop();
}

#[tokio::test]
async fn a_key_reused_after_its_window_during_an_outage_is_queued_as_a_new_message() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use shared::domain::messages::idempotency::{IdempotencyKey, record_key};
    use shared::identity::TenantId;

    let _faults = FAULTS.lock().await;
    let s = stack();
    let user = unique("reuse");
    s.provision(TENANT, &user, "Reuse").await;
    let (slug, room_id) = room_with(s, TENANT, &[&user]).await;
    let jwt = s.user_jwt(TENANT, &user, None);
    let proxy = Proxy::start(&s.homeserver).await;
    let queue = format!("openmeet-limits-{}.fifo", &unique("q")[2..]);
    let gateway = SecondGateway::start(s, 3212, &proxy.url(), &queue).await;
    let key = unique("daily");

    // The gateway learns the room while the homeserver is up (it serves the alias from memory during outages).
    assert_eq!(post(s, &gateway.api, &jwt, &slug, "warm-up", None).await.0, 201);
    // The first use of the key meets an outage: queued, then delivered.
    proxy.set(ProxyMode::Refuse);
    let (status, _, first) = post(s, &gateway.api, &jwt, &slug, "yesterday", Some(&key)).await;
    assert_eq!(status, 202, "{first}");
    proxy.set(ProxyMode::PassThrough);
    assert_eq!(
        delivered(s, &gateway.api, &jwt, first["operationId"].as_str().expect("id")).await["status"],
        "delivered"
    );

    // A day later (the key's record expired), the homeserver is down again and the key is used for a new message.
    let sdk = s.aws().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let tenant = TenantId::parse(TENANT).expect("tenant");
    let (pk, sk) = record_key(&tenant, &format!("u:{user}"), &IdempotencyKey::parse(&key).expect("key"));
    let a_day_ago =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() - 86_401;
    dynamodb
        .update_item()
        .table_name(s.var("OPENMEET_TABLE"))
        .key("pk", AttributeValue::S(pk))
        .key("sk", AttributeValue::S(sk))
        .update_expression("SET expiresAt = :t, createdAt = :t")
        .expression_attribute_values(":t", AttributeValue::N(a_day_ago.to_string()))
        .send()
        .await
        .expect("age the key's record");
    proxy.set(ProxyMode::Refuse);
    let (status, _, second) = post(s, &gateway.api, &jwt, &slug, "today", Some(&key)).await;
    assert_eq!((status, second["status"].as_str()), (202, Some("queued")), "{second}");
    assert_ne!(second["operationId"], first["operationId"], "a new message, not the old operation");
    proxy.set(ProxyMode::PassThrough);
    assert_eq!(
        delivered(s, &gateway.api, &jwt, second["operationId"].as_str().expect("id")).await["status"],
        "delivered"
    );
    let sent = bodies(s, &room_id).await;
    assert_eq!(
        (sent.iter().filter(|b| *b == "yesterday").count(), sent.iter().filter(|b| *b == "today").count()),
        (1, 1)
    );
    gateway.stop();
}
