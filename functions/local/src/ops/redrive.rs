//! `openmeet-local ops redrive`: moves the retry DLQ's messages back onto the retry queue once the cause is fixed.
//! Each operation is reopened (status `queued`) and re-enqueued under a new deduplication id; operations already
//! delivered are just removed from the DLQ, so running it twice delivers nothing twice.

use aws_sdk_sqs::types::QueueAttributeName;
use shared::App;
use shared::domain::operations::{self, QueuedOperation};

use super::{Failure, app_error};

/// The command: works against any environment the variables describe (the local stack, or AWS with
/// `OPENMEET_QUEUE_URL`).
pub async fn run(json: bool) -> Result<(), Failure> {
    let app = App::from_env().await.map_err(app_error)?;
    let moved = redrive(&app).await.map_err(Failure::Failed)?;
    if json {
        println!("{}", serde_json::json!({ "moved": moved }));
    } else {
        println!("redrove {moved} operation(s) from the DLQ to the retry queue");
    }
    Ok(())
}

pub async fn redrive(app: &App) -> Result<usize, String> {
    let sqs = app.queue.client();
    let arn_of = |url: String| async move {
        sqs.get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| format!("reading the retry queue's redrive policy: {e}"))
    };
    let policy = arn_of(app.queue.url().await.map_err(|e| e.to_string())?.to_owned())
        .await?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::RedrivePolicy))
        .ok_or("the retry queue has no DLQ")?;
    let dlq_arn = serde_json::from_str::<serde_json::Value>(&policy)
        .ok()
        .and_then(|p| p.get("deadLetterTargetArn").and_then(|a| a.as_str()).map(str::to_owned))
        .ok_or("unreadable redrive policy")?;
    let dlq_name = dlq_arn.rsplit(':').next().ok_or("unreadable DLQ ARN")?;
    let dlq_url = shared::aws::queue::url_of(sqs, dlq_name).await.map_err(|e| format!("finding the DLQ: {e}"))?;
    let mut moved = 0;
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&dlq_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .customize()
            // The clients' attempt timeout is shorter than the long poll's wait.
            .config_override(
                aws_sdk_sqs::config::Builder::default()
                    .timeout_config(app.config.aws.long_poll(std::time::Duration::from_secs(1))),
            )
            .send()
            .await
            .map_err(|e| format!("reading the DLQ: {e}"))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(moved);
        }
        for message in messages {
            let operation = message.body.as_deref().and_then(|b| serde_json::from_str::<QueuedOperation>(b).ok());
            if let Some(operation) = operation {
                let reopened =
                    operations::reopen(app, operation.operation_id.as_str()).await.map_err(|e| e.to_string())?;
                if reopened {
                    let group = message
                        .attributes
                        .as_ref()
                        .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId))
                        .cloned()
                        .unwrap_or_else(|| operation.operation_id.to_string());
                    let body = message.body.clone().unwrap_or_default();
                    let dedup = format!("{}-redrive-{}", operation.operation_id, shared::aws::store::now_secs());
                    app.queue.send_ordered(body, &group, &dedup).await.map_err(|e| e.to_string())?;
                    moved += 1;
                }
            }
            if let Some(handle) = message.receipt_handle {
                sqs.delete_message()
                    .queue_url(&dlq_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| format!("removing a redriven message from the DLQ: {e}"))?;
            }
        }
    }
}
