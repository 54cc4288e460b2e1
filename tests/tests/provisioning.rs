//! Users, profiles, browser sessions, JWT rules and credentials against the real homeserver and AWS emulator.

use integration_tests::{encode_path, record_secret, stack, unique};
use reqwest::Method;
use serde_json::{Value, json};

const TENANT: &str = "it-prov";

async fn admin_user(matrix_user_id: &str) -> (u16, Value) {
    let (status, body) = stack()
        .matrix(Method::GET, &format!("/_synapse/admin/v2/users/{}", encode_path(matrix_user_id)), None, None)
        .await;
    (status.as_u16(), body)
}

async fn profile(matrix_user_id: &str) -> Value {
    let (status, body) = stack()
        .matrix(Method::GET, &format!("/_matrix/client/v3/profile/{}", encode_path(matrix_user_id)), None, None)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn provisioning_twice_gives_one_matrix_user_and_syncs_the_profile() {
    let s = stack();
    let user = unique("ann");
    let service = s.service_jwt(TENANT);
    let path = format!("/v1/users/{user}");
    let (status, first) = s.api(Method::PUT, &path, Some(&service), Some(json!({"displayName": "Ann"}))).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["matrixUserId"], s.matrix_user_id(TENANT, &user));
    let (status, second) = s.api(Method::PUT, &path, Some(&service), Some(json!({"displayName": "Ann"}))).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(first, second);

    let matrix_id = s.matrix_user_id(TENANT, &user);
    let (status, listed) = s
        .matrix(
            Method::GET,
            &format!("/_synapse/admin/v2/users?name={}&guests=false", encode_path(&matrix_id[1..matrix_id.len() - 10])),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let same: Vec<&Value> =
        listed["users"].as_array().expect("users").iter().filter(|u| u["name"] == matrix_id.as_str()).collect();
    assert_eq!(same.len(), 1);
    assert_eq!(profile(&matrix_id).await["displayname"], "Ann");

    // Profile changes reach the homeserver: display name, then an mxc avatar, then clearing it.
    let (status, _) = s.api(Method::PUT, &path, Some(&service), Some(json!({"displayName": "Ann B."}))).await;
    assert_eq!(status, 200);
    assert_eq!(profile(&matrix_id).await["displayname"], "Ann B.");
    let avatar = "mxc://localhost/avatarAnn";
    let (status, _) =
        s.api(Method::PUT, &path, Some(&service), Some(json!({"displayName": "Ann B.", "avatarUrl": avatar}))).await;
    assert_eq!(status, 200);
    assert_eq!(profile(&matrix_id).await["avatar_url"], avatar);
    let (status, _) =
        s.api(Method::PUT, &path, Some(&service), Some(json!({"displayName": "Ann B.", "avatarUrl": null}))).await;
    assert_eq!(status, 200);
    assert!(profile(&matrix_id).await.get("avatar_url").is_none_or(|v| v.is_null() || v == ""));

    // GET as the service and as the user themselves; another user may not look.
    let (status, got) = s.api(Method::GET, &path, Some(&service), None).await;
    assert_eq!((status.as_u16(), got["displayName"].as_str()), (200, Some("Ann B.")));
    let (status, _) = s.api(Method::GET, &path, Some(&s.user_jwt(TENANT, &user, None)), None).await;
    assert_eq!(status, 200);
    let (status, body) = s.api(Method::GET, &path, Some(&s.user_jwt(TENANT, "someone-else", None)), None).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = s.api(Method::GET, &format!("/v1/users/{}", unique("never")), Some(&service), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn tenants_are_isolated() {
    let s = stack();
    let user = unique("tia");
    s.provision(TENANT, &user, "Tia").await;
    let (status, body) =
        s.api(Method::GET, &format!("/v1/users/{user}"), Some(&s.service_jwt("other-tenant")), None).await;
    assert_eq!(status, 404, "{body}");
    assert_ne!(s.matrix_user_id(TENANT, &user), s.matrix_user_id("other-tenant", &user));
}

#[tokio::test]
async fn sessions_sync_directly_and_one_device_id_is_one_device() {
    let s = stack();
    let user = unique("sam");
    let (token, device) = s.session(TENANT, &user, Some("BROWSER_A")).await;
    assert_eq!(device, "BROWSER_A");
    let (status, body) = s.matrix(Method::GET, "/_matrix/client/v3/sync?timeout=0", Some(&token), None).await;
    assert_eq!(status, 200, "{body}");
    let (_, whoami) = s.matrix(Method::GET, "/_matrix/client/v3/account/whoami", Some(&token), None).await;
    assert_eq!(whoami["user_id"], s.matrix_user_id(TENANT, &user));
    assert_eq!(whoami["device_id"], "BROWSER_A");
    // First use provisioned the user, with the JWT's subject as the display name fallback.
    let (status, _) = admin_user(&s.matrix_user_id(TENANT, &user)).await;
    assert_eq!(status, 200);

    let (token_again, _) = s.session(TENANT, &user, Some("BROWSER_A")).await;
    let (_, whoami_again) = s.matrix(Method::GET, "/_matrix/client/v3/account/whoami", Some(&token_again), None).await;
    assert_eq!(whoami_again["device_id"], "BROWSER_A");
    let (_, generated) = s.session(TENANT, &user, None).await;
    assert_ne!(generated, "BROWSER_A");

    let matrix_id = s.matrix_user_id(TENANT, &user);
    let (status, devices) = s
        .matrix(Method::GET, &format!("/_synapse/admin/v2/users/{}/devices", encode_path(&matrix_id)), None, None)
        .await;
    assert_eq!(status, 200);
    let browser_a =
        devices["devices"].as_array().expect("devices").iter().filter(|d| d["device_id"] == "BROWSER_A").count();
    assert_eq!(browser_a, 1, "{devices}");

    // Logging the device out ends its sessions; a second logout is still 204.
    let user_jwt = s.user_jwt(TENANT, &user, None);
    for _ in 0..2 {
        let (status, body) = s
            .api(Method::DELETE, "/v1/me/matrix-session", Some(&user_jwt), Some(json!({"deviceId": "BROWSER_A"})))
            .await;
        assert_eq!(status, 204, "{body}");
    }
    let (status, _) = s.matrix(Method::GET, "/_matrix/client/v3/account/whoami", Some(&token), None).await;
    assert_eq!(status, 401);

    let (status, body) = s
        .api(Method::POST, "/v1/me/matrix-session", Some(&user_jwt), Some(json!({"deviceId": "OPENMEET_SERVER"})))
        .await;
    assert_eq!((status.as_u16(), body["error"]["code"].as_str()), (400, Some("reserved_device_id")));
}

#[tokio::test]
async fn deleting_a_user_deactivates_it_and_ends_its_sessions() {
    let s = stack();
    let user = unique("dan");
    let matrix_id = s.provision(TENANT, &user, "Dan").await;
    let (token, _) = s.session(TENANT, &user, Some("WEB")).await;
    let service = s.service_jwt(TENANT);
    for _ in 0..2 {
        let (status, body) = s.api(Method::DELETE, &format!("/v1/users/{user}"), Some(&service), None).await;
        assert_eq!(status, 204, "{body}");
    }
    let (_, info) = admin_user(&matrix_id).await;
    assert_eq!(info["deactivated"], true);
    let (status, _) = s.matrix(Method::GET, "/_matrix/client/v3/sync?timeout=0", Some(&token), None).await;
    assert_eq!(status, 401);
    let (status, _) = s.api(Method::GET, &format!("/v1/users/{user}"), Some(&service), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn every_jwt_defect_is_401_and_user_tokens_on_service_routes_are_403() {
    let s = stack();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = json!({"sub": "svc", "tenant": TENANT, "role": "service", "exp": now + 600});
    let wrong_secret = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-secret"),
    )
    .expect("encode");
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(s.var("OPENMEET_JWT_SECRET").as_bytes()),
    )
    .expect("encode");
    let valid = s.service_jwt(TENANT);
    let unsigned = {
        let mut parts = valid.split('.');
        let (_, payload) = (parts.next(), parts.next().expect("payload"));
        format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.")
    };
    let defects = [
        wrong_secret,
        hs512,
        unsigned,
        s.jwt_with(json!({"sub": "svc", "tenant": TENANT, "role": "service"})),
        s.jwt_with(json!({"sub": "svc", "tenant": TENANT, "role": "service", "exp": now - 5})),
        s.jwt_with(json!({"sub": "svc", "tenant": "Bad.Tenant", "role": "service", "exp": now + 600})),
        "garbage".to_owned(),
    ];
    let path = format!("/v1/users/{}", unique("jwt"));
    for defect in &defects {
        record_secret(defect);
        let (status, body) = s.api(Method::PUT, &path, Some(defect), Some(json!({"displayName": "X"}))).await;
        assert_eq!(status, 401, "{defect}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized");
        assert!(!body.to_string().contains(defect.as_str()), "the error echoes the token");
    }
    let (status, _) = s.api(Method::PUT, &path, None, Some(json!({"displayName": "X"}))).await;
    assert_eq!(status, 401);
    let user_token = s.user_jwt(TENANT, "jwt-user", None);
    for (method, path) in
        [(Method::PUT, path.as_str()), (Method::DELETE, path.as_str()), (Method::PUT, "/v1/groups/g/room")]
    {
        let (status, body) = s.api(method, path, Some(&user_token), Some(json!({"displayName": "X"}))).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (status, _) = s.api(Method::POST, "/v1/me/matrix-session", Some(&valid), Some(json!({}))).await;
    assert_eq!(status, 403);
    let (status, health) = s.api(Method::GET, "/v1/health", None, None).await;
    assert_eq!((status.as_u16(), health["status"].as_str()), (200, Some("ok")), "{health}");
}

#[tokio::test]
async fn a_bad_request_changes_nothing() {
    let s = stack();
    let service = s.service_jwt(TENANT);
    let user = unique("bad");
    let matrix_id = s.matrix_user_id(TENANT, &user);
    let path = format!("/v1/users/{user}");
    let bodies = [
        json!({"displayName": "X", "admin": true}),
        json!({"displayName": ""}),
        json!({"displayName": "X", "avatarUrl": "https://evil.example/a.png"}),
        json!({"avatarUrl": "mxc://localhost/a"}),
        json!("not an object"),
    ];
    for body in bodies {
        let (status, answer) = s.api(Method::PUT, &path, Some(&service), Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["retryable"], false);
    }
    assert_eq!(admin_user(&matrix_id).await.0, 404, "a rejected request created the user");

    let (status, body) =
        s.api(Method::PUT, "/v1/users/Not%20Valid", Some(&service), Some(json!({"displayName": "X"}))).await;
    assert_eq!((status.as_u16(), body["error"]["code"].as_str()), (400, Some("invalid_parameter")));

    // An existing user keeps its profile when an update is refused.
    s.provision(TENANT, &user, "Kept").await;
    let (status, _) = s
        .api(Method::PUT, &path, Some(&service), Some(json!({"displayName": "Changed", "avatarUrl": "ftp://x/y"})))
        .await;
    assert_eq!(status, 400);
    assert_eq!(profile(&matrix_id).await["displayname"], "Kept");
}

#[tokio::test]
async fn a_revoked_server_token_is_re_minted_once() {
    let s = stack();
    let user = unique("rex");
    let matrix_id = s.provision(TENANT, &user, "Rex").await;
    // Revoke the server device behind the API's back: its cached token is now unknown to the homeserver.
    let (status, body) = s
        .matrix(
            Method::DELETE,
            &format!("/_synapse/admin/v2/users/{}/devices/OPENMEET_SERVER", encode_path(&matrix_id)),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s
        .api(
            Method::PUT,
            &format!("/v1/users/{user}"),
            Some(&s.service_jwt(TENANT)),
            Some(json!({"displayName": "Rex 2"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(profile(&matrix_id).await["displayname"], "Rex 2");
}

#[tokio::test]
async fn a_credential_sealed_for_one_user_does_not_open_for_another() {
    use shared::aws::vault::{CredentialScope, Vault};
    use shared::homeserver::AccessToken;
    let s = stack();
    let sdk = s.aws().await;
    let vault = Vault::new(aws_sdk_kms::Client::new(&sdk), s.var("OPENMEET_KMS_KEY_ID"));
    let scope = |user: &str| CredentialScope {
        tenant: TENANT.into(),
        user: user.into(),
        purpose: "server-device",
        device: "OPENMEET_SERVER".into(),
    };
    let token = AccessToken::new("syt_not_a_real_token");
    let sealed = vault.seal(&scope("alice"), &token).await.expect("seal");
    assert!(!String::from_utf8_lossy(&sealed).contains("syt_not_a_real_token"));
    let opened = vault.open(&scope("alice"), sealed.clone()).await.expect("open");
    assert_eq!(opened, Some(token));
    assert_eq!(vault.open(&scope("bob"), sealed.clone()).await.expect("open as bob"), None);
    let other_tenant = CredentialScope { tenant: "other".into(), ..scope("alice") };
    assert_eq!(vault.open(&other_tenant, sealed).await.expect("open in another tenant"), None);
}
