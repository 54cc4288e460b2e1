//! The `push-gateway` Lambda: builds its clients once (the shared ones and the event bus), then serves the
//! homeserver's notifies arriving through the private API.

use shared::App;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::app::init_logging();
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let config = shared::config::Config::load(&sdk).await?;
    // Leaked: the clients live as long as the container and every invocation borrows them.
    let app: &'static App = Box::leak(Box::new(App::new(config, &sdk).await?));
    let bus: &'static shared::aws::events::EventBus = Box::leak(Box::new(push_gateway::event_bus(app, &sdk)?));
    lambda_http::run(lambda_http::service_fn(move |request| async move {
        Ok::<_, std::convert::Infallible>(push_gateway::serve(app, bus, request).await)
    }))
    .await
}
