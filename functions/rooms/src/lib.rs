//! Rooms: group and event rooms, their lifecycle, and direct-message rooms.

use lambda_http::{Body, Request, Response};
use shared::domain::room_lifecycle::{self as lifecycle, DeleteMode, RoomSpec};
use shared::domain::{direct, requests, rooms};
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
        RouteId::PutGroupRoom | RouteId::PutEventRoom => {
            let slug = request.param("slug", Slug::parse)?;
            let (kind, spec) = match request.route.id {
                RouteId::PutGroupRoom => (RoomKind::Group, RoomSpec::group(request.json()?)?),
                _ => (RoomKind::Event, RoomSpec::event(request.json()?)?),
            };
            // Boxed: a room's creation is a deep future, too deep to nest inline in `serve`'s.
            let (view, created) = Box::pin(requests::put_room(app, caller, kind, &slug, spec)).await?;
            Ok(Reply::json(if created { 201 } else { 200 }, view))
        }
        RouteId::CancelEventRoom => {
            let slug = request.param("slug", Slug::parse)?;
            let input: lifecycle::CancelInput = request.json()?;
            Ok(Reply::outcome(requests::cancel_event(app, caller, &slug, input).await?, Reply::ok))
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
            let outcome = requests::delete_room(app, caller, kind, &slug, mode).await?;
            Ok(Reply::outcome(outcome, |()| Reply::no_content()))
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
