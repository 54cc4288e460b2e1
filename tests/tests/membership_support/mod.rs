//! What the membership tests share: rooms and members through the API, and what the homeserver holds, read
//! back from Synapse itself. Two test binaries include it and each uses part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use integration_tests::{encode_path, stack, unique};
use reqwest::Method;
use serde_json::{Value, json};

pub const TENANT: &str = "it-mem";

pub fn service() -> String {
    stack().service_jwt(TENANT)
}

/// Creates a group room (or an event room) through the API and returns (members path, room id).
pub async fn room(kind: &str, visibility: &str) -> (String, String) {
    let slug = unique("room");
    let mut body = json!({"name": format!("Room {slug}"), "visibility": visibility});
    if kind == "events" {
        body["startsAt"] = json!("2026-12-01T18:00:00Z");
    }
    let (status, room) =
        stack().api(Method::PUT, &format!("/v1/{kind}/{slug}/room"), Some(&service()), Some(body)).await;
    assert_eq!(status, 201, "creating the room: {room}");
    (format!("/v1/{kind}/{slug}/members"), room["roomId"].as_str().expect("roomId").to_owned())
}

pub async fn put_member(members: &str, user: &str, role: &str) -> (u16, Value) {
    let (status, body) =
        stack().api(Method::PUT, &format!("{members}/{user}"), Some(&service()), Some(json!({"role": role}))).await;
    (status.as_u16(), body)
}

pub async fn reconcile(members: &str, query: &str, list: &[(&str, &str)]) -> (u16, Value) {
    let list: Vec<Value> = list.iter().map(|(user, role)| json!({"userId": user, "role": role})).collect();
    let (status, body) =
        stack().api(Method::PUT, &format!("{members}{query}"), Some(&service()), Some(json!({"members": list}))).await;
    (status.as_u16(), body)
}

pub fn mxid(user: &str) -> String {
    stack().matrix_user_id(TENANT, user)
}

/// The room's `users` power-level map as the homeserver holds it.
pub async fn power_users(room_id: &str) -> BTreeMap<String, i64> {
    let path = format!("/_matrix/client/v3/rooms/{}/state/m.room.power_levels/", encode_path(room_id));
    let (status, content) = stack().matrix(Method::GET, &path, None, None).await;
    assert_eq!(status, 200, "{content}");
    content["users"]
        .as_object()
        .map(|users| users.iter().map(|(user, level)| (user.clone(), level.as_i64().expect("integer"))).collect())
        .unwrap_or_default()
}

/// How many `m.room.power_levels` events the room has had: each write is one.
pub async fn power_level_writes(room_id: &str) -> usize {
    let filter = encode_path(&json!({"types": ["m.room.power_levels"]}).to_string());
    let path = format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=1000&filter={filter}", encode_path(room_id));
    let (status, body) = stack().matrix(Method::GET, &path, None, None).await;
    assert_eq!(status, 200, "{body}");
    body["chunk"].as_array().expect("chunk").len()
}

/// Every membership but `leave`, by Matrix user id, as the homeserver holds it.
pub async fn memberships(room_id: &str) -> BTreeMap<String, String> {
    let path = format!("/_matrix/client/v3/rooms/{}/members?not_membership=leave", encode_path(room_id));
    let (status, body) = stack().matrix(Method::GET, &path, None, None).await;
    assert_eq!(status, 200, "{body}");
    body["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .map(|event| {
            let user = event["state_key"].as_str().expect("state_key").to_owned();
            (user, event["content"]["membership"].as_str().expect("membership").to_owned())
        })
        .collect()
}

/// The joined users of this test tenant.
pub async fn joined_here(room_id: &str) -> BTreeSet<String> {
    let prefix = format!("@{}{TENANT}.", stack().var("MATRIX_USER_PREFIX"));
    memberships(room_id)
        .await
        .into_iter()
        .filter(|(user, membership)| user.starts_with(&prefix) && membership == "join")
        .map(|(user, _)| user)
        .collect()
}

pub fn platform_user() -> String {
    format!("@{}:{}", stack().var("MATRIX_PLATFORM_LOCALPART"), stack().var("MATRIX_SERVER_NAME"))
}

pub fn report(body: &Value) -> (Vec<&str>, Vec<&str>, Vec<&str>, u64) {
    let names = |key: &str| -> Vec<&str> {
        body[key].as_array().unwrap_or_else(|| panic!("{key} in {body}")).iter().filter_map(Value::as_str).collect()
    };
    (names("added"), names("removed"), names("roleChanged"), body["unchanged"].as_u64().expect("unchanged"))
}
