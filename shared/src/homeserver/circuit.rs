//! A per-container circuit breaker around the homeserver: after consecutive transient failures it opens and calls
//! fail at once (writes are queued, reads answer 503) instead of each waiting for a timeout; after a cool-down one
//! probe is let through (half-open), and its outcome closes or re-opens the circuit.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half-open",
        }
    }
}

#[derive(Debug)]
struct Inner {
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
}

#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cool_down: Duration,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        CircuitBreaker {
            threshold: threshold.max(1),
            cool_down,
            inner: Mutex::new(Inner { consecutive_failures: 0, opened_at: None, probe_in_flight: false }),
        }
    }

    pub fn state(&self) -> CircuitState {
        let Ok(inner) = self.inner.lock() else { return CircuitState::Closed };
        match inner.opened_at {
            None => CircuitState::Closed,
            Some(at) if at.elapsed() >= self.cool_down => CircuitState::HalfOpen,
            Some(_) => CircuitState::Open,
        }
    }

    /// Whether a call may go out now: `None` when the circuit is open, `Some(true)` for the one probe of a
    /// half-open circuit, `Some(false)` for an ordinary call.
    pub fn allow(&self) -> Option<bool> {
        let Ok(mut inner) = self.inner.lock() else { return Some(false) };
        match inner.opened_at {
            None => Some(false),
            Some(at) if at.elapsed() >= self.cool_down && !inner.probe_in_flight => {
                inner.probe_in_flight = true;
                Some(true)
            }
            Some(_) => None,
        }
    }

    /// The homeserver answered (any status that is not a server fault).
    pub fn record_success(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            if inner.opened_at.is_some() {
                tracing::info!("homeserver circuit closed");
                crate::metrics::circuit(false);
            }
            *inner = Inner { consecutive_failures: 0, opened_at: None, probe_in_flight: false };
        }
    }

    /// A connect error, timeout or 5xx.
    pub fn record_failure(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.consecutive_failures += 1;
            inner.probe_in_flight = false;
            if inner.consecutive_failures >= self.threshold {
                if inner.opened_at.is_none() {
                    tracing::warn!(failures = inner.consecutive_failures, "homeserver circuit opened");
                    crate::metrics::circuit(true);
                }
                inner.opened_at = Some(Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_half_opens_after_the_cool_down() {
        let breaker = CircuitBreaker::new(3, Duration::from_millis(30));
        for _ in 0..2 {
            breaker.record_failure();
        }
        assert_eq!(breaker.state(), CircuitState::Closed);
        assert_eq!(breaker.allow(), Some(false));
        breaker.record_failure();
        assert_eq!(breaker.state(), CircuitState::Open);
        assert_eq!(breaker.allow(), None);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        assert_eq!(breaker.allow(), Some(true), "one probe goes through");
        assert_eq!(breaker.allow(), None, "and only one");
        breaker.record_failure();
        assert_eq!(breaker.state(), CircuitState::Open, "a failed probe re-opens");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(breaker.allow(), Some(true));
        breaker.record_success();
        assert_eq!(breaker.state(), CircuitState::Closed);
        assert_eq!(breaker.allow(), Some(false));
    }

    #[test]
    fn a_success_resets_the_count() {
        let breaker = CircuitBreaker::new(2, Duration::from_secs(60));
        breaker.record_failure();
        breaker.record_success();
        breaker.record_failure();
        assert_eq!(breaker.state(), CircuitState::Closed);
    }
}
