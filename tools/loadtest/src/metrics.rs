//! What one step records: every message sent (marker, time, room, expected receivers), when each receiver's sync
//! first saw it, the event ids carrying each marker (duplicates), API latency and status classes per route, and the
//! bytes on the wire per phase, filter and kind of traffic.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How a phase's posts travel: through the API, or straight to the homeserver as the appservice (the baseline).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Api,
    Direct,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Api, Mode::Direct];
    pub fn index(self) -> usize {
        self as usize
    }
    pub fn name(self) -> &'static str {
        match self {
            Mode::Api => "api",
            Mode::Direct => "direct",
        }
    }
}

/// The sync filter a person uses: the page's before issue 29, or after.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterKind {
    Before,
    After,
}

/// Kinds of traffic counted on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Wire {
    /// `/sync` requests and answers (the long poll and catch-up), gap fills included.
    Sync,
    /// Calls to the API (sessions, posts, reactions, history).
    Api,
    /// Other homeserver calls a browser makes: typing, receipts, refresh, room scrollback.
    Matrix,
    /// The direct phase's sends (appservice), counted apart: a browser never makes them.
    DirectSend,
}

struct SentMessage {
    at: Instant,
    mode: Mode,
    receivers: Vec<usize>,
}

#[derive(Default, Clone, Serialize)]
pub struct RouteCounts {
    pub ok_2xx: u64,
    pub queued_202: u64,
    pub limited_429: u64,
    pub other_4xx: u64,
    pub server_5xx: u64,
    pub failed: u64,
}

#[derive(Default)]
struct Route {
    latencies: Vec<Duration>,
    counts: RouteCounts,
}

#[derive(Default)]
struct Inner {
    sent: HashMap<String, SentMessage>,
    seen: HashMap<(String, usize), Instant>,
    event_ids: HashMap<String, HashSet<String>>,
    routes: BTreeMap<(Mode, String), Route>,
    bytes: HashMap<(Mode, FilterKind, Wire), u64>,
}

pub struct Metrics {
    inner: Mutex<Inner>,
    /// The phase under way (a `Mode` index; SETUP before the first): bytes and routes are counted against it.
    phase: AtomicUsize,
    /// Receivers whose deliveries count for loss but not for latency or bytes (they went offline on purpose).
    offline: Mutex<HashSet<usize>>,
}

const SETUP: usize = usize::MAX;

impl Default for Metrics {
    fn default() -> Self {
        Metrics { inner: Mutex::new(Inner::default()), phase: AtomicUsize::new(SETUP), offline: Mutex::default() }
    }
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A panic elsewhere never happens while the lock is held; recover the data anyway.
        let mut guard = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    /// The phase under way; None during set-up (sessions, filter uploads, initial syncs), which is not counted.
    pub fn phase(&self) -> Option<Mode> {
        match self.phase.load(Ordering::Relaxed) {
            0 => Some(Mode::Api),
            1 => Some(Mode::Direct),
            _ => None,
        }
    }

    pub fn exclude_from_latency(&self, receiver: usize) {
        if let Ok(mut offline) = self.offline.lock() {
            offline.insert(receiver);
        }
    }

    pub fn set_phase(&self, mode: Mode) {
        self.phase.store(mode.index(), Ordering::Relaxed);
    }

    pub fn sent(&self, marker: String, at: Instant, mode: Mode, receivers: Vec<usize>) {
        self.with(|m| m.sent.insert(marker, SentMessage { at, mode, receivers }));
    }

    /// A receiver's sync (or gap fill) saw an event carrying `marker`.
    pub fn seen(&self, marker: &str, event_id: &str, receiver: usize, at: Instant) {
        self.with(|m| {
            m.event_ids.entry(marker.to_owned()).or_default().insert(event_id.to_owned());
            m.seen.entry((marker.to_owned(), receiver)).or_insert(at);
        });
    }

    pub fn request(&self, route: &str, latency: Duration, status: Option<u16>) {
        let Some(phase) = self.phase() else { return };
        self.with(|m| {
            let entry = m.routes.entry((phase, route.to_owned())).or_default();
            entry.latencies.push(latency);
            let c = &mut entry.counts;
            match status {
                None => c.failed += 1,
                Some(202) => c.queued_202 += 1,
                Some(429) => c.limited_429 += 1,
                Some(s) if (200..300).contains(&s) => c.ok_2xx += 1,
                Some(s) if s >= 500 => c.server_5xx += 1,
                Some(_) => c.other_4xx += 1,
            }
        });
    }

    /// Bytes of one exchange of `person`; the people taken offline on purpose are not counted (their catch-up is
    /// reported apart), nor is set-up.
    pub fn bytes(&self, person: usize, filter: FilterKind, wire: Wire, n: u64) {
        let Some(phase) = self.phase() else { return };
        if self.offline.lock().is_ok_and(|o| o.contains(&person)) {
            return;
        }
        self.with(|m| *m.bytes.entry((phase, filter, wire)).or_default() += n);
    }

    /// Messages for `receiver` sent between `from` and `to` that it has not seen yet.
    pub fn missing(&self, receiver: usize, from: Instant, to: Instant) -> usize {
        self.with(|m| {
            m.sent
                .iter()
                .filter(|(_, s)| s.at >= from && s.at <= to && s.receivers.contains(&receiver))
                .filter(|(marker, _)| !m.seen.contains_key(&((*marker).clone(), receiver)))
                .count()
        })
    }

    /// Messages for `receiver` sent between `from` and `to`.
    pub fn sent_between(&self, receiver: usize, from: Instant, to: Instant) -> usize {
        self.with(|m| m.sent.values().filter(|s| s.at >= from && s.at <= to && s.receivers.contains(&receiver)).count())
    }

    pub fn summary(&self, mode: Mode) -> ModeSummary {
        let offline = self.offline.lock().map(|o| o.clone()).unwrap_or_default();
        self.with(|m| {
            let mut delivery = Vec::new();
            let (mut messages, mut lost_pairs, mut never_seen, mut duplicated) = (0, 0, 0, 0);
            for (marker, sent) in m.sent.iter().filter(|(_, s)| s.mode == mode) {
                messages += 1;
                let mut anyone = sent.receivers.is_empty();
                for receiver in &sent.receivers {
                    match m.seen.get(&(marker.clone(), *receiver)) {
                        Some(at) => {
                            anyone = true;
                            if !offline.contains(receiver) {
                                delivery.push(at.saturating_duration_since(sent.at));
                            }
                        }
                        None => lost_pairs += 1,
                    }
                }
                if !anyone {
                    never_seen += 1;
                }
                if m.event_ids.get(marker).is_some_and(|ids| ids.len() > 1) {
                    duplicated += 1;
                }
            }
            let routes = m
                .routes
                .iter()
                .filter(|((phase, _), _)| *phase == mode)
                .map(|((_, name), route)| (name.clone(), RouteSummary::of(&route.latencies, route.counts.clone())))
                .collect();
            let mut bytes = BTreeMap::new();
            for ((phase, filter, wire), n) in &m.bytes {
                if *phase == mode {
                    bytes.insert(format!("{filter:?}/{wire:?}").to_lowercase(), *n);
                }
            }
            ModeSummary {
                messages,
                deliveries: delivery.len(),
                delivery: Percentiles::of(&mut delivery),
                lost_deliveries: lost_pairs,
                lost_messages: never_seen,
                duplicated_messages: duplicated,
                routes,
                bytes,
            }
        })
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(samples: &mut [Duration]) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort();
        let at = |p: f64| {
            let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1].as_secs_f64() * 1000.0
        };
        Percentiles { p50_ms: at(50.0), p95_ms: at(95.0), p99_ms: at(99.0), max_ms: at(100.0) }
    }
}

#[derive(Clone, Serialize)]
pub struct RouteSummary {
    pub requests: usize,
    pub latency: Percentiles,
    pub counts: RouteCounts,
}

impl RouteSummary {
    fn of(latencies: &[Duration], counts: RouteCounts) -> RouteSummary {
        let mut samples = latencies.to_vec();
        RouteSummary { requests: samples.len(), latency: Percentiles::of(&mut samples), counts }
    }
}

#[derive(Clone, Serialize)]
pub struct ModeSummary {
    /// Messages accepted (2xx/202) in this phase, and (message, receiver) pairs seen.
    pub messages: usize,
    pub deliveries: usize,
    pub delivery: Percentiles,
    /// (message, receiver) pairs never seen by the end of the drain; messages nobody saw; markers on >1 event.
    pub lost_deliveries: usize,
    pub lost_messages: usize,
    pub duplicated_messages: usize,
    pub routes: BTreeMap<String, RouteSummary>,
    /// Bytes by "filter/wire" (e.g. "after/sync").
    pub bytes: BTreeMap<String, u64>,
}

impl ModeSummary {
    pub fn server_errors(&self) -> u64 {
        self.routes.values().map(|r| r.counts.server_5xx).sum()
    }
    pub fn failures(&self) -> u64 {
        self.routes.values().map(|r| r.counts.failed).sum()
    }
}
