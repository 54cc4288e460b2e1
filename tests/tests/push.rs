//! OpenMeet's chat notification channel against the real stack (docs/adr/0008-notifications.md): Synapse's pusher
//! calls the push gateway on the local gateway (:3000), which puts one `ChatNotification` on the local event bus
//! (moto); a rule copies each event to a queue, which these tests read. Pushers are checked with the user's own
//! browser token (`GET /pushers`) or, once the user is gone, through the admin API.

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use integration_tests::{Stack, encode_path, stack, unique};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const APP_ID: &str = "org.openmeet.chat";
const DATA_USER: &str = "org.openmeet.user";

/// The notification events of one test's tenant: a rule on the local bus matching the tenant copies them to a
/// queue of the test's own (the stack's catch-all queue is shared by every test running at the time).
struct TenantEvents {
    sqs: aws_sdk_sqs::Client,
    events: aws_sdk_eventbridge::Client,
    url: String,
    name: String,
    bus: String,
    seen: Vec<Value>,
}

impl TenantEvents {
    async fn new(s: &Stack, tenant: &str) -> TenantEvents {
        let sdk = s.aws().await;
        let (sqs, events) = (aws_sdk_sqs::Client::new(&sdk), aws_sdk_eventbridge::Client::new(&sdk));
        let (name, bus) = (format!("push-{tenant}"), s.var("OPENMEET_EVENT_BUS").to_owned());
        let created = sqs.create_queue().queue_name(&name).send().await.expect("creating the test's queue");
        let url = created.queue_url().expect("queue url").to_owned();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .expect("queue arn");
        let pattern = json!({"source": ["openmeet.chat"], "detail": {"tenant": [tenant]}}).to_string();
        events.put_rule().name(&name).event_bus_name(&bus).event_pattern(pattern).send().await.expect("rule");
        let target = aws_sdk_eventbridge::types::Target::builder().id("queue").arn(arn).build().expect("target");
        events.put_targets().rule(&name).event_bus_name(&bus).targets(target).send().await.expect("target");
        TenantEvents { sqs, events, url, name, bus, seen: Vec::new() }
    }

    /// Reads (and deletes) what arrives within `wait`.
    async fn pull(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receiving from the test's queue");
            for message in received.messages() {
                self.seen.push(serde_json::from_str(message.body().unwrap_or("null")).unwrap_or(Value::Null));
                if let Some(handle) = message.receipt_handle() {
                    let _ = self.sqs.delete_message().queue_url(&self.url).receipt_handle(handle).send().await;
                }
            }
        }
    }

    fn of(&self, user: &str, event_id: Option<&str>) -> Vec<Value> {
        let wanted = |e: &&Value| e["detail"]["user"] == user && event_id.is_none_or(|id| e["detail"]["eventId"] == id);
        self.seen.iter().filter(wanted).cloned().collect()
    }

    /// Waits (at most 30 s) for the user's event for `event_id`, reads on for `settle`, and returns every event of
    /// the user for it.
    async fn for_event(&mut self, user: &str, event_id: &str, settle: Duration) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && self.of(user, Some(event_id)).is_empty() {
            self.pull(Duration::from_secs(1)).await;
        }
        self.pull(settle).await;
        self.of(user, Some(event_id))
    }

    async fn cleanup(self) {
        let _ = self.events.remove_targets().rule(&self.name).event_bus_name(&self.bus).ids("queue").send().await;
        let _ = self.events.delete_rule().name(&self.name).event_bus_name(&self.bus).send().await;
        let _ = self.sqs.delete_queue().queue_url(&self.url).send().await;
    }
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
    let mut bus = TenantEvents::new(s, &tenant).await;
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
    let events = bus.for_event(bob, &event_id, Duration::from_secs(3)).await;
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
    bus.pull(Duration::from_secs(1)).await;
    assert!(bus.of(alice, None).is_empty());

    // Synapse retries a notify that failed: the same notify again puts no second event.
    let retry = json!({"notification": {
        "event_id": event_id, "room_id": room_id, "prio": "high", "counts": {"unread": 1},
        "devices": [{"app_id": APP_ID, "pushkey": pusher["pushkey"], "pushkey_ts": 1_764_892_800,
                     "data": {"format": "event_id_only", DATA_USER: s.matrix_user_id(&tenant, bob)}}]
    }});
    assert_eq!(notify(s, &retry).await, (StatusCode::OK, json!({"rejected": []})));
    assert_eq!(notify(s, &retry).await, (StatusCode::OK, json!({"rejected": []})));
    bus.pull(Duration::from_secs(3)).await;
    let all = bus.of(bob, None);
    assert_eq!(all.len(), 1, "a retried notify put another event: {all:?}");
    bus.cleanup().await;
}

#[tokio::test]
async fn the_gateway_refuses_what_it_did_not_set_and_what_is_not_a_notify() {
    let s = stack();
    let tenant = unique("it-push");
    let mut bus = TenantEvents::new(s, &tenant).await;
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
    bus.pull(Duration::from_secs(1)).await;
    assert!(bus.of("bob", None).is_empty());
    bus.cleanup().await;
}

#[tokio::test]
async fn a_foreign_pusher_is_refused_or_removed() {
    let s = stack();
    let tenant = unique("it-push");
    let mut bus = TenantEvents::new(s, &tenant).await;
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
    let events = bus.for_event("bob", &event_id, Duration::from_secs(2)).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail"]["room"]["roomId"], room_id);
    bus.cleanup().await;
}

#[tokio::test]
async fn a_user_with_chat_notifications_off_gets_no_event_and_on_restores_the_pusher() {
    let s = stack();
    let tenant = unique("it-push");
    let mut bus = TenantEvents::new(s, &tenant).await;
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
    assert_eq!(bus.for_event("dave", &event_id, Duration::from_secs(1)).await.len(), 1);
    bus.pull(Duration::from_secs(3)).await;
    assert!(bus.of("carol", None).is_empty());

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
    assert_eq!(bus.for_event("carol", &event_id, Duration::from_secs(1)).await.len(), 1);
    bus.cleanup().await;
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

#[tokio::test]
async fn imported_history_notifies_nobody_even_a_mentioned_member() {
    let s = stack();
    let tenant = unique("it-push-imp");
    let mut bus = TenantEvents::new(s, &tenant).await;
    let (alice, bob) = ("alice", "bob");
    let slug = unique("chat");
    let room_id = s.group_room(&tenant, &slug, &[alice, bob]).await;
    let (_bob_token, _) = s.session(&tenant, bob, None).await;
    let bob_id = s.matrix_user_id(&tenant, bob);

    // What the history import sends: as the original sender (appservice masquerade), a mention of Bob, the marker.
    let path = format!(
        "/_matrix/client/v3/rooms/{}/send/m.room.message/{}?user_id={}",
        encode_path(&room_id),
        unique("txn"),
        encode_path(&s.matrix_user_id(&tenant, alice))
    );
    let imported = json!({
        "msgtype": "m.text", "body": format!("hello {bob_id}"), "m.mentions": {"user_ids": [bob_id]},
        "org.openmeet.zulip": {"messageId": 7, "topic": "old times"}
    });
    let (status, sent) = s.matrix(Method::PUT, &path, None, Some(imported)).await;
    assert_eq!(status, 200, "{sent}");
    let imported_id = sent["event_id"].as_str().expect("event_id").to_owned();

    // A live mention afterwards does notify: the channel works, so the silence above is the rule, not an outage.
    let live_id = post(s, &tenant, alice, &slug, &format!("hi {bob_id}")).await;
    let live = bus.for_event(bob, &live_id, Duration::from_secs(3)).await;
    assert_eq!(live.len(), 1, "the live message notifies once: {live:?}");
    assert!(bus.of(bob, Some(&imported_id)).is_empty(), "imported history became a notification: {:?}", bus.seen);
    bus.cleanup().await;
}
