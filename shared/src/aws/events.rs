//! The event bus (EventBridge): OpenMeet's own notification events leave the chat backbone here. One entry per
//! `PutEvents` call; an entry the bus refuses is a failure of the whole call (the caller answers 5xx and the
//! homeserver retries the notify).

use super::{BackendError, unavailable};

/// One event for the bus: `detail` is JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusEvent {
    pub source: &'static str,
    pub detail_type: &'static str,
    pub detail: String,
}

/// The bus a function publishes to, built once per container.
#[derive(Clone)]
pub struct EventBus {
    client: aws_sdk_eventbridge::Client,
    name: String,
}

impl EventBus {
    pub fn new(client: aws_sdk_eventbridge::Client, name: impl Into<String>) -> Self {
        EventBus { client, name: name.into() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Puts one event on the bus.
    pub async fn put(&self, event: &BusEvent) -> Result<(), BackendError> {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&self.name)
            .source(event.source)
            .detail_type(event.detail_type)
            .detail(&event.detail)
            .build();
        let output = self.client.put_events().entries(entry).send().await.map_err(|e| unavailable("eventbridge", e))?;
        if output.failed_entry_count() > 0 {
            let code = output.entries().first().and_then(|e| e.error_code()).unwrap_or("unknown");
            return Err(BackendError::Unavailable { service: "eventbridge", detail: format!("entry refused: {code}") });
        }
        Ok(())
    }
}
