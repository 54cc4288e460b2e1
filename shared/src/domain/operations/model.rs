//! What a deferred write is: the operation, its record's views and statuses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::*;
use crate::domain::OperationId;
use crate::domain::roles::Role;
use crate::homeserver::HomeserverError;
use crate::identity::UserSlug;

/// Finished operation records are kept this long for `GET /v1/operations/{id}`.
pub(super) const RECORD_LIFETIME_SECS: u64 = 7 * 24 * 60 * 60;

/// What to replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", deny_unknown_fields)]
pub enum Operation {
    /// A room event sent as a user's server device (or the platform) under a fixed transaction id.
    #[serde(rename_all = "camelCase")]
    SendEvent {
        tenant: String,
        /// `None`: the platform user.
        user: Option<String>,
        room_id: String,
        event_type: String,
        txn_id: String,
        content: Value,
    },
    /// A single member's change, stamped with when it was accepted: a newer intent (a later change of that
    /// member, or a later reconcile of the room) supersedes it.
    #[serde(rename_all = "camelCase")]
    Membership {
        tenant: String,
        kind: String,
        slug: String,
        user: String,
        change: MemberChange,
        version: u64,
        force: bool,
    },
    /// A reconcile too large for one request (or met by an outage), run in slices by the worker.
    Reconcile(DeferredReconcile),
    #[serde(rename_all = "camelCase")]
    CancelEvent { tenant: String, slug: String, reason: Option<String> },
    #[serde(rename_all = "camelCase")]
    DeleteRoom { tenant: String, kind: String, slug: String, purge: bool },
    #[serde(rename_all = "camelCase")]
    DeleteUser { tenant: String, user: String },
    /// A message deleted or a reaction removed while the homeserver was out. Who may do it is checked again on
    /// replay (a refusal then ends the operation `failed` with the reason).
    #[serde(rename_all = "camelCase")]
    Redact(DeferredRedaction),
}

/// A queued redaction: of the event, or (with `reactionKey`) of the actor's reaction with that key to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeferredRedaction {
    pub tenant: String,
    /// The user who asked; `None`: the service named `service`.
    pub user: Option<String>,
    pub service: Option<String>,
    pub kind: String,
    pub slug: String,
    pub room_id: String,
    pub event_id: String,
    pub reaction_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "camelCase", deny_unknown_fields)]
pub enum MemberChange {
    Put { role: Role },
    Remove { ban: bool },
}

impl Operation {
    /// The FIFO group: everything of one room is delivered in order.
    pub(crate) fn group(&self) -> String {
        match self {
            // Behind the room's queued sends.
            Operation::SendEvent { room_id, .. } | Operation::Redact(DeferredRedaction { room_id, .. }) => {
                room_id.clone()
            }
            Operation::Membership { tenant, kind, slug, .. }
            | Operation::Reconcile(DeferredReconcile { tenant, kind, slug, .. })
            | Operation::DeleteRoom { tenant, kind, slug, .. } => {
                format!("{tenant}/{kind}/{slug}")
            }
            Operation::CancelEvent { tenant, slug, .. } => format!("{tenant}/events/{slug}"),
            Operation::DeleteUser { tenant, user } => format!("{tenant}/user/{user}"),
        }
    }

    /// Only sends keep a backlog: they are what a new write of the same room must not overtake.
    pub(crate) fn room_id(&self) -> Option<&str> {
        match self {
            Operation::SendEvent { room_id, .. } => Some(room_id),
            _ => None,
        }
    }
}

/// Milliseconds since the epoch: the version of a membership intent.
pub fn now_version() -> u64 {
    now_millis() as u64
}

/// A queued reconcile. Stamped like a member change: a later reconcile of the room supersedes it, and users the
/// service changed after accepting it are left as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeferredReconcile {
    pub tenant: String,
    pub kind: String,
    pub slug: String,
    /// The list by role (see [`roster`]): the compact form keeps 5,000 members well inside one DynamoDB item.
    pub members: BTreeMap<Role, Vec<String>>,
    pub version: u64,
    pub force: bool,
}

/// A reconcile list in the form [`DeferredReconcile`] stores.
pub fn roster(wanted: &[(UserSlug, Role)]) -> BTreeMap<Role, Vec<String>> {
    let mut roster: BTreeMap<Role, Vec<String>> = BTreeMap::new();
    for (user, role) in wanted {
        roster.entry(*role).or_default().push(user.to_string());
    }
    roster
}

/// A stored operation that no longer parses: refused for good, never retried.
pub(crate) fn invalid(what: &str) -> HomeserverError {
    HomeserverError::Rejected {
        status: 400,
        errcode: ruma::api::error::ErrorCode::InvalidParam,
        message: format!("invalid {what}"),
    }
}

pub(crate) fn unroster(roster: &BTreeMap<Role, Vec<String>>) -> Result<Vec<(UserSlug, Role)>, HomeserverError> {
    roster
        .iter()
        .flat_map(|(role, users)| users.iter().map(move |user| (user, *role)))
        .map(|(user, role)| UserSlug::parse(user).map(|user| (user, role)).map_err(|_| invalid("member")))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Delivered,
    Failed,
}

/// The answer of `GET /v1/operations/{id}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationView {
    pub operation_id: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The body of a retry-queue message: a reference only, never a secret or message text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QueuedOperation {
    pub operation_id: OperationId,
}
