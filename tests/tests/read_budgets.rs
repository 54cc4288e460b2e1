//! Read budgets (issue 24): GETs are counted per user and per tenant, apart from writes, so one member looping
//! history cannot starve the homeserver for every tenant; a member's history page is bounded; reaction counts are
//! not re-read for every page.

use std::time::Duration;

use integration_tests::{Stack, encode_path, stack, unique};
use reqwest::Method;
use serde_json::{Value, json};

/// Tenants `rbt-*` have small read budgets in the local stack (stack.env): 12 reads per user per 300 s window.
const READS_PER_USER: usize = 12;

/// A GET through the gateway: status, `Retry-After`, `x-request-id` and body.
async fn get(s: &Stack, path: &str, jwt: &str) -> (u16, Option<u64>, String, Value) {
    let response = s.http.get(format!("{}{path}", s.api)).bearer_auth(jwt).send().await.expect("the gateway answers");
    let status = response.status().as_u16();
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let retry_after = header("retry-after").and_then(|v| v.parse().ok());
    let request_id = header("x-request-id").unwrap_or_default();
    (status, retry_after, request_id, response.json().await.unwrap_or(Value::Null))
}

async fn post_message(s: &Stack, slug: &str, jwt: &str, text: &str) -> (u16, Value) {
    let body = json!({"body": text, "format": "plain"});
    let (status, body) = s.api(Method::POST, &format!("/v1/groups/{slug}/messages"), Some(jwt), Some(body)).await;
    (status.as_u16(), body)
}

/// Waits until the read window (300 s unless configured) has at least `margin` seconds left.
async fn fresh_read_window(s: &Stack, margin: u64) {
    let window: u64 = s.env.get("OPENMEET_READ_WINDOW_SECS").and_then(|w| w.parse().ok()).unwrap_or(300);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let left = window - now % window;
    if left < margin {
        tokio::time::sleep(Duration::from_secs(left + 1)).await;
    }
}

#[tokio::test]
async fn a_member_looping_history_meets_429_while_another_tenant_reads_and_their_writes_are_budgeted_apart() {
    let s = stack();
    let (tenant, other_tenant) = (format!("rbt-{}", &unique("a")[2..]), format!("rbt-{}", &unique("b")[2..]));
    let (ann, bob) = (unique("ann"), unique("bob"));
    s.provision(&tenant, &ann, "Ann").await;
    s.provision(&other_tenant, &bob, "Bob").await;
    let (slug, other_slug) = (unique("rb"), unique("rb"));
    s.group_room(&tenant, &slug, &[&ann]).await;
    s.group_room(&other_tenant, &other_slug, &[&bob]).await;
    let (ann_jwt, bob_jwt) = (s.user_jwt(&tenant, &ann, None), s.user_jwt(&other_tenant, &bob, None));
    assert_eq!(post_message(s, &slug, &ann_jwt, "hello").await.0, 201);
    fresh_read_window(s, 30).await;

    let path = format!("/v1/groups/{slug}/messages");
    let mut answered = 0;
    let refused = loop {
        let (status, retry_after, _, body) = get(s, &path, &ann_jwt).await;
        match status {
            200 => answered += 1,
            429 => break (retry_after, body),
            other => panic!("history read {answered}: {other} {body}"),
        }
        assert!(answered <= READS_PER_USER, "more than {READS_PER_USER} reads answered in one window");
    };
    assert_eq!(answered, READS_PER_USER);
    let (retry_after, body) = refused;
    assert!(retry_after.is_some_and(|secs| (1..=300).contains(&secs)), "Retry-After: {retry_after:?}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert_eq!(body["error"]["retryable"], true, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("reads")), "{body}");
    // Any GET draws on the same budget.
    assert_eq!(get(s, &format!("/v1/groups/{slug}/room"), &ann_jwt).await.0, 429);

    // Another tenant's member still reads; the looping member still writes (writes have budgets of their own);
    // health is never budgeted.
    let (status, _, _, body) = get(s, &format!("/v1/groups/{other_slug}/messages"), &bob_jwt).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_message(s, &slug, &ann_jwt, "still writing").await;
    assert_eq!(status, 201, "{body}");
    for _ in 0..3 {
        assert_eq!(get(s, "/v1/health", &ann_jwt).await.0, 200);
    }
    // The service's own reads have their own budget.
    let (status, _, _, body) = get(s, &path, &s.service_jwt(&tenant)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_members_history_page_is_bounded_and_the_services_is_not() {
    let s = stack();
    let tenant = "it-reads";
    let ann = unique("ann");
    let slug = unique("rb");
    s.group_room(tenant, &slug, &[&ann]).await;
    let jwt = s.user_jwt(tenant, &ann, None);
    let path = |limit: u32| format!("/v1/groups/{slug}/messages?limit={limit}");
    let (status, _, _, body) = get(s, &path(51), &jwt).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_parameter")), "{body}");
    assert_eq!(get(s, &path(50), &jwt).await.0, 200);
    assert_eq!(get(s, &path(100), &s.service_jwt(tenant)).await.0, 200);
}

#[tokio::test]
async fn reaction_counts_are_not_read_again_for_every_page_but_an_api_reaction_shows_at_once() {
    let s = stack();
    let tenant = "it-reads";
    let (ann, bob) = (unique("ann"), unique("bob"));
    let slug = unique("rb");
    let room_id = s.group_room(tenant, &slug, &[&ann, &bob]).await;
    let (ann_jwt, bob_jwt) = (s.user_jwt(tenant, &ann, None), s.user_jwt(tenant, &bob, None));
    const MESSAGES: usize = 6;
    let mut events = Vec::new();
    for n in 0..MESSAGES {
        let (status, body) = post_message(s, &slug, &ann_jwt, &format!("m{n}")).await;
        assert_eq!(status, 201, "{body}");
        events.push(body["eventId"].as_str().expect("eventId").to_owned());
    }
    let react =
        |event: &str| format!("/v1/groups/{slug}/messages/{}/reactions/{}", encode_path(event), encode_path("👍"));
    for event in &events {
        assert_eq!(s.api(Method::PUT, &react(event), Some(&bob_jwt), None).await.0, 204);
    }
    let path = format!("/v1/groups/{slug}/messages?limit={MESSAGES}");
    let (status, _, first_id, first) = get(s, &path, &ann_jwt).await;
    assert_eq!(status, 200, "{first}");
    let (status, _, second_id, second) = get(s, &path, &bob_jwt).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(first["messages"], second["messages"], "the same counts, from the cache");
    assert!(first["messages"].as_array().expect("messages").iter().all(|m| m["reactions"] == json!({"👍": 1})));
    tokio::time::sleep(Duration::from_millis(300)).await; // the gateway's log lines are flushed
    let (cold, warm) = (s.homeserver_calls(&first_id), s.homeserver_calls(&second_id));
    println!("history page of {MESSAGES} reacted messages: {cold} homeserver calls cold, {warm} warm (room {room_id})");
    assert!(cold >= warm + MESSAGES, "the second page re-read reactions: {cold} then {warm} calls");

    // A reaction through the API forgets the message's counts: the next page shows it.
    assert_eq!(s.api(Method::PUT, &react(&events[0]), Some(&ann_jwt), None).await.0, 204);
    let (_, _, _, page) = get(s, &path, &ann_jwt).await;
    let listed = page["messages"].as_array().expect("messages").iter().find(|m| m["eventId"] == events[0].as_str());
    assert_eq!(listed.map(|m| &m["reactions"]), Some(&json!({"👍": 2})), "{page}");
}
