//! Health: can this function reach what it depends on? Anyone may ask; only the tenant's service is told which
//! dependency is down (an outsider learns `ok` or `degraded`, nothing about the internals), and the answer to
//! outsiders is cached per container for a few seconds, so a flood of unauthenticated probes costs no more than one
//! check per container every [`PUBLIC_CACHE`].

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::app::App;
use crate::homeserver::CircuitState;

#[derive(Debug, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub homeserver: &'static str,
    pub store: &'static str,
    pub queue: &'static str,
    /// This container's circuit breaker around the homeserver: `closed`, `open` or `half-open`.
    pub circuit: &'static str,
}

impl Health {
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn check(app: &App) -> Health {
    let homeserver = async {
        let probe = app.homeserver.versions();
        match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Ok(Ok(_)) => "ok",
            Ok(Err(_)) | Err(_) => "unreachable",
        }
    };
    let store = async {
        match tokio::time::timeout(PROBE_TIMEOUT, app.store.check()).await {
            Ok(Ok(())) => "ok",
            _ => "unreachable",
        }
    };
    let queue = async {
        match tokio::time::timeout(PROBE_TIMEOUT, app.queue.check()).await {
            Ok(Ok(())) => "ok",
            _ => "unreachable",
        }
    };
    let (homeserver, store, queue) = tokio::join!(homeserver, store, queue);
    let circuit = app.homeserver.circuit_state();
    let all_ok = homeserver == "ok" && store == "ok" && queue == "ok" && circuit == CircuitState::Closed;
    Health { status: if all_ok { "ok" } else { "degraded" }, homeserver, store, queue, circuit: circuit.as_str() }
}

/// What an unauthenticated caller is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PublicHealth {
    pub status: &'static str,
}

impl PublicHealth {
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}

/// How long an outsider's answer is reused.
pub const PUBLIC_CACHE: Duration = Duration::from_secs(5);

/// The outsiders' answer, checked at most once per [`PUBLIC_CACHE`] per container.
pub async fn public(app: &App) -> PublicHealth {
    let ok = cached(&app.container.public_health, PUBLIC_CACHE, async { check(app).await.is_ok() }).await;
    PublicHealth { status: if ok { "ok" } else { "degraded" } }
}

/// Reuses a result younger than `ttl`; concurrent callers wait for the one check in flight instead of each
/// starting their own.
async fn cached(
    cache: &tokio::sync::Mutex<Option<(Instant, bool)>>,
    ttl: Duration,
    check: impl std::future::Future<Output = bool>,
) -> bool {
    let mut slot = cache.lock().await;
    if let Some((at, ok)) = *slot
        && at.elapsed() < ttl
    {
        return ok;
    }
    let ok = check.await;
    *slot = Some((Instant::now(), ok));
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn outsiders_answers_are_reused_within_the_ttl() {
        let cache = tokio::sync::Mutex::new(None);
        let checks = AtomicUsize::new(0);
        let check = |ok: bool| {
            let checks = &checks;
            async move {
                checks.fetch_add(1, Ordering::SeqCst);
                ok
            }
        };
        assert!(cached(&cache, Duration::from_secs(60), check(true)).await);
        // Within the TTL the stored answer stands, whatever a new check would say, and no check runs.
        assert!(cached(&cache, Duration::from_secs(60), check(false)).await);
        assert_eq!(checks.load(Ordering::SeqCst), 1);
        // Past it, a new check runs.
        assert!(!cached(&cache, Duration::ZERO, check(false)).await);
        assert_eq!(checks.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn outsiders_learn_nothing_about_the_internals() {
        let answer = serde_json::to_value(PublicHealth { status: "degraded" }).expect("serialisable");
        assert_eq!(answer, serde_json::json!({"status": "degraded"}));
    }
}
