//! Counts the homeserver calls the process makes: the port logs one `homeserver call` event per request, and this
//! layer counts those events whatever the log filter (so a report can state what a delta cost without a proxy).

use std::sync::atomic::{AtomicU64, Ordering};

static CALLS: AtomicU64 = AtomicU64::new(0);

/// Homeserver calls made so far by this process (0 when [`Counter`] is not installed).
pub fn count() -> u64 {
    CALLS.load(Ordering::Relaxed)
}

/// The `tracing` layer that counts them; install it beside (not under) any log filter.
pub struct Counter;

struct IsCall(bool);

impl tracing::field::Visit for IsCall {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" && format!("{value:?}") == "homeserver call" {
            self.0 = true;
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Counter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        // Only the port's info event is counted; the cheap check on the level first.
        if *event.metadata().level() != tracing::Level::INFO {
            return;
        }
        let mut visitor = IsCall(false);
        event.record(&mut visitor);
        if visitor.0 {
            CALLS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn only_homeserver_calls_count() {
        let subscriber = tracing_subscriber::registry().with(Counter);
        let before = count();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(homeserver.path = "/x", "homeserver call");
            tracing::info!("something else");
            tracing::debug!("homeserver call");
        });
        assert_eq!(count() - before, 1);
    }
}
