//! The `provisioning` Lambda: builds its clients once, then serves API Gateway requests.

use std::convert::Infallible;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::app::init_logging();
    let app = shared::App::from_env().await?;
    let app = &app;
    lambda_http::run(lambda_http::service_fn(move |request| async move {
        Ok::<_, Infallible>(provisioning::serve(app, request).await)
    }))
    .await
}
