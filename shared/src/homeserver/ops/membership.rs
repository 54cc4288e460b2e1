//! Membership changes the platform makes (it alone holds the power to invite in managed rooms) and a user's own
//! join and leave.

use ruma::api::client::membership::{
    ban_user, get_member_events, invite_user, join_room_by_id, kick_user, leave_room, unban_user,
};
use ruma::events::room::member::MembershipState;
use ruma::{RoomId, UserId};
use serde::Deserialize;

use crate::homeserver::{Acting, Homeserver, HomeserverError};

/// A membership change of another user, made by the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberAction {
    Invite,
    Kick,
    Ban,
    Unban,
}

impl Homeserver {
    /// Applies `action` to `user_id` in the room, as the platform. A change that already holds (joined or invited
    /// for an invite, gone for a kick, banned for a ban) is success: every caller wants it idempotent.
    pub async fn member_action(
        &self,
        room_id: &RoomId,
        action: MemberAction,
        user_id: &UserId,
    ) -> Result<(), HomeserverError> {
        let (room, user) = (room_id.to_owned(), user_id.to_owned());
        let outcome = match action {
            MemberAction::Invite => {
                let recipient = invite_user::v3::InvitationRecipient::UserId(invite_user::v3::InviteUserId::new(user));
                self.send(invite_user::v3::Request::new(room, recipient), Acting::Platform).await.map(drop)
            }
            MemberAction::Kick => self.send(kick_user::v3::Request::new(room, user), Acting::Platform).await.map(drop),
            MemberAction::Ban => self.send(ban_user::v3::Request::new(room, user), Acting::Platform).await.map(drop),
            MemberAction::Unban => {
                self.send(unban_user::v3::Request::new(room, user), Acting::Platform).await.map(drop)
            }
        };
        let holds = match action {
            MemberAction::Invite => {
                |m: Option<&MembershipState>| matches!(m, Some(MembershipState::Invite | MembershipState::Join))
            }
            MemberAction::Kick => is_gone,
            MemberAction::Ban => |m: Option<&MembershipState>| matches!(m, Some(MembershipState::Ban)),
            MemberAction::Unban => |m: Option<&MembershipState>| !matches!(m, Some(MembershipState::Ban)),
        };
        self.unless_it_holds(outcome, room_id, user_id, holds).await
    }

    /// Kicks `user_id` as the platform, with the reason their client shows. Not in the room is success.
    pub async fn kick(&self, room_id: &RoomId, user_id: &UserId, reason: &str) -> Result<(), HomeserverError> {
        let mut request = kick_user::v3::Request::new(room_id.to_owned(), user_id.to_owned());
        request.reason = Some(reason.to_owned());
        let outcome = self.send(request, Acting::Platform).await.map(drop);
        self.unless_it_holds(outcome, room_id, user_id, is_gone).await
    }

    /// Every membership of the room but `leave` (joined, invited, banned, knocking), read as the platform: the
    /// member's id (the event's state key) and their membership. One request, whatever the room's size.
    pub async fn current_members(&self, room_id: &RoomId) -> Result<Vec<(String, MembershipState)>, HomeserverError> {
        #[derive(Deserialize)]
        struct Member {
            state_key: String,
            content: Content,
        }
        #[derive(Deserialize)]
        struct Content {
            membership: MembershipState,
        }
        let mut request = get_member_events::v3::Request::new(room_id.to_owned());
        request.not_membership = Some(MembershipState::Leave);
        let response = self.send(request, Acting::Platform).await?;
        Ok(response
            .chunk
            .iter()
            .filter_map(|event| event.deserialize_as_unchecked::<Member>().ok())
            .map(|member| (member.state_key, member.content.membership))
            .collect())
    }

    /// Joins the room as `acting` (a user with their own right to join: restricted or invited).
    pub async fn join(&self, room_id: &RoomId, acting: Acting<'_>) -> Result<(), HomeserverError> {
        self.send(join_room_by_id::v3::Request::new(room_id.to_owned()), acting).await.map(drop)
    }

    /// Leaves the room as `acting`. Not in it (any more) is success when `acting` is a user.
    pub async fn leave(&self, room_id: &RoomId, acting: Acting<'_>) -> Result<(), HomeserverError> {
        let outcome = self.send(leave_room::v3::Request::new(room_id.to_owned()), acting).await.map(drop);
        match acting {
            Acting::Masquerade { user, .. } => self.unless_it_holds(outcome, room_id, user, is_gone).await,
            _ => outcome,
        }
    }

    /// Synapse refuses a membership change that already holds with a plain `M_FORBIDDEN` whose wording is the only
    /// difference, so on a 403 the room's state decides: the member already where the change would put them is
    /// success. One read, only after a refusal; an unreadable state leaves the refusal as it was.
    pub(crate) async fn unless_it_holds(
        &self,
        outcome: Result<(), HomeserverError>,
        room_id: &RoomId,
        user_id: &UserId,
        holds: fn(Option<&MembershipState>) -> bool,
    ) -> Result<(), HomeserverError> {
        match outcome {
            Err(error) if error.is_forbidden() => match self.membership(room_id, user_id).await {
                Ok(current) if holds(current.as_ref()) => Ok(()),
                _ => Err(error),
            },
            outcome => outcome,
        }
    }
}

/// Not in the room: never there, left, kicked or banned.
fn is_gone(membership: Option<&MembershipState>) -> bool {
    matches!(membership, None | Some(MembershipState::Leave | MembershipState::Ban))
}
