//! What a group or event room should be: the API's inputs validated into a room spec, and the room's view.

use serde::{Deserialize, Serialize};

use crate::domain::DomainError;
use crate::domain::roles::Role;
use crate::identity::Slug;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Public,
    Private,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    Active,
    Cancelled,
    Archived,
}

impl Lifecycle {
    /// Who may post: everyone, moderators and above once cancelled, owners once archived.
    pub fn events_default(self) -> i64 {
        match self {
            Lifecycle::Active => Role::Member.power_level(),
            Lifecycle::Cancelled => Role::Moderator.power_level(),
            Lifecycle::Archived => Role::Owner.power_level(),
        }
    }

    /// The name recorded and shown (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Active => "active",
            Lifecycle::Cancelled => "cancelled",
            Lifecycle::Archived => "archived",
        }
    }

    /// The lifecycle a recorded name (`active`, `cancelled`, `archived`) stands for; anything else reads as active.
    pub fn from_name(name: &str) -> Lifecycle {
        [Lifecycle::Cancelled, Lifecycle::Archived]
            .into_iter()
            .find(|l| l.as_str() == name)
            .unwrap_or(Lifecycle::Active)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupRoomInput {
    pub name: String,
    pub topic: Option<String>,
    pub visibility: Visibility,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EventRoomInput {
    pub name: String,
    pub topic: Option<String>,
    pub starts_at: String,
    pub ends_at: Option<String>,
    pub location: Option<String>,
    pub group_slug: Option<String>,
    pub visibility: Visibility,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelInput {
    pub reason: Option<String>,
}

/// A validated request for a room.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomSpec {
    pub name: String,
    pub topic: Option<String>,
    pub visibility: Visibility,
    pub event: Option<EventDetails>,
    pub group: Option<Slug>,
}

/// What an event room's notices speak of. Times are normalised to UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDetails {
    pub starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// The room object of the contract.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomView {
    pub kind: &'static str,
    pub slug: String,
    pub room_id: String,
    pub alias: Option<String>,
    pub name: String,
    pub topic: Option<String>,
    pub state: Lifecycle,
    pub member_count: u64,
}

pub(super) fn check_text(field: &str, value: &str, max: usize) -> Result<String, DomainError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > max || trimmed.chars().any(|c| c.is_control() && c != '\n') {
        return Err(DomainError::invalid("invalid_body", format!("{field} must be 1-{max} characters")));
    }
    Ok(trimmed.to_owned())
}

pub(super) fn normalise_time(field: &str, value: &str) -> Result<time::OffsetDateTime, DomainError> {
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map(|t| t.to_offset(time::UtcOffset::UTC))
        .map_err(|_| DomainError::invalid("invalid_body", format!("{field} must be an RFC 3339 time")))
}

pub(super) fn format_time(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

impl RoomSpec {
    pub fn group(input: GroupRoomInput) -> Result<RoomSpec, DomainError> {
        Ok(RoomSpec {
            name: check_text("name", &input.name, 255)?,
            topic: input.topic.as_deref().map(|t| check_text("topic", t, 4096)).transpose()?,
            visibility: input.visibility,
            event: None,
            group: None,
        })
    }

    pub fn event(input: EventRoomInput) -> Result<RoomSpec, DomainError> {
        let starts = normalise_time("startsAt", &input.starts_at)?;
        let ends = input.ends_at.as_deref().map(|e| normalise_time("endsAt", e)).transpose()?;
        if ends.is_some_and(|ends| ends < starts) {
            return Err(DomainError::invalid("invalid_body", "endsAt is before startsAt"));
        }
        Ok(RoomSpec {
            name: check_text("name", &input.name, 255)?,
            topic: input.topic.as_deref().map(|t| check_text("topic", t, 4096)).transpose()?,
            visibility: input.visibility,
            event: Some(EventDetails {
                starts_at: format_time(starts),
                ends_at: ends.map(format_time),
                location: input.location.as_deref().map(|l| check_text("location", l, 512)).transpose()?,
            }),
            group: input.group_slug.as_deref().map(Slug::parse).transpose()?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMode {
    Archive,
    Purge,
}

impl DeleteMode {
    pub fn parse(mode: Option<&str>) -> Result<DeleteMode, DomainError> {
        match mode {
            None | Some("archive") => Ok(DeleteMode::Archive),
            Some("purge") => Ok(DeleteMode::Purge),
            Some(_) => Err(DomainError::invalid("invalid_parameter", "mode must be archive or purge")),
        }
    }
}
