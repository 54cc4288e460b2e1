//! Group and event rooms, their lifecycle, and direct rooms, read back from the real homeserver.

use integration_tests::{Stack, encode_path, stack, unique};
use reqwest::Method;
use serde_json::{Value, json};

const TENANT: &str = "it-rooms";

async fn state(s: &Stack, room_id: &str) -> Vec<Value> {
    let (status, body) =
        s.matrix(Method::GET, &format!("/_matrix/client/v3/rooms/{}/state", encode_path(room_id)), None, None).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().expect("state events").clone()
}

fn content<'a>(state: &'a [Value], event_type: &str, key: &str) -> Option<&'a Value> {
    state.iter().find(|e| e["type"] == event_type && e["state_key"] == key).map(|e| &e["content"])
}

async fn directory_visibility(s: &Stack, room_id: &str) -> String {
    let (_, body) = s
        .matrix(Method::GET, &format!("/_matrix/client/v3/directory/list/room/{}", encode_path(room_id)), None, None)
        .await;
    body["visibility"].as_str().unwrap_or("").to_owned()
}

/// Notices the platform posted, oldest first.
async fn notices(s: &Stack, room_id: &str) -> Vec<String> {
    let (status, body) = s
        .matrix(
            Method::GET,
            &format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100", encode_path(room_id)),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut texts: Vec<String> = body["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .filter(|e| e["type"] == "m.room.message" && e["content"]["msgtype"] == "m.notice")
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect();
    texts.reverse();
    texts
}

async fn put_room(s: &Stack, path: &str, body: Value) -> (u16, Value) {
    let (status, answer) = s.api(Method::PUT, path, Some(&s.service_jwt(TENANT)), Some(body)).await;
    (status.as_u16(), answer)
}

async fn join_directly(s: &Stack, room_id: &str, user_id: &str) {
    let (status, body) = s
        .matrix(
            Method::POST,
            &format!("/_synapse/admin/v1/join/{}", encode_path(room_id)),
            None,
            Some(json!({"user_id": user_id})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn parallel_ensures_make_one_room_with_settings_that_fit_its_visibility() {
    let s = stack();
    let slug = unique("chess");
    let path = format!("/v1/groups/{slug}/room");
    let body = json!({"name": "Chess club", "topic": "Openings and endgames", "visibility": "public"});
    let answers = futures_join(6, || {
        let (path, body) = (path.clone(), body.clone());
        async move { put_room(s, &path, body).await }
    })
    .await;
    let room_ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|(status, room)| {
            assert!(*status == 200 || *status == 201, "{status} {room}");
            room["roomId"].as_str().expect("roomId").to_owned()
        })
        .collect();
    assert_eq!(room_ids.len(), 1, "parallel ensures made several rooms: {room_ids:?}");
    assert_eq!(answers.iter().filter(|(status, _)| *status == 201).count(), 1);
    let room_id = room_ids.into_iter().next().expect("one room");
    let (_, room) = &answers[0];
    assert_eq!(room["alias"], format!("#om_{TENANT}.group.{slug}:localhost"));
    assert_eq!(
        (room["kind"].as_str(), room["state"].as_str(), room["memberCount"].as_u64()),
        (Some("groups"), Some("active"), Some(0))
    );

    let events = state(s, &room_id).await;
    // Tenant-public (the contract's "Tenant walls"): members of the tenant's space may join; nobody else.
    let tenant_space = s
        .matrix(
            Method::GET,
            &format!("/_matrix/client/v3/directory/room/{}", encode_path(&format!("#om_{TENANT}.tenant:localhost"))),
            None,
            None,
        )
        .await
        .1["room_id"]
        .clone();
    assert_eq!(
        content(&events, "m.room.join_rules", "").expect("join rules"),
        &json!({"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": tenant_space}]})
    );
    assert_eq!(content(&events, "m.room.history_visibility", "").expect("history")["history_visibility"], "shared");
    assert_eq!(content(&events, "m.room.guest_access", "").expect("guests")["guest_access"], "forbidden");
    assert!(content(&events, "m.room.encryption", "").is_none(), "group rooms are not encrypted");
    assert_eq!(content(&events, "m.room.topic", "").expect("topic")["topic"], "Openings and endgames");
    assert_eq!(directory_visibility(s, &room_id).await, "private", "no tenant's room is in the server-wide directory");
    // The group's space holds the room as a child.
    let (_, space) = s
        .matrix(
            Method::GET,
            &format!(
                "/_matrix/client/v3/directory/room/{}",
                encode_path(&format!("#om_{TENANT}.space.{slug}:localhost"))
            ),
            None,
            None,
        )
        .await;
    let space_id = space["room_id"].as_str().expect("space exists").to_owned();
    let space_state = state(s, &space_id).await;
    assert_eq!(content(&space_state, "m.room.create", "").expect("create")["type"], "m.space");
    assert!(content(&space_state, "m.space.child", &room_id).is_some());

    // Going private: invite-only and out of the directory, same room.
    let (status, again) = put_room(s, &path, json!({"name": "Chess club", "visibility": "private"})).await;
    assert_eq!((status, again["roomId"].as_str()), (200, Some(room_id.as_str())));
    let events = state(s, &room_id).await;
    assert_eq!(content(&events, "m.room.join_rules", "").expect("join rules")["join_rule"], "invite");
    assert_eq!(directory_visibility(s, &room_id).await, "private");
    assert_eq!(again["topic"], Value::Null);
    // The space follows its group: renamed, topic cleared, invite-only.
    let (status, _) = put_room(s, &path, json!({"name": "Chess & Go club", "visibility": "private"})).await;
    assert_eq!(status, 200);
    let space_state = state(s, &space_id).await;
    assert_eq!(content(&space_state, "m.room.name", "").expect("name")["name"], "Chess & Go club");
    assert_eq!(content(&space_state, "m.room.topic", "").expect("topic")["topic"], "");
    assert_eq!(content(&space_state, "m.room.join_rules", "").expect("join rules")["join_rule"], "invite");
}

/// Runs `n` copies of a future concurrently.
async fn futures_join<F, Fut, T>(n: usize, make: F) -> Vec<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = (0..n).map(|_| tokio::spawn(make())).collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.expect("task"));
    }
    results
}

#[tokio::test]
async fn the_alias_survives_a_wiped_table() {
    let s = stack();
    let slug = unique("wiped");
    let (status, room) =
        put_room(s, &format!("/v1/groups/{slug}/room"), json!({"name": "W", "visibility": "private"})).await;
    assert_eq!(status, 201, "{room}");
    wipe_table(s).await;
    let (status, again) =
        put_room(s, &format!("/v1/groups/{slug}/room"), json!({"name": "W", "visibility": "private"})).await;
    assert_eq!((status, &again["roomId"]), (200, &room["roomId"]));
    let (status, got) =
        s.api(Method::GET, &format!("/v1/groups/{slug}/room"), Some(&s.service_jwt(TENANT)), None).await;
    assert_eq!((status.as_u16(), &got["roomId"]), (200, &room["roomId"]));
}

async fn wipe_table(s: &Stack) {
    let sdk = s.aws().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let table = s.var("OPENMEET_TABLE");
    let items = dynamo.scan().table_name(table).send().await.expect("scan").items.unwrap_or_default();
    for item in items {
        let key = item.into_iter().filter(|(k, _)| k == "pk" || k == "sk").collect();
        dynamo.delete_item().table_name(table).set_key(Some(key)).send().await.expect("delete");
    }
}

#[tokio::test]
async fn event_updates_post_one_notice_and_cancel_makes_the_room_read_only() {
    let s = stack();
    let (group, event) = (unique("hikers"), unique("hike"));
    let (status, _) =
        put_room(s, &format!("/v1/groups/{group}/room"), json!({"name": "Hikers", "visibility": "public"})).await;
    assert_eq!(status, 201);
    let path = format!("/v1/events/{event}/room");
    let first = json!({"name": "Hike", "startsAt": "2026-12-05T09:00:00Z", "location": "Trailhead", "groupSlug": group, "visibility": "public"});
    let (status, room) = put_room(s, &path, first.clone()).await;
    assert_eq!(status, 201, "{room}");
    let room_id = room["roomId"].as_str().expect("roomId").to_owned();
    assert_eq!(room["kind"], "events");
    let events = state(s, &room_id).await;
    let parent = events.iter().find(|e| e["type"] == "m.space.parent").expect("the event room has a parent space");
    let space_state = state(s, parent["state_key"].as_str().expect("space id")).await;
    assert!(content(&space_state, "m.space.child", &room_id).is_some(), "the group's space lists the event room");

    // Same request again: nothing changed, no notice. A new time and place: one notice saying old → new.
    assert_eq!(put_room(s, &path, first.clone()).await.0, 200);
    assert!(notices(s, &room_id).await.is_empty());
    let moved = json!({"name": "Hike", "startsAt": "2026-12-06T10:00:00+01:00", "location": "Lake", "groupSlug": group, "visibility": "public"});
    for _ in 0..2 {
        assert_eq!(put_room(s, &path, moved.clone()).await.0, 200);
    }
    let texts = notices(s, &room_id).await;
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(
        texts[0].contains("2026-12-05 09:00:00 UTC → 2026-12-06 09:00:00 UTC") && texts[0].contains("Trailhead → Lake"),
        "{}",
        texts[0]
    );

    // A member can post until the event is cancelled; cancelling twice posts one notice.
    let member = unique("walker");
    let member_id = s.provision(TENANT, &member, "Walker").await;
    join_directly(s, &room_id, &member_id).await;
    let (token, _) = s.session(TENANT, &member, None).await;
    let send = |txn: &'static str| {
        let (room_id, token) = (room_id.clone(), token.clone());
        async move {
            s.matrix(
                Method::PUT,
                &format!("/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}", encode_path(&room_id)),
                Some(&token),
                Some(json!({"msgtype": "m.text", "body": "see you there"})),
            )
            .await
        }
    };
    assert_eq!(send("before-cancel").await.0, 200);
    let service = s.service_jwt(TENANT);
    for _ in 0..2 {
        let (status, cancelled) = s
            .api(
                Method::POST,
                &format!("/v1/events/{event}/room/cancel"),
                Some(&service),
                Some(json!({"reason": "Storm"})),
            )
            .await;
        assert_eq!((status.as_u16(), cancelled["state"].as_str()), (200, Some("cancelled")), "{cancelled}");
    }
    let texts = notices(s, &room_id).await;
    assert_eq!(texts.iter().filter(|t| t.contains("cancelled")).count(), 1, "{texts:?}");
    let (status, refused) = send("after-cancel").await;
    assert_eq!(status, 403, "a member could still post: {refused}");
    let (status, body) = s.api(Method::PUT, &path, Some(&service), Some(moved)).await;
    assert_eq!(status, 409, "{body}");

    // A member may read the room object; a non-member may not.
    let (status, got) = s.api(Method::GET, &path, Some(&s.user_jwt(TENANT, &member, None)), None).await;
    assert_eq!((status.as_u16(), got["memberCount"].as_u64()), (200, Some(1)), "{got}");
    let (status, _) = s.api(Method::GET, &path, Some(&s.user_jwt(TENANT, "stranger", None)), None).await;
    assert_eq!(status, 403);
    let (status, _) = s.api(Method::PUT, &path, Some(&s.user_jwt(TENANT, &member, None)), Some(json!({}))).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn archive_keeps_history_read_only_and_purge_deletes() {
    let s = stack();
    let service = s.service_jwt(TENANT);
    let slug = unique("old");
    let path = format!("/v1/events/{slug}/room");
    let (status, room) =
        put_room(s, &path, json!({"name": "Old", "startsAt": "2026-01-01T00:00:00Z", "visibility": "public"})).await;
    assert_eq!(status, 201, "{room}");
    let room_id = room["roomId"].as_str().expect("roomId").to_owned();
    for _ in 0..2 {
        let (status, _) = s.api(Method::DELETE, &path, Some(&service), None).await;
        assert_eq!(status, 204);
    }
    let (_, archived) = s.api(Method::GET, &path, Some(&service), None).await;
    assert_eq!(archived["state"], "archived");
    assert_eq!(directory_visibility(s, &room_id).await, "private");
    let levels = content(&state(s, &room_id).await, "m.room.power_levels", "").cloned().expect("power levels");
    assert_eq!(levels["events_default"], 100);

    let (status, _) = s.api(Method::DELETE, &format!("{path}?mode=purge"), Some(&service), None).await;
    assert_eq!(status, 204);
    let (status, body) = s.api(Method::GET, &path, Some(&service), None).await;
    assert_eq!((status.as_u16(), body["error"]["code"].as_str()), (404, Some("room_not_found")));
    let (status, _) = s.api(Method::DELETE, &format!("{path}?mode=purge"), Some(&service), None).await;
    assert_eq!(status, 204, "purging a purged room is done already");
    let (status, body) = s.api(Method::DELETE, &format!("{path}?mode=shred"), Some(&service), None).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn bad_room_requests_change_nothing() {
    let s = stack();
    let slug = unique("bad");
    let path = format!("/v1/events/{slug}/room");
    for body in [
        json!({"name": "E", "startsAt": "soon", "visibility": "public"}),
        json!({"name": "E", "startsAt": "2026-12-01T10:00:00Z", "endsAt": "2026-12-01T09:00:00Z", "visibility": "public"}),
        json!({"name": "", "startsAt": "2026-12-01T10:00:00Z", "visibility": "public"}),
        json!({"name": "E", "startsAt": "2026-12-01T10:00:00Z", "visibility": "secret"}),
        json!({"name": "E", "startsAt": "2026-12-01T10:00:00Z", "visibility": "public", "encrypted": true}),
    ] {
        let (status, answer) = put_room(s, &path, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
    let (status, answer) =
        put_room(s, &path, json!({"name": "E", "startsAt": "2026-12-01T10:00:00Z", "visibility": "public", "groupSlug": unique("nogroup")})).await;
    assert_eq!(status, 409, "{answer}");
    let (status, _) = s.api(Method::GET, &path, Some(&s.service_jwt(TENANT)), None).await;
    assert_eq!(status, 404, "a refused request created the room");
    let (status, _) = s.api(Method::GET, &format!("/v1/teams/{slug}/room"), Some(&s.service_jwt(TENANT)), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_direct_room_is_the_same_from_either_side() {
    let s = stack();
    let (ann, bob) = (unique("ann"), unique("bob"));
    s.provision(TENANT, &ann, "Ann").await;
    s.provision(TENANT, &bob, "Bob").await;
    let ann_jwt = s.user_jwt(TENANT, &ann, Some("Ann"));
    let bob_jwt = s.user_jwt(TENANT, &bob, Some("Bob"));
    let (status, first) = s.api(Method::POST, &format!("/v1/me/direct/{bob}"), Some(&ann_jwt), None).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = s.api(Method::POST, &format!("/v1/me/direct/{bob}"), Some(&ann_jwt), None).await;
    assert_eq!((status.as_u16(), &again["roomId"]), (200, &first["roomId"]));
    let (status, other_side) = s.api(Method::POST, &format!("/v1/me/direct/{ann}"), Some(&bob_jwt), None).await;
    assert_eq!((status.as_u16(), &other_side["roomId"]), (200, &first["roomId"]));
    assert_eq!(
        (first["kind"].as_str(), first["slug"].as_str(), first["name"].as_str()),
        (Some("direct"), Some(bob.as_str()), Some("Bob"))
    );
    let room_id = first["roomId"].as_str().expect("roomId");

    for (user, other) in [(&ann, &bob), (&bob, &ann)] {
        let (token, _) = s.session(TENANT, user, None).await;
        let (status, joined) = s.matrix(Method::GET, "/_matrix/client/v3/joined_rooms", Some(&token), None).await;
        assert_eq!(status, 200);
        assert!(joined["joined_rooms"].as_array().expect("rooms").iter().any(|r| r == room_id), "{user} is not joined");
        let me = s.matrix_user_id(TENANT, user);
        let (status, direct) = s
            .matrix(
                Method::GET,
                &format!("/_matrix/client/v3/user/{}/account_data/m.direct", encode_path(&me)),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, 200, "{direct}");
        assert_eq!(direct[s.matrix_user_id(TENANT, other)], json!([room_id]));
    }
    let (status, _) = s.api(Method::POST, &format!("/v1/me/direct/{ann}"), Some(&ann_jwt), None).await;
    assert_eq!(status, 400);
    let (status, _) = s.api(Method::POST, &format!("/v1/me/direct/{}", unique("ghost")), Some(&ann_jwt), None).await;
    assert_eq!(status, 404);
    let (status, _) = s.api(Method::POST, &format!("/v1/me/direct/{bob}"), Some(&s.service_jwt(TENANT)), None).await;
    assert_eq!(status, 403);
}
