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

    /// Whether a call may go out now: `None` when the circuit is open, else a permit, which is the one probe of a
    /// half-open circuit when [`Permit::is_probe`]. Hold the permit until the outcome is recorded: a probe whose
    /// future is dropped (a cancelled request, a Lambda deadline) frees the probe slot as the permit drops, so the
    /// breaker is never left waiting forever for an answer that will not come.
    pub fn allow(&self) -> Option<Permit<'_>> {
        let Ok(mut inner) = self.inner.lock() else { return Some(Permit { breaker: self, probe: false }) };
        match inner.opened_at {
            None => Some(Permit { breaker: self, probe: false }),
            Some(at) if at.elapsed() >= self.cool_down && !inner.probe_in_flight => {
                inner.probe_in_flight = true;
                Some(Permit { breaker: self, probe: true })
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

/// Leave to send one call; see [`CircuitBreaker::allow`].
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
}

impl Permit<'_> {
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        // After a recorded outcome the slot is already free; after a cancelled probe this frees it (the circuit
        // stays half-open and the next call probes).
        if self.probe
            && let Ok(mut inner) = self.breaker.inner.lock()
        {
            inner.probe_in_flight = false;
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
        assert_eq!(probe(&breaker), Some(false));
        breaker.record_failure();
        assert_eq!(breaker.state(), CircuitState::Open);
        assert_eq!(probe(&breaker), None);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        let permit = breaker.allow().expect("one probe goes through");
        assert!(permit.is_probe());
        assert_eq!(probe(&breaker), None, "and only one");
        breaker.record_failure();
        drop(permit);
        assert_eq!(breaker.state(), CircuitState::Open, "a failed probe re-opens");
        assert_eq!(probe(&breaker), None, "and the cool-down starts again");
        std::thread::sleep(Duration::from_millis(40));
        let permit = breaker.allow().expect("probe");
        breaker.record_success();
        drop(permit);
        assert_eq!(breaker.state(), CircuitState::Closed);
        assert_eq!(probe(&breaker), Some(false));
    }

    fn probe(breaker: &CircuitBreaker) -> Option<bool> {
        breaker.allow().map(|permit| permit.is_probe())
    }

    /// A half-open probe whose request future is dropped mid-flight (cancelled by its caller) must not leave the
    /// breaker waiting for it: the next call probes.
    #[tokio::test]
    async fn a_dropped_probe_never_leaves_the_breaker_stuck_open() {
        let breaker = CircuitBreaker::new(1, Duration::ZERO);
        breaker.record_failure();
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let call = async {
            let permit = breaker.allow().expect("the probe is admitted");
            assert!(permit.is_probe());
            let _ = started_tx.send(());
            // The homeserver never answers.
            std::future::pending::<()>().await;
            drop(permit);
        };
        tokio::select! {
            _ = call => unreachable!("the call never finishes"),
            _ = started_rx => {}
        }
        // `call` (and the permit it held) is dropped here, as a cancelled request's future is.
        assert_eq!(probe(&breaker), Some(true), "a new probe goes out");
        breaker.record_success();
        assert_eq!(breaker.state(), CircuitState::Closed);
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
