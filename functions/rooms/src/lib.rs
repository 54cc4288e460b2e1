//! Rooms: group and event rooms, their lifecycle, and direct-message rooms.

use lambda_http::{Body, Request, Response};
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
            let (view, created) = lifecycle::ensure(app, &caller.tenant, RoomKind::Group, &slug, spec).await?;
            Ok(Reply::json(if created { 201 } else { 200 }, view))
        }
        RouteId::PutEventRoom => {
            let slug = request.param("slug", Slug::parse)?;
            let spec = RoomSpec::event(request.json()?)?;
            let (view, created) = lifecycle::ensure(app, &caller.tenant, RoomKind::Event, &slug, spec).await?;
            Ok(Reply::json(if created { 201 } else { 200 }, view))
        }
        RouteId::CancelEventRoom => {
            let slug = request.param("slug", Slug::parse)?;
            let input: lifecycle::CancelInput = request.json()?;
            let reason = input.reason.clone();
            let outcome = lifecycle::cancel(app, &caller.tenant, &slug, input).await;
            let operation =
                || Operation::CancelEvent { tenant: caller.tenant.to_string(), slug: slug.to_string(), reason };
            Ok(match operations::defer_on_outage(app, caller, outcome, operation).await? {
                Ok(view) => Reply::ok(view),
                Err(queued) => Reply::json(202, queued),
            })
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
            let outcome = lifecycle::delete(app, &caller.tenant, kind, &slug, mode).await;
            let operation = || Operation::DeleteRoom {
                tenant: caller.tenant.to_string(),
                kind: kind.path_segment().to_owned(),
                slug: slug.to_string(),
                purge: mode == DeleteMode::Purge,
            };
            Ok(match operations::defer_on_outage(app, caller, outcome, operation).await? {
                Ok(()) => Reply::no_content(),
                Err(queued) => Reply::json(202, queued),
            })
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
