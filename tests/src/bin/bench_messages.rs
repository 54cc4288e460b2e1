//! Latency of `POST /v1/{kind}/{slug}/messages` through the local gateway, with and without the API's rate-limit
//! check (a tenant the local stack leaves unlimited), beside a direct
//! `PUT /_matrix/client/v3/rooms/{id}/send/m.room.message/{txn}` to the homeserver as the same user (appservice
//! masquerade, as the functions send), in the same run, on loopback only.
//!
//! `cargo run -p integration-tests --bin bench_messages -- [--requests 200] [--warmup 20]`
//! (`OPENMEET_STACK_ENV` picks the stack description, as for the integration tests). The three kinds of request
//! alternate, so all see the same homeserver load; each is sequential (one in flight).

use std::time::{Duration, Instant};

use integration_tests::{stack, unique};
use reqwest::Method;
use serde_json::{Value, json};

const TENANT: &str = "bench";

struct Options {
    requests: usize,
    warmup: usize,
}

fn options() -> Result<Options, String> {
    let mut options = Options { requests: 200, warmup: 20 };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = value.parse::<usize>().map_err(|_| format!("{flag} takes a number"))?;
        match flag.as_str() {
            "--requests" if (1..=10_000).contains(&number) => options.requests = number,
            "--warmup" if number <= 1_000 => options.warmup = number,
            _ => return Err(format!("unknown or out-of-range option {flag} {value}")),
        }
    }
    Ok(options)
}

fn is_loopback(url: &str) -> bool {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest).split('/').next().unwrap_or("");
    let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host);
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

async fn call(request: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
    let response = request.send().await.map_err(|e| format!("request failed: {e}"))?;
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// p-th percentile (nearest rank) of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

struct Summary {
    p50: Duration,
    p95: Duration,
    p99: Duration,
    mean: Duration,
    max: Duration,
}

fn summarise(mut samples: Vec<Duration>) -> Summary {
    samples.sort();
    let total: Duration = samples.iter().sum();
    Summary {
        p50: percentile(&samples, 50.0),
        p95: percentile(&samples, 95.0),
        p99: percentile(&samples, 99.0),
        mean: total / samples.len() as u32,
        max: samples[samples.len() - 1],
    }
}

/// A room with one member in `tenant`; returns (messages URL, room id, member, member's JWT).
async fn room_with_sender(http: &reqwest::Client, tenant: &str) -> Result<(String, String, String, String), String> {
    let s = stack();
    let service = s.service_jwt(tenant);
    let slug = unique("bench");
    let user = unique("sender");
    let setup = [
        (Method::PUT, format!("/v1/users/{user}"), json!({"displayName": "Bench Sender"})),
        (Method::PUT, format!("/v1/groups/{slug}/room"), json!({"name": "Benchmark", "visibility": "public"})),
        (Method::PUT, format!("/v1/groups/{slug}/members/{user}"), json!({"role": "member"})),
    ];
    let mut room_id = String::new();
    for (method, path, body) in setup {
        let (status, answer) =
            call(http.request(method, format!("{}{path}", s.api)).bearer_auth(&service).json(&body)).await?;
        if !(200..300).contains(&status) {
            return Err(format!("set-up {path}: {status} {answer}"));
        }
        if let Some(id) = answer.get("roomId").and_then(Value::as_str) {
            room_id = id.to_owned();
        }
    }
    let user_jwt = s.user_jwt(tenant, &user, None);
    Ok((format!("{}/v1/groups/{slug}/messages", s.api), room_id, user, user_jwt))
}

async fn post_message(http: &reqwest::Client, url: &str, jwt: &str, text: &str) -> Result<Duration, String> {
    let started = Instant::now();
    let (status, answer) =
        call(http.post(url).bearer_auth(jwt).json(&json!({"body": text, "format": "markdown"}))).await?;
    let latency = started.elapsed();
    if status != 201 {
        return Err(format!("API send: {status} {answer}"));
    }
    Ok(latency)
}

fn print_row(name: &str, summary: &Summary) {
    println!(
        "{name:<52} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        ms(summary.p50),
        ms(summary.p95),
        ms(summary.p99),
        ms(summary.mean),
        ms(summary.max)
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let options = options()?;
    let s = stack();
    if !is_loopback(&s.api) || !is_loopback(&s.homeserver) {
        return Err(format!("loopback only: the gateway is {} and the homeserver {}", s.api, s.homeserver));
    }
    let http = reqwest::Client::new();
    // Tenant `bench` has the stack's ordinary budgets (the rate-limit check runs: two conditional DynamoDB updates
    // per send); tenants `bench-free*` are unlimited in stack.env (the check is skipped).
    let (api_url, room_id, user, user_jwt) = room_with_sender(&http, TENANT).await?;
    let (free_url, _, _, free_jwt) = room_with_sender(&http, &format!("bench-free-{}", &unique("t")[2..])).await?;

    // The homeserver baseline is the send the functions themselves make for the user: the appservice masquerading
    // on the user's server device (a browser's own token is rate-limited by the homeserver: 10 in a burst).
    let user_id = s.matrix_user_id(TENANT, &user);
    let room_path = integration_tests::encode_path(&room_id);
    let mut through_api = Vec::with_capacity(options.requests);
    let mut without_limit = Vec::with_capacity(options.requests);
    let mut direct = Vec::with_capacity(options.requests);
    for round in 0..options.warmup + options.requests {
        let text = format!("benchmark message {round}");
        let api_latency = post_message(&http, &api_url, &user_jwt, &text).await?;
        let free_latency = post_message(&http, &free_url, &free_jwt, &text).await?;

        let txn = format!("bench{}", uuid::Uuid::new_v4().simple());
        let url = format!("{}/_matrix/client/v3/rooms/{room_path}/send/m.room.message/{txn}", s.homeserver);
        let started = Instant::now();
        let (status, answer) = call(
            http.put(&url)
                .bearer_auth(s.var("MATRIX_AS_TOKEN"))
                .query(&[("user_id", user_id.as_str()), ("device_id", "OPENMEET_SERVER")])
                .json(&json!({"msgtype": "m.text", "body": text, "m.mentions": {}})),
        )
        .await?;
        let direct_latency = started.elapsed();
        if status != 200 {
            return Err(format!("direct send: {status} {answer}"));
        }

        if round >= options.warmup {
            through_api.push(api_latency);
            without_limit.push(free_latency);
            direct.push(direct_latency);
        }
    }

    let api = summarise(through_api);
    let free = summarise(without_limit);
    let hs = summarise(direct);
    println!(
        "{} requests each after {} warm-up rounds, sequential, alternating; loopback",
        options.requests, options.warmup
    );
    println!("{:<52} {:>8} {:>8} {:>8} {:>8} {:>8}", "latency (ms)", "p50", "p95", "p99", "mean", "max");
    print_row("POST /v1/groups/{slug}/messages (gateway)", &api);
    print_row("POST /v1/groups/{slug}/messages, no rate-limit check", &free);
    print_row("PUT .../send/m.room.message (homeserver, appservice)", &hs);
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "rate-limit check: p50 {:+.2} ms ({:.2} x the send without it)",
        ms(api.p50) - ms(free.p50),
        ratio(api.p50, free.p50)
    );
    println!(
        "ratio gateway/homeserver: p50 {:.2}  p95 {:.2}  p99 {:.2}  (target p50 <= 1.1: {})",
        ratio(api.p50, hs.p50),
        ratio(api.p95, hs.p95),
        ratio(api.p99, hs.p99),
        if ratio(api.p50, hs.p50) <= 1.1 { "met" } else { "missed" }
    );
    Ok(())
}
