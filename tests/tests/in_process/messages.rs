//! Messages (messages function): refusals before any call, a send as the member, an idempotent retry that sends
//! nothing twice, a refusal by the homeserver mapped to 4xx.

use std::collections::HashMap;

use serde_json::{Value, json};

use integration_tests::mock_homeserver::{member_event, message_event};

use super::support::{World, answer, body, request, room_id, with_header};

fn post(slug: &str, jwt: &str, text: &str) -> lambda_http::Request {
    let body = json!({"body": text, "format": "markdown"});
    request("POST", &format!("/v1/groups/{slug}/messages"), Some(jwt), Some(body))
}

/// `http::serve` end to end in-process: refusals before any homeserver call, then a send as the member.
#[tokio::test]
async fn serve_checks_then_sends_as_the_member() {
    let w = World::new("serve").await;
    let (user, slug, room) = ("ann", "g1", room_id("r"));
    w.active_room(slug, &room).await;
    w.hs.mock_room_send(&room).as_user(&w.mxid(user)).ok("$sent").expect(1).mount().await;
    let jwt = w.user_jwt(user);

    let unauthenticated = answer(&messages::serve(&w.app, post(slug, "not-a-jwt", "hi")).await);
    assert_eq!(unauthenticated.0, 401, "{}", unauthenticated.1);
    let malformed = request("POST", &format!("/v1/groups/{slug}/messages"), Some(&jwt), None);
    assert_eq!(answer(&messages::serve(&w.app, malformed).await).0, 400);
    assert!(w.hs.calls().await.is_empty(), "refusals call nothing");
    let blank = answer(&messages::serve(&w.app, post(slug, &jwt, "  ")).await);
    assert_eq!(blank.0, 400, "{}", blank.1);

    let (status, sent) = answer(&messages::serve(&w.app, post(slug, &jwt, "Hello **all**")).await);
    assert_eq!(status, 201, "{sent} after {:?}", w.hs.calls().await);
    assert_eq!(sent["eventId"], "$sent");
    let sends = w.hs.requests("PUT", &format!("/_matrix/client/v3/rooms/{room}/send/")).await;
    let query: HashMap<_, _> = sends[0].url.query_pairs().into_owned().collect();
    assert_eq!(query.get("user_id"), Some(&w.mxid(user)));
    let content = body(&sends[0]);
    assert_eq!(content["msgtype"], "m.text");
    assert_eq!(content["body"], "Hello **all**");
    let html = content["formatted_body"].as_str().unwrap_or_default();
    assert!(html.contains("Hello <strong>all</strong>"), "{content}");
    w.hs.verify().await;
}

/// A retry with the same `Idempotency-Key` answers the first send's event and sends nothing again; the same key
/// on another body is refused.
#[tokio::test]
async fn an_idempotent_retry_sends_once() {
    let w = World::new("idem").await;
    let (user, slug, room) = ("bo", "g2", room_id("r"));
    w.active_room(slug, &room).await;
    w.hs.mock_room_send(&room).ok("$once").expect(1).mount().await;
    let jwt = w.user_jwt(user);
    let key = integration_tests::unique("key");
    let first = answer(&messages::serve(&w.app, with_header(post(slug, &jwt, "once"), "idempotency-key", &key)).await);
    let again = answer(&messages::serve(&w.app, with_header(post(slug, &jwt, "once"), "idempotency-key", &key)).await);
    assert_eq!(first.0, 201, "{} after {:?}", first.1, w.hs.calls().await);
    assert!(again.0 == 200 || again.0 == 201, "{}", again.1);
    assert_eq!(again.1["eventId"], "$once", "{}", again.1);
    let other = answer(&messages::serve(&w.app, with_header(post(slug, &jwt, "other"), "idempotency-key", &key)).await);
    assert!(other.0 == 409 || other.0 == 422, "a reused key on another body: {}", other.1);
    w.hs.verify().await;
}

/// The homeserver refusing the sender (not in the room) is a 403 for the caller, not a queued retry.
#[tokio::test]
async fn a_refusal_by_the_homeserver_is_a_4xx() {
    let w = World::new("refused").await;
    let (user, slug, room) = ("cy", "g3", room_id("r"));
    w.active_room(slug, &room).await;
    w.hs.mock_room_send(&room).not_in_room(&w.mxid(user), &room).expect(1).mount().await;
    let (status, reply) = answer(&messages::serve(&w.app, post(slug, &w.user_jwt(user), "hi")).await);
    assert_eq!(status, 403, "{reply} after {:?}", w.hs.calls().await);
    assert_ne!(reply["error"], Value::Null, "{reply}");
    assert!(w.queued(0).await.is_empty(), "nothing queued");
    w.hs.verify().await;
}

/// A member reads the room's history: the homeserver's page read on the member's behalf, messages mapped to
/// OpenMeet users (the platform's own events left out); a non-member reads nothing.
#[tokio::test]
async fn a_member_reads_history_and_a_stranger_reads_nothing() {
    let w = World::new("history").await;
    let (slug, room) = ("gr", room_id("r"));
    let (ann, bob) = (w.mxid("ann"), w.mxid("bob"));
    w.active_room(slug, &room).await;
    w.hs.mock_state_event(&room, "m.room.member", &ann).ok(json!({"membership": "join"})).mount().await;
    w.hs.mock_state_event(&room, "m.room.member", &w.mxid("eve")).not_found().mount().await;
    let page = vec![
        message_event(&room, "$2", &bob, 1_796_439_573_429, json!({"msgtype": "m.text", "body": "second"})),
        member_event(&room, &bob, "join"),
        message_event(&room, "$1", &ann, 1_796_439_573_280, json!({"msgtype": "m.text", "body": "first"})),
    ];
    w.hs.mock_room_messages(&room).ok(page, None).expect(1).mount().await;

    let list = request("GET", &format!("/v1/groups/{slug}/messages"), Some(&w.user_jwt("ann")), None);
    let (status, reply) = answer(&messages::serve(&w.app, list).await);
    assert_eq!(status, 200, "{reply} after {:?}", w.hs.calls().await);
    let text = reply.to_string();
    assert!(text.contains("\"first\"") && text.contains("\"second\""), "both messages: {reply}");
    assert!(text.contains("\"$1\"") && text.contains("\"$2\""), "their event ids: {reply}");
    assert!(!text.contains(&bob), "senders are OpenMeet users, not Matrix ids: {reply}");

    let stranger = request("GET", &format!("/v1/groups/{slug}/messages"), Some(&w.user_jwt("eve")), None);
    let (status, reply) = answer(&messages::serve(&w.app, stranger).await);
    assert_eq!(status, 403, "{reply}");
    w.hs.verify().await;
}

/// A user past their write budget gets 429 with `Retry-After`, and nothing reaches the homeserver.
#[tokio::test]
async fn a_spent_write_budget_is_429_and_sends_nothing() {
    let w = World::with("budget", &[("OPENMEET_RATE_USER", "2")]).await;
    let (slug, room) = ("gb", room_id("r"));
    w.active_room(slug, &room).await;
    w.hs.mock_room_send(&room).ok("$within").expect(2).mount().await;
    let jwt = w.user_jwt("pat");
    let mut statuses = Vec::new();
    for text in ["one", "two", "three"] {
        let response = messages::serve(&w.app, post(slug, &jwt, text)).await;
        if response.status() == 429 {
            assert!(response.headers().contains_key("retry-after"), "{:?}", response.headers());
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [201, 201, 429]);
    w.hs.verify().await;
}
