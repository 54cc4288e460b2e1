//! SQS: the retry queue for deferred writes.

use std::sync::Arc;

use aws_sdk_sqs::Client;
use tokio::sync::OnceCell;

use super::unavailable;
use crate::aws::BackendError;

/// How the retry queue is named in the configuration: its URL (as the template passes it), or its name, resolved
/// to a URL on first use rather than at start-up (a cold start should not wait for a call it may never need).
#[derive(Clone, Debug)]
pub enum QueueAddress {
    Url(String),
    Name(String),
}

#[derive(Clone)]
pub struct Queue {
    client: Client,
    address: QueueAddress,
    resolved: Arc<OnceCell<String>>,
}

impl Queue {
    pub fn new(client: Client, address: QueueAddress) -> Self {
        Queue { client, address, resolved: Arc::new(OnceCell::new()) }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The queue's URL; looked up by name once per container when only the name is configured.
    pub async fn url(&self) -> Result<&str, BackendError> {
        let url = self
            .resolved
            .get_or_try_init(|| async {
                match &self.address {
                    QueueAddress::Url(url) => Ok(url.clone()),
                    QueueAddress::Name(name) => url_of(&self.client, name).await,
                }
            })
            .await?;
        Ok(url)
    }

    /// Enqueues on the FIFO retry queue: one message group per room keeps its messages in order; the
    /// deduplication id makes a repeated enqueue of the same operation harmless.
    pub async fn send_ordered(&self, body: String, group: &str, deduplication_id: &str) -> Result<(), BackendError> {
        self.client
            .send_message()
            .queue_url(self.url().await?)
            .message_body(body)
            .message_group_id(fifo_token(group))
            .message_deduplication_id(fifo_token(deduplication_id))
            .send()
            .await
            .map_err(|e| unavailable("sqs", e))?;
        Ok(())
    }

    /// Returns a message to the queue after `delay` (Lambda's way to back off per message).
    pub async fn retry_after(&self, receipt_handle: &str, delay: std::time::Duration) -> Result<(), BackendError> {
        self.client
            .change_message_visibility()
            .queue_url(self.url().await?)
            .receipt_handle(receipt_handle)
            .visibility_timeout(delay.as_secs().min(43_200) as i32)
            .send()
            .await
            .map_err(|e| unavailable("sqs", e))?;
        Ok(())
    }

    pub async fn check(&self) -> Result<(), BackendError> {
        self.client
            .get_queue_attributes()
            .queue_url(self.url().await?)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| unavailable("sqs", e))?;
        Ok(())
    }
}

/// The URL of the queue named `name` (SQS's `GetQueueUrl`).
pub async fn url_of(client: &Client, name: &str) -> Result<String, BackendError> {
    client
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| unavailable("sqs", e))?
        .queue_url
        .ok_or_else(|| BackendError::Unavailable { service: "sqs", detail: format!("no URL for queue {name}") })
}

/// FIFO group and deduplication ids allow at most 128 characters of `[A-Za-z0-9!-/:-@[-`{-~]` (printable ASCII):
/// anything longer or outside that is hashed.
fn fifo_token(value: &str) -> String {
    if value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic()) {
        return value.to_owned();
    }
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(value.as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn fifo_tokens_are_valid() {
        assert_eq!(super::fifo_token("!room:localhost"), "!room:localhost");
        let long = super::fifo_token(&"x".repeat(200));
        assert_eq!(long.len(), 64);
        assert_ne!(super::fifo_token("a b"), "a b");
    }
}
