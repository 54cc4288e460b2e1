//! The `retry-worker` Lambda: SQS-triggered, builds its clients once.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::app::init_logging();
    let app = shared::App::from_env().await?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(retry_worker::process_batch(app, event.payload).await)
    }))
    .await
}
