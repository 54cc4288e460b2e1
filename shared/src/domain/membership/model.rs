//! The API's membership inputs and views, and memberships as the homeserver states them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::*;
use crate::domain::DomainError;
use crate::identity::UserSlug;

/// Body of `PUT /v1/{kind}/{slug}/members/{userId}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutMemberInput {
    pub role: Role,
}

/// One entry of a reconcile list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MemberSpec {
    pub user_id: String,
    pub role: Role,
}

/// Body of `PUT /v1/{kind}/{slug}/members`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileInput {
    pub members: Vec<MemberSpec>,
}

impl ReconcileInput {
    /// Checks the list as a whole (ids, size, duplicates) before anything changes.
    pub fn validate(self) -> Result<Vec<(UserSlug, Role)>, DomainError> {
        if self.members.len() > MAX_RECONCILE_MEMBERS {
            return Err(DomainError::invalid(
                "invalid_body",
                format!("members may list at most {MAX_RECONCILE_MEMBERS} users"),
            ));
        }
        let mut seen = BTreeSet::new();
        let mut wanted = Vec::with_capacity(self.members.len());
        for spec in self.members {
            let user = UserSlug::parse(&spec.user_id).map_err(|_| {
                DomainError::invalid(
                    "invalid_body",
                    format!("members: {:?} is not a user id (1-64 characters of [a-z0-9._-])", spec.user_id),
                )
            })?;
            if !seen.insert(user.clone()) {
                return Err(DomainError::invalid("invalid_body", format!("members: {user} is listed twice")));
            }
            wanted.push((user, spec.role));
        }
        Ok(wanted)
    }
}

/// A room membership as the homeserver states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Membership {
    Join,
    Invite,
    Knock,
    Ban,
    Leave,
}

impl Membership {
    /// The homeserver's membership, where it is one this API speaks of.
    pub fn from_state(state: &ruma::events::room::member::MembershipState) -> Option<Membership> {
        use ruma::events::room::member::MembershipState as State;
        match state {
            State::Join => Some(Membership::Join),
            State::Invite => Some(Membership::Invite),
            State::Knock => Some(Membership::Knock),
            State::Ban => Some(Membership::Ban),
            State::Leave => Some(Membership::Leave),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Membership::Join => "join",
            Membership::Invite => "invite",
            Membership::Knock => "knock",
            Membership::Ban => "ban",
            Membership::Leave => "leave",
        }
    }

    /// Joined or invited: a member as far as reconcile and the last-owner rule are concerned.
    pub fn is_member(self) -> bool {
        matches!(self, Membership::Join | Membership::Invite)
    }
}

/// A member as the API shows it (schema `Member`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// `None` for a stranger: someone in the room who is not a user of this tenant.
    pub user_id: Option<String>,
    pub matrix_user_id: String,
    pub role: Role,
    pub membership: &'static str,
}

/// Schema `MemberList`.
#[derive(Debug, Clone, Serialize)]
pub struct MemberList {
    pub members: Vec<MemberView>,
}

/// Schema `ReconcileResult`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileReport {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub role_changed: Vec<String>,
    pub unchanged: usize,
}
