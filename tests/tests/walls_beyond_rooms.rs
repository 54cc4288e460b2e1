//! Walls beyond rooms (issue 24): the channels a browser's own Matrix token reaches outside rooms — to-device
//! messages, device keys, pushers, profiles, the alias directory, remote users, the admin API, media — each proven
//! by a raw Matrix call made with the token and at the URL that `POST /v1/me/matrix-session` hands out (the
//! homeserver's public entry, scripts/gate/), never through the API.

use integration_tests::{Stack, encode_path, remember_session, stack, unique};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const HOME: &str = "it-wbr-a";
const OTHER: &str = "it-wbr-b";

/// A provisioned user's browser session, as the browser holds it.
struct Browser {
    tenant: String,
    user: String,
    user_id: String,
    device: String,
    homeserver_url: String,
    token: String,
}

async fn browser(s: &Stack, tenant: &str, name: &str) -> Browser {
    let user = unique(name);
    s.provision(tenant, &user, name).await;
    let mut b = Browser {
        tenant: tenant.to_owned(),
        user_id: s.matrix_user_id(tenant, &user),
        user,
        device: String::new(),
        homeserver_url: String::new(),
        token: String::new(),
    };
    b.renew(s).await;
    b
}

impl Browser {
    /// (Re)opens the session on the same device, as the page does when its token expired.
    async fn renew(&mut self, s: &Stack) {
        let body = if self.device.is_empty() { json!({}) } else { json!({"deviceId": self.device}) };
        let jwt = s.user_jwt(&self.tenant, &self.user, None);
        let (status, session) = s.api(Method::POST, "/v1/me/matrix-session", Some(&jwt), Some(body)).await;
        assert_eq!(status, 200, "session: {session}");
        self.token = remember_session(&session);
        self.device = session["deviceId"].as_str().expect("deviceId").to_owned();
        self.homeserver_url = session["homeserverUrl"].as_str().expect("homeserverUrl").to_owned();
    }

    /// A raw request to the homeserver URL the session handed out, with this browser's token.
    async fn send(&mut self, s: &Stack, method: Method, path: &str, body: Body) -> (StatusCode, Value) {
        for attempt in 0..2 {
            let mut request =
                s.http.request(method.clone(), format!("{}{path}", self.homeserver_url)).bearer_auth(&self.token);
            request = match &body {
                Body::None => request,
                Body::Json(value) => request.json(value),
                Body::Bytes(content_type, bytes) => request.header("content-type", *content_type).body(bytes.clone()),
            };
            let response = request.send().await.unwrap_or_else(|e| panic!("{} is not answering: {e}", path));
            let status = response.status();
            let value = response.json::<Value>().await.unwrap_or(Value::Null);
            if attempt == 0 && status == StatusCode::UNAUTHORIZED && value["soft_logout"] == true {
                self.renew(s).await;
                continue;
            }
            return (status, value);
        }
        unreachable!("the loop returns on its second attempt")
    }

    async fn call(&mut self, s: &Stack, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.send(s, method, path, body.map_or(Body::None, Body::Json)).await
    }

    async fn upload(&mut self, s: &Stack, content_type: &'static str, bytes: Vec<u8>) -> (StatusCode, Value) {
        self.send(s, Method::POST, "/_matrix/media/v3/upload", Body::Bytes(content_type, bytes)).await
    }
}

enum Body {
    None,
    Json(Value),
    Bytes(&'static str, Vec<u8>),
}

fn forbidden(status: StatusCode, body: &Value, what: &str) {
    assert_eq!(status, 403, "{what} must be refused: {body}");
    assert_eq!(body["errcode"], "M_FORBIDDEN", "{what}: {body}");
}

#[tokio::test]
async fn sessions_hand_out_the_public_entry_which_serves_no_admin_or_federation_path() {
    let s = stack();
    let mut alice = browser(s, HOME, "alice").await;
    assert_eq!(alice.homeserver_url, s.var("MATRIX_PUBLIC_URL"));
    assert_ne!(alice.homeserver_url, s.homeserver, "browsers must not get the private homeserver URL");
    let (status, body) = alice.call(s, Method::GET, "/_matrix/client/v3/account/whoami", None).await;
    assert_eq!((status, body["user_id"].as_str()), (StatusCode::OK, Some(alice.user_id.as_str())), "{body}");
    for path in [
        "/_synapse/admin/v1/server_version",
        "/_synapse/admin/v2/users/%40openmeet%3Alocalhost",
        "/_matrix/federation/v1/version",
        "/_matrix/key/v2/server",
        "/metrics",
    ] {
        let (status, body) = alice.call(s, Method::GET, path, None).await;
        assert_eq!(status, 404, "{path} must not be served on the public entry: {body}");
    }
    // Tokens only in the Authorization header: a token in a URL would reach logs.
    let url = format!("{}/_matrix/client/v3/account/whoami?access_token={}", alice.homeserver_url, alice.token);
    let response = s.http.get(url).send().await.expect("the public entry answers");
    assert_eq!(response.status(), 400);
    // Federation is off on the homeserver itself, not only at the entry.
    let response = s.http.get(format!("{}/_matrix/federation/v1/version", s.homeserver)).send().await.expect("hs");
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn to_device_messages_reach_only_the_senders_tenant() {
    let s = stack();
    let mut alice = browser(s, HOME, "alice").await;
    let mut bob = browser(s, HOME, "bob").await;
    let mut eve = browser(s, OTHER, "eve").await;
    let lookalike = format!("@om_{HOME}.{}:evil.example", alice.user);

    for target in [alice.user_id.clone(), lookalike] {
        let txn = unique("td");
        let body = json!({"messages": {target.clone(): {"*": {"probe": "from eve"}}}});
        let path = format!("/_matrix/client/v3/sendToDevice/org.openmeet.probe/{txn}");
        let (status, answer) = eve.call(s, Method::PUT, &path, Some(body)).await;
        forbidden(status, &answer, &format!("a to-device message to {target}"));
    }
    // A message naming one foreign user among own-tenant ones is refused whole.
    let mixed = json!({"messages": {bob.user_id.clone(): {"*": {"x": 1}}, alice.user_id.clone(): {"*": {"x": 1}}}});
    let (status, answer) =
        eve.call(s, Method::PUT, &format!("/_matrix/client/v3/sendToDevice/m.x/{}", unique("td")), Some(mixed)).await;
    forbidden(status, &answer, "a to-device message naming a foreign user");
    // What the gate cannot read, it does not pass on.
    let path = format!("/_matrix/client/v3/sendToDevice/m.x/{}", unique("td"));
    let (status, answer) =
        eve.send(s, Method::PUT, &path, Body::Bytes("application/json", b"{\"messages\":".to_vec())).await;
    assert_eq!((status, answer["errcode"].as_str()), (StatusCode::BAD_REQUEST, Some("M_NOT_JSON")), "{answer}");

    let body = json!({"messages": {alice.user_id.clone(): {alice.device.clone(): {"probe": "from bob"}}}});
    let path = format!("/_matrix/client/v3/sendToDevice/org.openmeet.probe/{}", unique("td"));
    let (status, answer) = bob.call(s, Method::PUT, &path, Some(body)).await;
    assert_eq!(status, 200, "within a tenant to-device is delivered: {answer}");
    let (status, sync) = alice.call(s, Method::GET, "/_matrix/client/v3/sync?timeout=0", None).await;
    assert_eq!(status, 200, "{sync}");
    let events = sync["to_device"]["events"].as_array().cloned().unwrap_or_default();
    let senders: Vec<&str> = events.iter().filter_map(|e| e["sender"].as_str()).collect();
    assert_eq!(senders, [bob.user_id.as_str()], "alice receives bob's message and nothing of eve's: {events:?}");
}

#[tokio::test]
async fn device_keys_are_neither_listed_nor_claimed_across_tenants() {
    let s = stack();
    let mut alice = browser(s, HOME, "alice").await;
    let mut bob = browser(s, HOME, "bob").await;
    let mut eve = browser(s, OTHER, "eve").await;
    let keys = json!({
        "device_keys": {
            "user_id": alice.user_id, "device_id": alice.device,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {format!("curve25519:{}", alice.device): "Y3VydmU", format!("ed25519:{}", alice.device): "ZWQyNTU"},
            "signatures": {alice.user_id.clone(): {format!("ed25519:{}", alice.device): "c2ln"}}
        },
        "one_time_keys": {"signed_curve25519:AAAAAQ": {"key": "b3Rr", "signatures": {}},
                          "signed_curve25519:AAAAAg": {"key": "b3Rs", "signatures": {}}}
    });
    let (status, body) = alice.call(s, Method::POST, "/_matrix/client/v3/keys/upload", Some(keys)).await;
    assert_eq!(status, 200, "{body}");

    let query = json!({"device_keys": {alice.user_id.clone(): []}});
    let (status, body) = eve.call(s, Method::POST, "/_matrix/client/v3/keys/query", Some(query.clone())).await;
    forbidden(status, &body, "another tenant's key query");
    let claim = json!({"one_time_keys": {alice.user_id.clone(): {alice.device.clone(): "signed_curve25519"}}});
    let (status, body) = eve.call(s, Method::POST, "/_matrix/client/v3/keys/claim", Some(claim.clone())).await;
    forbidden(status, &body, "another tenant's key claim");

    // Behind the entry, Synapse itself lists nobody eve shares no room with (MSC4263).
    let current = eve.token.clone();
    let (status, body) =
        s.matrix_raw(Method::POST, "/_matrix/client/v3/keys/query", &current, Some(query.clone())).await;
    if status != StatusCode::UNAUTHORIZED {
        assert_eq!(status, 200, "{body}");
        assert!(body["device_keys"].get(&alice.user_id).is_none_or(|d| d == &json!({})), "{body}");
    }

    // Bob shares a room with alice (a group of their tenant): he sees her device and claims a key.
    s.group_room(HOME, &unique("keys"), &[&alice.user, &bob.user]).await;
    let (status, body) = bob.call(s, Method::POST, "/_matrix/client/v3/keys/query", Some(query)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["device_keys"][&alice.user_id].get(&alice.device).is_some(), "{body}");
    let (status, body) = bob.call(s, Method::POST, "/_matrix/client/v3/keys/claim", Some(claim)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["one_time_keys"][&alice.user_id][&alice.device].as_object().is_some_and(|k| !k.is_empty()), "{body}");
}

#[tokio::test]
async fn pushers_point_only_at_the_openmeet_push_gateway() {
    let s = stack();
    let mut alice = browser(s, HOME, "alice").await;
    let gateway = s.var("OPENMEET_PUSH_GATEWAY_URL").to_owned();
    let pusher = |url: &str, format: Option<&str>| {
        let mut data = json!({"url": url});
        if let Some(format) = format {
            data["format"] = json!(format);
        }
        json!({"kind": "http", "app_id": "org.openmeet.web", "pushkey": "k1", "app_display_name": "OpenMeet",
               "device_display_name": "web", "lang": "en", "data": data})
    };
    for (body, what) in [
        (pusher("https://attacker.example/_matrix/push/v1/notify", Some("event_id_only")), "a foreign push URL"),
        (pusher(&format!("{gateway}?x=1"), Some("event_id_only")), "the gateway's URL with a suffix"),
        (pusher(&gateway, None), "full event content"),
        (
            json!({"kind": "email", "app_id": "m.email", "pushkey": "a@example.org", "app_display_name": "e",
                "device_display_name": "e", "lang": "en", "data": {}}),
            "an e-mail pusher",
        ),
    ] {
        let (status, answer) = alice.call(s, Method::POST, "/_matrix/client/v3/pushers/set", Some(body)).await;
        forbidden(status, &answer, what);
    }
    let (status, answer) = alice.call(s, Method::GET, "/_matrix/client/v3/pushers", None).await;
    assert_eq!(status, 200, "{answer}");
    // The platform may have set its own pusher (notifications): none points anywhere but its push gateway.
    let pushers = answer["pushers"].as_array().cloned().unwrap_or_default();
    assert!(pushers.iter().all(|p| p["data"]["url"] == gateway.as_str()), "{answer}");

    let (status, answer) = alice
        .call(s, Method::POST, "/_matrix/client/v3/pushers/set", Some(pusher(&gateway, Some("event_id_only"))))
        .await;
    assert_eq!(status, 200, "the OpenMeet gateway is accepted: {answer}");
    let deletion = json!({"kind": null, "app_id": "org.openmeet.web", "pushkey": "k1"});
    let (status, answer) = alice.call(s, Method::POST, "/_matrix/client/v3/pushers/set", Some(deletion)).await;
    assert_eq!(status, 200, "a deletion is accepted: {answer}");
}

#[tokio::test]
async fn display_names_and_avatars_are_openmeets() {
    let s = stack();
    let mut alice = browser(s, HOME, "alice").await;
    let me = encode_path(&alice.user_id);
    let (status, body) = alice
        .call(
            s,
            Method::PUT,
            &format!("/_matrix/client/v3/profile/{me}/displayname"),
            Some(json!({"displayname": "Admin"})),
        )
        .await;
    forbidden(status, &body, "a display name change");
    let avatar = json!({"avatar_url": "mxc://localhost/someone-elses"});
    let (status, body) =
        alice.call(s, Method::PUT, &format!("/_matrix/client/v3/profile/{me}/avatar_url"), Some(avatar)).await;
    forbidden(status, &body, "an avatar change");
    let (status, body) = alice.call(s, Method::GET, &format!("/_matrix/client/v3/profile/{me}"), None).await;
    assert_eq!((status, body["displayname"].as_str()), (StatusCode::OK, Some("alice")), "{body}");
}

#[tokio::test]
async fn another_tenants_aliases_are_not_found() {
    let s = stack();
    let slug = unique("dir");
    let (status, room) = s
        .api(
            Method::PUT,
            &format!("/v1/groups/{slug}/room"),
            Some(&s.service_jwt(HOME)),
            Some(json!({"name": "G", "visibility": "private"})),
        )
        .await;
    assert!(status == 200 || status == 201, "{status} {room}");
    let alias = encode_path(&format!("#om_{HOME}.group.{slug}:localhost"));
    let mut eve = browser(s, OTHER, "eve").await;
    let (status, body) = eve.call(s, Method::GET, &format!("/_matrix/client/v3/directory/room/{alias}"), None).await;
    assert_eq!((status, body["errcode"].as_str()), (StatusCode::NOT_FOUND, Some("M_NOT_FOUND")), "{body}");
    let mut alice = browser(s, HOME, "alice").await;
    let (status, body) = alice.call(s, Method::GET, &format!("/_matrix/client/v3/directory/room/{alias}"), None).await;
    assert_eq!((status, body["room_id"].clone()), (StatusCode::OK, room["roomId"].clone()), "{body}");
}

#[tokio::test]
async fn a_remote_look_alike_of_a_tenant_user_is_never_invited() {
    let s = stack();
    let mut alice = browser(s, HOME, "alice").await;
    let lookalike = format!("@om_{HOME}.mallory:evil.example");
    let (status, body) = alice
        .call(
            s,
            Method::POST,
            "/_matrix/client/v3/createRoom",
            Some(json!({"preset": "private_chat", "invite": [lookalike]})),
        )
        .await;
    forbidden(status, &body, "createRoom inviting a remote look-alike");
    let (status, room) =
        alice.call(s, Method::POST, "/_matrix/client/v3/createRoom", Some(json!({"preset": "private_chat"}))).await;
    assert_eq!(status, 200, "{room}");
    let path = format!("/_matrix/client/v3/rooms/{}/invite", encode_path(room["room_id"].as_str().expect("room_id")));
    let (status, body) = alice.call(s, Method::POST, &path, Some(json!({"user_id": lookalike}))).await;
    forbidden(status, &body, "inviting a remote look-alike");
}

#[tokio::test]
async fn markup_and_scripts_are_not_uploaded() {
    let s = stack();
    let mut alice = browser(s, HOME, "alice").await;
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(document.cookie)</script></svg>".to_vec();
    let html = b"<!DOCTYPE html><html><body><script>fetch('/')</script></body></html>".to_vec();
    for (content_type, bytes) in [
        ("image/svg+xml", svg.clone()),
        ("text/html; charset=utf-8", html.clone()),
        ("application/xhtml+xml", html.clone()),
        ("text/javascript", b"fetch('/')".to_vec()),
    ] {
        let (status, body) = alice.upload(s, content_type, bytes).await;
        forbidden(status, &body, &format!("an upload declared {content_type}"));
    }
    // Declared harmless, sniffed by the homeserver itself (the module): refused by Synapse (400 "Bad content").
    for (content_type, bytes) in [("image/png", svg), ("application/octet-stream", html)] {
        let (status, body) = alice.upload(s, content_type, bytes).await;
        assert_eq!(status, 400, "markup declared {content_type} must be refused by the homeserver: {body}");
    }
    let png = [b"\x89PNG\r\n\x1a\n".as_slice(), &[0u8; 64]].concat();
    let (status, body) = alice.upload(s, "image/png", png).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["content_uri"].as_str().is_some_and(|u| u.starts_with("mxc://")), "{body}");
}

#[tokio::test]
async fn the_homeserver_holds_each_user_to_an_upload_quota_and_rate() {
    let s = stack();
    let mut alice = browser(s, HOME, "alice").await;
    // 100 MB a minute per user (homeserver.yaml.tmpl media_upload_limits): the third 40 MB file is over it.
    let chunk = vec![b'a'; 40 * 1024 * 1024];
    for n in 0..2 {
        let (status, body) = alice.upload(s, "application/octet-stream", chunk.clone()).await;
        assert_eq!(status, 200, "upload {n}: {body}");
    }
    let (status, body) = alice.upload(s, "application/octet-stream", chunk).await;
    assert_eq!(status, 403, "past the quota: {body}");
    assert_eq!(body["errcode"], "M_USER_LIMIT_EXCEEDED", "refused by the homeserver itself: {body}");
    // Another user of the same tenant still uploads.
    let mut bob = browser(s, HOME, "bob").await;
    let (status, body) = bob.upload(s, "text/plain", b"hello".to_vec()).await;
    assert_eq!(status, 200, "{body}");

    // Asynchronous uploads are rate-limited per user (rc_media_create, burst 10).
    let mut refused = None;
    for n in 0..15 {
        let (status, body) = bob.call(s, Method::POST, "/_matrix/media/v1/create", Some(json!({}))).await;
        if status == 429 {
            refused = Some((n, body));
            break;
        }
        assert_eq!(status, 200, "create {n}: {body}");
    }
    let (n, body) = refused.expect("the media create rate limit");
    assert!(n >= 5, "refused after {n} creates: {body}");
    assert_eq!(body["errcode"], "M_LIMIT_EXCEEDED", "{body}");
}
