//! The `messages` function's routes: messages, reactions, notification levels and media uploads.
//!
//! Each handler checks its input first (a request that fails validation changes nothing), then resolves the room
//! and calls the domain in `shared::domain::messages`.

use lambda_http::{Body, Request, Response};
use shared::auth::Caller;
use shared::domain::DomainError;
use shared::domain::messages::history::{self, PageQuery};
use shared::domain::messages::idempotency::IdempotencyKey;
use shared::domain::messages::notifications::{self, NotificationSettings};
use shared::domain::messages::send;
use shared::domain::messages::{Actor, EditMessageInput, PostMessageInput, deferred, media, parse_event_id, reactions};
use shared::domain::rooms::{self, RoomRef};
use shared::http::{ApiRequest, Reply};
use shared::routes::MessagesRoute as Route;
use shared::{ApiError, App};

pub async fn serve(app: &App, request: Request) -> Response<Body> {
    shared::http::serve(app, request, |route, request| handle(app, route, request)).await
}

/// Exhaustive over the function's routes: a route added to the table without a handler here does not compile.
async fn handle(app: &App, route: Route, request: ApiRequest) -> Result<Reply, ApiError> {
    match route {
        Route::PostMessage => post_message(app, &request).await,
        Route::ListMessages => list_messages(app, &request).await,
        Route::EditMessage => {
            let event_id = request.param("eventId", parse_event_id)?;
            let input: EditMessageInput = request.json()?;
            let (caller, room) = room_of(app, &request).await?;
            Ok(Reply::outcome(send::edit(app, &room, &Actor::of(caller), &event_id, &input).await?, Reply::ok))
        }
        Route::DeleteMessage => {
            let event_id = request.param("eventId", parse_event_id)?;
            let (caller, room) = room_of(app, &request).await?;
            Ok(Reply::outcome(deferred::delete_message(app, caller, &room, &event_id).await?, no_content))
        }
        Route::DeleteReaction => {
            let event_id = request.param("eventId", parse_event_id)?;
            let key = request.param("key", reactions::parse_key)?;
            // The membership check is part of what a queued removal replays.
            let (caller, room) = room_of(app, &request).await?;
            Ok(Reply::outcome(deferred::remove_reaction(app, caller, &room, &event_id, &key).await?, no_content))
        }
        Route::PutReaction => {
            let event_id = request.param("eventId", parse_event_id)?;
            let key = request.param("key", reactions::parse_key)?;
            let (caller, room) = member_room_of(app, &request).await?;
            Ok(Reply::outcome(reactions::put(app, &room, &Actor::of(caller), &event_id, &key).await?, no_content))
        }
        Route::PutNotifications => {
            let input: NotificationSettings = request.json()?;
            let (caller, room) = member_room_of(app, &request).await?;
            Ok(Reply::ok(notifications::put(app, &room, &Actor::of(caller), input.level).await?))
        }
        Route::GetNotifications => {
            let (caller, room) = member_room_of(app, &request).await?;
            Ok(Reply::ok(notifications::get(app, &room, &Actor::of(caller)).await?))
        }
        Route::UploadMedia => {
            let upload = media::check(request.header("content-type"), request.query("filename"), &request.body)?;
            // The file is stored for the member; the room only decides whether they may.
            let (caller, _room) = member_room_of(app, &request).await?;
            let attachment = media::upload(app, &Actor::of(caller), &upload, request.body.clone()).await?;
            Ok(Reply::json(201, attachment))
        }
    }
}

/// The caller and the room of the `{kind}/{slug}` path; `404 not_found` when the room does not exist.
async fn room_of<'r>(app: &App, request: &'r ApiRequest) -> Result<(&'r Caller, RoomRef), ApiError> {
    let caller = request.caller()?;
    let kind = request.params.get("kind").ok_or(ApiError::Internal)?;
    let slug = request.params.get("slug").ok_or(ApiError::Internal)?;
    let room = rooms::resolve_path(app, &caller.tenant, kind, slug).await.map_err(|error| match error {
        // The contract names one code for every missing resource.
        DomainError::NotFound { message, .. } => DomainError::not_found(message),
        other => other,
    })?;
    Ok((caller, room))
}

/// As [`room_of`], and a user must have joined the room (`403` otherwise); services pass.
async fn member_room_of<'r>(app: &App, request: &'r ApiRequest) -> Result<(&'r Caller, RoomRef), ApiError> {
    let (caller, room) = room_of(app, request).await?;
    rooms::require_member(app, &room, caller).await?;
    Ok((caller, room))
}

async fn post_message(app: &App, request: &ApiRequest) -> Result<Reply, ApiError> {
    let key = request.header("idempotency-key").map(IdempotencyKey::parse).transpose()?;
    let input: PostMessageInput = request.json()?;
    let (caller, room) = room_of(app, request).await?;
    // Members send as themselves and the homeserver enforces membership and power: no separate membership read.
    let outcome = send::post(app, &room, &Actor::of(caller), &input, key.as_ref()).await?;
    Ok(Reply::outcome(outcome, |sent| Reply::json(201, sent)))
}

fn no_content(_: ()) -> Reply {
    Reply::no_content()
}

async fn list_messages(app: &App, request: &ApiRequest) -> Result<Reply, ApiError> {
    let query = PageQuery::parse(request.query("limit"), request.query("from"), request.query("threadRootId"))?;
    let (caller, room) = member_room_of(app, request).await?;
    let page = history::page(app, &room, &Actor::of(caller), &query).await?;
    Ok(Reply::ok(page))
}
