//! The retry worker: replays deferred operations from SQS, reporting partial batch failures so only the failed
//! records come back.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use shared::App;
use shared::domain::operations::{self, QueuedOperation, ReplayError};

pub async fn process_batch(app: &App, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        if let Err(()) = process_record(app, &record).await {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = record.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// `Err(())` sends the record back to the queue; permanent failures are recorded and acknowledged.
async fn process_record(app: &App, record: &SqsMessage) -> Result<(), ()> {
    let Some(operation) = record.body.as_deref().and_then(|body| serde_json::from_str::<QueuedOperation>(body).ok())
    else {
        tracing::error!(message_id = ?record.message_id, "unreadable retry message dropped");
        return Ok(());
    };
    match operations::replay(app, &operation).await {
        Ok(()) => Ok(()),
        Err(ReplayError::Permanent(reason)) => {
            tracing::warn!(operation_id = %operation.operation_id, %reason, "operation failed permanently");
            Ok(())
        }
        Err(ReplayError::Transient(reason)) => {
            tracing::info!(operation_id = %operation.operation_id, %reason, "operation will be retried");
            Err(())
        }
    }
}
