//! The one error type of the API and its one mapping to HTTP status and the contract's JSON shape.

use std::time::Duration;

use serde_json::json;

use crate::auth::Unauthenticated;
pub use crate::aws::BackendError;
use crate::domain::DomainError;
use crate::homeserver::HomeserverError;
use crate::identity::IdentityError;
use crate::ratelimit::Refused;

/// `Retry-After` of a `502 homeserver_error`.
pub const HOMESERVER_REJECTED_RETRY_AFTER_SECS: u64 = 30;

/// Everything a request can fail with. Messages are written for the API's callers: they never carry a token,
/// a secret or an internal detail (those go to the log, redacted, at the point of failure).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("this path does not take that method")]
    MethodNotAllowed { allow: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A `409` that passes by itself: the first request with the same `Idempotency-Key` is still running.
    #[error("a request with this Idempotency-Key is still in progress; retry shortly")]
    InProgress,
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A JSON route called with a body of another content type.
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    #[error("the homeserver is rate limiting these requests")]
    RateLimited { retry_after: Duration },
    /// The API's own limits (`crate::ratelimit`); `scope` says whose budget, of reads or writes, is spent.
    #[error("too many {scope} in this window; try again after Retry-After seconds")]
    TooManyRequests { retry_after: Duration, scope: &'static str },
    #[error("the homeserver is unavailable; try again later")]
    HomeserverUnavailable { retry_after: Duration },
    #[error("the homeserver refused the request: {0}")]
    HomeserverRejected(String),
    #[error("a backing service is unavailable; try again later")]
    DependencyUnavailable { retry_after: Duration },
    #[error("internal error")]
    Internal,
    #[error("this route is not implemented yet")]
    NotImplemented,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest { code, message: message.into() }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::NotFound { code: "not_found", message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Conflict { code, message: message.into() }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::Forbidden(message.into())
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest { .. } => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound { .. } => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::Conflict { .. } | ApiError::InProgress => 409,
            ApiError::PayloadTooLarge(_) => 413,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::RateLimited { .. } | ApiError::TooManyRequests { .. } => 429,
            ApiError::HomeserverRejected(_) => 502,
            ApiError::HomeserverUnavailable { .. } | ApiError::DependencyUnavailable { .. } => 503,
            ApiError::Internal => 500,
            ApiError::NotImplemented => 501,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } | ApiError::NotFound { code, .. } | ApiError::Conflict { code, .. } => {
                code
            }
            ApiError::InProgress => "conflict",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::RateLimited { .. } | ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::HomeserverUnavailable { .. } => "homeserver_unavailable",
            ApiError::HomeserverRejected(_) => "homeserver_error",
            ApiError::DependencyUnavailable { .. } => "dependency_unavailable",
            ApiError::Internal => "internal",
            ApiError::NotImplemented => "not_implemented",
        }
    }

    pub fn retryable(&self) -> bool {
        matches!(
            self,
            ApiError::RateLimited { .. }
                | ApiError::InProgress
                | ApiError::TooManyRequests { .. }
                | ApiError::HomeserverUnavailable { .. }
                | ApiError::DependencyUnavailable { .. }
                | ApiError::Internal
        )
    }

    /// Seconds for the `Retry-After` header, for the statuses that carry one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after }
            | ApiError::TooManyRequests { retry_after, .. }
            | ApiError::HomeserverUnavailable { retry_after }
            | ApiError::DependencyUnavailable { retry_after } => {
                Some(retry_after.as_millis().div_ceil(1000).max(1) as u64)
            }
            // The contract's 502 carries Retry-After too: the earliest a retry is worth it (a refusal that is
            // not the caller's fault needs an operator first; the body still says `retryable: false`).
            ApiError::HomeserverRejected(_) => Some(HOMESERVER_REJECTED_RETRY_AFTER_SECS),
            _ => None,
        }
    }

    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"code": self.code(), "message": self.to_string(), "retryable": self.retryable()}})
    }
}

impl From<HomeserverError> for ApiError {
    fn from(error: HomeserverError) -> Self {
        match error {
            HomeserverError::RateLimited { retry_after } => ApiError::RateLimited { retry_after },
            HomeserverError::Transient { .. } | HomeserverError::CircuitOpen => {
                ApiError::HomeserverUnavailable { retry_after: Duration::from_secs(5) }
            }
            HomeserverError::Rejected { status, errcode, .. } => {
                ApiError::HomeserverRejected(format!("{status} {errcode}"))
            }
            // The functions call only with the appservice token: the homeserver refusing it means the token is
            // being rotated (ADR 0004), which passes; a retryable 503 keeps callers from dropping the write.
            HomeserverError::UnknownToken => ApiError::HomeserverUnavailable { retry_after: Duration::from_secs(5) },
            HomeserverError::InvalidResponse(_) => ApiError::HomeserverRejected("unexpected response".into()),
        }
    }
}

impl From<Unauthenticated> for ApiError {
    fn from(error: Unauthenticated) -> Self {
        ApiError::Unauthorized(error.0)
    }
}

#[cfg(test)]
impl Unauthenticated {
    pub fn status(&self) -> u16 {
        ApiError::from(self.clone()).status()
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::OverBudget { retry_after, scope } => ApiError::TooManyRequests { retry_after, scope },
            Refused::Backend(error) => error.into(),
        }
    }
}

impl From<IdentityError> for ApiError {
    fn from(error: IdentityError) -> Self {
        DomainError::from(error).into()
    }
}

/// The one place a domain failure becomes an HTTP answer.
impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        if let DomainError::Backend(backend) = &error {
            tracing::error!(error = %backend, "backend failure");
        }
        ApiError::answering(&error)
    }
}

impl ApiError {
    fn answering(error: &DomainError) -> Self {
        match error {
            DomainError::Invalid { code, message } => ApiError::BadRequest { code, message: message.clone() },
            DomainError::NotFound { code, message } => ApiError::NotFound { code, message: message.clone() },
            DomainError::NotPermitted(message) => ApiError::Forbidden(message.clone()),
            DomainError::Conflict { code, message } => ApiError::Conflict { code, message: message.clone() },
            DomainError::RoomBeingCreated => ApiError::Conflict { code: "conflict", message: error.to_string() },
            DomainError::TooLarge(message) => ApiError::PayloadTooLarge(message.clone()),
            DomainError::InProgress => ApiError::InProgress,
            DomainError::Contended { retry_after } => ApiError::HomeserverUnavailable { retry_after: *retry_after },
            DomainError::Homeserver(error) => error.clone().into(),
            DomainError::HomeserverAnswer(what) => ApiError::HomeserverRejected((*what).to_owned()),
            DomainError::Backend(BackendError::Unavailable { .. }) => {
                ApiError::DependencyUnavailable { retry_after: Duration::from_secs(2) }
            }
            DomainError::Backend(BackendError::Corrupt { .. }) | DomainError::Internal => ApiError::Internal,
        }
    }
}

/// Unit tests of domain rules state the contract's answer without giving up the error.
#[cfg(test)]
impl DomainError {
    pub fn status(&self) -> u16 {
        ApiError::answering(self).status()
    }

    pub fn code(&self) -> &'static str {
        ApiError::answering(self).code()
    }
}

impl From<BackendError> for ApiError {
    fn from(error: BackendError) -> Self {
        tracing::error!(error = %error, "backend failure");
        match error {
            BackendError::Unavailable { .. } => ApiError::DependencyUnavailable { retry_after: Duration::from_secs(2) },
            BackendError::Corrupt { .. } => ApiError::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homeserver_outage_is_retryable_503_with_retry_after() {
        let error = ApiError::from(HomeserverError::Transient { detail: "connect".into() });
        assert_eq!(error.status(), 503);
        assert!(error.retryable());
        assert_eq!(error.retry_after_secs(), Some(5));
        assert_eq!(error.body()["error"]["code"], "homeserver_unavailable");
    }

    #[test]
    fn rate_limit_rounds_retry_after_up() {
        let error = ApiError::from(HomeserverError::RateLimited { retry_after: Duration::from_millis(1200) });
        assert_eq!(error.status(), 429);
        assert_eq!(error.retry_after_secs(), Some(2));
    }

    #[test]
    fn appservice_token_refused_is_retryable_503() {
        // A token rotation (ADR 0004) must not turn writes into drops.
        let error = ApiError::from(HomeserverError::UnknownToken);
        assert_eq!(error.status(), 503);
        assert!(error.retryable());
        assert!(error.retry_after_secs().is_some());
    }

    #[test]
    fn homeserver_refusal_is_502_with_retry_after() {
        let error = ApiError::from(HomeserverError::Rejected {
            status: 500,
            errcode: ruma::api::error::ErrorCode::Unknown,
            message: "x".into(),
        });
        assert_eq!(error.status(), 502);
        assert_eq!(error.retry_after_secs(), Some(HOMESERVER_REJECTED_RETRY_AFTER_SECS));
    }

    #[test]
    fn client_errors_are_not_retryable() {
        let error = ApiError::bad_request("invalid_body", "nope");
        assert_eq!(error.status(), 400);
        assert!(!error.retryable());
        assert_eq!(error.body()["error"]["message"], "nope");
    }
}
