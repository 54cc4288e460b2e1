//! Rooms: group and event rooms, their lifecycle, and direct-message rooms.

use lambda_http::{Body, Request, Response};
use shared::domain::drift::intent;
use shared::domain::operations::{self, Operation};
use shared::domain::room_lifecycle::{self as lifecycle, DeleteMode, RoomSpec};
use shared::domain::{direct, rooms};
use shared::http::{ApiRequest, Reply};
use shared::identity::{RoomKind, Slug, UserSlug};
use shared::routes::{Function, RouteId};
use shared::{ApiError, App};

pub async fn serve(app: &App, request: Request) -> Response<Body> {
    shared::http::serve(app, Function::Rooms, request, |request| handle(app, request)).await
}

async fn handle(app: &App, request: ApiRequest) -> Result<Reply, ApiError> {
    let caller = request.caller()?;
    match request.route.id {
        RouteId::PutGroupRoom => {
            let slug = request.param("slug", Slug::parse)?;
            let spec = RoomSpec::group(request.json()?)?;
            let version = operations::now_version();
            let (view, created) = lifecycle::ensure(app, &caller.tenant, RoomKind::Group, &slug, spec.clone()).await?;
            intent::record_room(app, &caller.tenant, RoomKind::Group, &slug, &view.room_id, &spec, version).await?;
            Ok(Reply::json(if created { 201 } else { 200 }, view))
        }
        RouteId::PutEventRoom => {
            let slug = request.param("slug", Slug::parse)?;
            let spec = RoomSpec::event(request.json()?)?;
            let version = operations::now_version();
            let (view, created) = lifecycle::ensure(app, &caller.tenant, RoomKind::Event, &slug, spec.clone()).await?;
            intent::record_room(app, &caller.tenant, RoomKind::Event, &slug, &view.room_id, &spec, version).await?;
            Ok(Reply::json(if created { 201 } else { 200 }, view))
        }
        RouteId::CancelEventRoom => {
            let slug = request.param("slug", Slug::parse)?;
            let input: lifecycle::CancelInput = request.json()?;
            let reason = input.reason.clone();
            let version = operations::now_version();
            let outcome = lifecycle::cancel(app, &caller.tenant, &slug, input).await;
            let operation =
                || Operation::CancelEvent { tenant: caller.tenant.to_string(), slug: slug.to_string(), reason };
            let reply = Reply::outcome(operations::defer_on_outage(app, caller, outcome, operation).await?, Reply::ok);
            // Done or queued, the room is meant to be cancelled (retention counts from now; no more reminders).
            let at = version / 1000;
            intent::record_lifecycle(app, &caller.tenant, RoomKind::Event, &slug, "cancelled", version, at).await?;
            Ok(reply)
        }
        RouteId::GetRoom => {
            let (kind, slug) = (request.param("kind", RoomKind::from_path)?, request.param("slug", Slug::parse)?);
            let room = rooms::resolve(app, &caller.tenant, kind, &slug).await?;
            rooms::require_member(app, &room, caller).await?;
            Ok(Reply::ok(lifecycle::view(app, &room).await?))
        }
        RouteId::DeleteRoom => {
            let (kind, slug) = (request.param("kind", RoomKind::from_path)?, request.param("slug", Slug::parse)?);
            let mode = DeleteMode::parse(request.query("mode"))?;
            let version = operations::now_version();
            let outcome = lifecycle::delete(app, &caller.tenant, kind, &slug, mode).await;
            let operation = || Operation::DeleteRoom {
                tenant: caller.tenant.to_string(),
                kind: kind.path_segment().to_owned(),
                slug: slug.to_string(),
                purge: mode == DeleteMode::Purge,
            };
            let done = operations::defer_on_outage(app, caller, outcome, operation).await?;
            let reply = Reply::outcome(done, |()| Reply::no_content());
            match mode {
                DeleteMode::Archive => {
                    let at = version / 1000;
                    intent::record_lifecycle(app, &caller.tenant, kind, &slug, "archived", version, at).await?
                }
                // A purged room is no longer managed: the drift pass must not look for it.
                DeleteMode::Purge => intent::forget_room(app, &caller.tenant, kind, &slug).await?,
            }
            Ok(reply)
        }
        RouteId::EnsureDirectRoom => {
            let me = caller.user().ok_or(ApiError::Internal)?;
            let other = request.param("otherUserId", UserSlug::parse)?;
            let (view, created) =
                direct::ensure(app, &caller.tenant, me, caller.display_name.as_deref(), &other).await?;
            Ok(Reply::json(if created { 201 } else { 200 }, view))
        }
        _ => Err(ApiError::Internal),
    }
}
