//! The `retry-worker` Lambda: SQS-triggered, builds its clients once. An EventBridge schedule also invokes it to
//! log out idle browser sessions, and others for the self-healing jobs (drift repair, retention, reminders, the
//! sweep of expired records).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::app::init_logging();
    let app = shared::App::from_env().await?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = invocation_deadline(event.context.deadline);
        if let Some(job) = retry_worker::self_heal_job(&event.payload) {
            let job = job?;
            let stop = deadline.checked_sub(Duration::from_secs(5)).unwrap_or(deadline);
            let report = retry_worker::run_self_heal_job(app, job, stop).await?;
            tracing::info!(job = %job, "self-healing job finished");
            return Ok::<Value, Error>(report);
        }
        if retry_worker::is_scheduled(&event.payload) {
            // Stop a little before Lambda does.
            let stop = deadline.checked_sub(Duration::from_secs(5)).unwrap_or(deadline);
            let report = shared::domain::sessions::sweep_idle(app, None, Some(stop)).await?;
            tracing::info!(checked = report.checked, logged_out = report.logged_out, "session sweep finished");
            return Ok::<Value, Error>(serde_json::to_value(report)?);
        }
        let batch: SqsEvent = serde_json::from_value(event.payload)?;
        Ok(serde_json::to_value(retry_worker::process_batch(app, batch, Some(deadline)).await)?)
    }))
    .await
}

/// Lambda gives the deadline in milliseconds since the epoch.
fn invocation_deadline(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |now| now.as_millis() as u64);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}
