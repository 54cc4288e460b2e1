//! Adapters for the AWS services: DynamoDB (the store), KMS (the vault) and SQS (the queue).

pub mod queue;
pub mod store;
pub mod vault;

use crate::error::BackendError;

/// Reduces an SDK error to a loggable line: the SDK's `Display` names the service error, never request payloads.
pub(crate) fn unavailable<E: std::error::Error>(service: &'static str, error: E) -> BackendError {
    let mut detail = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        detail.push_str(": ");
        detail.push_str(&inner.to_string());
        source = inner.source();
    }
    BackendError::Unavailable { service, detail }
}
