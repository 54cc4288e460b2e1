//! Fault injection against the real homeserver: outages, lost answers, re-minted credentials, permanent
//! failures, poison messages and the DLQ. Each test takes the outage lock: they pause or cut the homeserver.

use std::time::{Duration, Instant};

use integration_tests::fault::{PausedHomeserver, Proxy, ProxyMode, SecondGateway};
use integration_tests::{Stack, encode_path, stack, unique};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;

const TENANT: &str = "it-faults";

static OUTAGE: Mutex<()> = Mutex::const_new(());

/// A group room with one member; returns (slug, room id, member, member's session token).
async fn room_with_member(s: &Stack) -> (String, String, String, String) {
    let (slug, member) = (unique("ops"), unique("mia"));
    let service = s.service_jwt(TENANT);
    let (status, room) = s
        .api(
            Method::PUT,
            &format!("/v1/groups/{slug}/room"),
            Some(&service),
            Some(json!({"name": "Ops", "visibility": "private"})),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    s.provision(TENANT, &member, "Mia").await;
    let (status, body) = s
        .api(
            Method::PUT,
            &format!("/v1/groups/{slug}/members/{member}"),
            Some(&service),
            Some(json!({"role": "member"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (token, _) = s.session(TENANT, &member, None).await;
    (slug, room["roomId"].as_str().expect("roomId").to_owned(), member, token)
}

/// Bodies of the room's text messages, oldest first, read with the member's own session.
async fn bodies(s: &Stack, room_id: &str, token: &str) -> Vec<String> {
    s.text_bodies(room_id, Some(token)).await
}

/// Posts a plain message with an `Idempotency-Key` through the gateway at `base`.
async fn post_plain(s: &Stack, base: &str, jwt: &str, slug: &str, key: &str, text: &str) -> (StatusCode, Value) {
    let path = format!("/v1/groups/{slug}/messages");
    s.call(base, Method::POST, &path, jwt, &[("Idempotency-Key", key)], Some(json!({"body": text, "format": "plain"})))
        .await
}

async fn operation(s: &Stack, base: &str, token: &str, id: &str) -> Value {
    let (status, body) = s.call(base, Method::GET, &format!("/v1/operations/{id}"), token, &[], None).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until every operation has left `queued`; returns the time the last one took.
async fn settle(s: &Stack, base: &str, token: &str, ids: &[String], limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let mut pending = 0;
        for id in ids {
            if operation(s, base, token, id).await["status"] == "queued" {
                pending += 1;
            }
        }
        if pending == 0 {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{pending} operations still queued after {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn messages_sent_during_an_outage_arrive_once_each_in_order() {
    let _outage = OUTAGE.lock().await;
    let s = stack();
    let (slug, room_id, member, token) = room_with_member(s).await;
    let jwt = s.user_jwt(TENANT, &member, None);
    let run = unique("burst");

    let paused = PausedHomeserver::pause(s);
    let mut ids = Vec::new();
    let mut after_open = Vec::new();
    for i in 0..20 {
        let started = Instant::now();
        let key = format!("{run}-{i}");
        let (status, body) = post_plain(s, &s.api, &jwt, &slug, &key, &format!("{run} #{i:02}")).await;
        assert_eq!((status.as_u16(), body["status"].as_str()), (202, Some("queued")), "message {i}: {body}");
        ids.push(body["operationId"].as_str().expect("operationId").to_owned());
        if i >= 5 {
            after_open.push(started.elapsed());
        }
    }
    // Queueing does not wait on homeserver timeouts: the circuit is open (the figure is printed, not asserted).
    after_open.sort();
    let (median, slowest) = (after_open[after_open.len() / 2], after_open[after_open.len() - 1]);
    println!("FIGURE outage: 202 latency with the circuit open: median {median:?}, max {slowest:?}");
    // The service is told which dependency is down (and gets a fresh check, not the outsiders' cached answer).
    let (status, health) = s.api(Method::GET, "/v1/health", Some(&s.service_jwt(TENANT)), None).await;
    assert_eq!(status, 503, "{health}");
    assert!(health["circuit"] == "open" || health["circuit"] == "half-open", "{health}");
    // Reads answer 503 with Retry-After meanwhile.
    let (status, _) = s.api(Method::GET, &format!("/v1/groups/{slug}/room"), Some(&s.service_jwt(TENANT)), None).await;
    assert_eq!(status, 503);

    paused.resume();
    let recovery = settle(s, &s.api, &jwt, &ids, Duration::from_secs(90)).await;
    println!("FIGURE outage: recovery to last queued message delivered = {:.2}s (20 messages)", recovery.as_secs_f64());
    for id in &ids {
        let done = operation(s, &s.api, &jwt, id).await;
        assert_eq!(done["status"], "delivered", "{done}");
        assert!(done["eventId"].as_str().is_some_and(|e| e.starts_with('$')), "{done}");
    }
    let seen: Vec<String> = bodies(s, &room_id, &token).await.into_iter().filter(|b| b.starts_with(&run)).collect();
    let expected: Vec<String> = (0..20).map(|i| format!("{run} #{i:02}")).collect();
    assert_eq!(seen, expected, "each message exactly once, in the order accepted");
    println!("FIGURE outage: duplicates = {}", seen.len() - expected.len());

    // Repeating a queued request's Idempotency-Key gives the same operation, not a second message.
    let key = format!("{run}-0");
    let (status, again) = post_plain(s, &s.api, &jwt, &slug, &key, &format!("{run} #00")).await;
    assert!(status == 201 || status == 202, "{again}");
    assert_eq!(bodies(s, &room_id, &token).await.iter().filter(|b| **b == format!("{run} #00")).count(), 1);
}

#[tokio::test]
async fn a_send_whose_answer_was_lost_is_not_duplicated_even_after_a_re_mint() {
    let _outage = OUTAGE.lock().await;
    let s = stack();
    let (slug, room_id, member, token) = room_with_member(s).await;
    let jwt = s.user_jwt(TENANT, &member, None);
    let proxy = Proxy::start(&s.homeserver).await;
    let queue = format!("openmeet-fault-{}.fifo", &unique("q")[2..]);
    let gateway = SecondGateway::start(s, 3201, &proxy.url(), &queue).await;
    let body = format!("{} lost answer", unique("once"));

    // The send reaches the homeserver; its answer is dropped and the homeserver is cut off afterwards.
    proxy.set(ProxyMode::DropNextSendAnswer);
    let (status, queued) = post_plain(s, &gateway.api, &jwt, &slug, "lost-answer", &body).await;
    assert_eq!((status.as_u16(), queued["status"].as_str()), (202, Some("queued")), "{queued}");
    let operation_id = queued["operationId"].as_str().expect("operationId").to_owned();
    assert_eq!(
        bodies(s, &room_id, &token).await.iter().filter(|b| **b == body).count(),
        1,
        "the first attempt did land"
    );

    // A new container (empty memory) whose stored credential is gone: the replay must re-mint, same device.
    gateway.stop();
    delete_server_credential(s, &member).await;
    let gateway = SecondGateway::start(s, 3201, &proxy.url(), &queue).await;
    proxy.set(ProxyMode::PassThrough);
    settle(s, &gateway.api, &jwt, std::slice::from_ref(&operation_id), Duration::from_secs(60)).await;
    let done = operation(s, &gateway.api, &jwt, &operation_id).await;
    assert_eq!(done["status"], "delivered", "{done}");
    assert_eq!(bodies(s, &room_id, &token).await.iter().filter(|b| **b == body).count(), 1, "the replay posted again");
    println!("FIGURE lost answer: duplicates = 0");
    gateway.stop();
}

async fn delete_server_credential(s: &Stack, user: &str) {
    let sdk = s.aws().await;
    aws_sdk_dynamodb::Client::new(&sdk)
        .delete_item()
        .table_name(s.var("OPENMEET_TABLE"))
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("T#{TENANT}#U#{user}")))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("CRED#server-device#OPENMEET_SERVER".into()))
        .send()
        .await
        .expect("delete the stored credential");
}

#[tokio::test]
async fn a_permanent_failure_fails_at_once_and_a_poison_message_is_redriven_once() {
    let _outage = OUTAGE.lock().await;
    let s = stack();
    let (slug, room_id, member, token) = room_with_member(s).await;
    let jwt = s.user_jwt(TENANT, &member, None);
    let proxy = Proxy::start(&s.homeserver).await;
    let queue = format!("openmeet-fault-{}.fifo", &unique("q")[2..]);
    let gateway = SecondGateway::start(s, 3202, &proxy.url(), &queue).await;

    // Warm this container (room alias, credentials) the way a busy one would be, then cut it off for good:
    // the operation becomes a poison message that exhausts every attempt.
    let (status, warm) = post_plain(s, &gateway.api, &jwt, &slug, "warm-up", &format!("{} warm", unique("w"))).await;
    assert_eq!(status, 201, "{warm}");
    proxy.set(ProxyMode::Refuse);
    let poison = format!("{} poison", unique("p"));
    let (status, queued) = post_plain(s, &gateway.api, &jwt, &slug, "poison", &poison).await;
    assert_eq!(status, 202, "{queued}");
    let poison_id = queued["operationId"].as_str().expect("operationId").to_owned();
    settle(s, &gateway.api, &jwt, std::slice::from_ref(&poison_id), Duration::from_secs(120)).await;
    let failed = operation(s, &gateway.api, &jwt, &poison_id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("gave up after")), "{failed}");

    // The cause is fixed; the redrive delivers it exactly once, and a second redrive moves nothing.
    proxy.set(ProxyMode::PassThrough);
    let mut moved = String::new();
    for _ in 0..40 {
        moved = gateway.run("redrive");
        if !moved.contains("redrove 0 ") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(moved.contains("redrove 1 "), "{moved}");
    settle(s, &gateway.api, &jwt, std::slice::from_ref(&poison_id), Duration::from_secs(60)).await;
    assert_eq!(operation(s, &gateway.api, &jwt, &poison_id).await["status"], "delivered");
    assert!(gateway.run("redrive").contains("redrove 0 "));
    assert_eq!(bodies(s, &room_id, &token).await.iter().filter(|b| **b == poison).count(), 1);

    // Permanent: queued while cut off, but the member is removed before the homeserver is back: 403, no retries.
    proxy.set(ProxyMode::Refuse);
    let refused = format!("{} refused", unique("r"));
    let (status, queued) = post_plain(s, &gateway.api, &jwt, &slug, "refused", &refused).await;
    assert_eq!(status, 202, "{queued}");
    let refused_id = queued["operationId"].as_str().expect("operationId").to_owned();
    let (status, _) =
        s.api(Method::DELETE, &format!("/v1/groups/{slug}/members/{member}"), Some(&s.service_jwt(TENANT)), None).await;
    assert_eq!(status, 204);
    proxy.set(ProxyMode::PassThrough);
    settle(s, &gateway.api, &jwt, std::slice::from_ref(&refused_id), Duration::from_secs(60)).await;
    let failed = operation(s, &gateway.api, &jwt, &refused_id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("refused")), "{failed}");
    assert!(bodies(s, &room_id, &token).await.iter().all(|b| *b != refused));
    gateway.stop();
}

#[tokio::test]
async fn an_older_queued_member_change_loses_to_a_newer_reconcile() {
    let _outage = OUTAGE.lock().await;
    let s = stack();
    let (slug, room_id, member, _) = room_with_member(s).await;
    let late = unique("late");
    s.provision(TENANT, &late, "Late").await;
    let service = s.service_jwt(TENANT);
    let proxy = Proxy::start(&s.homeserver).await;
    let queue = format!("openmeet-fault-{}.fifo", &unique("q")[2..]);
    let gateway = SecondGateway::start(s, 3203, &proxy.url(), &queue).await;

    // Accepted while this container cannot reach the homeserver: queued with its version.
    proxy.set(ProxyMode::Refuse);
    let (status, queued) = s
        .call(
            &gateway.api,
            Method::PUT,
            &format!("/v1/groups/{slug}/members/{late}"),
            &service,
            &[],
            Some(json!({"role": "moderator"})),
        )
        .await;
    assert_eq!((status.as_u16(), queued["status"].as_str()), (202, Some("queued")), "{queued}");
    let operation_id = queued["operationId"].as_str().expect("operationId").to_owned();

    // A newer reconcile, through the healthy gateway, says the room is the member alone.
    let (status, report) = s
        .api(
            Method::PUT,
            &format!("/v1/groups/{slug}/members"),
            Some(&service),
            Some(json!({"members": [{"userId": member, "role": "owner"}]})),
        )
        .await;
    assert_eq!(status, 200, "{report}");

    proxy.set(ProxyMode::PassThrough);
    settle(s, &gateway.api, &service, std::slice::from_ref(&operation_id), Duration::from_secs(60)).await;
    assert_eq!(operation(s, &gateway.api, &service, &operation_id).await["status"], "delivered");
    let (status, state) = s
        .matrix(Method::GET, &format!("/_matrix/client/v3/rooms/{}/joined_members", encode_path(&room_id)), None, None)
        .await;
    assert_eq!(status, 200, "{state}");
    assert!(
        state["joined"].get(s.matrix_user_id(TENANT, &late)).is_none(),
        "the older change overrode the newer reconcile"
    );
    let (_, levels) = s
        .matrix(
            Method::GET,
            &format!("/_matrix/client/v3/rooms/{}/state/m.room.power_levels/", encode_path(&room_id)),
            None,
            None,
        )
        .await;
    assert!(levels["users"].get(s.matrix_user_id(TENANT, &late)).is_none(), "{levels}");
    assert_eq!(levels["users"][s.matrix_user_id(TENANT, &member)], 100);
    gateway.stop();
}
