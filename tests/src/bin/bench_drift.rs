//! Benchmark of a drift-repair pass (issue 17) over managed rooms, against the running local stack:
//!
//!   cargo run --release -p integration-tests --bin bench_drift [-- ROOMS]     (default 500)
//!
//! Creates ROOMS private event rooms (one member each) in a fresh unlimited tenant, then times a pass with no
//! drift and one after 1 % of the rooms lost their member by hand (a raw kick), and a last pass (zero drift).
//! Homeserver requests are counted by a loopback proxy in front of Synapse (every request line). Beside them, the
//! minimum in the same run: one listing request per room for members and one for state (admin API), sequential.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use integration_tests::{encode_path, stack, unique};
use reqwest::Method;
use serde_json::json;
use shared::domain::drift::SelfHealSettings;
use shared::domain::drift::repair::{self, PassOptions, PassReport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CONCURRENCY: usize = 8;

#[tokio::main]
async fn main() {
    let rooms: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(500);
    let s = stack();
    let tenant = unique("bench-free-drift");
    let service = s.service_jwt(&tenant);
    let run = unique("d");

    let started = Instant::now();
    let mut room_ids = Vec::new();
    for chunk in (0..rooms).collect::<Vec<_>>().chunks(CONCURRENCY) {
        let calls = chunk.iter().map(|i| {
            let (service, slug, member) = (service.clone(), format!("{run}-{i}"), format!("{run}-m{i}"));
            tokio::spawn(async move {
                let s = stack();
                let body = json!({"name": format!("Bench {slug}"), "startsAt": "2030-01-01T10:00:00Z", "visibility": "private"});
                let (status, room) = s.api(Method::PUT, &format!("/v1/events/{slug}/room"), Some(&service), Some(body)).await;
                assert_eq!(status, 201, "{room}");
                let path = format!("/v1/events/{slug}/members/{member}");
                let (status, body) = s.api(Method::PUT, &path, Some(&service), Some(json!({"role": "member"}))).await;
                assert_eq!(status, 200, "{body}");
                (room["roomId"].as_str().unwrap_or_default().to_owned(), member)
            })
        });
        for call in calls.collect::<Vec<_>>() {
            room_ids.push(call.await.expect("room task"));
        }
        if room_ids.len() % 50 == 0 {
            eprintln!("  {} / {rooms} rooms created ({:.0}s)", room_ids.len(), started.elapsed().as_secs_f64());
        }
    }
    eprintln!("{rooms} rooms with a member each created in {:.0}s", started.elapsed().as_secs_f64());

    let counter = Arc::new(AtomicUsize::new(0));
    let proxy = counting_proxy(&s.homeserver, counter.clone()).await;
    let lookup = |name: &str| {
        if name == "MATRIX_HOMESERVER_URL" {
            Some(proxy.clone())
        } else {
            s.env.get(name).cloned().filter(|v| !v.is_empty())
        }
    };
    let config = shared::config::Config::from_lookup(lookup).expect("the stack's configuration");
    let app = shared::App::new(config, &s.aws().await).await.expect("app");
    let settings =
        SelfHealSettings::from_lookup(|name| (name == "OPENMEET_DRIFT_REQUESTS_PER_SEC").then(|| "100000".to_owned()))
            .expect("settings");
    let options = PassOptions { tenant: Some(tenant.clone()), ..PassOptions::default() };

    let pass = |label: &'static str| {
        let (app, settings, options, counter) = (&app, &settings, &options, counter.clone());
        async move {
            counter.store(0, Ordering::SeqCst);
            let started = Instant::now();
            let report: PassReport = repair::run(app, settings, options).await.expect("pass");
            let elapsed = started.elapsed();
            let requests = counter.load(Ordering::SeqCst);
            assert_eq!(report.failures, 0, "{label}: {report:?}");
            (elapsed, requests, report)
        }
    };

    // The minimum, in the same run: per room one members listing and one state listing, nothing else.
    counter.store(0, Ordering::SeqCst);
    let started = Instant::now();
    for (room_id, _) in &room_ids {
        app.homeserver.admin_room_members(room_id).await.expect("members");
        app.homeserver.admin_room_state(room_id).await.expect("state");
    }
    let (minimum_time, minimum_requests) = (started.elapsed(), counter.load(Ordering::SeqCst));

    let (clean_time, clean_requests, clean) = pass("no drift").await;
    assert_eq!(clean.drift_found, 0, "{clean:?}");

    // 1 %: the member of every hundredth room kicked by hand.
    let drifted: Vec<&(String, String)> = room_ids.iter().step_by(100).collect();
    for (room_id, member) in &drifted {
        let path = format!("/_matrix/client/v3/rooms/{}/kick", encode_path(room_id));
        let (status, body) =
            s.matrix(Method::POST, &path, None, Some(json!({"user_id": s.matrix_user_id(&tenant, member)}))).await;
        assert_eq!(status, 200, "{body}");
    }
    let (drift_time, drift_requests, drifted_report) = pass("1% drift").await;
    assert_eq!(drifted_report.repairs, drifted.len(), "{drifted_report:?}");
    let (_, after_requests, after) = pass("after repair").await;
    assert_eq!(after.drift_found, 0, "a second pass finds nothing: {after:?}");

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("drift-repair pass over {rooms} managed rooms (loopback, SQLite Synapse):");
    println!("  minimum (members + state listing per room): {minimum_requests} requests, {:.0} ms", ms(minimum_time));
    println!(
        "  no drift:  {clean_requests} requests ({:.2}x minimum), {:.0} ms ({:.2}x minimum)",
        clean_requests as f64 / minimum_requests as f64,
        ms(clean_time),
        ms(clean_time) / ms(minimum_time)
    );
    println!(
        "  1% drift ({} rooms repaired): {drift_requests} requests ({:.2}x minimum), {:.0} ms ({:.2}x minimum)",
        drifted.len(),
        drift_requests as f64 / minimum_requests as f64,
        ms(drift_time),
        ms(drift_time) / ms(minimum_time)
    );
    println!("  pass after the repair: {} drift, {after_requests} requests", after.drift_found);
}

/// A loopback proxy to `upstream` that counts HTTP request lines; its URL.
async fn counting_proxy(upstream: &str, counter: Arc<AtomicUsize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let upstream = upstream.trim_start_matches("http://").to_owned();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, counter) = (upstream.clone(), counter.clone());
            tokio::spawn(async move { relay(client, &upstream, &counter).await });
        }
    });
    format!("http://127.0.0.1:{port}")
}

async fn relay(mut client: TcpStream, upstream: &str, counter: &AtomicUsize) {
    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
    let (mut up, mut down) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        tokio::select! {
            read = client.read(&mut up) => {
                let Ok(n) = read else { return };
                if n == 0 { return; }
                counter.fetch_add(up[..n].windows(11).filter(|w| *w == b" HTTP/1.1\r\n").count(), Ordering::SeqCst);
                if server.write_all(&up[..n]).await.is_err() { return; }
            }
            read = server.read(&mut down) => {
                let Ok(n) = read else { return };
                if n == 0 { return; }
                if client.write_all(&down[..n]).await.is_err() { return; }
            }
        }
    }
}
