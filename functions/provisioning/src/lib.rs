//! Provisioning: health, users, browser sessions, operation status, the user's notification preferences.

use lambda_http::{Body, Request, Response};
use shared::domain::operations;
use shared::domain::push::preferences;
use shared::domain::{health, requests, sessions, users};
use shared::http::{ApiRequest, Reply};
use shared::identity::UserSlug;
use shared::routes::ProvisioningRoute as Route;
use shared::{ApiError, App};

pub async fn serve(app: &App, request: Request) -> Response<Body> {
    shared::http::serve(app, request, |route, request| handle(app, route, request)).await
}

/// Exhaustive over the function's routes: a route added to the table without a handler here does not compile.
async fn handle(app: &App, route: Route, request: ApiRequest) -> Result<Reply, ApiError> {
    match route {
        // The tenant's service sees which dependency is down, checked now; anyone else a cached ok/degraded.
        Route::Health if request.caller().is_ok_and(|caller| caller.is_service()) => {
            let health = health::check(app).await;
            Ok(if health.is_ok() { Reply::ok(health) } else { Reply::json(503, health).with_retry_after(5) })
        }
        Route::Health => {
            let health = health::public(app).await;
            Ok(if health.is_ok() { Reply::ok(health) } else { Reply::json(503, health).with_retry_after(5) })
        }
        Route::PutUser => put_user(app, request).await,
        Route::GetUser => {
            let (caller, user) = (request.caller()?, request.param("userId", UserSlug::parse)?);
            let view = users::get(app, &caller.tenant, &user).await?;
            view.map(Reply::ok).ok_or_else(|| ApiError::not_found("this user was never provisioned"))
        }
        Route::DeleteUser => {
            let (caller, user) = (request.caller()?, request.param("userId", UserSlug::parse)?);
            Ok(Reply::outcome(requests::delete_user(app, caller, &user).await?, |()| Reply::no_content()))
        }
        Route::GetNotificationPreferences => {
            let caller = request.caller()?;
            let user = caller.user().ok_or(ApiError::Internal)?;
            Ok(Reply::ok(preferences::get(app, &caller.tenant, user).await?))
        }
        Route::PutNotificationPreferences => {
            let caller = request.caller()?;
            let user = caller.user().ok_or(ApiError::Internal)?;
            let wanted: preferences::NotificationPreferences = request.json()?;
            Ok(Reply::ok(preferences::put(app, &caller.tenant, user, wanted).await?))
        }
        Route::CreateSession => {
            let caller = request.caller()?;
            let user = caller.user().ok_or(ApiError::Internal)?;
            let input: sessions::SessionInput = request.json()?;
            let session = sessions::create(app, &caller.tenant, user, caller.display_name.as_deref(), input).await?;
            Ok(Reply::ok(session))
        }
        Route::DeleteSession => {
            let caller = request.caller()?;
            let user = caller.user().ok_or(ApiError::Internal)?;
            let input: sessions::SessionInput = request.json()?;
            let device_id =
                input.device_id.ok_or_else(|| ApiError::bad_request("invalid_body", "deviceId is required"))?;
            sessions::delete(app, &caller.tenant, user, &device_id).await?;
            Ok(Reply::no_content())
        }
        Route::GetOperation => {
            let caller = request.caller()?;
            let operation_id = request.params.get("operationId").unwrap_or_default().to_owned();
            Ok(Reply::ok(operations::status(app, caller, &operation_id).await?))
        }
    }
}

async fn put_user(app: &App, request: ApiRequest) -> Result<Reply, ApiError> {
    let (caller, user) = (request.caller()?, request.param("userId", UserSlug::parse)?);
    let input: users::UserInput = request.json()?;
    let display_name = users::validate_display_name(&input.display_name)?;
    let avatar = users::parse_avatar(input.avatar_url, &app.config.avatar_hosts)?;
    let (view, created) = users::ensure(app, &caller.tenant, &user, &display_name, avatar).await?;
    Ok(Reply::json(if created { 201 } else { 200 }, view))
}
