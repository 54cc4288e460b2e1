//! Deferred writes: what the retry worker replays. Each queued message names an operation; its record in the
//! store holds the state (`queued | delivered | failed`).

use serde::{Deserialize, Serialize};

use crate::app::App;

/// The body of a retry-queue message: a reference only, never a secret or message text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QueuedOperation {
    pub operation_id: String,
}

/// How one replay ended.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Try again later (the message returns to the queue).
    #[error("transient: {0}")]
    Transient(String),
    /// Retrying cannot help: the operation is marked failed and the message dropped.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// Replays one queued operation.
pub async fn replay(app: &App, message: &QueuedOperation) -> Result<(), ReplayError> {
    let pk = format!("OP#{}", message.operation_id);
    match app.store.get(&pk, "OP").await {
        Ok(Some(_)) => Err(ReplayError::Permanent("this operation kind cannot be replayed yet".into())),
        Ok(None) => Err(ReplayError::Permanent("unknown operation".into())),
        Err(error) => Err(ReplayError::Transient(error.to_string())),
    }
}
