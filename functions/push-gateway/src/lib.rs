//! The `push-gateway` function: Matrix's Push Gateway API, `POST /_matrix/push/v1/notify`, called by the
//! homeserver's pushers only. It is not on the public HTTP API: template.yaml gives it a private REST API reachable
//! only from the homeserver's VPC (docs/adr/0008-notifications.md), and the notify carries no credential, so the
//! domain checks each device's pushkey against the one the platform derives for the user.
//!
//! Answers: `200 {"rejected": [...]}` (the homeserver deletes rejected pushers), `400` for a body that is not a
//! notify, `503` when the bus, the table or the homeserver failed (the homeserver retries with back-off; a retry
//! puts no second event).

use lambda_http::{Body, Request, Response};
use shared::App;
use shared::aws::events::EventBus;
use shared::domain::push::notify;
use shared::http::error_response;

/// The one path of the Push Gateway API this gateway implements.
pub const NOTIFY_PATH: &str = "/_matrix/push/v1/notify";

pub async fn serve(app: &App, bus: &EventBus, request: Request) -> Response<Body> {
    if request.uri().path().trim_end_matches('/') != NOTIFY_PATH {
        return error_response(&shared::ApiError::not_found("no such path"));
    }
    if request.method() != http::Method::POST {
        return error_response(&shared::ApiError::MethodNotAllowed { allow: "POST".into() });
    }
    let answer = match notify::parse(request.body()) {
        Ok(parsed) => notify::handle(app, bus, parsed).await,
        Err(error) => Err(error),
    };
    match answer {
        Ok(answer) => json(200, &answer),
        Err(error) => error_response(&error.into()),
    }
}

fn json(status: u16, body: &impl serde::Serialize) -> Response<Body> {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::Text(text))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

/// The bus named by `OPENMEET_EVENT_BUS`.
pub fn event_bus(app: &App, sdk: &aws_config::SdkConfig) -> Result<EventBus, shared::config::ConfigError> {
    let name = app.config.push.event_bus.clone().ok_or(shared::config::ConfigError::Missing("OPENMEET_EVENT_BUS"))?;
    Ok(EventBus::new(shared::aws::eventbridge(sdk, &app.config.aws), name))
}
