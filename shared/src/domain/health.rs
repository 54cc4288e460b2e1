//! Health: can this function reach what it depends on?

use std::time::Duration;

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
