//! Direct messages: one room per pair of users of a tenant, found by an alias derived from the sorted pair, both
//! users joined, and `m.direct` account data set for both.
//!
//! JSON kept on purpose (docs/adr/0007): `m.direct` is a read-modify-write whose other entries must survive as they
//! are.

use ruma::api::client::room::create_room::v3::Request as CreateRoom;
use ruma::events::room::member::MembershipState;
use serde_json::Value;

use crate::app::App;
use crate::domain::DomainError;
use crate::domain::room_lifecycle::{Lifecycle, RoomView};
use crate::domain::room_policy::{self, Admission, Creation};
use crate::domain::rooms;
use crate::domain::users;
use crate::homeserver::{Acting, MemberAction};
use crate::identity::{TenantId, UserSlug};

/// Ensures the direct room of `me` and `other`. `true` when it was created now.
pub async fn ensure(
    app: &App,
    tenant: &TenantId,
    me: &UserSlug,
    my_name: Option<&str>,
    other: &UserSlug,
) -> Result<(RoomView, bool), DomainError> {
    if me == other {
        return Err(DomainError::invalid("invalid_parameter", "a direct room needs two different users"));
    }
    let other_view = users::get(app, tenant, other).await?.ok_or_else(|| DomainError::NotFound {
        code: "not_found",
        message: format!("the user {other} was never provisioned"),
    })?;
    if !users::is_provisioned(app, tenant, me).await? && users::get(app, tenant, me).await?.is_none() {
        let name = users::validate_display_name(my_name.unwrap_or(me.as_str())).unwrap_or_else(|_| me.to_string());
        users::ensure(app, tenant, me, &name, users::AvatarChange::Keep).await?;
    }
    let alias = app.identities.direct_alias(tenant, me, other);
    let my_id = app.identities.matrix_user_id(tenant, me);
    let other_id = app.identities.matrix_user_id(tenant, other);
    let (room_id, created) = rooms::find_or_create(app, &alias, creation_request(tenant, &alias)?).await?;
    // The caller asked for the room, so they are joined; the other person is joined when the room is new, and
    // invited again (never joined against their will) when they have left it.
    for (user_id, is_caller) in [(&my_id, true), (&other_id, false)] {
        match rooms::membership_of(app, &room_id, user_id.as_str()).await? {
            Some(MembershipState::Join | MembershipState::Invite | MembershipState::Ban) => {}
            Some(MembershipState::Leave) if !is_caller => invite(app, &room_id, user_id).await?,
            _ => rooms::admin_join(app, &room_id, user_id).await?,
        }
    }
    mark_direct(app, tenant, me, other_id.as_str(), room_id.as_str()).await?;
    mark_direct(app, tenant, other, my_id.as_str(), room_id.as_str()).await?;
    Ok((
        RoomView {
            kind: "direct",
            slug: other.to_string(),
            room_id: room_id.to_string(),
            alias: Some(alias.to_string()),
            name: other_view.display_name,
            topic: None,
            state: Lifecycle::Active,
            member_count: 2,
        },
        created,
    ))
}

/// The `createRoom` request of a direct room: invite-only, managed state the platform's, like every room.
fn creation_request(tenant: &TenantId, alias: &ruma::OwnedRoomAliasId) -> Result<CreateRoom, DomainError> {
    room_policy::creation_request(Creation {
        alias,
        name: "",
        topic: None,
        is_space: false,
        admission: Admission::InviteOnly,
        meta: room_policy::meta(tenant.as_str(), "direct", None),
        extra_state: Vec::new(),
        power_levels: room_policy::initial_power_levels(0),
    })
}

/// The platform invites (it alone has the power to); an invite that already stands is success.
async fn invite(app: &App, room_id: &ruma::RoomId, user_id: &ruma::UserId) -> Result<(), DomainError> {
    Ok(app.homeserver.member_action(room_id, MemberAction::Invite, user_id).await?)
}

/// Adds the room to the user's `m.direct` account data (read-merge-write, as the user).
async fn mark_direct(
    app: &App,
    tenant: &TenantId,
    user: &UserSlug,
    other_id: &str,
    room_id: &str,
) -> Result<(), DomainError> {
    let user_id = app.identities.matrix_user_id(tenant, user);
    app.credentials
        .as_user(tenant, user, |token| {
            let user_id = &user_id;
            async move {
                // A read-modify-write as JSON: the user's other `m.direct` entries must survive as they are.
                let stored = app.homeserver.account_data(user_id, "m.direct", Acting::User(&token)).await?;
                let mut direct = stored.unwrap_or_else(|| Value::Object(Default::default()));
                let rooms = direct.get(other_id).and_then(Value::as_array).cloned().unwrap_or_default();
                if rooms.iter().any(|r| r.as_str() == Some(room_id)) {
                    return Ok(());
                }
                let mut rooms = rooms;
                rooms.push(Value::from(room_id));
                if !direct.is_object() {
                    direct = Value::Object(Default::default());
                }
                direct[other_id] = Value::Array(rooms);
                app.homeserver.put_account_data(user_id, "m.direct", &direct, Acting::User(&token)).await
            }
        })
        .await?;
    Ok(())
}
