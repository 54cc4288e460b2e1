//! Reaction counts, briefly remembered by this container: a member paging or refreshing history would otherwise
//! make the homeserver re-read every message's reactions on every page (one `/relations` call per message).
//!
//! Keyed by room and message; every reader of a page is a member the homeserver let read the timeline, and counts
//! are the same for every member. A reaction added or removed through the API forgets the message's entry in this
//! container; one sent straight to the homeserver (or through another container) shows within [`TTL`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long counts are served without asking the homeserver again.
pub const TTL: Duration = Duration::from_secs(15);

/// Entries kept at most (a few MB at worst): past it, expired ones go, and if none had expired, all.
const CAPACITY: usize = 10_000;

type Counts = BTreeMap<String, u64>;

struct Entry {
    at: Instant,
    counts: Counts,
}

#[derive(Default)]
struct Cache(HashMap<(String, String), Entry>);

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(Mutex::default);

fn cache() -> MutexGuard<'static, Cache> {
    // Whole-entry inserts and removals: a panic elsewhere cannot leave the map inconsistent.
    CACHE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Cache {
    fn get(&self, room_id: &str, event_id: &str, now: Instant) -> Option<Counts> {
        let entry = self.0.get(&(room_id.to_owned(), event_id.to_owned()))?;
        (now.duration_since(entry.at) < TTL).then(|| entry.counts.clone())
    }

    fn put(&mut self, room_id: &str, event_id: &str, counts: Counts, now: Instant) {
        if self.0.len() >= CAPACITY {
            self.0.retain(|_, entry| now.duration_since(entry.at) < TTL);
            if self.0.len() >= CAPACITY {
                self.0.clear();
            }
        }
        self.0.insert((room_id.to_owned(), event_id.to_owned()), Entry { at: now, counts });
    }
}

/// The message's counts when read within the last [`TTL`].
pub fn get(room_id: &str, event_id: &str) -> Option<Counts> {
    cache().get(room_id, event_id, Instant::now())
}

pub fn put(room_id: &str, event_id: &str, counts: Counts) {
    cache().put(room_id, event_id, counts, Instant::now());
}

/// A reaction to the message changed: the next page reads its counts again.
pub fn forget(room_id: &str, event_id: &str) {
    cache().0.remove(&(room_id.to_owned(), event_id.to_owned()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_served_within_the_ttl_and_the_cache_stays_bounded() {
        let mut cache = Cache::default();
        let start = Instant::now();
        let counts = Counts::from([("👍".to_owned(), 2)]);
        cache.put("!r", "$e", counts.clone(), start);
        assert_eq!(cache.get("!r", "$e", start + TTL / 2), Some(counts.clone()));
        assert_eq!(cache.get("!r", "$e", start + TTL), None, "expired");
        assert_eq!(cache.get("!other", "$e", start), None, "keyed by room and message");
        for n in 0..CAPACITY + 5 {
            cache.put("!r", &format!("$e{n}"), counts.clone(), start);
        }
        assert!(cache.0.len() <= CAPACITY);
        cache.put("!r", "$late", counts, start + TTL * 2);
        assert!(cache.0.len() <= CAPACITY);
    }
}
