//! One simulated person: the browser session (renewed as the page renews it), and what the person does: typing,
//! posting, reacting and replying, reading history pages and opening rooms. Its /sync loop is in `sync.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};

use crate::metrics::{FilterKind, Metrics, Mode, Wire};
use crate::world::World;
use crate::{Scenario, Stack};

/// What every task of a step shares.
pub struct Ctx {
    pub stack: Stack,
    pub http: reqwest::Client,
    pub world: World,
    pub metrics: Metrics,
    pub scenario: Scenario,
    pub room_index: HashMap<String, usize>,
    /// Set when the step is over: every loop returns.
    pub stop: AtomicBool,
    pub catch_ups: Mutex<Vec<crate::sync::CatchUp>>,
    /// People whose initial sync is done.
    pub ready: AtomicUsize,
}

struct Session {
    access: String,
    refresh: String,
    renew_at: Instant,
}

pub struct Person {
    pub index: usize,
    pub filter: FilterKind,
    jwt: String,
    session: Mutex<Option<Session>>,
    /// Recent message event ids per room (targets of reactions and replies).
    recent: Mutex<HashMap<usize, Vec<String>>>,
    pub open_room: AtomicUsize,
    /// The person's sync is paused (offline): no request of any kind leaves.
    pub offline: AtomicBool,
}

/// Percent-encodes one path segment.
pub fn enc(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sends one request, counting its bytes on the wire (request line, headers, body; status line, headers, body:
/// the listener does not compress) against `wire`. Answers status and JSON body, or None on a transport error.
pub async fn exchange(
    ctx: &Ctx,
    person: usize,
    filter: FilterKind,
    wire: Wire,
    request: reqwest::RequestBuilder,
) -> (Option<u16>, Value) {
    let Ok(request) = request.build() else { return (None, Value::Null) };
    let url = request.url();
    let target = url.path().len() + url.query().map_or(0, |q| q.len() + 1);
    // "GET /path HTTP/1.1\r\n", the headers reqwest sets, Host, Accept, and the blank line.
    let mut sent = request.method().as_str().len() + target + 12 + 24 + 15 + 2;
    sent += request.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>();
    sent += request.body().and_then(|b| b.as_bytes()).map_or(0, <[u8]>::len);
    let response = ctx.http.execute(request).await;
    let Ok(response) = response else {
        ctx.metrics.bytes(person, filter, wire, sent as u64);
        return (None, Value::Null);
    };
    let status = response.status().as_u16();
    let mut received = 17 + response.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>() + 2;
    let body = response.bytes().await.unwrap_or_default();
    received += body.len();
    ctx.metrics.bytes(person, filter, wire, (sent + received) as u64);
    (Some(status), serde_json::from_slice(&body).unwrap_or(Value::Null))
}

impl Person {
    pub fn new(ctx: &Ctx, index: usize) -> Result<Person, String> {
        let filter = if index.is_multiple_of(2) { FilterKind::Before } else { FilterKind::After };
        Ok(Person {
            index,
            filter,
            jwt: ctx.stack.user_jwt(&ctx.world.tenant, &ctx.world.people[index])?,
            session: Mutex::new(None),
            recent: Mutex::new(HashMap::new()),
            open_room: AtomicUsize::new(ctx.world.rooms_of[index].first().copied().unwrap_or(0)),
            offline: AtomicBool::new(false),
        })
    }

    pub fn user_id<'a>(&self, ctx: &'a Ctx) -> &'a str {
        &ctx.world.matrix_ids[self.index]
    }

    pub fn token(&self) -> Option<String> {
        self.session.lock().ok()?.as_ref().map(|s| s.access.clone())
    }

    /// `POST /v1/me/matrix-session` with the person's own device id, as the page does on load.
    pub async fn open_session(&self, ctx: &Ctx) -> Result<(), String> {
        let request = ctx
            .http
            .post(format!("{}/v1/me/matrix-session", ctx.stack.api))
            .bearer_auth(&self.jwt)
            .json(&json!({"deviceId": format!("LOAD{}", self.index)}));
        let started = Instant::now();
        let (status, body) = exchange(ctx, self.index, self.filter, Wire::Api, request).await;
        ctx.metrics.request("POST /v1/me/matrix-session", started.elapsed(), status);
        if status != Some(200) {
            return Err(format!("session of person {}: {status:?}", self.index));
        }
        self.keep(&body, "accessToken", "refreshToken", "expiresInMs")
    }

    fn keep(&self, body: &Value, access: &str, refresh: &str, expires: &str) -> Result<(), String> {
        let (Some(a), Some(r)) = (body[access].as_str(), body[refresh].as_str()) else {
            return Err(format!("person {}: the session answer has no tokens", self.index));
        };
        let lifetime = Duration::from_millis(body[expires].as_u64().unwrap_or(30_000));
        // The page renews at 80 % of the lifetime.
        let renew_at = Instant::now() + lifetime.mul_f64(0.8);
        if let Ok(mut session) = self.session.lock() {
            *session = Some(Session { access: a.to_owned(), refresh: r.to_owned(), renew_at });
        }
        Ok(())
    }

    /// Matrix's `POST /refresh` with the refresh token, else the session route again (same device): as the page.
    pub async fn renew(&self, ctx: &Ctx) -> Result<(), String> {
        let refresh = self.session.lock().ok().and_then(|s| s.as_ref().map(|s| s.refresh.clone()));
        if let Some(refresh) = refresh {
            let request = ctx
                .http
                .post(format!("{}/_matrix/client/v3/refresh", ctx.stack.homeserver))
                .json(&json!({"refresh_token": refresh}));
            let started = Instant::now();
            let (status, body) = exchange(ctx, self.index, self.filter, Wire::Matrix, request).await;
            ctx.metrics.request("matrix POST /refresh", started.elapsed(), status);
            if status == Some(200) && self.keep(&body, "access_token", "refresh_token", "expires_in_ms").is_ok() {
                return Ok(());
            }
        }
        self.open_session(ctx).await
    }

    /// Renews the session before it expires, until the step stops (not while offline: the page cannot either).
    pub async fn keep_session(&self, ctx: &Ctx) {
        while !ctx.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let due = self.session.lock().ok().and_then(|s| s.as_ref().map(|s| s.renew_at <= Instant::now()));
            if due == Some(true) && !self.offline.load(Ordering::Relaxed) {
                let _ = self.renew(ctx).await;
            }
        }
    }

    pub fn remember(&self, room: usize, event_id: &str) {
        if let Ok(mut recent) = self.recent.lock() {
            let list = recent.entry(room).or_default();
            list.push(event_id.to_owned());
            if list.len() > 20 {
                list.remove(0);
            }
        }
    }

    fn recent_in(&self, room: usize, rng: &mut StdRng) -> Option<String> {
        self.recent.lock().ok()?.get(&room)?.choose(rng).cloned()
    }

    /// Typing, posting, reacting, replying, history and room switches until `until`, at the scenario's rates.
    pub async fn act(&self, ctx: &Ctx, until: Instant) {
        let phase = ctx.metrics.phase().map_or(2, Mode::index) as u64;
        let mut rng = StdRng::seed_from_u64(ctx.scenario.seed ^ ((self.index as u64) << 20) ^ (phase << 40));
        let s = &ctx.scenario;
        let gap = |rng: &mut StdRng, mean: f64| Duration::from_secs_f64(-mean * (1.0 - rng.random::<f64>()).ln());
        let now = Instant::now();
        let (mut next_post, mut next_history, mut next_open) = (
            now + gap(&mut rng, s.post_every_secs),
            now + gap(&mut rng, s.history_every_secs),
            now + gap(&mut rng, s.open_room_every_secs),
        );
        loop {
            let next = next_post.min(next_history).min(next_open);
            if next >= until || ctx.stop.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep_until(next.into()).await;
            if self.offline.load(Ordering::Relaxed) {
                // Offline: nothing leaves (the page's outbox would hold posts; this person simply skips them).
                next_post = Instant::now() + gap(&mut rng, s.post_every_secs);
                next_history = next_post.max(next_history);
                next_open = next_post.max(next_open);
                continue;
            }
            if next == next_post {
                self.post(ctx, &mut rng).await;
                next_post = Instant::now() + gap(&mut rng, s.post_every_secs);
            } else if next == next_history {
                self.read_history(ctx, &mut rng).await;
                next_history = Instant::now() + gap(&mut rng, s.history_every_secs);
            } else {
                self.open_other_room(ctx, &mut rng).await;
                next_open = Instant::now() + gap(&mut rng, s.open_room_every_secs);
            }
        }
    }

    fn pick_room(&self, ctx: &Ctx, rng: &mut StdRng) -> usize {
        let mine = &ctx.world.rooms_of[self.index];
        if rng.random_bool(0.6) || mine.is_empty() {
            self.open_room.load(Ordering::Relaxed)
        } else {
            mine.choose(rng).copied().unwrap_or(0)
        }
    }

    async fn matrix(&self, ctx: &Ctx, label: &str, method: Method, path: &str, body: Value) -> Option<u16> {
        let token = self.token()?;
        let request =
            ctx.http.request(method, format!("{}{path}", ctx.stack.homeserver)).bearer_auth(token).json(&body);
        let started = Instant::now();
        let (status, _) = exchange(ctx, self.index, self.filter, Wire::Matrix, request).await;
        ctx.metrics.request(label, started.elapsed(), status);
        status
    }

    async fn typing(&self, ctx: &Ctx, room_id: &str, typing: bool) {
        let path = format!("/_matrix/client/v3/rooms/{}/typing/{}", enc(room_id), enc(self.user_id(ctx)));
        let body = if typing { json!({"typing": true, "timeout": 5000}) } else { json!({"typing": false}) };
        self.matrix(ctx, "matrix PUT typing", Method::PUT, &path, body).await;
    }

    pub async fn receipt(&self, ctx: &Ctx, room_id: &str, event_id: &str) {
        let path = format!("/_matrix/client/v3/rooms/{}/receipt/m.read/{}", enc(room_id), enc(event_id));
        self.matrix(ctx, "matrix POST receipt", Method::POST, &path, json!({})).await;
    }

    async fn post(&self, ctx: &Ctx, rng: &mut StdRng) {
        let room = self.pick_room(ctx, rng);
        let Some(r) = ctx.world.rooms.get(room) else { return };
        let roll = rng.random::<f64>();
        let target = self.recent_in(room, rng);
        let Some(mode) = ctx.metrics.phase() else { return };
        if roll < ctx.scenario.reaction_share
            && let Some(event_id) = &target
        {
            let key = ["👍", "❤️", "🎉", "😂"].choose(rng).copied().unwrap_or("👍");
            self.react(ctx, mode, room, event_id, key).await;
            return;
        }
        let reply_to = target.filter(|_| roll < ctx.scenario.reaction_share + ctx.scenario.reply_share);
        self.typing(ctx, &r.id, true).await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..1500))).await;
        let marker = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
        let text = format!("load message from person {} [lt:{marker}]", self.index);
        let receivers: Vec<usize> = r.members.iter().copied().filter(|m| *m != self.index).collect();
        let started = Instant::now();
        let status = match mode {
            Mode::Api => {
                let mut body = json!({"body": text, "format": "markdown"});
                if let Some(id) = &reply_to {
                    body["replyToId"] = json!(id);
                }
                let request = ctx
                    .http
                    .post(format!("{}/v1/{}/{}/messages", ctx.stack.api, r.kind, r.slug))
                    .bearer_auth(&self.jwt)
                    .header("Idempotency-Key", format!("lt-{marker}"))
                    .json(&body);
                let (status, _) = exchange(ctx, self.index, self.filter, Wire::Api, request).await;
                ctx.metrics.request("POST /v1/{kind}/{slug}/messages", started.elapsed(), status);
                status
            }
            Mode::Direct => {
                let mut content = json!({"msgtype": "m.text", "body": text, "m.mentions": {}});
                if let Some(id) = &reply_to {
                    content["m.relates_to"] = json!({"m.in_reply_to": {"event_id": id}});
                }
                self.direct(ctx, &r.id, "m.room.message", content, "direct PUT send m.room.message").await
            }
        };
        if matches!(status, Some(200..=202)) {
            ctx.metrics.sent(marker, started, mode, receivers);
        }
        self.typing(ctx, &r.id, false).await;
    }

    /// The baseline's send: the appservice masquerading as this person on its server device (as the functions do).
    async fn direct(&self, ctx: &Ctx, room_id: &str, kind: &str, content: Value, label: &str) -> Option<u16> {
        let txn = format!("lt{}", uuid::Uuid::new_v4().simple());
        let request = ctx
            .http
            .put(format!("{}/_matrix/client/v3/rooms/{}/send/{kind}/{txn}", ctx.stack.homeserver, enc(room_id)))
            .bearer_auth(ctx.stack.as_token())
            .query(&[("user_id", self.user_id(ctx)), ("device_id", "OPENMEET_SERVER")])
            .json(&content);
        let started = Instant::now();
        let (status, _) = exchange(ctx, self.index, self.filter, Wire::DirectSend, request).await;
        ctx.metrics.request(label, started.elapsed(), status);
        status
    }

    async fn react(&self, ctx: &Ctx, mode: Mode, room: usize, event_id: &str, key: &str) {
        let r = &ctx.world.rooms[room];
        if mode == Mode::Direct {
            let content = json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}});
            self.direct(ctx, &r.id, "m.reaction", content, "direct PUT send m.reaction").await;
            return;
        }
        let url =
            format!("{}/v1/{}/{}/messages/{}/reactions/{}", ctx.stack.api, r.kind, r.slug, enc(event_id), enc(key));
        let request = ctx.http.put(url).bearer_auth(&self.jwt).json(&json!({}));
        let started = Instant::now();
        let (status, _) = exchange(ctx, self.index, self.filter, Wire::Api, request).await;
        ctx.metrics.request("PUT /v1/{kind}/{slug}/messages/{eventId}/reactions/{key}", started.elapsed(), status);
    }

    async fn read_history(&self, ctx: &Ctx, rng: &mut StdRng) {
        let r = &ctx.world.rooms[self.pick_room(ctx, rng)];
        let url = format!("{}/v1/{}/{}/messages?limit=30", ctx.stack.api, r.kind, r.slug);
        let started = Instant::now();
        let (status, _) =
            exchange(ctx, self.index, self.filter, Wire::Api, ctx.http.get(url).bearer_auth(&self.jwt)).await;
        ctx.metrics.request("GET /v1/{kind}/{slug}/messages", started.elapsed(), status);
    }

    /// The page opening another room: the room's description from the API, its latest page from the homeserver.
    async fn open_other_room(&self, ctx: &Ctx, rng: &mut StdRng) {
        let Some(room) = ctx.world.rooms_of[self.index].choose(rng).copied() else { return };
        self.open_room.store(room, Ordering::Relaxed);
        let r = &ctx.world.rooms[room];
        let url = format!("{}/v1/{}/{}/room", ctx.stack.api, r.kind, r.slug);
        let started = Instant::now();
        let (status, _) =
            exchange(ctx, self.index, self.filter, Wire::Api, ctx.http.get(url).bearer_auth(&self.jwt)).await;
        ctx.metrics.request("GET /v1/{kind}/{slug}/room", started.elapsed(), status);
        let path = format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=30&filter=%7B%22lazy_load_members%22%3Atrue%7D",
            enc(&r.id)
        );
        let Some(token) = self.token() else { return };
        let request = ctx.http.get(format!("{}{path}", ctx.stack.homeserver)).bearer_auth(token);
        let started = Instant::now();
        let (status, _) = exchange(ctx, self.index, self.filter, Wire::Matrix, request).await;
        ctx.metrics.request("matrix GET /rooms/{id}/messages", started.elapsed(), status);
    }
}

/// Shares a person between its tasks.
pub type Shared = Arc<Person>;
