//! The retry worker, locally: long-polls the emulated queue and hands batches to the same code the SQS-triggered
//! Lambda runs, deleting what succeeded (Lambda's partial-batch contract).

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use shared::App;

pub async fn poll(app: Arc<App>) {
    let sqs = app.queue.client().clone();
    loop {
        let url = match app.queue.url().await {
            Ok(url) => url.to_owned(),
            Err(error) => {
                tracing::warn!(error = %error, "finding the retry queue failed");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let received = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(5)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .customize()
            // The clients' attempt timeout is shorter than the long poll's wait.
            .config_override(
                aws_sdk_sqs::config::Builder::default()
                    .timeout_config(app.config.aws.long_poll(Duration::from_secs(5))),
            )
            .send()
            .await;
        let messages = match received {
            Ok(output) => output.messages.unwrap_or_default(),
            Err(error) => {
                tracing::warn!(error = %error, "polling the retry queue failed");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let mut event = SqsEvent::default();
        for message in &messages {
            let mut record = SqsMessage::default();
            record.message_id = message.message_id.clone();
            record.receipt_handle = message.receipt_handle.clone();
            record.body = message.body.clone();
            for (name, value) in message.attributes.iter().flatten() {
                record.attributes.insert(name.as_str().to_owned(), value.clone());
            }
            event.records.push(record);
        }
        let response = retry_worker::process_batch(&app, event, None).await;
        for message in messages {
            let failed =
                response.batch_item_failures.iter().any(|f| Some(&f.item_identifier) == message.message_id.as_ref());
            if let (false, Some(handle)) = (failed, message.receipt_handle)
                && let Err(error) = sqs.delete_message().queue_url(&url).receipt_handle(handle).send().await
            {
                tracing::warn!(error = %error, "deleting a processed message failed");
            }
        }
    }
}
