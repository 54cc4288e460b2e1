use std::time::Duration;

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
    /// Any other refusal: retrying the same call will not help.
    #[error("homeserver refused: {status} {errcode}: {message}")]
    Rejected { status: u16, errcode: String, message: String },
    /// A success status with a body we could not read.
    #[error("unexpected homeserver response: {0}")]
    InvalidResponse(String),
}

#[derive(Deserialize)]
struct MatrixErrorBody {
    #[serde(default)]
    errcode: String,
    #[serde(default)]
    error: String,
    retry_after_ms: Option<u64>,
}

impl HomeserverError {
    pub fn classify(status: http::StatusCode, headers: &http::HeaderMap, body: &[u8]) -> Self {
        let parsed: Option<MatrixErrorBody> = serde_json::from_slice(body).ok();
        let (errcode, message, retry_after_ms) = match parsed {
            Some(body) => (body.errcode, body.error, body.retry_after_ms),
            None => (String::new(), String::new(), None),
        };
        if status.as_u16() == 429 || errcode == "M_LIMIT_EXCEEDED" {
            let header_secs = headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let retry_after = retry_after_ms
                .map(Duration::from_millis)
                .or(header_secs.map(Duration::from_secs))
                .unwrap_or(Duration::from_secs(1));
            return HomeserverError::RateLimited { retry_after };
        }
        if status.is_server_error() {
            return HomeserverError::Transient { detail: format!("status {}", status.as_u16()) };
        }
        if status.as_u16() == 401 && errcode == "M_UNKNOWN_TOKEN" {
            return HomeserverError::UnknownToken;
        }
        HomeserverError::Rejected { status: status.as_u16(), errcode, message }
    }

    /// Worth retrying later with the same request (after a delay).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            HomeserverError::Transient { .. } | HomeserverError::RateLimited { .. } | HomeserverError::CircuitOpen
        )
    }

    pub fn errcode(&self) -> Option<&str> {
        match self {
            HomeserverError::Rejected { errcode, .. } => Some(errcode),
            HomeserverError::UnknownToken => Some("M_UNKNOWN_TOKEN"),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, HomeserverError::Rejected { status: 404, .. })
    }

    /// Synapse answers a membership change that already holds with 403 "already in the room" / "not in the room":
    /// for an idempotent operation that is success.
    /// "This user already reacted with this key": for an idempotent add, success.
    pub fn is_duplicate_annotation(&self) -> bool {
        self.errcode() == Some("M_DUPLICATE_ANNOTATION")
    }

    pub fn is_membership_already_applied(&self) -> bool {
        match self {
            HomeserverError::Rejected { status: 403, message, .. } => {
                message.contains("already in the room")
                    || message.contains("not in the room")
                    || message.contains("already banned")
            }
            _ => false,
        }
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
        assert_eq!(forbidden.errcode(), Some("M_FORBIDDEN"));
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
    fn membership_that_already_holds_is_recognised() {
        let error = classify(403, r#"{"errcode":"M_FORBIDDEN","error":"@a:x is already in the room."}"#);
        assert!(error.is_membership_already_applied());
        assert!(!classify(403, r#"{"errcode":"M_FORBIDDEN","error":"no power"}"#).is_membership_already_applied());
    }
}
