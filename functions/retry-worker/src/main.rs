//! The `retry-worker` Lambda: SQS-triggered, builds its clients once.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::app::init_logging();
    let app = shared::App::from_env().await?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = invocation_deadline(event.context.deadline);
        Ok::<SqsBatchResponse, Error>(retry_worker::process_batch(app, event.payload, Some(deadline)).await)
    }))
    .await
}

/// Lambda gives the deadline in milliseconds since the epoch.
fn invocation_deadline(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |now| now.as_millis() as u64);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}
