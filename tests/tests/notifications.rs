//! Notifications people actually get (docs/adr/0008-notifications.md): unread and highlight counts, room levels,
//! `@room`, read receipts and the `/notifications` list, each read from Synapse with the member's own browser
//! session; and the guards that keep the (non-exclusive) `@om_` namespace the appservice's: no registration, no
//! password login, no directory entry across tenants.

mod messaging;

use std::time::Duration;

use integration_tests::{encode_path, record_secret, stack, unique};
use messaging::*;
use reqwest::Method;
use serde_json::{Value, json};

/// How long the homeserver may take to show what a send caused (counts are written with the event; the user
/// directory is updated in the background).
const PATIENCE: Duration = Duration::from_secs(30);

/// The member's `(notification_count, highlight_count)` for the room, from their own `/sync`. The filter differs on
/// every call: Synapse answers an identical full sync from a cache for about two minutes.
async fn counts(member: &Member, room_id: &str) -> (u64, u64) {
    let filter = json!({
        "room": {"rooms": [room_id], "timeline": {"limit": 1}, "state": {"lazy_load_members": true},
                 "account_data": {"not_types": [unique("nonce")]}},
        "presence": {"not_types": ["*"]},
    });
    let path = format!("/_matrix/client/v3/sync?timeout=0&filter={}", encode_path(&filter.to_string()));
    let (status, body) = matrix(Method::GET, &path, &member.session).await;
    assert_eq!(status, 200, "{body}");
    let unread = &body["rooms"]["join"][room_id]["unread_notifications"];
    (unread["notification_count"].as_u64().unwrap_or(0), unread["highlight_count"].as_u64().unwrap_or(0))
}

/// Polls the member's counts until they are `want`; fails with the last counts seen.
async fn wait_counts(member: &Member, room_id: &str, want: (u64, u64)) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let seen = counts(member, room_id).await;
        if seen == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}: counts {seen:?}, expected {want:?}", member.user);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Event ids in the member's `/notifications` (`only=highlight`: mentions only).
async fn notified(member: &Member, only_highlights: bool) -> Vec<String> {
    let path = if only_highlights {
        "/_matrix/client/v3/notifications?limit=50&only=highlight"
    } else {
        "/_matrix/client/v3/notifications?limit=50"
    };
    let (status, body) = matrix(Method::GET, path, &member.session).await;
    assert_eq!(status, 200, "{body}");
    let list = body["notifications"].as_array().cloned().unwrap_or_default();
    list.iter().filter_map(|n| n["event"]["event_id"].as_str().map(str::to_owned)).collect()
}

async fn set_level(room: &Room, member: &Member, level: &str) {
    let path = format!("{}/notifications", room.path);
    let (status, answer) = api(Method::PUT, &path, Some(&member.jwt), Some(json!({"level": level}))).await;
    assert_eq!((status, answer), (200, json!({"level": level})));
}

#[tokio::test]
async fn a_plain_message_counts_for_the_other_members_and_a_read_receipt_clears_it() {
    let room = Room::with(&[("ada", "member"), ("bea", "member"), ("cai", "member")]).await;
    let (ada, bea, cai) = (room.member(0), room.member(1), room.member(2));
    let event_id = room.post_ok(&ada.jwt, json!({"body": "hello all", "format": "plain"})).await;

    wait_counts(bea, &room.room_id, (1, 0)).await;
    wait_counts(cai, &room.room_id, (1, 0)).await;
    assert_eq!(counts(ada, &room.room_id).await, (0, 0), "the sender's own message is not unread");
    assert!(notified(bea, false).await.contains(&event_id));

    let receipt =
        format!("/_matrix/client/v3/rooms/{}/receipt/m.read/{}", encode_path(&room.room_id), encode_path(&event_id));
    let (status, body) = stack().matrix(Method::POST, &receipt, Some(&bea.session), Some(json!({}))).await;
    assert_eq!(status, 200, "{body}");
    wait_counts(bea, &room.room_id, (0, 0)).await;
    assert_eq!(counts(cai, &room.room_id).await, (1, 0), "a receipt clears only its sender's counts");
}

#[tokio::test]
async fn a_mention_through_the_api_highlights_only_the_mentioned_member() {
    let room = Room::with(&[("ada", "member"), ("bea", "member"), ("cai", "member")]).await;
    let (ada, bea, cai) = (room.member(0), room.member(1), room.member(2));
    let body = format!("@{} can you look?", bea.user);
    let event_id = room.post_ok(&ada.jwt, json!({"body": body, "format": "plain"})).await;

    wait_counts(bea, &room.room_id, (1, 1)).await;
    wait_counts(cai, &room.room_id, (1, 0)).await;
    assert_eq!(counts(ada, &room.room_id).await, (0, 0));
    assert!(notified(bea, true).await.contains(&event_id), "the mention is in the mentioned member's list");
    assert!(!notified(cai, true).await.contains(&event_id), "and highlights nobody else");
}

#[tokio::test]
async fn the_mentions_level_counts_only_mentions_and_mute_counts_nothing() {
    let members = [("ada", "member"), ("bea", "member"), ("cai", "member"), ("dan", "member")];
    let room = Room::with(&members).await;
    let (ada, bea, cai, dan) = (room.member(0), room.member(1), room.member(2), room.member(3));
    set_level(&room, bea, "mentions").await;
    set_level(&room, cai, "mute").await;

    room.post_ok(&ada.jwt, json!({"body": "plain news", "format": "plain"})).await;
    let body = format!("@{} @{} @{} please read", bea.user, cai.user, dan.user);
    let mention = room.post_ok(&ada.jwt, json!({"body": body, "format": "plain"})).await;

    // Dan (level `all`) witnesses that both events were counted before the others are read.
    wait_counts(dan, &room.room_id, (2, 1)).await;
    assert_eq!(counts(bea, &room.room_id).await, (1, 1), "mentions: the mention only");
    assert_eq!(counts(cai, &room.room_id).await, (0, 0), "mute: nothing, mentions included");
    assert!(!notified(cai, false).await.contains(&mention));

    // Back to `all`: the next plain message counts again.
    set_level(&room, bea, "all").await;
    room.post_ok(&ada.jwt, json!({"body": "more news", "format": "plain"})).await;
    wait_counts(dan, &room.room_id, (3, 1)).await;
    assert_eq!(counts(bea, &room.room_id).await, (2, 1));
}

#[tokio::test]
async fn room_mentions_highlight_everyone_only_from_a_moderator() {
    let room = Room::with(&[("mod", "moderator"), ("ada", "member"), ("bea", "member")]).await;
    let (moderator, ada, bea) = (room.member(0), room.member(1), room.member(2));

    // A member's `@room` through the API is plain text: no `m.mentions.room`.
    let plain = room.post_ok(&ada.jwt, json!({"body": "@room look", "format": "plain"})).await;
    assert_eq!(room.raw_event(&bea.session, &plain).await["content"]["m.mentions"], json!({}));
    // Nor does the member's own token get there by claiming it: Synapse checks the sender's `notifications.room` power.
    let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/{}", encode_path(&room.room_id), unique("t"));
    let claimed = json!({"msgtype": "m.text", "body": "@room look", "m.mentions": {"room": true}});
    let (status, body) = stack().matrix(Method::PUT, &path, Some(&ada.session), Some(claimed)).await;
    assert_eq!(status, 200, "{body}");
    wait_counts(bea, &room.room_id, (2, 0)).await;

    let announcement = room.post_ok(&moderator.jwt, json!({"body": "@room meeting now", "format": "plain"})).await;
    assert_eq!(room.raw_event(&bea.session, &announcement).await["content"]["m.mentions"], json!({"room": true}));
    wait_counts(bea, &room.room_id, (3, 1)).await;
    wait_counts(ada, &room.room_id, (1, 1)).await;
    assert_eq!(counts(moderator, &room.room_id).await.1, 0, "the sender's own announcement is no highlight");
}

/// A Matrix call without any token (what anyone on the network can try).
async fn anonymous(method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let s = stack();
    let mut request = s.http.request(method, format!("{}{path}", s.homeserver));
    if let Some(body) = body {
        request = request.json(&body);
    }
    send(request).await
}

fn local_secret(name: &str) -> String {
    let path = integration_tests::repo_root().join(".local/synapse/secrets.env");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let value =
        text.lines().find_map(|line| line.strip_prefix(&format!("{name}="))).map(|v| v.trim().trim_matches('"'));
    let value = value.unwrap_or_else(|| panic!("{name} missing from {}", path.display())).to_owned();
    record_secret(&value);
    value
}

/// A password login from a loopback address of its own: Synapse limits logins per client address (`rc_login.address`,
/// 5 then one per ~5 min), and every test run comes from 127.0.0.1 otherwise.
async fn password_login(from: std::net::IpAddr, user: &str, password: &str) -> (u16, Value) {
    let client = reqwest::Client::builder().local_address(from).build().expect("HTTP client");
    let body =
        json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password});
    send(client.post(format!("{}/_matrix/client/v3/login", stack().homeserver)).json(&body)).await
}

fn fresh_loopback() -> std::net::IpAddr {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, bytes[0] | 1, bytes[1], bytes[2].max(2)))
}

#[tokio::test]
async fn nobody_but_the_appservice_registers_or_logs_in_as_an_openmeet_user() {
    let s = stack();
    let prefix = s.var("MATRIX_USER_PREFIX");
    let taken = Room::with(&[("tom", "member")]).await;
    let tom = taken.member(0);
    let tom_id = mxid(&tom.user);
    let fresh = format!("{prefix}{TENANT}.{}", unique("mallory"));

    // Self-registration, with and without the dummy flow, and the availability probe (no existence oracle).
    for body in [
        json!({"username": fresh, "password": "correct horse battery", "auth": {"type": "m.login.dummy"}}),
        json!({"username": fresh, "password": "correct horse battery"}),
    ] {
        let (status, answer) = anonymous(Method::POST, "/_matrix/client/v3/register", Some(body)).await;
        assert_eq!((status, answer["errcode"].as_str()), (403, Some("M_FORBIDDEN")), "{answer}");
    }
    let localpart = &tom_id[1..tom_id.find(':').unwrap_or(tom_id.len())];
    for name in [fresh.as_str(), localpart] {
        let path = format!("/_matrix/client/v3/register/available?username={}", encode_path(name));
        let (status, answer) = anonymous(Method::GET, &path, None).await;
        assert_eq!(status, 403, "{answer}");
    }

    // Shared-secret registration of an om_ name: the module refuses it (Synapse masks the refusal as 429).
    let (status, nonce) = anonymous(Method::GET, "/_synapse/admin/v1/register", None).await;
    assert_eq!(status, 200, "{nonce}");
    let nonce = nonce["nonce"].as_str().expect("nonce").to_owned();
    let password = unique("pw");
    let mac = shared_secret_mac(&local_secret("REGISTRATION_SHARED_SECRET"), &nonce, &fresh, &password);
    let body = json!({"nonce": nonce, "username": fresh, "password": password, "admin": false, "mac": mac});
    let (status, answer) = anonymous(Method::POST, "/_synapse/admin/v1/register", Some(body)).await;
    assert_eq!((status, answer["errcode"].as_str()), (429, Some("M_UNKNOWN")), "{answer}");
    assert!(answer.get("access_token").is_none());

    // Password login as an OpenMeet user: there is no password to match.
    let from = fresh_loopback();
    for guess in ["", &tom.user] {
        let (status, answer) = password_login(from, &tom_id, guess).await;
        assert_eq!((status, answer["errcode"].as_str()), (403, Some("M_FORBIDDEN")), "{answer}");
    }
    // Nor can the user's own token give itself one: no interactive-auth flow can ever complete.
    let change = json!({"new_password": "a new one, long enough", "logout_devices": false});
    let (status, answer) =
        s.matrix(Method::POST, "/_matrix/client/v3/account/password", Some(&tom.session), Some(change)).await;
    assert_eq!((status.as_u16(), &answer["flows"]), (401, &json!([])), "{answer}");
    // The admin API is the operators': the user's token is refused there.
    let path = format!("/_synapse/admin/v2/users/{}", encode_path(&tom_id));
    let (status, answer) =
        s.matrix(Method::PUT, &path, Some(&tom.session), Some(json!({"password": "x1234567890"}))).await;
    assert_eq!(status.as_u16(), 403, "{answer}");

    // Even an operator's mistake does not open a password login: admin creation of an om_ user is refused, and a
    // password an admin sets on one is refused at login (the module's check_login_for_spam). The platform's
    // appservice token is a server admin's.
    let created =
        format!("/_synapse/admin/v2/users/{}", encode_path(&format!("@{fresh}:{}", s.var("MATRIX_SERVER_NAME"))));
    let (status, answer) = s.matrix(Method::PUT, &created, None, Some(json!({"displayname": "M"}))).await;
    assert_eq!((status.as_u16(), answer["errcode"].as_str()), (429, Some("M_UNKNOWN")), "{answer}");
    let victim = Room::with(&[("vic", "member")]).await;
    let victim_id = mxid(&victim.member(0).user);
    let path = format!("/_synapse/admin/v2/users/{}", encode_path(&victim_id));
    let (status, answer) = s.matrix(Method::PUT, &path, None, Some(json!({"password": password}))).await;
    assert_eq!(status.as_u16(), 200, "{answer}");
    let (status, answer) = password_login(from, &victim_id, &password).await;
    assert_eq!((status, answer["error"].as_str()), (403, Some("Login was blocked by the server")), "{answer}");
}

/// Synapse's shared-secret registration MAC: HMAC-SHA1 over nonce, user, password and "notadmin", NUL-separated.
fn shared_secret_mac(secret: &str, nonce: &str, user: &str, password: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update([nonce, user, password, "notadmin"].join("\0").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// User-directory results for `term`, searched with `session`.
async fn directory(session: &str, term: &str) -> Vec<String> {
    let body = json!({"search_term": term, "limit": 10});
    let (status, answer) =
        stack().matrix(Method::POST, "/_matrix/client/v3/user_directory/search", Some(session), Some(body)).await;
    assert_eq!(status.as_u16(), 200, "{answer}");
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    results.iter().filter_map(|r| r["user_id"].as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn the_user_directory_shows_room_mates_of_the_same_tenant_only() {
    let s = stack();
    let (tenant_a, tenant_b) = (unique("it-dir-a"), unique("it-dir-b"));
    let (alice, aaron, loner, bob) = (unique("alice"), unique("aaron"), unique("loner"), unique("bob"));
    let name = format!("Quillon {}", &unique("n")[2..]);
    let alice_id = s.provision(&tenant_a, &alice, &name).await;
    s.provision(&tenant_a, &aaron, "Aaron").await;
    s.provision(&tenant_a, &loner, "Loner").await;
    s.provision(&tenant_b, &bob, &name).await;
    s.group_room(&tenant_a, &unique("dir"), &[&alice, &aaron]).await;
    s.group_room(&tenant_a, &unique("dir"), &[&loner]).await;
    s.group_room(&tenant_b, &unique("dir"), &[&bob]).await;
    let (aaron_session, _) = s.session(&tenant_a, &aaron, None).await;
    let (loner_session, _) = s.session(&tenant_a, &loner, None).await;
    let (bob_session, _) = s.session(&tenant_b, &bob, None).await;

    // A room mate finds Alice once the directory has caught up with the joins.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !directory(&aaron_session, &name).await.contains(&alice_id) {
        assert!(tokio::time::Instant::now() < deadline, "Aaron never found his room mate {alice_id}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Every member of a tenant shares the tenant's hidden space with every other: the same tenant finds each other
    // without a shared chat (search_all_users stays false). Another tenant's user, with the very same name, finds
    // only himself (the module's check_username_for_spam).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !directory(&loner_session, &name).await.contains(&alice_id) {
        assert!(tokio::time::Instant::now() < deadline, "the same tenant never found {alice_id}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let found = directory(&bob_session, &name).await;
    assert!(!found.contains(&alice_id), "tenant B sees tenant A's user: {found:?}");
    let profile = format!("/_matrix/client/v3/profile/{}", encode_path(&alice_id));
    let (status, answer) = s.matrix(Method::GET, &profile, Some(&bob_session), None).await;
    assert_eq!(status.as_u16(), 403, "{answer}");
}
