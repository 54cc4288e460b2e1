//! Benchmark of rooms and membership through the API beside the same work done with raw homeserver calls, in the
//! same run, against the running local stack (`scripts/stack.sh start`). Loopback only, bounded counts.
//!
//!   cargo run --release -p integration-tests --bin bench_rooms [-- ROOMS MEMBERS]
//!
//! Prints: rooms created per second (API vs raw createRoom), and reconcile of MEMBERS members, cold and no-op
//! (API vs raw admin joins + one power-levels write, and raw reads).

use std::time::{Duration, Instant};

use integration_tests::{encode_path, stack, unique};
use reqwest::Method;
use serde_json::{Value, json};

const TENANT: &str = "bench";
const CONCURRENCY: usize = 8;

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let rooms = args.first().copied().unwrap_or(20);
    let members = args.get(1).copied().unwrap_or(1000);
    let s = stack();
    let service = s.service_jwt(TENANT);

    // Rooms: event rooms through the API vs createRoom with the same settings.
    let run = unique("r");
    let started = Instant::now();
    for i in 0..rooms {
        let (status, body) = s
            .api(
                Method::PUT,
                &format!("/v1/events/{run}-{i}/room"),
                Some(&service),
                Some(json!({"name": format!("Bench {i}"), "startsAt": "2026-12-01T18:00:00Z", "visibility": "public"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let api_rate = rooms as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for i in 0..rooms {
        let (status, body) = s
            .matrix(
                Method::POST,
                "/_matrix/client/v3/createRoom",
                None,
                Some(json!({
                    "room_alias_name": format!("om_{TENANT}.raw.{run}-{i}"),
                    "name": format!("Raw {i}"),
                    "preset": "public_chat",
                    "visibility": "public",
                    "initial_state": [
                        {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "shared"}},
                        {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}},
                    ],
                })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let raw_rate = rooms as f64 / started.elapsed().as_secs_f64();
    println!(
        "rooms created per second: api {api_rate:.1}/s, raw createRoom {raw_rate:.1}/s, ratio raw/api {:.2} ({rooms} rooms)",
        raw_rate / api_rate
    );

    // Members exist already (as after provisioning); both rooms get the same people.
    let users: Vec<String> = (0..members).map(|i| format!("{run}-m{i}")).collect();
    let registered = Instant::now();
    for chunk in users.chunks(CONCURRENCY * 4) {
        let calls = chunk.iter().map(|user| {
            let user = user.clone();
            tokio::spawn(async move {
                let (status, body) = stack()
                    .matrix(
                        Method::POST,
                        "/_matrix/client/v3/register",
                        None,
                        Some(json!({"type": "m.login.application_service", "username": format!("om_{TENANT}.{user}"), "inhibit_login": true})),
                    )
                    .await;
                assert!(status == 200 || body["errcode"] == "M_USER_IN_USE", "{body}");
            })
        });
        for call in calls.collect::<Vec<_>>() {
            call.await.expect("register task");
        }
    }
    eprintln!("registered {members} users in {:.1}s", registered.elapsed().as_secs_f64());

    let group = unique("g");
    let (status, room) = s
        .api(
            Method::PUT,
            &format!("/v1/groups/{group}/room"),
            Some(&service),
            Some(json!({"name": "Bench", "visibility": "public"})),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let list: Vec<Value> = users
        .iter()
        .enumerate()
        .map(|(i, user)| json!({"userId": user, "role": if i == 0 { "owner" } else if i % 20 == 0 { "moderator" } else { "member" }}))
        .collect();
    let path = format!("/v1/groups/{group}/members");
    let started = Instant::now();
    let (status, report) = s.api(Method::PUT, &path, Some(&service), Some(json!({"members": list}))).await;
    let answered = started.elapsed();
    // Above the inline limit the reconcile is queued (202) and the worker applies it in slices: the cold figure is
    // then the time until the operation is delivered.
    let queued = status == 202;
    if queued {
        let id = report["operationId"].as_str().expect("operationId");
        loop {
            let (status, operation) = s.api(Method::GET, &format!("/v1/operations/{id}"), Some(&service), None).await;
            assert_eq!(status, 200, "{operation}");
            match operation["status"].as_str() {
                Some("queued") => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                Some("delivered") => break,
                _ => panic!("reconcile failed: {operation}"),
            }
        }
    } else {
        assert_eq!(status, 200, "{report}");
    }
    let api_cold = started.elapsed();
    println!(
        "reconcile {members} members: answered {} in {:.0} ms",
        if queued { "202 (queued, applied by the worker)" } else { "200 (applied in the request)" },
        answered.as_secs_f64() * 1000.0
    );
    let started = Instant::now();
    let (status, report) = s.api(Method::PUT, &path, Some(&service), Some(json!({"members": list}))).await;
    let api_noop = started.elapsed();
    assert_eq!((status.as_u16(), report["unchanged"].as_u64()), (200, Some(members as u64)), "{report}");

    // Raw: the same joins with the same concurrency, one power-levels write; the no-op is the two reads.
    let (status, raw_room) = s
        .matrix(
            Method::POST,
            "/_matrix/client/v3/createRoom",
            None,
            Some(json!({"preset": "public_chat", "name": "Raw bench"})),
        )
        .await;
    assert_eq!(status, 200, "{raw_room}");
    let raw_id = raw_room["room_id"].as_str().expect("room id").to_owned();
    let started = Instant::now();
    for chunk in users.chunks(CONCURRENCY) {
        let calls: Vec<_> = chunk
            .iter()
            .map(|user| {
                let (user_id, raw_id) = (s.matrix_user_id(TENANT, user), raw_id.clone());
                tokio::spawn(async move {
                    let (status, body) = stack()
                        .matrix(
                            Method::POST,
                            &format!("/_synapse/admin/v1/join/{}", encode_path(&raw_id)),
                            None,
                            Some(json!({"user_id": user_id})),
                        )
                        .await;
                    assert_eq!(status, 200, "{body}");
                })
            })
            .collect();
        for call in calls {
            call.await.expect("join task");
        }
    }
    let levels_path = format!("/_matrix/client/v3/rooms/{}/state/m.room.power_levels/", encode_path(&raw_id));
    let (_, mut levels) = s.matrix(Method::GET, &levels_path, None, None).await;
    for (i, user) in users.iter().enumerate() {
        let level = if i == 0 {
            100
        } else if i % 20 == 0 {
            50
        } else {
            continue;
        };
        levels["users"][s.matrix_user_id(TENANT, user)] = json!(level);
    }
    let (status, body) = s.matrix(Method::PUT, &levels_path, None, Some(levels)).await;
    assert_eq!(status, 200, "{body}");
    let raw_cold = started.elapsed();
    let started = Instant::now();
    let members_path = format!("/_matrix/client/v3/rooms/{}/members?not_membership=leave", encode_path(&raw_id));
    let (status, _) = s.matrix(Method::GET, &members_path, None, None).await;
    assert_eq!(status, 200);
    let (status, _) = s.matrix(Method::GET, &levels_path, None, None).await;
    assert_eq!(status, 200);
    let raw_noop = started.elapsed();
    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "reconcile {members} members cold: api {:.1}s, raw {:.1}s, ratio api/raw {:.2}",
        secs(api_cold),
        secs(raw_cold),
        secs(api_cold) / secs(raw_cold)
    );
    println!(
        "reconcile {members} members no-op: api {:.0}ms, raw reads {:.0}ms, ratio api/raw {:.2}",
        secs(api_noop) * 1000.0,
        secs(raw_noop) * 1000.0,
        secs(api_noop) / secs(raw_noop)
    );
}
