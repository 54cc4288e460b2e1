//! The `membership` function's routes.

use lambda_http::{Body, Request, Response};
use shared::http::{ApiRequest, Reply};
use shared::routes::Function;
use shared::{ApiError, App};

pub async fn serve(app: &App, request: Request) -> Response<Body> {
    shared::http::serve(&app.jwt, Function::Membership, request, |request| {
        handle(app, request)
    })
    .await
}

async fn handle(_app: &App, _request: ApiRequest) -> Result<Reply, ApiError> {
    Err(ApiError::NotImplemented)
}
