//! The moment a request's long step (its homeserver call) begins, announced to whoever waits for it: the write
//! budget (`crate::ratelimit`) starts its counts then, so they overlap that call. A task-local hook in a leaf
//! module, so the domain announces it without knowing the edge that listens.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Notify;

tokio::task_local! {
    /// Set while a future runs under [`watch`].
    static BEGINS: Arc<Notify>;
}

/// Runs `future`, notifying `gate` when it calls [`begins`] (the caller still waits for the end otherwise).
pub async fn watch<F: Future>(gate: Arc<Notify>, future: F) -> F::Output {
    BEGINS.scope(gate, future).await
}

/// The long step begins now; a no-op outside [`watch`].
pub fn begins() {
    let _ = BEGINS.try_with(|gate| gate.notify_one());
}
