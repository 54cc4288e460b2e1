//! Media, limits and refusals, the service's posts, crash takeovers and closed rooms against the real homeserver.
//! Every effect is read back from Synapse with the member's own browser session (raw events, media downloads).

mod messaging;

use integration_tests::{encode_path, stack, unique};
use messaging::*;
use reqwest::Method;
use serde_json::{Value, json};

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
