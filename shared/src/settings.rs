//! What every module's settings parser shares: the error of a missing or invalid environment variable and the
//! number parser; and the plain settings the domain reads (retries, reconciles, sessions, push), which
//! `crate::config` fills from the environment and re-exports. A leaf module, so the modules whose settings
//! `crate::config` gathers, and the domain, need not import the edge.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

pub(crate) fn number(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match get(name) {
        Some(value) => {
            value.parse().map_err(|e: std::num::ParseIntError| ConfigError::Invalid { name, reason: e.to_string() })
        }
        None => Ok(default),
    }
}

/// Where users' pushers point and where notifications go.
#[derive(Debug, Clone, Default)]
pub struct PushConfig {
    /// `OPENMEET_PUSH_GATEWAY_URL`: the push gateway's private `/_matrix/push/v1/notify` URL every user's pusher
    /// points at (the only pusher URL the entry gate lets browsers set). Unset: no pushers are set.
    pub gateway_url: Option<String>,
    /// `OPENMEET_EVENT_BUS`: the EventBridge bus the gateway puts notification events on.
    pub event_bus: Option<String>,
}

/// Browser sessions: how many web devices a user keeps, and when an unused one is logged out.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Beyond this many web devices, the least recently used is logged out.
    pub max_web_devices: usize,
    /// The scheduled sweep logs out web devices unused for longer than this.
    pub idle_after: Duration,
}

/// When a reconcile runs in the background, and in what slices.
#[derive(Debug, Clone, Copy)]
pub struct ReconcileLimits {
    /// A reconcile with more joins and kicks than this is queued (202) instead of run within the request: the
    /// homeserver serialises membership changes of a room (~80 ms each), and API Gateway gives up after 29 s.
    pub inline_changes: usize,
    /// How long the worker works on one queued reconcile before it re-queues the rest (well within its timeout).
    pub slice: Duration,
}

/// How the retry worker backs off: `base_delay × 2^(attempt-1)` with jitter, at most `max_attempts` tries (the
/// retry queue's `maxReceiveCount` must match: the next receive moves the message to the DLQ).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}
