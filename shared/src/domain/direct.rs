//! Direct messages: one room per pair of users of a tenant, found by an alias derived from the sorted pair, both
//! users joined, and `m.direct` account data set for both.

use serde_json::{Value, json};

use crate::app::App;
use crate::domain::room_lifecycle::{Lifecycle, RoomView};
use crate::domain::rooms;
use crate::domain::users;
use crate::error::ApiError;
use crate::homeserver::{Acting, encode};
use crate::identity::{TenantId, UserSlug};

/// Ensures the direct room of `me` and `other`. `true` when it was created now.
pub async fn ensure(
    app: &App,
    tenant: &TenantId,
    me: &UserSlug,
    my_name: Option<&str>,
    other: &UserSlug,
) -> Result<(RoomView, bool), ApiError> {
    if me == other {
        return Err(ApiError::bad_request("invalid_parameter", "a direct room needs two different users"));
    }
    let other_view = users::get(app, tenant, other).await?.ok_or_else(|| ApiError::NotFound {
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
    let body = creation_body(&alias, &[my_id.as_str(), other_id.as_str()]);
    let (room_id, created) = rooms::find_or_create(app, &alias, &body).await?;
    for user in [my_id.as_str(), other_id.as_str()] {
        let path = format!("/_synapse/admin/v1/join/{}", encode(room_id.as_str()));
        match app
            .homeserver
            .call::<Value>(reqwest::Method::POST, &path, Acting::Platform, Some(&json!({"user_id": user})))
            .await
        {
            Ok(_) => {}
            Err(error) if error.is_membership_already_applied() => {}
            Err(error) => return Err(error.into()),
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

/// The body of the `createRoom` call of a direct room: both members moderate it.
fn creation_body(alias: &ruma::OwnedRoomAliasId, members: &[&str]) -> Value {
    json!({
        "room_alias_name": alias.alias(),
        "preset": "trusted_private_chat",
        "visibility": "private",
        "is_direct": true,
        "initial_state": [
            {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "shared"}},
            {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}},
        ],
        "power_level_content_override": {
            "users": members.iter().map(|m| (m.to_string(), json!(50))).collect::<serde_json::Map<_, _>>(),
            "events_default": 0,
            "state_default": 100,
        },
    })
}

/// Adds the room to the user's `m.direct` account data (read-merge-write, as the user).
async fn mark_direct(
    app: &App,
    tenant: &TenantId,
    user: &UserSlug,
    other_id: &str,
    room_id: &str,
) -> Result<(), ApiError> {
    let user_id = app.identities.matrix_user_id(tenant, user);
    let path = format!("/_matrix/client/v3/user/{}/account_data/m.direct", encode(user_id.as_str()));
    app.credentials
        .as_user(tenant, user, |token| {
            let path = &path;
            async move {
                let mut direct: Value =
                    match app.homeserver.call(reqwest::Method::GET, path, Acting::User(&token), None::<&Value>).await {
                        Ok(value) => value,
                        Err(error) if error.is_not_found() => json!({}),
                        Err(error) => return Err(error),
                    };
                let rooms = direct.get(other_id).and_then(Value::as_array).cloned().unwrap_or_default();
                if rooms.iter().any(|r| r.as_str() == Some(room_id)) {
                    return Ok(());
                }
                let mut rooms = rooms;
                rooms.push(json!(room_id));
                if !direct.is_object() {
                    direct = json!({});
                }
                direct[other_id] = Value::Array(rooms);
                app.homeserver
                    .call::<Value>(reqwest::Method::PUT, path, Acting::User(&token), Some(&direct))
                    .await
                    .map(|_| ())
            }
        })
        .await
}
