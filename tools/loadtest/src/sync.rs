//! A person's `/sync` long poll on the homeserver, with the page's filter (before or after issue 29), as
//! matrix-js-sdk runs it: an initial sync with an inline filter and `initialSyncLimit` 30, then incremental syncs with
//! the uploaded filter. A `limited` timeline is filled from `prev_batch` (what the page does when the reader scrolls
//! back), so a gap is never counted as a loss. Receipts are sent for the open room, at most one per 5 s.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use crate::metrics::{FilterKind, Wire};
use crate::person::{Ctx, Person, enc, exchange};

/// The filter matrix-js-sdk 43 builds for `startClient({initialSyncLimit: 30, lazyLoadMembers: true})`, no filter
/// given (the page before issue 29): presence, every ephemeral event, Synapse's default timeline limit (10).
pub fn before_filter() -> Value {
    json!({"room": {"timeline": {"unread_thread_notifications": true}, "state": {"lazy_load_members": true}}})
}

/// The page's filter after issue 29 (examples/web/src/sync-filter.js holds the same definition): no presence (the
/// page shows none), only the ephemeral events it renders (typing, receipts), members lazy-loaded in state and
/// timeline, a bounded timeline of 20 events per room and sync.
pub fn after_filter() -> Value {
    json!({
        "presence": {"not_types": ["*"]},
        "room": {
            "timeline": {"limit": 20, "lazy_load_members": true, "unread_thread_notifications": true},
            "state": {"lazy_load_members": true},
            "ephemeral": {"types": ["m.typing", "m.receipt"]}
        }
    })
}

fn definition(kind: FilterKind) -> Value {
    match kind {
        FilterKind::Before => before_filter(),
        FilterKind::After => after_filter(),
    }
}

/// What one offline person's return cost: the first sync after the pause, and until every message sent while it was
/// away had been seen (gap fills included).
#[derive(Clone, Debug, Serialize)]
pub struct CatchUp {
    pub person: usize,
    pub filter: FilterKind,
    pub offline_secs: f64,
    pub missed_messages: usize,
    pub first_sync_ms: f64,
    pub complete_ms: Option<f64>,
    pub gap_fills: usize,
}

/// Uploads the filter (as the SDK does once) and answers its id.
async fn upload_filter(ctx: &Ctx, person: &Person) -> Result<String, String> {
    let token = person.token().ok_or("no session")?;
    let url = format!("{}/_matrix/client/v3/user/{}/filter", ctx.stack.homeserver, enc(person.user_id(ctx)));
    let request = ctx.http.post(url).bearer_auth(token).json(&definition(person.filter));
    let (status, body) = exchange(ctx, person.index, person.filter, Wire::Sync, request).await;
    body["filter_id"].as_str().map(str::to_owned).ok_or(format!("filter upload: {status:?} {body}"))
}

/// One sync request; renews the session once on 401 (an expired token), as the page's fetch wrapper does.
async fn sync_once(ctx: &Ctx, person: &Person, query: &[(&str, String)]) -> Option<Value> {
    for _ in 0..2 {
        let token = person.token()?;
        let request =
            ctx.http.get(format!("{}/_matrix/client/v3/sync", ctx.stack.homeserver)).bearer_auth(token).query(query);
        let (status, body) = exchange(ctx, person.index, person.filter, Wire::Sync, request).await;
        match status {
            Some(200) => return Some(body),
            Some(401) => {
                let _ = person.renew(ctx).await;
            }
            _ => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                return None;
            }
        }
    }
    None
}

/// Notes what a sync answer carries; answers the rooms whose timeline was limited (with their prev_batch).
fn absorb(ctx: &Ctx, person: &Person, body: &Value, at: Instant) -> Vec<(usize, String)> {
    let mut gaps = Vec::new();
    let Some(joined) = body["rooms"]["join"].as_object() else { return gaps };
    for (room_id, room) in joined {
        let Some(&index) = ctx.room_index.get(room_id) else { continue };
        let timeline = &room["timeline"];
        for event in timeline["events"].as_array().into_iter().flatten() {
            note(ctx, person, index, event, at);
        }
        if timeline["limited"] == true
            && let Some(prev) = timeline["prev_batch"].as_str()
        {
            gaps.push((index, prev.to_owned()));
        }
    }
    gaps
}

fn note(ctx: &Ctx, person: &Person, room: usize, event: &Value, at: Instant) {
    if event["type"] != "m.room.message" {
        return;
    }
    let (Some(body), Some(event_id)) = (event["content"]["body"].as_str(), event["event_id"].as_str()) else {
        return;
    };
    person.remember(room, event_id);
    if let Some(marker) = body.split_once("[lt:").and_then(|(_, rest)| rest.split_once(']')).map(|(m, _)| m) {
        ctx.metrics.seen(marker, event_id, person.index, at);
    }
}

/// Reads back from a limited timeline's `prev_batch` (pages of 50, at most 10) until the page holds nothing unseen.
async fn fill_gap(ctx: &Ctx, person: &Person, room: usize, from: String) {
    let room_id = &ctx.world.rooms[room].id;
    let mut from = from;
    for _ in 0..10 {
        let Some(token) = person.token() else { return };
        let url = format!("{}/_matrix/client/v3/rooms/{}/messages", ctx.stack.homeserver, enc(room_id));
        let query = [("dir", "b".to_owned()), ("limit", "50".to_owned()), ("from", from.clone())];
        let request = ctx.http.get(url).bearer_auth(token).query(&query);
        let (_, body) = exchange(ctx, person.index, person.filter, Wire::Sync, request).await;
        let at = Instant::now();
        let chunk = body["chunk"].as_array().cloned().unwrap_or_default();
        for event in &chunk {
            note(ctx, person, room, event, at);
        }
        match body["end"].as_str() {
            Some(end) if chunk.len() == 50 => from = end.to_owned(),
            _ => return,
        }
    }
}

/// When an offline person goes away (set once the measured phase starts) and for how long.
pub type Offline = std::sync::OnceLock<(Instant, Duration)>;

/// Syncs until the step stops. When `offline` is given (from, to), the person stops syncing (and everything else)
/// in that window and then catches up; its catch-up goes to `ctx.catch_ups`.
pub async fn run(ctx: &Ctx, person: &Person, offline: Option<&Offline>) -> Result<(), String> {
    let filter_id = upload_filter(ctx, person).await?;
    let mut initial = definition(person.filter);
    initial["room"]["timeline"]["limit"] = json!(30);
    let initial = serde_json::to_string(&initial).map_err(|e| e.to_string())?;
    let timeout = ctx.scenario.sync_timeout_ms;
    let mut since: Option<String> = None;
    let mut catch_up: Option<CatchUp> = None;
    let mut returned: Option<(Instant, Instant)> = None; // (offline from, back at)
    let mut last_receipt = Instant::now() - Duration::from_secs(60);
    while !ctx.stop.load(Ordering::Relaxed) {
        let window = offline.and_then(|o| o.get().copied());
        if let Some((from, away)) = window
            && returned.is_none()
            && Instant::now() >= from
        {
            let went = Instant::now();
            person.offline.store(true, Ordering::Relaxed);
            tokio::time::sleep(away).await;
            person.offline.store(false, Ordering::Relaxed);
            returned = Some((went, Instant::now()));
        }
        let mut query = vec![("timeout", String::new())];
        match &since {
            None => {
                query[0].1 = "0".into();
                query.push(("filter", initial.clone()));
            }
            Some(token) => {
                let catching_up = returned.is_some() && catch_up.is_none();
                // A long poll ends before the step's stop or the start of the pause, so the loop can react.
                // Before its pause an offline person polls for 2 s at most, so it leaves on time.
                let cap = if offline.is_some() && returned.is_none() { 2_000 } else { timeout };
                let wait = if catching_up { 0 } else { cap.min(timeout) };
                query[0].1 = wait.to_string();
                query.push(("since", token.clone()));
                query.push(("filter", filter_id.clone()));
            }
        }
        let Some(body) = sync_once(ctx, person, &query).await else { continue };
        let at = Instant::now();
        if since.is_none() {
            ctx.ready.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(next) = body["next_batch"].as_str() {
            since = Some(next.to_owned());
        }
        let gaps = absorb(ctx, person, &body, at);
        let gap_count = gaps.len();
        for (room, from) in gaps {
            fill_gap(ctx, person, room, from).await;
        }
        if let Some((from, back)) = returned {
            let missing = ctx.metrics.missing(person.index, from, back);
            match &mut catch_up {
                None => {
                    catch_up = Some(CatchUp {
                        person: person.index,
                        filter: person.filter,
                        offline_secs: back.duration_since(from).as_secs_f64(),
                        missed_messages: ctx.metrics.sent_between(person.index, from, back),
                        first_sync_ms: at.duration_since(back).as_secs_f64() * 1000.0,
                        complete_ms: None,
                        gap_fills: gap_count,
                    });
                }
                Some(c) => c.gap_fills += gap_count,
            }
            if let Some(c) = &mut catch_up
                && c.complete_ms.is_none()
                && missing == 0
            {
                c.complete_ms = Some(Instant::now().duration_since(back).as_secs_f64() * 1000.0);
            }
            if let (Some(c), Ok(mut all)) = (&catch_up, ctx.catch_ups.lock()) {
                all.retain(|other| other.person != c.person);
                all.push(c.clone());
            }
        }
        // A read receipt for the open room's latest message, at most every 5 s (the page marks read when visible).
        let open = person.open_room.load(Ordering::Relaxed);
        let room_id = &ctx.world.rooms[open].id;
        let latest = body["rooms"]["join"][room_id]["timeline"]["events"]
            .as_array()
            .and_then(|events| events.iter().rev().find(|e| e["type"] == "m.room.message"))
            .and_then(|e| e["event_id"].as_str());
        if let Some(event_id) = latest
            && last_receipt.elapsed() >= Duration::from_secs(5)
            && !ctx.stop.load(Ordering::Relaxed)
        {
            last_receipt = Instant::now();
            person.receipt(ctx, room_id, event_id).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page's filter (examples/web/src/sync-filter.js) and the one the load generator measures are the same.
    #[test]
    fn the_page_syncs_with_the_measured_filter() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/web/src/sync-filter.js");
        let text = std::fs::read_to_string(path).expect("the page's sync-filter.js");
        let begin = text.find("// sync-filter:begin").expect("begin marker");
        let end = text.find("// sync-filter:end").expect("end marker");
        let literal = &text[begin..end];
        let json = &literal[literal.find('{').expect("object")..=literal.rfind('}').expect("object end")];
        let page: Value = serde_json::from_str(json).expect("the page's filter is JSON");
        assert_eq!(page, after_filter());
    }
}
