//! Deferred writes. A write that meets a homeserver outage (transient error, open circuit) is stored as an
//! operation record and its id enqueued on the retry queue; the caller gets `202 {"status":"queued"}`. The retry
//! worker replays it with the same transaction id, so a send whose first answer was lost is not posted twice.
//!
//! The queue carries the operation id only; what the operation needs (a message's content, say) stays in the
//! record, in the KMS-encrypted table. Messages of one room share a FIFO message group, so they are delivered in
//! the order they were accepted; while a room has queued messages, new ones queue behind them.

mod intents;
mod model;
mod record;
#[cfg(test)]
mod tests;

pub use intents::*;
pub use model::*;
pub use record::*;
