//! DynamoDB, KMS and SQS unreachable, the homeserver fine: the AWS emulator (moto) is frozen with SIGSTOP, so its
//! port still accepts connections that are never answered (the worst kind of outage: without SDK timeouts a
//! request hung for over 40 s). Every request must answer on its own — 503 with `Retry-After` — within the SDK's
//! time limits (shared/src/aws/mod.rs), and a retry with the same `Idempotency-Key` after recovery delivers once.
//!
//! Run it inside the stack lock (README, RULES): it freezes the one emulator every test uses.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use integration_tests::{Stack, stack, unique};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TENANT: &str = "it-aws-outage";
/// Far above the SDK limits (4 s per call), far below the 40 s hang this test exists for: a request still
/// unanswered by then counts as hanging.
const HANG: Duration = Duration::from_secs(20);

/// The emulator's process, stopped until this guard is dropped (also when the test panics).
struct FrozenEmulator {
    pid: String,
}

impl FrozenEmulator {
    fn freeze(s: &Stack) -> FrozenEmulator {
        let pid = std::fs::read_to_string(moto_pid_file(s)).expect("moto pid file").trim().to_owned();
        assert!(!pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()), "moto pid file holds {pid:?}");
        signal(&pid, "STOP");
        FrozenEmulator { pid }
    }
}

impl Drop for FrozenEmulator {
    fn drop(&mut self) {
        signal(&self.pid, "CONT");
    }
}

/// moto's pid file lives beside Synapse's in the stack's run directory (scripts/lib.sh, `pid_file`).
fn moto_pid_file(s: &Stack) -> PathBuf {
    PathBuf::from(s.var("SYNAPSE_PID_FILE")).with_file_name("moto.pid")
}

fn signal(pid: &str, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(pid).status();
    if !matches!(status, Ok(s) if s.success()) && !std::thread::panicking() {
        panic!("kill -{name} {pid} failed");
    }
}

/// One request with a deadline; returns status, `Retry-After` and body, and how long it took.
async fn timed(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    token: &str,
    key: Option<&str>,
    body: Value,
) -> (StatusCode, Option<String>, Value, Duration) {
    let started = Instant::now();
    let mut request = client.request(method, url).bearer_auth(token).json(&body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{url}: no answer within {HANG:?} ({e})"));
    let status = response.status();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, retry_after, body, started.elapsed())
}

#[tokio::test]
async fn aws_outage_answers_503_with_retry_after_and_a_retry_delivers_once() {
    let s = stack();
    // A previous run killed while the emulator was frozen must not leave it so.
    if let Ok(pid) = std::fs::read_to_string(moto_pid_file(s)) {
        let _ = Command::new("kill").arg("-CONT").arg(pid.trim()).status();
    }
    let client = reqwest::Client::builder().timeout(HANG).pool_max_idle_per_host(0).build().expect("HTTP client");
    let (slug, member) = (unique("outage"), unique("ola"));
    let room_id = s.group_room(TENANT, &slug, &[&member]).await;
    let service = s.service_jwt(TENANT);
    let user = s.user_jwt(TENANT, &member, Some("Ola"));
    let messages = format!("{}/v1/groups/{slug}/messages", s.api);
    // Everything a send needs is warm (queue URL, room alias) before the outage.
    let (status, _, body, _) =
        timed(&client, Method::POST, &messages, &user, None, json!({"body": "before", "format": "plain"})).await;
    assert_eq!(status, 201, "{body}");

    let key = unique("key");
    let text = unique("during the outage");
    let message = json!({"body": text, "format": "plain"});
    let attempts = {
        let _frozen = FrozenEmulator::freeze(s);
        let calls = [
            (Method::POST, messages.clone(), user.clone(), Some(key.as_str()), message.clone()),
            (
                Method::PUT,
                format!("{}/v1/users/{}", s.api, unique("newcomer")),
                service.clone(),
                None,
                json!({"displayName": "Newcomer"}),
            ),
            (
                Method::PUT,
                format!("{}/v1/groups/{}/room", s.api, unique("outage-new")),
                service.clone(),
                None,
                json!({"name": "New", "visibility": "private"}),
            ),
        ];
        let mut attempts = Vec::new();
        for (method, url, token, key, body) in calls {
            let (status, retry_after, answer, took) = timed(&client, method.clone(), &url, &token, key, body).await;
            println!("{method} {url}: {status} Retry-After {retry_after:?} in {took:?}");
            attempts.push((format!("{method} {url}"), status, retry_after, answer));
        }
        attempts
    };
    for (call, status, retry_after, answer) in &attempts {
        assert!(*status == 503 || *status == 202, "{call}: {status} {answer}");
        if *status == 503 {
            assert!(retry_after.as_deref().is_some_and(|v| v.parse::<u64>().is_ok()), "{call}: Retry-After");
            assert_eq!(answer["error"]["retryable"], true, "{call}: {answer}");
            assert_eq!(answer["error"]["code"], "dependency_unavailable", "{call}: {answer}");
        }
    }

    // Recovered: the caller retries with the same key, as docs/integration.md says, until it gets an answer that is
    // not "try again"; a second retry gets the same event and the room holds the message once.
    let mut event_id = None;
    for _ in 0..60 {
        let (status, _, body, _) = timed(&client, Method::POST, &messages, &user, Some(&key), message.clone()).await;
        match status.as_u16() {
            200 | 201 => {
                event_id = body["eventId"].as_str().map(str::to_owned);
                break;
            }
            202 | 409 | 503 => tokio::time::sleep(Duration::from_secs(2)).await,
            other => panic!("retry after recovery: {other} {body}"),
        }
    }
    let event_id = event_id.expect("the retry after recovery was sent");
    let (status, _, again, _) = timed(&client, Method::POST, &messages, &user, Some(&key), message.clone()).await;
    assert!(status == 200 || status == 201, "{status} {again}");
    assert_eq!(again["eventId"].as_str(), Some(event_id.as_str()), "the same key answers the same event");
    let bodies = s.text_bodies(&room_id, None).await;
    assert_eq!(bodies.iter().filter(|b| **b == text).count(), 1, "delivered once: {bodies:?}");
}
