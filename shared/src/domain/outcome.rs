//! How a write that may be deferred ended: done now, or queued for the retry worker.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The id of a queued operation (its record, its status route, its SQS message): a UUID, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OperationId(String);

impl OperationId {
    pub fn new() -> Self {
        OperationId(uuid::Uuid::new_v4().simple().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An id read back from a record or a queue message, or derived from a transaction id: already ours.
impl From<String> for OperationId {
    fn from(id: String) -> Self {
        OperationId(id)
    }
}

impl Default for OperationId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A deferrable write's result. The HTTP edge answers `Queued` with `202 {"status":"queued","operationId"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    Done(T),
    /// The homeserver is out: the retry worker delivers it later, exactly once.
    Queued(OperationId),
}

impl<T> Outcome<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Outcome::Done(value) => Outcome::Done(f(value)),
            Outcome::Queued(id) => Outcome::Queued(id),
        }
    }
}
