//! Messages, reactions and notification levels against the real homeserver. Every effect is read back from Synapse
//! with the member's own browser session (raw `/messages`, `/event`, `/pushrules`).

mod messaging;

use integration_tests::{encode_path, stack, unique};
use messaging::*;
use reqwest::Method;
use serde_json::{Value, json};

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
