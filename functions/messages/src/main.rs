//! The `messages` Lambda: builds its clients once, then serves API Gateway requests.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::app::run_http(messages::serve).await
}
