//! SQS: the retry queue for deferred writes.

use aws_sdk_sqs::Client;

use super::unavailable;
use crate::error::BackendError;

#[derive(Clone)]
pub struct Queue {
    client: Client,
    url: String,
}

impl Queue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Queue { client, url: url.into() }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Enqueues a message body (an operation reference, never a secret), with an optional delay.
    pub async fn send(&self, body: String, delay_seconds: u32) -> Result<(), BackendError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(delay_seconds.min(900) as i32)
            .send()
            .await
            .map_err(|e| unavailable("sqs", e))?;
        Ok(())
    }

    pub async fn check(&self) -> Result<(), BackendError> {
        self.client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| unavailable("sqs", e))?;
        Ok(())
    }
}
