//! Latency of `POST /v1/{kind}/{slug}/messages` through the local gateway, beside a direct
//! `PUT /_matrix/client/v3/rooms/{id}/send/m.room.message/{txn}` to the homeserver with the same user's token, in
//! the same run, on loopback only.
//!
//! `cargo run -p integration-tests --bin bench_messages -- [--requests 200] [--warmup 20]`
//! (`OPENMEET_STACK_ENV` picks the stack description, as for the integration tests). The two kinds of request
//! alternate, so both see the same homeserver load; each is sequential (one in flight).

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

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let options = options()?;
    let s = stack();
    if !is_loopback(&s.api) || !is_loopback(&s.homeserver) {
        return Err(format!("loopback only: the gateway is {} and the homeserver {}", s.api, s.homeserver));
    }
    let http = reqwest::Client::new();
    let service = s.service_jwt(TENANT);

    // A room with one member, who sends both ways.
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
    let user_jwt = s.user_jwt(TENANT, &user, None);
    let (status, session) = call(
        http.post(format!("{}/v1/me/matrix-session", s.api)).bearer_auth(&user_jwt).json(&json!({"deviceId": "BENCH"})),
    )
    .await?;
    let token = session.get("accessToken").and_then(Value::as_str).ok_or(format!("no session: {status}"))?.to_owned();
    integration_tests::record_secret(&token);

    let api_url = format!("{}/v1/groups/{slug}/messages", s.api);
    let room_path = integration_tests::encode_path(&room_id);
    let mut through_api = Vec::with_capacity(options.requests);
    let mut direct = Vec::with_capacity(options.requests);
    for round in 0..options.warmup + options.requests {
        let text = format!("benchmark message {round}");

        let started = Instant::now();
        let (status, answer) =
            call(http.post(&api_url).bearer_auth(&user_jwt).json(&json!({"body": text, "format": "markdown"}))).await?;
        let api_latency = started.elapsed();
        if status != 201 {
            return Err(format!("API send: {status} {answer}"));
        }

        let txn = format!("bench{}", uuid::Uuid::new_v4().simple());
        let url = format!("{}/_matrix/client/v3/rooms/{room_path}/send/m.room.message/{txn}", s.homeserver);
        let started = Instant::now();
        let (status, answer) = call(
            http.put(&url).bearer_auth(&token).json(&json!({"msgtype": "m.text", "body": text, "m.mentions": {}})),
        )
        .await?;
        let direct_latency = started.elapsed();
        if status != 200 {
            return Err(format!("direct send: {status} {answer}"));
        }

        if round >= options.warmup {
            through_api.push(api_latency);
            direct.push(direct_latency);
        }
    }

    let api = summarise(through_api);
    let hs = summarise(direct);
    println!(
        "{} requests each after {} warm-up rounds, sequential, alternating; loopback",
        options.requests, options.warmup
    );
    println!("{:<44} {:>8} {:>8} {:>8} {:>8} {:>8}", "latency (ms)", "p50", "p95", "p99", "mean", "max");
    for (name, summary) in
        [("POST /v1/groups/{slug}/messages (gateway)", &api), ("PUT .../send/m.room.message (homeserver)", &hs)]
    {
        println!(
            "{name:<44} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            ms(summary.p50),
            ms(summary.p95),
            ms(summary.p99),
            ms(summary.mean),
            ms(summary.max)
        );
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "ratio gateway/homeserver: p50 {:.2}  p95 {:.2}  p99 {:.2}  (target p50 <= 1.3: {})",
        ratio(api.p50, hs.p50),
        ratio(api.p95, hs.p95),
        ratio(api.p99, hs.p99),
        if ratio(api.p50, hs.p50) <= 1.3 { "met" } else { "missed" }
    );
    Ok(())
}
