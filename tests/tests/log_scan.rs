//! Runs after every other integration test (the test command orders it last): no secret the tests handled
//! (session tokens, JWTs, a message body) and not the appservice token may appear in any log the stack
//! wrote: the gateway, the homeserver, the emulator.

use integration_tests::{repo_root, stack};

#[test]
fn no_secret_reaches_a_log_line() {
    let s = stack();
    let seen = std::fs::read_to_string(repo_root().join(".local/secrets-seen.txt"))
        .expect("the other integration tests record the secrets they handle; run them first");
    let mut secrets: Vec<String> = seen.lines().filter(|l| l.len() >= 16).map(str::to_owned).collect();
    secrets.push(s.var("MATRIX_AS_TOKEN").to_owned());
    secrets.push(s.var("OPENMEET_JWT_SECRET").to_owned());
    assert!(secrets.len() > 5, "too few secrets recorded to make this scan meaningful");
    let log_dir = std::path::PathBuf::from(s.var("STACK_LOG_DIR"));
    let mut scanned_lines = 0;
    for entry in std::fs::read_dir(&log_dir).expect("log directory") {
        let path = entry.expect("log entry").path();
        if !path.is_file() {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&path).expect("readable log")).into_owned();
        scanned_lines += text.lines().count();
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{} contains a secret", path.display());
        }
    }
    assert!(scanned_lines > 50, "the logs are suspiciously short ({scanned_lines} lines)");
}

/// One whole message flow — session, room, membership, send, read, edit — then every log of the stack is scanned
/// for that flow's session token, both JWTs and the message text.
#[tokio::test]
async fn no_secret_reaches_a_log_line_in_a_full_message_flow() {
    use integration_tests::unique;
    use reqwest::Method;
    use serde_json::json;
    let s = stack();
    let (tenant, slug, user) = ("it-logs", unique("flow"), unique("lou"));
    let service = s.service_jwt(tenant);
    let (status, room) = s
        .api(
            Method::PUT,
            &format!("/v1/groups/{slug}/room"),
            Some(&service),
            Some(json!({"name": "Flow", "visibility": "private"})),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    s.provision(tenant, &user, "Lou").await;
    let (status, body) = s
        .api(Method::PUT, &format!("/v1/groups/{slug}/members/{user}"), Some(&service), Some(json!({"role": "member"})))
        .await;
    assert_eq!(status, 200, "{body}");
    let (session_token, _) = s.session(tenant, &user, Some("LOGSCAN")).await;
    let user_jwt = s.user_jwt(tenant, &user, Some("Lou"));
    let text = format!("confidential-{} **meeting notes**", unique("body"));
    let (status, sent) = s
        .api(
            Method::POST,
            &format!("/v1/groups/{slug}/messages"),
            Some(&user_jwt),
            Some(json!({"body": text, "format": "markdown"})),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    let event_id = sent["eventId"].as_str().expect("eventId").to_owned();
    let (status, page) = s.api(Method::GET, &format!("/v1/groups/{slug}/messages"), Some(&user_jwt), None).await;
    assert_eq!(status, 200, "{page}");
    let edited = format!("{text} (edited)");
    let (status, body) = s
        .api(
            Method::PUT,
            &format!("/v1/groups/{slug}/messages/{}", integration_tests::encode_path(&event_id)),
            Some(&user_jwt),
            Some(json!({"body": edited, "format": "markdown"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let secret_text = text.split(' ').next().expect("a first word").to_owned();
    let secrets = [session_token, user_jwt, service, secret_text];
    let log_dir = std::path::PathBuf::from(s.var("STACK_LOG_DIR"));
    for entry in std::fs::read_dir(&log_dir).expect("log directory") {
        let path = entry.expect("log entry").path();
        if !path.is_file() {
            continue;
        }
        let log = String::from_utf8_lossy(&std::fs::read(&path).expect("readable log")).into_owned();
        for (secret, what) in
            secrets.iter().zip(["the session token", "the user JWT", "the service JWT", "the message body"])
        {
            assert!(!log.contains(secret.as_str()), "{} contains {what}", path.display());
        }
    }
}
