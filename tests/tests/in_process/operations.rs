//! Operations (the retry queue): sends met by an outage are queued (202) and lose nothing; the worker's batch
//! replays them in order per room, holding a failed room's later records back; the operation reads back.

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use serde_json::json;

use super::support::{World, answer, request, room_id};

/// A homeserver that does not answer within the request timeout is an outage too: the send is queued (202), and
/// once the homeserver is back the worker delivers that very message, once.
#[tokio::test]
async fn a_send_the_homeserver_does_not_answer_is_queued() {
    let w = World::with("hang", &[("MATRIX_REQUEST_TIMEOUT_MS", "300")]).await;
    let (slug, room) = ("gh", room_id("rh"));
    w.active_room(slug, &room).await;
    w.hs.mock_room_send(&room).hangs(Duration::from_millis(300)).expect(1).mount().await;
    let post = request(
        "POST",
        &format!("/v1/groups/{slug}/messages"),
        Some(&w.user_jwt("hal")),
        Some(json!({"body": "still here", "format": "plain"})),
    );
    let (status, reply) = answer(&messages::serve(&w.app, post).await);
    assert_eq!(status, 202, "{reply} after {:?}", w.hs.calls().await);
    let queued = w.queued(1).await;
    assert_eq!(queued.len(), 1, "one queued operation");
    let record = queued[0].body.clone().unwrap_or_default();
    assert!(record.contains(reply["operationId"].as_str().unwrap_or("?")), "{record} for {reply}");
    w.hs.verify().await;

    w.hs.reset().await;
    w.active_room(slug, &room).await;
    w.hs.mock_room_send(&room).ok("$late").expect(1).mount().await;
    let outcome = retry_worker::process_batch(&w.app, batch(queued), None).await;
    assert!(outcome.batch_item_failures.is_empty(), "delivered");
    let sends = w.hs.requests("PUT", &format!("/_matrix/client/v3/rooms/{room}/send/")).await;
    assert_eq!(super::support::body(&sends[0])["body"], "still here");
    w.hs.verify().await;
}

/// The worker's event for records received from the emulator.
fn batch(messages: Vec<aws_sdk_sqs::types::Message>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages.into_iter().map(record).collect();
    event
}

fn record(message: aws_sdk_sqs::types::Message) -> SqsMessage {
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
}

/// Room A's queued send is delivered; room B's first failure holds B's later record back untried (partial batch
/// failure); an unreadable record is acknowledged.
#[tokio::test]
async fn queued_sends_replay_in_order_with_partial_batch_failures() {
    let w = World::new("worker").await;
    let (slug_a, slug_b, room_a, room_b) = ("ga", "gb", room_id("ra"), room_id("rb"));
    w.active_room(slug_a, &room_a).await;
    w.active_room(slug_b, &room_b).await;
    w.hs.mock_room_send(&room_a).outage().mount().await;
    w.hs.mock_room_send(&room_b).outage().mount().await;
    let jwt = w.user_jwt("una");

    let mut operations = Vec::new();
    for (slug, text) in [(slug_a, "a1"), (slug_b, "b1"), (slug_b, "b2")] {
        let post = request(
            "POST",
            &format!("/v1/groups/{slug}/messages"),
            Some(&jwt),
            Some(json!({"body": text, "format": "plain"})),
        );
        let (status, reply) = answer(&messages::serve(&w.app, post).await);
        assert_eq!(status, 202, "{text}: {reply}");
        operations.push(reply["operationId"].as_str().unwrap_or_default().to_owned());
    }
    // b2 queued behind b1 without being tried: the room had a backlog.
    assert_eq!(w.hs.requests("PUT", &format!("/_matrix/client/v3/rooms/{room_b}/send/")).await.len(), 1);
    let read = request("GET", &format!("/v1/operations/{}", operations[0]), Some(&jwt), None);
    let (status, operation) = answer(&provisioning::serve(&w.app, read).await);
    assert_eq!(status, 200, "{operation}");
    assert_ne!(operation["status"], "delivered", "{operation}");

    w.hs.reset().await;
    w.active_room(slug_a, &room_a).await;
    w.active_room(slug_b, &room_b).await;
    w.hs.mock_room_send(&room_a).ok("$a1").expect(1).mount().await;
    w.hs.mock_room_send(&room_b).error(503, "M_UNKNOWN", "Service unavailable").expect(1).mount().await;

    let mut records: Vec<SqsMessage> = w.queued(3).await.into_iter().map(record).collect();
    assert_eq!(records.len(), 3, "three queued operations");
    let mut unreadable = SqsMessage::default();
    unreadable.message_id = Some("unreadable".into());
    unreadable.body = Some("{\"not\": \"an operation\"}".into());
    records.push(unreadable);
    let ids: Vec<String> = records.iter().map(|r| r.message_id.clone().unwrap_or_default()).collect();
    let mut event = SqsEvent::default();
    event.records = records;

    let outcome = retry_worker::process_batch(&w.app, event, None).await;
    let failed: Vec<String> = outcome.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    assert_eq!(failed.len(), 2, "both of room B's records come back: {failed:?} of {ids:?}");
    assert!(!failed.contains(&"unreadable".to_owned()), "an unreadable record is acknowledged");
    w.hs.verify().await;

    let read = request("GET", &format!("/v1/operations/{}", operations[0]), Some(&jwt), None);
    let (status, operation) = answer(&provisioning::serve(&w.app, read).await);
    assert_eq!((status, &operation["status"]), (200, &json!("delivered")), "{operation}");
}
