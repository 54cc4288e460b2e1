//! What one container remembers between invocations: small caches and in-process locks, owned by [`crate::app::App`]
//! (not statics), so each `App` (a test's, a tool's, a function's) starts with its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ruma::{OwnedRoomId, RoomId};

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these maps leaves it consistent (single inserts and removals): keep using it.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Alias → room id. Short-lived: a purge elsewhere must not be hidden for long.
#[derive(Default)]
pub struct RoomCache(Mutex<HashMap<String, (OwnedRoomId, Instant)>>);

const ROOM_CACHE_TTL: Duration = Duration::from_secs(60);

impl RoomCache {
    pub fn get(&self, alias: &str) -> Option<OwnedRoomId> {
        let cache = locked(&self.0);
        cache.get(alias).filter(|(_, at)| at.elapsed() < ROOM_CACHE_TTL).map(|(id, _)| id.clone())
    }

    /// Whatever this container last knew, however old: better than nothing while the homeserver is out.
    pub fn get_stale(&self, alias: &str) -> Option<OwnedRoomId> {
        locked(&self.0).get(alias).map(|(id, _)| id.clone())
    }

    pub fn put(&self, alias: &str, room_id: &OwnedRoomId) {
        locked(&self.0).insert(alias.to_owned(), (room_id.clone(), Instant::now()));
    }

    pub fn forget(&self, alias: &str) {
        locked(&self.0).remove(alias);
    }
}

/// One async lock per room: power-level writes of a room are serialised within this container, so that our own
/// concurrent requests do not overwrite each other's read-modify-write (other writers are caught by verifying).
#[derive(Default)]
pub struct RoomLocks(Mutex<HashMap<OwnedRoomId, Arc<tokio::sync::Mutex<()>>>>);

impl RoomLocks {
    pub async fn lock(&self, room_id: &RoomId) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = locked(&self.0);
            // Only the map holds an idle lock: forget those, so the map stays as small as the rooms in use.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            locks.entry(room_id.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Rooms with a lock held or awaited.
    pub fn in_use(&self) -> usize {
        locked(&self.0).len()
    }
}

/// Keys seen lately, each for a fixed time (rooms seen `active`, say).
pub struct RecentlySeen {
    seen: Mutex<HashMap<String, Instant>>,
    lifetime: Duration,
}

impl RecentlySeen {
    pub fn new(lifetime: Duration) -> Self {
        RecentlySeen { seen: Mutex::default(), lifetime }
    }

    pub fn contains(&self, key: &str) -> bool {
        locked(&self.seen).get(key).is_some_and(|at| at.elapsed() < self.lifetime)
    }

    pub fn remember(&self, key: &str) {
        let mut seen = locked(&self.seen);
        seen.retain(|_, at| at.elapsed() < self.lifetime);
        seen.insert(key.to_owned(), Instant::now());
    }

    pub fn forget(&self, key: &str) {
        locked(&self.seen).remove(key);
    }
}

/// Everything above, as one `App` holds it.
pub struct ContainerState {
    /// Alias → room id, briefly.
    pub rooms: RoomCache,
    pub room_locks: RoomLocks,
    /// Rooms seen `active` lately: a busy room's messages do not each re-read its lifecycle.
    pub active_rooms: RecentlySeen,
    /// Set once the platform user's device exists on the homeserver.
    pub platform_device: tokio::sync::OnceCell<()>,
    /// This container's view of the rate-limit counters: far below a limit, a write need not wait for its count.
    pub rate_counts: crate::ratelimit::Observed,
    /// The outsiders' health answer and when it was checked (`domain::health::public`).
    pub public_health: tokio::sync::Mutex<Option<(std::time::Instant, bool)>>,
}

/// For at most this long after a cancellation or archiving, a moderator (whom the new power levels still allow)
/// could post; ordinary members are refused by the homeserver at once.
pub const ACTIVE_FOR: Duration = Duration::from_secs(3);

impl Default for ContainerState {
    fn default() -> Self {
        ContainerState {
            rooms: RoomCache::default(),
            room_locks: RoomLocks::default(),
            active_rooms: RecentlySeen::new(ACTIVE_FOR),
            platform_device: tokio::sync::OnceCell::new(),
            rate_counts: crate::ratelimit::Observed::default(),
            public_health: tokio::sync::Mutex::new(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn room_locks_serialize_one_room_and_are_forgotten_when_idle() {
        let locks = RoomLocks::default();
        let room = OwnedRoomId::try_from("!lock-one:x").expect("room id");
        let other = OwnedRoomId::try_from("!lock-two:x").expect("room id");
        let guard = locks.lock(&room).await;
        drop(locks.lock(&other).await);
        let blocked = tokio::time::timeout(Duration::from_millis(20), locks.lock(&room)).await;
        assert!(blocked.is_err(), "a second writer of the same room waits");
        drop(guard);
        drop(locks.lock(&room).await);
        let _third = locks.lock(&OwnedRoomId::try_from("!lock-third:x").expect("room id")).await;
        assert_eq!(locks.in_use(), 1, "idle locks are forgotten");
    }

    #[test]
    fn recently_seen_keys_expire_and_can_be_forgotten() {
        let seen = RecentlySeen::new(Duration::from_secs(60));
        seen.remember("!a:x");
        assert!(seen.contains("!a:x"));
        seen.forget("!a:x");
        assert!(!seen.contains("!a:x"));
        let expired = RecentlySeen::new(Duration::ZERO);
        expired.remember("!b:x");
        assert!(!expired.contains("!b:x"));
    }
}
