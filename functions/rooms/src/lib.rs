//! Rooms: group and event rooms, their lifecycle, and direct-message rooms.

use lambda_http::{Body, Request, Response};
use shared::auth::Caller;
use shared::domain::room_lifecycle::{self as lifecycle, DeleteMode, RoomSpec};
use shared::domain::{direct, requests, rooms};
use shared::http::{ApiRequest, Reply};
use shared::identity::{RoomKind, Slug, UserSlug};
use shared::routes::RoomsRoute as Route;
use shared::{ApiError, App};

pub async fn serve(app: &App, request: Request) -> Response<Body> {
    shared::http::serve(app, request, |route, request| handle(app, route, request)).await
}

/// Exhaustive over the function's routes: a route added to the table without a handler here does not compile.
async fn handle(app: &App, route: Route, request: ApiRequest) -> Result<Reply, ApiError> {
    let caller = request.caller()?;
    match route {
        Route::PutGroupRoom => {
            let slug = request.param("slug", Slug::parse)?;
            put_room(app, caller, RoomKind::Group, &slug, RoomSpec::group(request.json()?)?).await
        }
        Route::PutEventRoom => {
            let slug = request.param("slug", Slug::parse)?;
            put_room(app, caller, RoomKind::Event, &slug, RoomSpec::event(request.json()?)?).await
        }
        Route::CancelEventRoom => {
            let slug = request.param("slug", Slug::parse)?;
            let input: lifecycle::CancelInput = request.json()?;
            Ok(Reply::outcome(requests::cancel_event(app, caller, &slug, input).await?, Reply::ok))
        }
        Route::GetRoom => {
            let (kind, slug) = (request.param("kind", RoomKind::from_path)?, request.param("slug", Slug::parse)?);
            let room = rooms::resolve(app, &caller.tenant, kind, &slug).await?;
            rooms::require_member(app, &room, caller).await?;
            Ok(Reply::ok(lifecycle::view(app, &room).await?))
        }
        Route::DeleteRoom => {
            let (kind, slug) = (request.param("kind", RoomKind::from_path)?, request.param("slug", Slug::parse)?);
            let mode = DeleteMode::parse(request.query("mode"))?;
            let outcome = requests::delete_room(app, caller, kind, &slug, mode).await?;
            Ok(Reply::outcome(outcome, |()| Reply::no_content()))
        }
        Route::EnsureDirectRoom => {
            let me = caller.user().ok_or(ApiError::Internal)?;
            let other = request.param("otherUserId", UserSlug::parse)?;
            let (view, created) =
                direct::ensure(app, &caller.tenant, me, caller.display_name.as_deref(), &other).await?;
            Ok(Reply::json(if created { 201 } else { 200 }, view))
        }
    }
}

async fn put_room(app: &App, caller: &Caller, kind: RoomKind, slug: &Slug, spec: RoomSpec) -> Result<Reply, ApiError> {
    // Boxed: a room's creation is a deep future, too deep to nest inline in `serve`'s.
    let (view, created) = Box::pin(requests::put_room(app, caller, kind, slug, spec)).await?;
    Ok(Reply::json(if created { 201 } else { 200 }, view))
}
