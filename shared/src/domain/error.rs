//! What a domain operation can fail with, named by meaning, not by HTTP status. The HTTP edge (`crate::error`)
//! maps it to a status and the contract's body; the worker and the commands read it as it is.

use std::time::Duration;

use crate::aws::BackendError;
use crate::homeserver::HomeserverError;
use crate::identity::IdentityError;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The input breaks a rule; `code` is the contract's machine-readable reason.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// The actor may not do this.
    #[error("{0}")]
    NotPermitted(String),
    /// The state of things forbids it now (a taken alias, an archived room, a key in use).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Another request is creating this room right now (its alias is locked): the same call will find it soon.
    #[error("this room is being created by another request; retry")]
    RoomBeingCreated,
    /// The input (a body, a file, a power-levels event) is over a size limit.
    #[error("{0}")]
    TooLarge(String),
    /// Others keep changing what this operation writes; trying again shortly will do.
    #[error("the room keeps changing; try again later")]
    Contended { retry_after: Duration },
    /// The homeserver failed or refused, as it classified it.
    #[error(transparent)]
    Homeserver(#[from] HomeserverError),
    /// The homeserver answered success with something this operation cannot use.
    #[error("the homeserver answered something unusable: {0}")]
    HomeserverAnswer(&'static str),
    /// A store, queue, vault or secret failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The first request with this `Idempotency-Key` is still running: try again shortly.
    #[error("a request with this Idempotency-Key is still in progress; retry shortly")]
    InProgress,
    /// A bug or an impossible state; the detail went to the log where it happened.
    #[error("internal error")]
    Internal,
}

impl From<IdentityError> for DomainError {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::Invalid(message) => DomainError::Invalid { code: "invalid_parameter", message },
            IdentityError::UnknownKind(message) => DomainError::NotFound { code: "not_found", message },
        }
    }
}

impl DomainError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        DomainError::Invalid { code, message: message.into() }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        DomainError::NotFound { code: "not_found", message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        DomainError::Conflict { code, message: message.into() }
    }

    pub fn not_permitted(message: impl Into<String>) -> Self {
        DomainError::NotPermitted(message.into())
    }

    /// A short name of the kind of failure, for records and logs (`invalid`, `not_found`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            DomainError::Invalid { code, .. }
            | DomainError::NotFound { code, .. }
            | DomainError::Conflict { code, .. } => code,
            DomainError::RoomBeingCreated => "conflict",
            DomainError::NotPermitted(_) => "not_permitted",
            DomainError::TooLarge(_) => "too_large",
            DomainError::Contended { .. } => "contended",
            DomainError::InProgress => "in_progress",
            DomainError::Homeserver(_) | DomainError::HomeserverAnswer(_) => "homeserver",
            DomainError::Backend(_) => "backend",
            DomainError::Internal => "internal",
        }
    }

    /// The homeserver is not there right now (down, slow, rate limiting, circuit open, or contended): a write
    /// meeting this is deferred to the retry worker rather than failed.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            DomainError::Contended { .. }
                | DomainError::Homeserver(
                    HomeserverError::Transient { .. }
                        | HomeserverError::CircuitOpen
                        | HomeserverError::RateLimited { .. }
                )
        )
    }

    /// Whether the same call may succeed later (the caller's `retryable`): outages, a key still in use, broken backends.
    pub fn retryable(&self) -> bool {
        match self {
            DomainError::InProgress | DomainError::Backend(_) | DomainError::Internal => true,
            other => other.is_outage(),
        }
    }

    /// The homeserver refused with this HTTP status (e.g. 403: the platform user lacks power in the room).
    pub fn is_refusal(&self, wanted: u16) -> bool {
        matches!(self, DomainError::Homeserver(HomeserverError::Rejected { status, .. }) if *status == wanted)
    }
}
