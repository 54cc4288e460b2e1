//! OpenMeet's chat notification channel against the real stack (docs/adr/0008-notifications.md): Synapse's pusher
//! calls the push gateway on the local gateway (:3000), which puts one `ChatNotification` on the local event bus
//! (moto); a rule copies each event to a queue, which these tests read. Pushers are checked with the user's own
//! browser token (`GET /pushers`) or, once the user is gone, through the admin API.

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use integration_tests::{Stack, encode_path, stack, unique};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const APP_ID: &str = "org.openmeet.chat";
const DATA_USER: &str = "org.openmeet.user";

fn sqs_client(sdk: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(sdk)
}

/// The queue the local bus's rule copies every chat notification to.
async fn queue_url(s: &Stack, sqs: &aws_sdk_sqs::Client) -> String {
    let name = s.var("OPENMEET_NOTIFICATION_QUEUE");
    let url = sqs.get_queue_url().queue_name(name).send().await.expect("the notification queue exists (bootstrap)");
    url.queue_url().expect("queue url").to_owned()
}

/// Every notification event for `user` of `tenant` that arrives within `wait`, deleted once read. Other tests'
/// events are left visible (visibility timeout 0); events older than ten minutes are leftovers and deleted.
async fn events_for(s: &Stack, tenant: &str, user: &str, wait: Duration) -> Vec<Value> {
    let sdk = s.aws().await;
    let sqs = sqs_client(&sdk);
    let url = queue_url(s, &sqs).await;
    let deadline = Instant::now() + wait;
    let mut found = Vec::new();
    while Instant::now() < deadline {
        let received = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receiving from the notification queue");
        for message in received.messages() {
            let envelope: Value = serde_json::from_str(message.body().unwrap_or("null")).unwrap_or(Value::Null);
            let detail = &envelope["detail"];
            let sent_ms: u64 = message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                .and_then(|t| t.parse().ok())
                .unwrap_or(u64::MAX);
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            let mine = detail["tenant"] == tenant && detail["user"] == user;
            if (mine || now_ms.saturating_sub(sent_ms) > 600_000)
                && let Some(handle) = message.receipt_handle()
            {
                let _ = sqs.delete_message().queue_url(&url).receipt_handle(handle).send().await;
            }
            if mine {
                found.push(envelope);
            }
        }
    }
    found
}

/// Waits until `user` has an event for `event_id` (at most `wait`), then keeps reading for `settle` more, and
/// returns every event of the user for that event id.
async fn events_for_event(s: &Stack, tenant: &str, user: &str, event_id: &str, settle: Duration) -> Vec<Value> {
    let mut all = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !all.iter().any(|e: &Value| e["detail"]["eventId"] == event_id) {
        all.extend(events_for(s, tenant, user, Duration::from_secs(2)).await);
    }
    all.extend(events_for(s, tenant, user, settle).await);
    all.into_iter().filter(|e| e["detail"]["eventId"] == event_id).collect()
}

async fn pushers(s: &Stack, token: &str) -> Vec<Value> {
    let (status, body) = s.matrix(Method::GET, "/_matrix/client/v3/pushers", Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    body["pushers"].as_array().cloned().unwrap_or_default()
}

async fn admin_pushers(s: &Stack, matrix_user_id: &str) -> Vec<Value> {
    let path = format!("/_synapse/admin/v1/users/{}/pushers", encode_path(matrix_user_id));
    let (status, body) = s.matrix(Method::GET, &path, None, None).await;
    assert_eq!(status, 200, "{body}");
    body["pushers"].as_array().cloned().unwrap_or_default()
}

async fn post(s: &Stack, tenant: &str, sender: &str, slug: &str, text: &str) -> String {
    let jwt = s.user_jwt(tenant, sender, None);
    let path = format!("/v1/groups/{slug}/messages");
    let (status, answer) = s.api(Method::POST, &path, Some(&jwt), Some(json!({"body": text, "format": "plain"}))).await;
    assert_eq!(status, 201, "{answer}");
    answer["eventId"].as_str().expect("eventId").to_owned()
}

async fn preference(s: &Stack, tenant: &str, user: &str, chat: Option<&str>) -> (StatusCode, Value) {
    let jwt = s.user_jwt(tenant, user, None);
    let path = "/v1/me/notification-preferences";
    match chat {
        Some(chat) => s.api(Method::PUT, path, Some(&jwt), Some(json!({"chat": chat}))).await,
        None => s.api(Method::GET, path, Some(&jwt), None).await,
    }
}

/// Posts a notify to the local push gateway, as Synapse does.
async fn notify(s: &Stack, body: &Value) -> (StatusCode, Value) {
    let url = s.var("OPENMEET_PUSH_GATEWAY_URL");
    let response = s.http.post(url).json(body).send().await.expect("the push gateway answers");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn ours(pushers: &[Value]) -> Vec<&Value> {
    pushers.iter().filter(|p| p["app_id"] == APP_ID).collect()
}

#[tokio::test]
async fn a_message_becomes_exactly_one_content_free_notification_and_a_retry_adds_none() {
    let s = stack();
    let tenant = unique("it-push");
    let (alice, bob) = ("alice", "bob");
    let slug = unique("chat");
    let room_id = s.group_room(&tenant, &slug, &[alice, bob]).await;
    let (bob_token, _) = s.session(&tenant, bob, None).await;

    // The first session set one pusher: ours, event_id_only, at the configured gateway URL.
    let listed = pushers(s, &bob_token).await;
    let ours = ours(&listed);
    assert_eq!(ours.len(), 1, "{listed:?}");
    let pusher = ours[0];
    assert_eq!(pusher["kind"], "http");
    assert_eq!(pusher["data"]["url"], s.var("OPENMEET_PUSH_GATEWAY_URL"));
    assert_eq!(pusher["data"]["format"], "event_id_only");
    assert_eq!(pusher["data"][DATA_USER], s.matrix_user_id(&tenant, bob));

    let secret = unique("secret-words");
    let event_id = post(s, &tenant, alice, &slug, &format!("meet at the {secret}")).await;
    let events = events_for_event(s, &tenant, bob, &event_id, Duration::from_secs(3)).await;
    assert_eq!(events.len(), 1, "exactly one notification: {events:?}");
    let event = &events[0];
    assert_eq!(event["source"], "openmeet.chat");
    assert_eq!(event["detail-type"], "ChatNotification");
    let detail = &event["detail"];
    assert_eq!(detail["room"], json!({"roomId": room_id, "kind": "group", "slug": slug}));
    assert_eq!(detail["sender"]["user"], alice);
    assert_eq!(detail["sender"]["matrixUserId"], s.matrix_user_id(&tenant, alice));
    assert!(detail["counts"]["unread"].as_u64().is_some_and(|n| n >= 1), "{detail}");
    assert!(detail["priority"] == "high" || detail["priority"] == "low", "{detail}");
    let text = event.to_string();
    for leak in [secret.as_str(), "\"body\"", "\"content\"", "formatted_body"] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
    // The sender is not notified of their own message.
    assert!(events_for(s, &tenant, alice, Duration::from_secs(1)).await.is_empty());

    // Synapse retries a notify that failed: the same notify again puts no second event.
    let retry = json!({"notification": {
        "event_id": event_id, "room_id": room_id, "prio": "high", "counts": {"unread": 1},
        "devices": [{"app_id": APP_ID, "pushkey": pusher["pushkey"], "pushkey_ts": pusher["pushkey_ts"],
                     "data": {"format": "event_id_only", DATA_USER: s.matrix_user_id(&tenant, bob)}}]
    }});
    assert_eq!(notify(s, &retry).await, (StatusCode::OK, json!({"rejected": []})));
    assert_eq!(notify(s, &retry).await, (StatusCode::OK, json!({"rejected": []})));
    let again = events_for(s, &tenant, bob, Duration::from_secs(3)).await;
    assert!(again.is_empty(), "a retried notify put another event: {again:?}");
}

#[tokio::test]
async fn the_gateway_refuses_what_it_did_not_set_and_what_is_not_a_notify() {
    let s = stack();
    let tenant = unique("it-push");
    s.provision(&tenant, "bob", "Bob").await;
    let bob = s.matrix_user_id(&tenant, "bob");
    let forged = |app_id: &str, pushkey: &str, user: &str| {
        json!({"notification": {"event_id": "$x:localhost", "room_id": "!r:localhost", "counts": {"unread": 1},
            "devices": [{"app_id": app_id, "pushkey": pushkey, "data": {DATA_USER: user}}]}})
    };
    for body in [forged(APP_ID, "00ff", &bob), forged("im.vector.app", "k", &bob), forged(APP_ID, "k", "@x:evil")] {
        let pushkey = body["notification"]["devices"][0]["pushkey"].clone();
        assert_eq!(notify(s, &body).await, (StatusCode::OK, json!({"rejected": [pushkey]})), "{body}");
    }
    let (status, answer) = notify(s, &json!({"devices": []})).await;
    assert_eq!(status, 400, "{answer}");
    assert!(events_for(s, &tenant, "bob", Duration::from_secs(1)).await.is_empty());
}

#[tokio::test]
async fn a_foreign_pusher_is_refused_or_removed() {
    let s = stack();
    let tenant = unique("it-push");
    let slug = unique("chat");
    let room_id = s.group_room(&tenant, &slug, &["alice", "bob"]).await;
    let (bob_token, _) = s.session(&tenant, "bob", Some("BOBWEB")).await;
    let bob = s.matrix_user_id(&tenant, "bob");

    // Through the public entry the browser uses: a pusher to any other URL is refused there, or (without the
    // gate) removed by the platform at the next session.
    let public = s.var("MATRIX_PUBLIC_URL").to_owned();
    let foreign = json!({"kind": "http", "app_id": "evil.app", "pushkey": "stolen", "app_display_name": "x",
        "device_display_name": "x", "lang": "en", "data": {"url": "http://127.0.0.1:9/_matrix/push/v1/notify"}});
    let token = s.matrix(Method::GET, "/_matrix/client/v3/account/whoami", Some(&bob_token), None).await;
    assert_eq!(token.0, 200);
    let response = s
        .http
        .post(format!("{public}/_matrix/client/v3/pushers/set"))
        .bearer_auth(&bob_token)
        .json(&foreign)
        .send()
        .await
        .expect("the public entry answers");
    let refused = !response.status().is_success();
    if !refused {
        s.session(&tenant, "bob", Some("BOBWEB2")).await;
    }
    let listed = pushers(s, &bob_token).await;
    assert!(listed.iter().all(|p| p["app_id"] != "evil.app"), "refused={refused}: {listed:?}");

    // A pusher naming our URL with a key the platform did not derive passes any URL check: the gateway rejects
    // its first notify and Synapse deletes it.
    let forged = json!({"kind": "http", "app_id": APP_ID, "pushkey": "forged-key", "app_display_name": "x",
        "device_display_name": "x", "lang": "en",
        "data": {"url": s.var("OPENMEET_PUSH_GATEWAY_URL"), "format": "event_id_only", DATA_USER: bob}});
    let (status, body) = s.matrix(Method::POST, "/_matrix/client/v3/pushers/set", Some(&bob_token), Some(forged)).await;
    assert_eq!(status, 200, "{body}");
    let event_id = post(s, &tenant, "alice", &slug, "ping").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = pushers(s, &bob_token).await;
        if listed.iter().all(|p| p["pushkey"] != "forged-key") {
            break;
        }
        assert!(Instant::now() < deadline, "the forged pusher is still there: {listed:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The genuine pusher still notified exactly once.
    let events = events_for_event(s, &tenant, "bob", &event_id, Duration::from_secs(2)).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail"]["room"]["roomId"], room_id);
}

#[tokio::test]
async fn a_user_with_chat_notifications_off_gets_no_event_and_on_restores_the_pusher() {
    let s = stack();
    let tenant = unique("it-push");
    let slug = unique("chat");
    s.group_room(&tenant, &slug, &["alice", "carol", "dave"]).await;
    let (carol_token, _) = s.session(&tenant, "carol", None).await;
    s.session(&tenant, "dave", None).await;
    assert_eq!(preference(s, &tenant, "carol", None).await, (StatusCode::OK, json!({"chat": "on"})));
    assert_eq!(ours(&pushers(s, &carol_token).await).len(), 1);

    assert_eq!(preference(s, &tenant, "carol", Some("off")).await, (StatusCode::OK, json!({"chat": "off"})));
    assert_eq!(preference(s, &tenant, "carol", Some("off")).await, (StatusCode::OK, json!({"chat": "off"})));
    assert_eq!(preference(s, &tenant, "carol", None).await, (StatusCode::OK, json!({"chat": "off"})));
    assert!(pushers(s, &carol_token).await.is_empty(), "off removes the pusher");
    // A later session does not set it again.
    let (carol_token, _) = s.session(&tenant, "carol", None).await;
    assert!(pushers(s, &carol_token).await.is_empty());

    let event_id = post(s, &tenant, "alice", &slug, "anyone there?").await;
    // Dave (on) is notified; by then, and a little after, Carol has nothing.
    assert_eq!(events_for_event(s, &tenant, "dave", &event_id, Duration::from_secs(1)).await.len(), 1);
    assert!(events_for(s, &tenant, "carol", Duration::from_secs(3)).await.is_empty());

    // Bad input changes nothing; the service does not decide for the user.
    let jwt = s.user_jwt(&tenant, "carol", None);
    for bad in [json!({"chat": "maybe"}), json!({}), json!({"chat": "on", "extra": 1})] {
        let (status, body) = s.api(Method::PUT, "/v1/me/notification-preferences", Some(&jwt), Some(bad)).await;
        assert_eq!(status, 400, "{body}");
    }
    let service = s.service_jwt(&tenant);
    let (status, _) = s.api(Method::GET, "/v1/me/notification-preferences", Some(&service), None).await;
    assert_eq!(status, 403);
    assert_eq!(preference(s, &tenant, "carol", None).await.1, json!({"chat": "off"}));

    assert_eq!(preference(s, &tenant, "carol", Some("on")).await, (StatusCode::OK, json!({"chat": "on"})));
    assert_eq!(ours(&pushers(s, &carol_token).await).len(), 1, "on restores the pusher");
    let event_id = post(s, &tenant, "alice", &slug, "welcome back").await;
    assert_eq!(events_for_event(s, &tenant, "carol", &event_id, Duration::from_secs(1)).await.len(), 1);
}

#[tokio::test]
async fn the_pusher_outlives_the_browser_device_and_goes_with_the_user() {
    let s = stack();
    let tenant = unique("it-push");
    let user = "erin";
    let (token, device) = s.session(&tenant, user, Some("ERINWEB")).await;
    let erin = s.matrix_user_id(&tenant, user);
    assert_eq!(ours(&pushers(s, &token).await).len(), 1);
    // Set on the server device, not with the browser's token: logging the browser device out leaves it.
    let jwt = s.user_jwt(&tenant, user, None);
    let (status, body) =
        s.api(Method::DELETE, "/v1/me/matrix-session", Some(&jwt), Some(json!({"deviceId": device}))).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(ours(&admin_pushers(s, &erin).await).len(), 1, "the pusher survived the browser's logout");
    // A second session keeps the same single pusher (idempotent).
    s.session(&tenant, user, Some("ERINWEB2")).await;
    assert_eq!(ours(&admin_pushers(s, &erin).await).len(), 1);

    let service = s.service_jwt(&tenant);
    let (status, body) = s.api(Method::DELETE, &format!("/v1/users/{user}"), Some(&service), None).await;
    assert!(status == 204 || status == 202, "{status} {body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !admin_pushers(s, &erin).await.is_empty() {
        assert!(Instant::now() < deadline, "the deleted user's pusher is still there");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
