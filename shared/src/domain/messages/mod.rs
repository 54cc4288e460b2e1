//! Messages: send, format, mention, thread, reply, edit, delete, react, history, notifications, media.
//!
//! Users act with their own Matrix identity (their server device's token, see `credentials`), so the homeserver
//! enforces membership and power levels; a service token acts as the platform's user. Reads of other people's
//! events (to check a sender, find a thread's latest event) go through the platform's user, which is in every room.

pub mod content;
pub mod deferred;
pub mod history;
pub mod idempotency;
pub mod media;
pub mod mentions;
pub mod notifications;
pub mod reactions;
pub mod render;
pub mod room;
pub mod send;

use serde::{Deserialize, Serialize};

use crate::domain::DomainError;
use crate::identity::{Caller, Role};
use crate::identity::{TenantId, UserSlug};

/// A message body may hold this many bytes of UTF-8 text (32 KiB); more answers `413`.
pub const MAX_BODY_BYTES: usize = 32 * 1024;
/// The homeserver refuses events over 64 KiB (the whole signed event). Content over this many bytes answers `413`
/// before anything is sent; the rest is left for the event's envelope (ids, hashes, signatures, auth events).
pub const MAX_CONTENT_BYTES: usize = 60 * 1024;

/// How the body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageFormat {
    Markdown,
    Plain,
}

/// A file on the homeserver, as `uploadMedia` answers it and `postMessage` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Attachment {
    pub content_uri: String,
    pub mime_type: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

/// Body of `POST .../messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PostMessageInput {
    pub body: String,
    pub format: MessageFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_root_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
}

/// Body of `PUT .../messages/{eventId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EditMessageInput {
    pub body: String,
    pub format: MessageFormat,
}

/// Who a write acts as on the homeserver.
#[derive(Debug, Clone)]
pub enum Actor {
    /// An OpenMeet user, with their own Matrix identity.
    User { tenant: TenantId, user: UserSlug },
    /// The platform's own user (service tokens).
    Platform { tenant: TenantId, service: String },
}

impl Actor {
    pub fn of(caller: &Caller) -> Actor {
        match caller.user() {
            Some(user) => Actor::User { tenant: caller.tenant.clone(), user: user.clone() },
            None => Actor::Platform { tenant: caller.tenant.clone(), service: caller.subject.clone() },
        }
    }

    pub fn tenant(&self) -> &TenantId {
        match self {
            Actor::User { tenant, .. } | Actor::Platform { tenant, .. } => tenant,
        }
    }

    /// The caller this actor stands for (whose deferred operations they may look up).
    pub fn caller(&self) -> Caller {
        match self {
            Actor::User { tenant, user } => Caller {
                tenant: tenant.clone(),
                role: Role::User(user.clone()),
                subject: user.to_string(),
                display_name: None,
            },
            Actor::Platform { tenant, service } => {
                Caller { tenant: tenant.clone(), role: Role::Service, subject: service.clone(), display_name: None }
            }
        }
    }

    /// A stable name for idempotency records and transaction ids; users and services can never collide.
    pub fn key(&self) -> String {
        match self {
            Actor::User { user, .. } => format!("u:{user}"),
            Actor::Platform { service, .. } => format!("s:{service}"),
        }
    }
}

/// A Matrix event id from a path or query parameter.
pub fn parse_event_id(value: &str) -> Result<String, DomainError> {
    event_id(value).ok_or_else(|| DomainError::invalid("invalid_parameter", "eventId must be a Matrix event id ($...)"))
}

/// A Matrix event id inside a request body.
pub fn body_event_id(field: &str, value: &str) -> Result<String, DomainError> {
    event_id(value)
        .ok_or_else(|| DomainError::invalid("invalid_body", format!("{field} must be a Matrix event id ($...)")))
}

fn event_id(value: &str) -> Option<String> {
    let rest = value.strip_prefix('$')?;
    (!rest.is_empty() && rest.len() <= 254 && rest.bytes().all(|b| (b'!'..=b'~').contains(&b)))
        .then(|| value.to_owned())
}

/// Checks a message text: not blank, at most [`MAX_BODY_BYTES`].
pub fn check_body(body: &str) -> Result<(), DomainError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(DomainError::TooLarge(format!("a message body is limited to {MAX_BODY_BYTES} bytes of text")));
    }
    if body.trim().is_empty() {
        return Err(DomainError::invalid("invalid_body", "body must contain some text"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_strict() {
        let ok: PostMessageInput = serde_json::from_str(r#"{"body":"hi","format":"markdown"}"#).expect("valid");
        assert_eq!(ok.format, MessageFormat::Markdown);
        for bad in [
            r#"{"body":"hi","format":"html"}"#,
            r#"{"body":"hi"}"#,
            r#"{"body":"hi","format":"plain","extra":1}"#,
            r#"{"body":"hi","format":"plain","attachment":{"contentUri":"mxc://a/b","mimeType":"x/y","size":-1}}"#,
        ] {
            assert!(serde_json::from_str::<PostMessageInput>(bad).is_err(), "{bad}");
        }
        assert!(
            serde_json::from_str::<EditMessageInput>(r#"{"body":"x","format":"plain","threadRootId":"$a"}"#).is_err()
        );
    }

    #[test]
    fn event_ids_and_bodies_are_checked() {
        assert!(parse_event_id("$abc:localhost").is_ok());
        assert!(parse_event_id("$Base64_-+/=").is_ok());
        for bad in ["abc", "$", "$a b", "$é", &format!("${}", "a".repeat(255))] {
            assert_eq!(parse_event_id(bad).expect_err("invalid").status(), 400, "{bad}");
        }
        assert!(check_body("x").is_ok());
        assert_eq!(check_body(" \n\t").expect_err("blank").status(), 400);
        assert!(check_body(&"é".repeat(MAX_BODY_BYTES / 2)).is_ok());
        assert_eq!(check_body(&"a".repeat(MAX_BODY_BYTES + 1)).expect_err("too long").status(), 413);
    }

    #[test]
    fn actors_never_share_keys() {
        let tenant = TenantId::parse("t").expect("tenant");
        let user = Actor::User { tenant: tenant.clone(), user: UserSlug::parse("api").expect("slug") };
        let service = Actor::Platform { tenant, service: "api".into() };
        assert_ne!(user.key(), service.key());
    }
}
