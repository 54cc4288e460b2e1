//! Idempotent creation of the emulated table, key and queues (in AWS, `template.yaml` creates them).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use shared::aws::store::TTL_ATTRIBUTE;
use shared::config::Config;

/// Creates what is missing and returns the retry queue's URL.
pub async fn ensure_resources(config: &Config, sdk: &aws_config::SdkConfig) -> Result<String, String> {
    ensure_table(&aws_sdk_dynamodb::Client::new(sdk), &config.table).await?;
    ensure_key(&aws_sdk_kms::Client::new(sdk), &config.kms_key_id).await?;
    if let Some(bus) = &config.push.event_bus {
        let queue = std::env::var("OPENMEET_NOTIFICATION_QUEUE").unwrap_or_else(|_| format!("{bus}-events"));
        ensure_notification_bus(sdk, bus, &queue).await?;
    }
    let name = config.queue_name.clone().unwrap_or_else(|| "openmeet-local-retry.fifo".to_owned());
    ensure_queues(&aws_sdk_sqs::Client::new(sdk), &name, config.retry.max_attempts).await
}

async fn ensure_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), String> {
    if client.describe_table().table_name(table).send().await.is_ok() {
        return Ok(());
    }
    let key = |name: &str, kind| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
    let attribute =
        |name: &str| AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build();
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash).map_err(|e| e.to_string())?)
        .key_schema(key("sk", KeyType::Range).map_err(|e| e.to_string())?)
        .attribute_definitions(attribute("pk").map_err(|e| e.to_string())?)
        .attribute_definitions(attribute("sk").map_err(|e| e.to_string())?)
        .send()
        .await
        .map_err(|e| format!("creating table {table}: {}", e.into_service_error()))?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .send()
        .await
        .map_err(|e| format!("enabling TTL on {table}: {}", e.into_service_error()))?;
    Ok(())
}

async fn ensure_key(client: &aws_sdk_kms::Client, key_id: &str) -> Result<(), String> {
    let Some(alias) = key_id.strip_prefix("alias/").map(|_| key_id) else {
        return Ok(());
    };
    let aliases = client.list_aliases().send().await.map_err(|e| format!("listing KMS aliases: {e}"))?;
    if aliases.aliases().iter().any(|a| a.alias_name() == Some(alias)) {
        return Ok(());
    }
    let key = client
        .create_key()
        .description("OpenMeet Matrix credentials (local)")
        .send()
        .await
        .map_err(|e| format!("creating KMS key: {e}"))?;
    let target = key.key_metadata().map(|m| m.key_id().to_owned()).ok_or("KMS returned no key id")?;
    client
        .create_alias()
        .alias_name(alias)
        .target_key_id(target)
        .send()
        .await
        .map_err(|e| format!("creating KMS alias: {e}"))?;
    Ok(())
}

/// `openmeet-retry.fifo` → `openmeet-retry-dlq.fifo` (a FIFO queue's DLQ is FIFO too).
pub fn dlq_name(name: &str) -> String {
    match name.strip_suffix(".fifo") {
        Some(stem) => format!("{stem}-dlq.fifo"),
        None => format!("{name}-dlq"),
    }
}

async fn ensure_queues(client: &aws_sdk_sqs::Client, name: &str, max_receive_count: u32) -> Result<String, String> {
    let dlq_url = client
        .create_queue()
        .queue_name(dlq_name(name))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .map_err(|e| format!("creating DLQ: {}", e.into_service_error()))?
        .queue_url
        .ok_or("no DLQ URL")?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| format!("reading DLQ ARN: {e}"))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or("no DLQ ARN")?;
    let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}).to_string();
    let created = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.clone())
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await;
    match created {
        Ok(output) => output.queue_url.ok_or_else(|| "no queue URL".to_owned()),
        // It exists with other attributes (an older set-up): bring them in line.
        Err(error) => {
            let detail = error.into_service_error().to_string();
            let url = shared::aws::queue::url_of(client, name)
                .await
                .map_err(|_| format!("creating retry queue {name}: {detail}"))?;
            client
                .set_queue_attributes()
                .queue_url(&url)
                .attributes(QueueAttributeName::RedrivePolicy, redrive)
                .attributes(QueueAttributeName::VisibilityTimeout, "30")
                .send()
                .await
                .map_err(|e| format!("updating retry queue {name}: {}", e.into_service_error()))?;
            Ok(url)
        }
    }
}

/// The event bus of chat notifications, and (locally only) a rule copying every `openmeet.chat` event to a queue,
/// where the push tests read what the gateway put. In AWS, OpenMeet's notification service subscribes its own rule.
async fn ensure_notification_bus(sdk: &aws_config::SdkConfig, bus: &str, queue: &str) -> Result<(), String> {
    let events = aws_sdk_eventbridge::Client::new(sdk);
    if let Err(error) = events.create_event_bus().name(bus).send().await {
        let error = error.into_service_error();
        if !error.is_resource_already_exists_exception() {
            return Err(format!("creating event bus {bus}: {error}"));
        }
    }
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let url = sqs
        .create_queue()
        .queue_name(queue)
        .send()
        .await
        .map_err(|e| format!("creating queue {queue}: {}", e.into_service_error()))?
        .queue_url
        .ok_or("no notification queue URL")?;
    // Every test's events land here too: keep them a minute only (tests route their tenant's to a queue of their own).
    sqs.set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::MessageRetentionPeriod, "60")
        .send()
        .await
        .map_err(|e| format!("setting the notification queue's retention: {}", e.into_service_error()))?;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| format!("reading the notification queue's ARN: {e}"))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or("no notification queue ARN")?;
    let rule = format!("{bus}-to-queue");
    let pattern = serde_json::json!({"source": [shared::domain::push::notify::SOURCE]}).to_string();
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(bus)
        .event_pattern(pattern)
        .send()
        .await
        .map_err(|e| format!("creating rule {rule}: {}", e.into_service_error()))?;
    let target =
        aws_sdk_eventbridge::types::Target::builder().id("push-tests").arn(arn).build().map_err(|e| e.to_string())?;
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(bus)
        .targets(target)
        .send()
        .await
        .map_err(|e| format!("targeting {queue}: {}", e.into_service_error()))?;
    Ok(())
}
