//! Messages, reactions, notification levels and media against the real homeserver. Every effect is read back from
//! Synapse with the member's own browser session (raw `/messages`, `/event`, `/pushrules`, media downloads).

use integration_tests::{encode_path, remember_session, stack, unique};
use reqwest::Method;
use serde_json::{Value, json};

const TENANT: &str = "it-msg";

/// A 4×3 RGB PNG, valid enough for the homeserver to thumbnail.
const PNG: [u8; 96] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x04, 0x00, 0x00, 0x00, 0x03, 0x08, 0x02, 0x00, 0x00, 0x00, 0x3b, 0x96, 0x39, 0x91, 0x00, 0x00, 0x00, 0x27, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x0d, 0xc7, 0x31, 0x01, 0x00, 0x30, 0x0c, 0xc3, 0x30, 0xc3, 0x09, 0x88, 0x80, 0x28,
    0x9c, 0x9c, 0x86, 0xbe, 0xe9, 0x13, 0x60, 0xf0, 0x70, 0x08, 0x35, 0xf5, 0xea, 0xfa, 0x33, 0x33, 0x6f, 0x6e, 0x3e,
    0xc0, 0x3f, 0x0b, 0xa1, 0x15, 0xb6, 0x02, 0x84, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60,
    0x82,
];

thread_local! {
    /// One HTTP client per test: each `#[tokio::test]` has its own runtime (and thread), and a pooled connection
    /// made under a runtime that has ended fails the next request that picks it up.
    static CLIENT: reqwest::Client = reqwest::Client::new();
}

fn client() -> reqwest::Client {
    CLIENT.with(reqwest::Client::clone)
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap_or_else(|e| panic!("no answer: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
}

/// Calls the API through the gateway.
async fn api(method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut request = client().request(method, format!("{}{path}", stack().api));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    send(request).await
}

/// Calls the homeserver directly with a member's own session (renewed by the harness once it expires).
async fn matrix(method: Method, path: &str, session: &str) -> (u16, Value) {
    let (status, body) = stack().matrix(method, path, Some(session), None).await;
    (status.as_u16(), body)
}

/// A group room with members, and a browser session per member for reading the homeserver directly.
struct Room {
    path: String,
    room_id: String,
    members: Vec<Member>,
}

struct Member {
    user: String,
    jwt: String,
    session: String,
}

impl Room {
    /// Creates a group room and adds each `(name, role)` as a member.
    async fn with(members: &[(&str, &str)]) -> Room {
        let s = stack();
        let service = s.service_jwt(TENANT);
        let slug = unique("chat");
        let room_body = json!({"name": format!("Chat {slug}"), "visibility": "public"});
        let (status, room) =
            api(Method::PUT, &format!("/v1/groups/{slug}/room"), Some(&service), Some(room_body)).await;
        assert_eq!(status, 201, "creating the room: {room}");
        let mut joined = Vec::new();
        for (name, role) in members {
            let user = unique(name);
            let profile = json!({"displayName": capitalised(name)});
            let (status, body) = api(Method::PUT, &format!("/v1/users/{user}"), Some(&service), Some(profile)).await;
            assert!(status == 201 || status == 200, "provisioning {user}: {body}");
            let member_path = format!("/v1/groups/{slug}/members/{user}");
            let (status, body) = api(Method::PUT, &member_path, Some(&service), Some(json!({"role": role}))).await;
            assert_eq!(status, 200, "adding {user}: {body}");
            let jwt = s.user_jwt(TENANT, &user, None);
            let (status, session) =
                api(Method::POST, "/v1/me/matrix-session", Some(&jwt), Some(json!({"deviceId": "TESTS"}))).await;
            assert_eq!(status, 200, "session for {user}: {session}");
            let session = remember_session(&session);
            joined.push(Member { jwt, user, session });
        }
        Room {
            path: format!("/v1/groups/{slug}"),
            room_id: room["roomId"].as_str().expect("roomId").to_owned(),
            members: joined,
        }
    }

    fn member(&self, index: usize) -> &Member {
        &self.members[index]
    }

    async fn post(&self, jwt: &str, body: Value) -> (u16, Value) {
        let (status, answer) = api(Method::POST, &format!("{}/messages", self.path), Some(jwt), Some(body)).await;
        (status, answer)
    }

    async fn post_ok(&self, jwt: &str, body: Value) -> String {
        let (status, answer) = self.post(jwt, body).await;
        assert_eq!(status, 201, "{answer}");
        answer["eventId"].as_str().expect("eventId").to_owned()
    }

    async fn list(&self, jwt: &str, query: &str) -> Value {
        let (status, page) = api(Method::GET, &format!("{}/messages{query}", self.path), Some(jwt), None).await;
        assert_eq!(status, 200, "{page}");
        page
    }

    /// The raw event, read with a member's own session.
    async fn raw_event(&self, session: &str, event_id: &str) -> Value {
        let path = format!("/_matrix/client/v3/rooms/{}/event/{}", encode_path(&self.room_id), encode_path(event_id));
        let (status, event) = matrix(Method::GET, &path, session).await;
        assert_eq!(status, 200, "{event}");
        event
    }

    /// Every `m.room.message` event of the room, newest first, read with a member's own session.
    async fn raw_messages(&self, session: &str) -> Vec<Value> {
        let filter = encode_path(&json!({"types": ["m.room.message"]}).to_string());
        let path = format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=1000&filter={filter}",
            encode_path(&self.room_id)
        );
        let (status, page) = matrix(Method::GET, &path, session).await;
        assert_eq!(status, 200, "{page}");
        page["chunk"].as_array().expect("chunk").clone()
    }
}

fn capitalised(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn mxid(user: &str) -> String {
    stack().matrix_user_id(TENANT, user)
}

/// No element may run script: only the Matrix-allowed tags, no event handler, no script URL.
fn assert_harmless(html: &str) {
    let allowed = ["p", "strong", "em", "del", "a", "code", "pre", "br", "ul", "ol", "li", "blockquote", "h1", "h2"];
    for tag in html.split('<').skip(1).map(|rest| rest.split('>').next().unwrap_or("")) {
        let name = tag.trim_start_matches('/').split([' ', '/']).next().unwrap_or("").to_lowercase();
        assert!(allowed.contains(&name.as_str()), "<{tag}> in {html}");
        let lowered = tag.to_lowercase();
        assert!(!lowered.contains(" on") && !lowered.contains("javascript:"), "<{tag}> in {html}");
        if let Some(href) = lowered.split("href=\"").nth(1) {
            assert!(href.starts_with("https://"), "<{tag}> in {html}");
        }
    }
}

fn find<'a>(page: &'a Value, event_id: &str) -> &'a Value {
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["eventId"] == event_id)
        .unwrap_or_else(|| panic!("{event_id} not in {page}"))
}

#[tokio::test]
async fn markdown_is_rendered_sanitised_and_mentions_members() {
    let room = Room::with(&[("ada", "member"), ("bea", "member"), ("mod", "moderator")]).await;
    let (ada, bea, moderator) = (room.member(0), room.member(1), room.member(2));
    let body = format!(
        "**Hi** @{} and @room!\n\n<script>alert(1)</script>\n\nsee <img src=x onerror=alert(1)> here\n\n\
         [click](javascript:alert(1)) and [this](JAVASCRIPT:alert(2)) ~~old~~ https://openmeet.net\n\n\
         ```js\nalert(`@{}`)\n```",
        bea.user, bea.user
    );
    let event_id = room.post_ok(&ada.jwt, json!({"body": body, "format": "markdown"})).await;

    let event = room.raw_event(&bea.session, &event_id).await;
    assert_eq!(event["sender"], mxid(&ada.user));
    let content = &event["content"];
    assert_eq!(content["body"], body.as_str(), "the plain body is the readable fallback");
    assert_eq!(content["format"], "org.matrix.custom.html");
    let html = content["formatted_body"].as_str().expect("formatted_body");
    assert_harmless(html);
    assert!(html.contains("<a>click</a>") && html.contains("<a>this</a>"), "links lose their script URL: {html}");
    assert!(html.contains("&lt;script&gt;") && html.contains("&lt;img"), "typed HTML shows as text: {html}");
    assert!(html.contains("<strong>Hi</strong>"), "{html}");
    assert!(html.contains("<del>old</del>"), "{html}");
    assert!(html.contains(r#"<a href="https://openmeet.net">https://openmeet.net</a>"#), "{html}");
    assert!(html.contains("&lt;script&gt;"), "typed HTML shows as text: {html}");
    let pill = format!(r#"<a href="https://matrix.to/#/{}">Bea</a>"#, mxid(&bea.user));
    assert_eq!(html.matches(&pill).count(), 1, "one pill, none inside code: {html}");
    assert!(html.contains(r#"<code class="language-js">"#), "{html}");
    // A member may not notify the whole room.
    assert_eq!(content["m.mentions"], json!({"user_ids": [mxid(&bea.user)]}));

    let announcement = room.post_ok(&moderator.jwt, json!({"body": "@room meeting now", "format": "plain"})).await;
    let content = room.raw_event(&ada.session, &announcement).await["content"].clone();
    assert_eq!(content["m.mentions"], json!({"room": true}));
    assert!(content.get("formatted_body").is_none(), "plain sends the body only: {content}");

    // What the API lists is what the homeserver holds, sanitised.
    let page = room.list(&bea.jwt, "?limit=10").await;
    let listed = find(&page, &event_id);
    assert_eq!(listed["userId"], ada.user.as_str());
    assert_eq!(listed["html"], html);
    assert_eq!(listed["deleted"], false);
}

#[tokio::test]
async fn one_idempotency_key_sends_one_event() {
    let room = Room::with(&[("ivy", "member")]).await;
    let ivy = room.member(0);
    let s = stack();
    let key = unique("key");
    let send = |body: &'static str| {
        let request = s
            .http
            .post(format!("{}{}/messages", s.api, room.path))
            .bearer_auth(&ivy.jwt)
            .header("Idempotency-Key", key.clone())
            .json(&json!({"body": body, "format": "markdown"}));
        async move {
            let response = request.send().await.expect("gateway");
            (response.status().as_u16(), response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (first_status, first) = send("exactly once").await;
    assert_eq!(first_status, 201, "{first}");
    for _ in 0..3 {
        let (status, again) = send("exactly once").await;
        assert_eq!((status, &again), (201, &first));
    }
    let (status, other) = send("another text").await;
    assert_eq!((status, other["error"]["code"].as_str()), (409, Some("conflict")), "{other}");
    let held: Vec<Value> = room
        .raw_messages(&ivy.session)
        .await
        .into_iter()
        .filter(|e| e["content"]["body"] == "exactly once" || e["content"]["body"] == "another text")
        .collect();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["event_id"], first["eventId"]);

    // Without a key, each call is a send.
    let a = room.post_ok(&ivy.jwt, json!({"body": "twice", "format": "plain"})).await;
    let b = room.post_ok(&ivy.jwt, json!({"body": "twice", "format": "plain"})).await;
    assert_ne!(a, b);

    let bad_key = s
        .http
        .post(format!("{}{}/messages", s.api, room.path))
        .bearer_auth(&ivy.jwt)
        .header("Idempotency-Key", "x".repeat(129))
        .json(&json!({"body": "x", "format": "plain"}))
        .send()
        .await
        .expect("gateway");
    assert_eq!(bad_key.status(), 400);
}

#[tokio::test]
async fn only_the_sender_edits_and_edits_show_in_history() {
    let room = Room::with(&[("eve", "member"), ("fay", "admin")]).await;
    let (eve, fay) = (room.member(0), room.member(1));
    let event_id = room.post_ok(&eve.jwt, json!({"body": "first draft", "format": "markdown"})).await;
    let path = format!("{}/messages/{}", room.path, encode_path(&event_id));
    let s = stack();

    let (status, body) =
        api(Method::PUT, &path, Some(&fay.jwt), Some(json!({"body": "hijacked", "format": "plain"}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    let (status, body) =
        api(Method::PUT, &path, Some(&s.service_jwt(TENANT)), Some(json!({"body": "service", "format": "plain"})))
            .await;
    assert_eq!(status, 403, "{body}");

    let edit = json!({"body": "final **text**", "format": "markdown"});
    let (status, edited) = api(Method::PUT, &path, Some(&eve.jwt), Some(edit.clone())).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["eventId"], event_id.as_str());
    let (status, again) = api(Method::PUT, &path, Some(&eve.jwt), Some(edit)).await;
    assert_eq!((status, &again), (200, &edited), "the same edit twice changes nothing");

    let raw = room.raw_event(&fay.session, edited["editEventId"].as_str().expect("editEventId")).await;
    let content = &raw["content"];
    assert_eq!(content["body"], "* final **text**");
    assert_eq!(content["m.relates_to"], json!({"rel_type": "m.replace", "event_id": event_id}));
    assert_eq!(content["m.new_content"]["body"], "final **text**");
    assert_eq!(content["m.new_content"]["formatted_body"], "<p>final <strong>text</strong></p>\n");
    let edits =
        room.raw_messages(&fay.session).await.into_iter().filter(|e| e["content"]["m.new_content"].is_object()).count();
    assert_eq!(edits, 1);

    let page = room.list(&fay.jwt, "").await;
    assert_eq!(page["messages"].as_array().expect("messages").len(), 1, "edits are not messages: {page}");
    let listed = find(&page, &event_id);
    assert_eq!(listed["body"], "final **text**");
    assert!(listed["editedAt"].is_string(), "{listed}");

    let (status, _) = api(
        Method::PUT,
        &format!("{}/messages/%24nope", room.path),
        Some(&eve.jwt),
        Some(json!({"body": "x", "format": "plain"})),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn threads_replies_reactions_and_deletions_have_their_shape() {
    let room = Room::with(&[("gil", "member"), ("hal", "member"), ("kim", "moderator")]).await;
    let (gil, hal, kim) = (room.member(0), room.member(1), room.member(2));
    let s = stack();
    let root = room.post_ok(&gil.jwt, json!({"body": "root", "format": "markdown"})).await;
    let first =
        room.post_ok(&hal.jwt, json!({"body": "in thread 1", "format": "markdown", "threadRootId": root})).await;
    let second =
        room.post_ok(&gil.jwt, json!({"body": "in thread 2", "format": "markdown", "threadRootId": root})).await;
    let reply = room.post_ok(&hal.jwt, json!({"body": "a reply", "format": "markdown", "replyToId": root})).await;

    let raw = room.raw_event(&gil.session, &second).await;
    assert_eq!(
        raw["content"]["m.relates_to"],
        json!({"rel_type": "m.thread", "event_id": root, "is_falling_back": true, "m.in_reply_to": {"event_id": first}})
    );
    let raw = room.raw_event(&gil.session, &reply).await;
    assert_eq!(raw["content"]["m.relates_to"], json!({"m.in_reply_to": {"event_id": root}}));
    assert_eq!(raw["content"]["m.mentions"], json!({"user_ids": [mxid(&gil.user)]}), "replies notify the author");
    let (status, body) = room.post(&hal.jwt, json!({"body": "x", "format": "plain", "threadRootId": first})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_body")), "no thread in a thread");

    // Reactions: two 👍 (one sent twice), one 🎉 added then removed.
    let reaction = |event: &str, key: &str| {
        format!("{}/messages/{}/reactions/{}", room.path, encode_path(event), encode_path(key))
    };
    for jwt in [&gil.jwt, &hal.jwt, &hal.jwt] {
        let (status, body) = api(Method::PUT, &reaction(&root, "👍"), Some(jwt), None).await;
        assert_eq!(status, 204, "{body}");
    }
    let (status, _) = api(Method::PUT, &reaction(&root, "🎉"), Some(&gil.jwt), None).await;
    assert_eq!(status, 204);
    for _ in 0..2 {
        let (status, body) = api(Method::DELETE, &reaction(&root, "🎉"), Some(&gil.jwt), None).await;
        assert_eq!(status, 204, "{body}");
    }
    let (status, _) = api(Method::PUT, &reaction(&root, "👍"), Some(&s.service_jwt(TENANT)), None).await;
    assert_eq!(status, 403, "reactions are a member's");

    let page = room.list(&hal.jwt, "").await;
    let ids: Vec<&str> =
        page["messages"].as_array().expect("messages").iter().filter_map(|m| m["eventId"].as_str()).collect();
    assert_eq!(ids, vec![reply.as_str(), root.as_str()], "thread replies live in their thread: {page}");
    let listed_root = find(&page, &root);
    assert_eq!(listed_root["reactions"], json!({"👍": 2}));
    assert_eq!(listed_root["threadReplyCount"], 2);
    assert_eq!(find(&page, &reply)["replyToId"], root.as_str());

    // An edit inside the thread shows there.
    let edit_path = format!("{}/messages/{}", room.path, encode_path(&first));
    let (status, body) =
        api(Method::PUT, &edit_path, Some(&hal.jwt), Some(json!({"body": "in thread 1 (edited)", "format": "plain"})))
            .await;
    assert_eq!(status, 200, "{body}");
    let thread = room.list(&hal.jwt, &format!("?threadRootId={}", encode_path(&root))).await;
    assert_eq!(find(&thread, &first)["body"], "in thread 1 (edited)", "{thread}");
    let ids: Vec<&str> =
        thread["messages"].as_array().expect("messages").iter().filter_map(|m| m["eventId"].as_str()).collect();
    assert_eq!(ids, vec![second.as_str(), first.as_str(), root.as_str()], "{thread}");
    assert_eq!(find(&thread, &first)["threadRootId"], root.as_str());
    assert!(find(&thread, &first).get("replyToId").is_none(), "a thread fallback is no reply");
    // Paged by one: the homeserver's token passes through.
    let page_one = room.list(&hal.jwt, &format!("?threadRootId={}&limit=1", encode_path(&root))).await;
    assert_eq!(page_one["messages"][0]["eventId"], second.as_str());
    let next = page_one["next"].as_str().expect("next");
    let page_two =
        room.list(&hal.jwt, &format!("?threadRootId={}&limit=1&from={}", encode_path(&root), encode_path(next))).await;
    assert_eq!(page_two["messages"][0]["eventId"], first.as_str());
    let next = page_two["next"].as_str().expect("the root is still to come");
    let page_three =
        room.list(&hal.jwt, &format!("?threadRootId={}&limit=1&from={}", encode_path(&root), encode_path(next))).await;
    assert_eq!(page_three["messages"][0]["eventId"], root.as_str());
    assert_eq!(page_three["messages"].as_array().map(Vec::len), Some(1));
    assert!(page_three.get("next").is_none(), "{page_three}");

    // Deleting: not someone else's as a member; as a moderator yes; twice is fine.
    let delete = |event: &str| format!("{}/messages/{}", room.path, encode_path(event));
    let (status, _) = api(Method::DELETE, &delete(&root), Some(&hal.jwt), None).await;
    assert_eq!(status, 403);
    for _ in 0..2 {
        let (status, body) = api(Method::DELETE, &delete(&root), Some(&kim.jwt), None).await;
        assert_eq!(status, 204, "{body}");
    }
    let (status, body) = api(Method::DELETE, &delete(&reply), Some(&hal.jwt), None).await;
    assert_eq!(status, 204, "{body}");
    let raw = room.raw_event(&gil.session, &root).await;
    assert!(raw["unsigned"]["redacted_because"].is_object(), "{raw}");
    let page = room.list(&s.service_jwt(TENANT), "").await;
    let deleted = find(&page, &root);
    assert_eq!(
        (deleted["deleted"].as_bool(), deleted["body"].as_str(), deleted["html"].as_str()),
        (Some(true), Some(""), Some(""))
    );
    let (status, body) = api(Method::PUT, &reaction(&root, "👍"), Some(&hal.jwt), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")));

    // Someone outside the room reads nothing.
    let outsider = s.user_jwt(TENANT, &unique("out"), None);
    let (status, _) = api(Method::GET, &format!("{}/messages", room.path), Some(&outsider), None).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn history_pages_newest_first() {
    let room = Room::with(&[("pam", "member")]).await;
    let pam = room.member(0);
    let mut sent = Vec::new();
    for n in 0..5 {
        sent.push(room.post_ok(&pam.jwt, json!({"body": format!("message {n}"), "format": "plain"})).await);
    }
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = room.list(&pam.jwt, &query).await;
        let messages = page["messages"].as_array().expect("messages");
        assert!(messages.len() <= 2);
        seen.extend(messages.iter().map(|m| m["eventId"].as_str().expect("id").to_owned()));
        match page["next"].as_str() {
            Some(next) if !messages.is_empty() => query = format!("?limit=2&from={}", encode_path(next)),
            _ => break,
        }
    }
    sent.reverse();
    assert_eq!(seen, sent);
    let (status, _) = api(Method::GET, &format!("{}/messages?limit=101", room.path), Some(&pam.jwt), None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn notification_levels_round_trip_through_push_rules() {
    let room = Room::with(&[("nia", "member")]).await;
    let nia = room.member(0);
    let s = stack();
    let path = format!("{}/notifications", room.path);
    let rule = |kind: &'static str| {
        let path = format!("/_matrix/client/v3/pushrules/global/{kind}/{}", encode_path(&room.room_id));
        async move { matrix(Method::GET, &path, &nia.session).await }
    };
    let (status, level) = api(Method::GET, &path, Some(&nia.jwt), None).await;
    assert_eq!((status, level), (200, json!({"level": "all"})));

    for level in ["mentions", "mute", "mentions", "all"] {
        let (status, answer) = api(Method::PUT, &path, Some(&nia.jwt), Some(json!({"level": level}))).await;
        assert_eq!((status, &answer), (200, &json!({"level": level})));
        let (_, read) = api(Method::GET, &path, Some(&nia.jwt), None).await;
        assert_eq!(read, json!({"level": level}));
        let (room_status, room_rule) = rule("room").await;
        let (override_status, override_rule) = rule("override").await;
        match level {
            "mentions" => {
                assert_eq!(room_status, 200, "{room_rule}");
                assert_eq!(room_rule["actions"], json!([]));
                assert_eq!(override_status, 404);
            }
            "mute" => {
                assert_eq!(override_status, 200, "{override_rule}");
                assert_eq!(override_rule["actions"], json!([]));
                assert_eq!(
                    override_rule["conditions"],
                    json!([{"kind": "event_match", "key": "room_id", "pattern": room.room_id}])
                );
                assert_eq!(room_status, 404);
            }
            _ => assert_eq!((room_status, override_status), (404, 404)),
        }
    }
    let (status, _) = api(Method::PUT, &path, Some(&nia.jwt), Some(json!({"level": "loud"}))).await;
    assert_eq!(status, 400);
    let (status, _) = api(Method::GET, &path, Some(&s.service_jwt(TENANT)), None).await;
    assert_eq!(status, 403);
}

async fn upload(jwt: &str, room_path: &str, content_type: Option<&str>, query: &str, body: Vec<u8>) -> (u16, Value) {
    let s = stack();
    let mut request = client().post(format!("{}{room_path}/media{query}", s.api)).bearer_auth(jwt).body(body);
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    let response = request.send().await.expect("gateway");
    (response.status().as_u16(), response.json::<Value>().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn media_uploads_download_byte_identical_and_attach() {
    let room = Room::with(&[("ola", "member"), ("pia", "member")]).await;
    let (ola, pia) = (room.member(0), room.member(1));
    let s = stack();

    let (status, image) = upload(&ola.jwt, &room.path, Some("image/png"), "?filename=dots.png", PNG.to_vec()).await;
    assert_eq!(status, 201, "{image}");
    assert_eq!(image["mimeType"], "image/png");
    assert_eq!(image["size"], PNG.len());
    assert_eq!((image["width"].as_u64(), image["height"].as_u64()), (Some(4), Some(3)));
    let content_uri = image["contentUri"].as_str().expect("contentUri");
    let media = content_uri.strip_prefix("mxc://").expect("mxc");
    let download = s
        .http
        .get(format!("{}/_matrix/client/v1/media/download/{media}", s.homeserver))
        .bearer_auth(&pia.session)
        .send()
        .await
        .expect("homeserver");
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.expect("bytes").as_ref(), PNG.as_slice());
    let thumbnail = image["thumbnailUri"].as_str().expect("thumbnailUri");
    assert!(thumbnail.starts_with(&format!("/_matrix/client/v1/media/thumbnail/{media}?")), "{thumbnail}");
    let thumbnail =
        client().get(format!("{}{thumbnail}", s.homeserver)).bearer_auth(&pia.session).send().await.expect("hs");
    assert_eq!(thumbnail.status(), 200);

    let text = "plain text, ünïcode\n".repeat(1000).into_bytes();
    let (status, file) = upload(&ola.jwt, &room.path, Some("text/plain; charset=utf-8"), "", text.clone()).await;
    assert_eq!(status, 201, "{file}");
    assert!(file.get("thumbnailUri").is_none());
    let media = file["contentUri"].as_str().expect("contentUri").strip_prefix("mxc://").expect("mxc").to_owned();
    let download = s
        .http
        .get(format!("{}/_matrix/client/v1/media/download/{media}", s.homeserver))
        .bearer_auth(&pia.session)
        .send()
        .await
        .expect("homeserver");
    assert_eq!(download.bytes().await.expect("bytes").as_ref(), text.as_slice());

    let event_id = room.post_ok(&ola.jwt, json!({"body": "look", "format": "markdown", "attachment": image})).await;
    let raw = room.raw_event(&pia.session, &event_id).await;
    assert_eq!(raw["content"]["msgtype"], "m.image");
    assert_eq!(raw["content"]["url"], content_uri);
    assert_eq!(raw["content"]["filename"], "dots.png");
    assert_eq!(raw["content"]["info"], json!({"mimetype": "image/png", "size": PNG.len(), "w": 4, "h": 3}));
    let page = room.list(&pia.jwt, "").await;
    assert_eq!(find(&page, &event_id)["attachment"], image);
    let pdf_like = json!({"contentUri": file["contentUri"], "mimeType": "text/plain", "size": text.len()});
    let event_id =
        room.post_ok(&ola.jwt, json!({"body": "notes.txt", "format": "plain", "attachment": pdf_like})).await;
    assert_eq!(room.raw_event(&pia.session, &event_id).await["content"]["msgtype"], "m.file");

    let (status, body) = upload(&ola.jwt, &room.path, Some("text/html"), "", b"<script>".to_vec()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("unsupported_media_type")));
    let (status, _) = upload(&ola.jwt, &room.path, None, "", b"bytes".to_vec()).await;
    assert_eq!(status, 400);
    let (status, _) = upload(&ola.jwt, &room.path, Some("image/png"), "", b"not a png".to_vec()).await;
    assert_eq!(status, 400);
    let (status, _) = upload(&ola.jwt, &room.path, Some("text/plain"), "", vec![b'a'; 6 * 1024 * 1024 + 1]).await;
    assert_eq!(status, 413);
    let outsider = s.user_jwt(TENANT, &unique("out"), None);
    let (status, _) = upload(&outsider, &room.path, Some("text/plain"), "", b"x".to_vec()).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn limits_and_refusals_send_nothing() {
    let room = Room::with(&[("lou", "member")]).await;
    let lou = room.member(0);
    let s = stack();
    let (status, body) = room.post(&lou.jwt, json!({"body": "a".repeat(32 * 1024 + 1), "format": "plain"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("payload_too_large")));
    // Within the body limit, but its rendering would pass the homeserver's 64 KiB event limit.
    let (status, body) = room.post(&lou.jwt, json!({"body": "*a* ".repeat(8 * 1024), "format": "markdown"})).await;
    assert_eq!(status, 413, "{body}");
    let longest = room.post_ok(&lou.jwt, json!({"body": "b".repeat(32 * 1024), "format": "markdown"})).await;
    assert!(longest.starts_with('$'));
    for bad in
        [json!({"body": "x"}), json!({"body": "", "format": "plain"}), json!({"body": "x", "format": "plain", "x": 1})]
    {
        let (status, body) = room.post(&lou.jwt, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let held = room.raw_messages(&lou.session).await;
    assert_eq!(held.len(), 1, "only the longest message was sent");

    let outsider = unique("out");
    s.provision(TENANT, &outsider, "Out").await;
    let (status, body) =
        room.post(&s.user_jwt(TENANT, &outsider, None), json!({"body": "hi", "format": "plain"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    let never_provisioned = s.user_jwt(TENANT, &unique("ghost"), None);
    let (status, body) = room.post(&never_provisioned, json!({"body": "hi", "format": "plain"})).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = api(
        Method::POST,
        "/v1/groups/no-such-room/messages",
        Some(&lou.jwt),
        Some(json!({"body": "x", "format": "plain"})),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn the_service_posts_as_the_platform_user() {
    let room = Room::with(&[("sol", "member")]).await;
    let sol = room.member(0);
    let s = stack();
    let service = s.service_jwt(TENANT);
    let event_id =
        room.post_ok(&service, json!({"body": "Welcome, @".to_owned() + &sol.user, "format": "markdown"})).await;
    let raw = room.raw_event(&sol.session, &event_id).await;
    assert_eq!(raw["sender"], format!("@{}:{}", s.var("MATRIX_PLATFORM_LOCALPART"), s.var("MATRIX_SERVER_NAME")));
    assert_eq!(raw["content"]["m.mentions"]["user_ids"], json!([mxid(&sol.user)]));
    let page = room.list(&service, "").await;
    assert_eq!(find(&page, &event_id)["userId"], Value::Null);
    let (status, _) =
        api(Method::DELETE, &format!("{}/messages/{}", room.path, encode_path(&event_id)), Some(&sol.jwt), None).await;
    assert_eq!(status, 403, "a member cannot delete the platform's message");
    let (status, _) =
        api(Method::DELETE, &format!("{}/messages/{}", room.path, encode_path(&event_id)), Some(&service), None).await;
    assert_eq!(status, 204);
}

/// An attempt that sent its event but died before recording it leaves a `pending` record. Once that record is
/// stale, the next attempt takes over with the same transaction id, and the homeserver's own deduplication (per
/// user and server device) answers with the first event: the room still holds one.
#[tokio::test]
async fn a_takeover_after_a_crash_still_sends_once() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use shared::domain::messages::idempotency::{IdempotencyKey, record_key};
    use shared::identity::TenantId;

    let room = Room::with(&[("tom", "member")]).await;
    let tom = room.member(0);
    let s = stack();
    let key = unique("crash");
    let post = || {
        let request = client()
            .post(format!("{}{}/messages", s.api, room.path))
            .bearer_auth(&tom.jwt)
            .header("Idempotency-Key", key.clone())
            .json(&json!({"body": "sent before the crash", "format": "plain"}));
        send(request)
    };
    let (status, first) = post().await;
    assert_eq!(status, 201, "{first}");

    let sdk = s.aws().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = s.var("OPENMEET_TABLE");
    let tenant = TenantId::parse(TENANT).expect("tenant");
    let (pk, sk) = record_key(&tenant, &format!("u:{}", tom.user), &IdempotencyKey::parse(&key).expect("key"));
    let record = dynamodb
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.clone()))
        .key("sk", AttributeValue::S(sk.clone()))
        .send()
        .await
        .expect("get")
        .item
        .expect("the key has a record");
    assert_eq!(record.get("eventId"), Some(&AttributeValue::S(first["eventId"].as_str().expect("id").to_owned())));
    assert!(record.contains_key("expiresAt"), "the record expires");
    // Rewind it to "pending, started two minutes ago", as a crash between send and record would leave it.
    let mut crashed = record.clone();
    crashed.remove("eventId");
    crashed.insert("state".into(), AttributeValue::S("pending".into()));
    let two_minutes_ago =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() - 120;
    crashed.insert("createdAt".into(), AttributeValue::N(two_minutes_ago.to_string()));
    dynamodb.put_item().table_name(table).set_item(Some(crashed)).send().await.expect("put");

    let (status, again) = post().await;
    assert_eq!((status, &again), (201, &first));
    let held = room
        .raw_messages(&tom.session)
        .await
        .into_iter()
        .filter(|e| e["content"]["body"] == "sent before the crash")
        .count();
    assert_eq!(held, 1);
}

/// A cancelled event room is read-only for users (whatever their role) but not for the service; an archived room
/// is read-only for everyone. (A room seen active is remembered for 3 s per container, so the test waits that out
/// before the writes that only the lifecycle check refuses.)
#[tokio::test]
async fn cancelled_and_archived_rooms_refuse_posts() {
    let s = stack();
    let service = s.service_jwt(TENANT);
    let slug = unique("party");
    let room_body = json!({"name": "Party", "startsAt": "2026-12-31T20:00:00Z", "visibility": "public"});
    let (status, room) = api(Method::PUT, &format!("/v1/events/{slug}/room"), Some(&service), Some(room_body)).await;
    assert_eq!(status, 201, "{room}");
    let mut jwts = Vec::new();
    for (name, role) in [("uma", "member"), ("vic", "moderator")] {
        let user = unique(name);
        let (status, body) =
            api(Method::PUT, &format!("/v1/users/{user}"), Some(&service), Some(json!({"displayName": name}))).await;
        assert!(status == 201 || status == 200, "{body}");
        let (status, body) =
            api(Method::PUT, &format!("/v1/events/{slug}/members/{user}"), Some(&service), Some(json!({"role": role})))
                .await;
        assert_eq!(status, 200, "{body}");
        jwts.push(s.user_jwt(TENANT, &user, None));
    }
    let messages = format!("/v1/events/{slug}/messages");
    let post = |jwt: String, text: &'static str| {
        let messages = messages.clone();
        async move { api(Method::POST, &messages, Some(&jwt), Some(json!({"body": text, "format": "plain"}))).await }
    };
    for jwt in &jwts {
        assert_eq!(post(jwt.clone(), "before").await.0, 201);
    }

    let (status, body) = api(Method::POST, &format!("/v1/events/{slug}/room/cancel"), Some(&service), None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(jwts[0].clone(), "member after cancel").await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let (status, body) = post(jwts[1].clone(), "moderator after cancel").await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    assert_eq!(post(service.clone(), "service after cancel").await.0, 201, "announcements still go out");

    let (status, body) =
        api(Method::DELETE, &format!("/v1/events/{slug}/room?mode=archive"), Some(&service), None).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = post(jwts[0].clone(), "member after archive").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")), "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let (status, body) = post(service.clone(), "service after archive").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")), "{body}");
}
