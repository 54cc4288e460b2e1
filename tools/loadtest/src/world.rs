//! A step's world, made through the API with a service JWT as OpenMeet would: a fresh tenant, N people, a few big
//! groups, many small event rooms, some people in many rooms.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::seq::IteratorRandom;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::{Scenario, Stack};

#[derive(Clone, Debug)]
pub struct Room {
    /// `groups` or `events`, as in the API's paths.
    pub kind: &'static str,
    pub slug: String,
    pub id: String,
    pub members: Vec<usize>,
}

#[derive(Clone, Debug)]
pub struct World {
    pub tenant: String,
    /// OpenMeet user ids, then Matrix ids, by person index.
    pub people: Vec<String>,
    pub matrix_ids: Vec<String>,
    pub rooms: Vec<Room>,
    /// Room indices of each person.
    pub rooms_of: Vec<Vec<usize>>,
}

/// Set-up calls run at most this many at a time (the gateway and Synapse share two cores with everyone).
const SETUP_CONCURRENCY: usize = 6;

/// The room shape for `n` people: who is in which room (no API call).
pub fn shape(scenario: &Scenario, n: usize) -> Vec<(&'static str, Vec<usize>)> {
    let mut rng = StdRng::seed_from_u64(scenario.seed ^ n as u64);
    let mut rooms: Vec<(&'static str, Vec<usize>)> = Vec::new();
    let groups = scenario.big_groups.max(1);
    for g in 0..groups {
        let mut members: Vec<usize> = (0..n).filter(|_| rng.random_bool(scenario.group_share)).collect();
        // Everyone belongs to at least one group: the first group takes whoever no group took.
        if g == 0 {
            members = (0..n).filter(|p| p % groups == 0 || members.contains(p)).collect();
        }
        rooms.push(("groups", members));
    }
    for p in 0..n {
        if !rooms.iter().any(|(_, m)| m.contains(&p)) {
            rooms[0].1.push(p);
        }
    }
    let events = (n / scenario.people_per_event).max(1);
    for _ in 0..events {
        let size = rng.random_range(scenario.event_size[0]..=scenario.event_size[1]).min(n);
        let mut members: Vec<usize> = (0..n).choose_multiple(&mut rng, size);
        members.sort_unstable();
        rooms.push(("events", members));
    }
    let event_rooms: Vec<usize> = (groups..rooms.len()).collect();
    for p in 0..n {
        if rng.random_bool(scenario.hub_share) {
            for r in event_rooms.iter().copied().choose_multiple(&mut rng, scenario.hub_rooms) {
                if !rooms[r].1.contains(&p) {
                    rooms[r].1.push(p);
                }
            }
        }
    }
    rooms
}

/// One set-up call; 429, 5xx and transport errors are retried a few times (set-up is not what is measured).
async fn setup_call(http: &reqwest::Client, url: String, jwt: &str, body: Value) -> Result<Value, String> {
    let mut last = String::new();
    for attempt in 0..8u64 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(500 * attempt)).await;
        }
        let response = http.request(Method::PUT, &url).bearer_auth(jwt).json(&body).send().await;
        match response {
            Ok(r) if r.status().is_success() => return Ok(r.json::<Value>().await.unwrap_or(Value::Null)),
            // 409: an earlier attempt of the same call is still being carried out (its answer was lost or late).
            Ok(r) if r.status() == 409 || r.status() == 429 || r.status().is_server_error() => {
                last = format!("{}", r.status())
            }
            Ok(r) => {
                let status = r.status();
                return Err(format!("set-up {url}: {status} {}", r.text().await.unwrap_or_default()));
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("set-up {url}: {last}"))
}

async fn all(calls: Vec<(String, Value)>, http: &reqwest::Client, jwt: &str) -> Result<Vec<Value>, String> {
    let gate = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, (url, body)) in calls.into_iter().enumerate() {
        let (gate, http, jwt) = (gate.clone(), http.clone(), jwt.to_owned());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            setup_call(&http, url, &jwt, body).await.map(|v| (index, v))
        });
    }
    let mut answers = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        answers.push(joined.map_err(|e| format!("set-up task: {e}"))??);
    }
    answers.sort_by_key(|(index, _)| *index);
    Ok(answers.into_iter().map(|(_, v)| v).collect())
}

/// Makes the world of `n` people in a new tenant; returns it when every call was accepted.
pub async fn build(stack: &Stack, http: &reqwest::Client, scenario: &Scenario, n: usize) -> Result<World, String> {
    let tenant = format!("load{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let service = stack.service_jwt(&tenant)?;
    let people: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
    let users = people
        .iter()
        .map(|p| (format!("{}/v1/users/{p}", stack.api), json!({"displayName": format!("Person {p}")})))
        .collect();
    all(users, http, &service).await?;

    let shape = shape(scenario, n);
    let rooms_calls = shape
        .iter()
        .enumerate()
        .map(|(i, (kind, _))| {
            let slug = format!("r{i}");
            let body = if *kind == "groups" {
                json!({"name": format!("Group {i}"), "visibility": "private"})
            } else {
                json!({"name": format!("Event {i}"), "visibility": "private", "startsAt": "2027-06-01T18:00:00Z"})
            };
            (format!("{}/v1/{kind}/{slug}/room", stack.api), body)
        })
        .collect();
    let created = all(rooms_calls, http, &service).await?;

    let mut member_calls = Vec::new();
    for (i, (kind, members)) in shape.iter().enumerate() {
        for m in members {
            let url = format!("{}/v1/{kind}/r{i}/members/{}", stack.api, people[*m]);
            member_calls.push((url, json!({"role": "member"})));
        }
    }
    all(member_calls, http, &service).await?;

    let mut rooms_of = vec![Vec::new(); n];
    let mut rooms = Vec::new();
    for (i, ((kind, members), answer)) in shape.into_iter().zip(created).enumerate() {
        let id = answer["roomId"].as_str().ok_or(format!("room r{i}: no roomId in {answer}"))?.to_owned();
        for m in &members {
            rooms_of[*m].push(i);
        }
        rooms.push(Room { kind, slug: format!("r{i}"), id, members });
    }
    let matrix_ids = people.iter().map(|p| stack.matrix_user_id(&tenant, p)).collect();
    Ok(World { tenant, people, matrix_ids, rooms, rooms_of })
}
