use std::time::{Duration, SystemTime};

use ruma::api::error::{ErrorCode, ErrorKind, LimitExceededErrorData, RetryAfter};
use serde::Deserialize;

/// How a homeserver call failed, classified for retrying.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HomeserverError {
    /// Connect error, timeout, 5xx: the same call may succeed later.
    #[error("homeserver unavailable: {detail}")]
    Transient { detail: String },
    /// `M_LIMIT_EXCEEDED` / 429: retry after the given delay.
    #[error("homeserver rate limit, retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// The circuit breaker is open: the call was not attempted.
    #[error("homeserver circuit open")]
    CircuitOpen,
    /// 401 `M_UNKNOWN_TOKEN`: the credential is gone; re-mint it.
    #[error("homeserver does not know this access token")]
    UnknownToken,
    /// Any other refusal: retrying the same call will not help. `errcode` is ruma's typed code (a body without one
    /// reads as `M_UNKNOWN`): callers match its variants, never its text.
    #[error("homeserver refused: {status} {errcode}: {message}")]
    Rejected { status: u16, errcode: ErrorCode, message: String },
    /// A success status with a body we could not read.
    #[error("unexpected homeserver response: {0}")]
    InvalidResponse(String),
}

/// The standard error body, its `errcode` (and the data that goes with it) read by ruma into an [`ErrorKind`].
#[derive(Deserialize)]
struct MatrixErrorBody {
    #[serde(flatten)]
    kind: ErrorKind,
    #[serde(default)]
    error: String,
}

impl HomeserverError {
    pub fn classify(status: http::StatusCode, headers: &http::HeaderMap, body: &[u8]) -> Self {
        let (kind, message) = match serde_json::from_slice::<MatrixErrorBody>(body) {
            Ok(body) => (Some(body.kind), body.error),
            Err(_) => (None, String::new()),
        };
        let limited = match &kind {
            Some(ErrorKind::LimitExceeded(LimitExceededErrorData { retry_after, .. })) => Some(retry_after.as_ref()),
            _ if status.as_u16() == 429 => Some(None),
            _ => None,
        };
        if let Some(in_body) = limited {
            let header_secs = headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let retry_after =
                in_body.and_then(delay).or(header_secs.map(Duration::from_secs)).unwrap_or(Duration::from_secs(1));
            return HomeserverError::RateLimited { retry_after };
        }
        if status.is_server_error() {
            return HomeserverError::Transient { detail: format!("status {}", status.as_u16()) };
        }
        if status.as_u16() == 401 && matches!(kind, Some(ErrorKind::UnknownToken(_))) {
            return HomeserverError::UnknownToken;
        }
        let errcode = kind.map_or(ErrorCode::Unknown, |kind| kind.errcode());
        HomeserverError::Rejected { status: status.as_u16(), errcode, message }
    }

    /// Worth retrying later with the same request (after a delay).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            HomeserverError::Transient { .. } | HomeserverError::RateLimited { .. } | HomeserverError::CircuitOpen
        )
    }

    /// The homeserver's error code, typed: compare it with an [`ErrorCode`] variant.
    pub fn errcode(&self) -> Option<ErrorCode> {
        match self {
            HomeserverError::Rejected { errcode, .. } => Some(errcode.clone()),
            HomeserverError::UnknownToken => Some(ErrorCode::UnknownToken),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, HomeserverError::Rejected { status: 404, .. })
    }

    /// "This user already reacted with this key": for an idempotent add, success.
    pub fn is_duplicate_annotation(&self) -> bool {
        matches!(self, HomeserverError::Rejected { errcode: ErrorCode::DuplicateAnnotation, .. })
    }

    /// A 403. Synapse also answers a membership change that already holds ("already in the room", "not in the
    /// room") with a plain `M_FORBIDDEN`, so the port asks the room's state on such a refusal instead of reading
    /// the wording (`Homeserver::unless_it_holds`).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, HomeserverError::Rejected { status: 403, .. })
    }
}

/// A `retry_after` as a delay from now (a moment already past: none).
fn delay(retry_after: &RetryAfter) -> Option<Duration> {
    match retry_after {
        RetryAfter::Delay(delay) => Some(*delay),
        RetryAfter::DateTime(at) => at.duration_since(SystemTime::now()).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> HomeserverError {
        HomeserverError::classify(
            http::StatusCode::from_u16(status).expect("valid status"),
            &http::HeaderMap::new(),
            body.as_bytes(),
        )
    }

    #[test]
    fn limit_exceeded_honours_retry_after_ms() {
        let error = classify(429, r#"{"errcode":"M_LIMIT_EXCEEDED","error":"slow","retry_after_ms":1500}"#);
        assert!(
            matches!(error, HomeserverError::RateLimited { retry_after } if retry_after == Duration::from_millis(1500))
        );
        assert!(error.is_transient());
    }

    #[test]
    fn retry_after_header_is_the_fallback() {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("7"));
        let error = HomeserverError::classify(http::StatusCode::TOO_MANY_REQUESTS, &headers, b"");
        assert!(matches!(error, HomeserverError::RateLimited { retry_after } if retry_after == Duration::from_secs(7)));
    }

    #[test]
    fn server_errors_are_transient_and_client_errors_permanent() {
        assert!(classify(502, "<html>bad gateway</html>").is_transient());
        let forbidden = classify(403, r#"{"errcode":"M_FORBIDDEN","error":"nope"}"#);
        assert!(!forbidden.is_transient());
        assert_eq!(forbidden.errcode(), Some(ErrorCode::Forbidden));
    }

    #[test]
    fn unknown_token_is_its_own_kind() {
        assert!(matches!(classify(401, r#"{"errcode":"M_UNKNOWN_TOKEN","error":"x"}"#), HomeserverError::UnknownToken));
        assert!(matches!(
            classify(401, r#"{"errcode":"M_MISSING_TOKEN"}"#),
            HomeserverError::Rejected { status: 401, .. }
        ));
    }

    #[test]
    fn errcodes_are_typed() {
        let taken = classify(400, r#"{"errcode":"M_ROOM_IN_USE","error":"taken"}"#);
        assert!(matches!(taken, HomeserverError::Rejected { errcode: ErrorCode::RoomInUse, .. }));
        assert!(classify(400, r#"{"errcode":"M_DUPLICATE_ANNOTATION","error":"x"}"#).is_duplicate_annotation());
        let custom = classify(400, r#"{"errcode":"ORG_EXAMPLE_X","error":"x"}"#);
        assert_eq!(custom.errcode().map(|code| code.to_string()), Some("ORG_EXAMPLE_X".to_owned()));
        assert_eq!(classify(404, "<html>not found</html>").errcode(), Some(ErrorCode::Unknown));
        assert!(matches!(
            classify(400, r#"{"errcode":"M_LIMIT_EXCEEDED","error":"slow"}"#),
            HomeserverError::RateLimited { retry_after } if retry_after == Duration::from_secs(1)
        ));
    }

    #[test]
    fn a_refusal_is_told_by_its_status_not_its_wording() {
        assert!(classify(403, r#"{"errcode":"M_FORBIDDEN","error":"@a:x is already in the room."}"#).is_forbidden());
        assert!(classify(403, r#"{"errcode":"M_FORBIDDEN","error":"no power"}"#).is_forbidden());
        assert!(!classify(404, r#"{"errcode":"M_NOT_FOUND","error":"x"}"#).is_forbidden());
    }
}
