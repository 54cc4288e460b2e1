//! The retry worker: replays deferred operations from the FIFO retry queue, reporting partial batch failures so
//! only the failed records come back, each after its own back-off.

use std::time::Instant;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use rand::Rng;
use shared::App;
use shared::domain::operations::QueuedOperation;
use shared::domain::replay::{self, ReplayError};
use shared::jobs::{Job, UnknownJob};

/// An EventBridge schedule's event (the session sweep), as opposed to an SQS batch.
pub fn is_scheduled(event: &serde_json::Value) -> bool {
    event.get("detail-type").and_then(serde_json::Value::as_str) == Some("Scheduled Event")
}

/// The self-healing job a schedule names in its input (`{"job": "drift-repair"}`; template.yaml), if any: `Err`
/// for a name that is no job's.
pub fn self_heal_job(event: &serde_json::Value) -> Option<Result<Job, UnknownJob>> {
    event.get("job").and_then(serde_json::Value::as_str).map(str::parse)
}

/// Runs a scheduled self-healing job until `stop` at the latest; its report.
pub async fn run_self_heal_job(app: &App, job: Job, stop: Instant) -> Result<serde_json::Value, String> {
    use shared::domain::drift::{SelfHealSettings, repair};
    use shared::domain::{housekeeping, reminders, retention};
    let settings = SelfHealSettings::from_env().map_err(|e| e.to_string())?;
    let now = shared::aws::store::now_secs();
    let report = match job {
        Job::DriftRepair => {
            let options = repair::PassOptions { deadline: Some(stop), ..repair::PassOptions::default() };
            serde_json::to_value(repair::run(app, &settings, &options).await.map_err(|e| e.to_string())?)
        }
        Job::Retention => {
            serde_json::to_value(retention::run(app, &settings, now, None, false).await.map_err(|e| e.to_string())?)
        }
        Job::Reminders => {
            serde_json::to_value(reminders::run(app, &settings, now, None).await.map_err(|e| e.to_string())?)
        }
        Job::SweepExpired => {
            serde_json::to_value(housekeeping::sweep(app, &settings, now, false).await.map_err(|e| e.to_string())?)
        }
    };
    report.map_err(|e| e.to_string())
}

/// Processes a batch in order. Once a record of a message group (a room) fails, the later records of that group
/// fail too without being tried, so nothing overtakes it.
/// `deadline`: when the invocation ends (Lambda's), if it does.
pub async fn process_batch(app: &App, event: SqsEvent, deadline: Option<Instant>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let mut blocked_groups: Vec<String> = Vec::new();
    for record in event.records {
        let group = record.attributes.get("MessageGroupId").cloned().unwrap_or_default();
        let failed = if blocked_groups.contains(&group) {
            release(app, &record).await;
            true
        } else {
            process_record(app, &record, deadline).await.is_err()
        };
        if failed {
            blocked_groups.push(group);
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = record.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// Makes a record that waits behind its group's failed head visible again at once: the FIFO group stays locked
/// while the head is in flight, so it cannot overtake it, and it comes back with the head instead of a full
/// visibility timeout later. Leaving several records of one group in flight is also what lets an emulated queue
/// hand them out of order.
async fn release(app: &App, record: &SqsMessage) {
    if let Some(handle) = &record.receipt_handle
        && let Err(error) = app.queue.retry_after(handle, std::time::Duration::ZERO).await
    {
        tracing::warn!(error = %error, "could not release a record behind its group's head; the visibility timeout applies");
    }
}

/// `Err(())` returns the record to the queue; permanent failures are recorded on the operation and acknowledged.
async fn process_record(app: &App, record: &SqsMessage, deadline: Option<Instant>) -> Result<(), ()> {
    let Some(operation) = record.body.as_deref().and_then(|body| serde_json::from_str::<QueuedOperation>(body).ok())
    else {
        tracing::error!(message_id = ?record.message_id, "unreadable retry message dropped");
        return Ok(());
    };
    let attempt = record.attributes.get("ApproximateReceiveCount").and_then(|count| count.parse().ok()).unwrap_or(1);
    match replay::replay(app, &operation, attempt, deadline).await {
        Ok(()) => Ok(()),
        Err(ReplayError::Exhausted(reason)) => {
            tracing::warn!(operation_id = %operation.operation_id, %reason, "operation exhausted its attempts; on to the DLQ");
            Err(())
        }
        Err(ReplayError::Transient { reason, retry_after }) => {
            let jitter = rand::rng().random::<f64>();
            let delay = replay::backoff(&app.config.retry, attempt, retry_after, jitter);
            tracing::info!(operation_id = %operation.operation_id, %reason, attempt, delay_ms = delay.as_millis() as u64, "operation will be retried");
            if let Some(handle) = &record.receipt_handle
                && let Err(error) = app.queue.retry_after(handle, delay).await
            {
                tracing::warn!(error = %error, "could not set the back-off; the queue's visibility timeout applies");
            }
            Err(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> serde_json::Value {
        let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn the_schedule_is_told_from_a_queue_batch() {
        assert!(is_scheduled(&fixture("retry-worker-schedule.json")));
        let batch = fixture("retry-worker-batch.json");
        assert!(!is_scheduled(&batch));
        assert!(serde_json::from_value::<SqsEvent>(batch).is_ok());
        let job = fixture("retry-worker-drift-repair.json");
        assert_eq!(self_heal_job(&job), Some(Ok(Job::DriftRepair)));
        assert!(!is_scheduled(&job));
        assert_eq!(self_heal_job(&fixture("retry-worker-schedule.json")), None);
        assert!(matches!(self_heal_job(&serde_json::json!({"job": "repair-drift"})), Some(Err(_))));
    }

    /// Every schedule's input in template.yaml names a job, and every job has a schedule.
    #[test]
    fn the_schedules_name_every_job_by_its_one_name() {
        let path = format!("{}/../../template.yaml", env!("CARGO_MANIFEST_DIR"));
        let template = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let scheduled: Vec<Job> = template
            .lines()
            .filter_map(|line| line.trim().strip_prefix("Input: '")?.strip_suffix('\''))
            .map(|input| {
                let event: serde_json::Value = serde_json::from_str(input).unwrap_or_else(|e| panic!("{input}: {e}"));
                match self_heal_job(&event) {
                    Some(Ok(job)) => job,
                    other => panic!("schedule input {input} names no job: {other:?}"),
                }
            })
            .collect();
        for job in Job::ALL {
            assert_eq!(scheduled.iter().filter(|s| **s == job).count(), 1, "{job} in {scheduled:?}");
        }
    }
}
