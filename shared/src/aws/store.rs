//! DynamoDB: one table, string `pk`/`sk`, a TTL attribute `expiresAt` (epoch seconds).

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::unavailable;
use crate::aws::BackendError;

pub type Item = HashMap<String, AttributeValue>;

pub const TTL_ATTRIBUTE: &str = "expiresAt";

#[derive(Clone)]
pub struct Store {
    client: Client,
    table: String,
}

/// Outcome of a first-writer-wins put.
pub enum PutOutcome {
    Written,
    /// Someone wrote the key first; this is their item.
    Exists(Item),
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Store { client, table: table.into() }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, BackendError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("dynamodb", e))?;
        // DynamoDB deletes expired items hours late: an expired item is treated as absent.
        Ok(output.item.filter(|item| !is_expired(item, now_secs())))
    }

    pub async fn put(&self, item: Item) -> Result<(), BackendError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| unavailable("dynamodb", e))?;
        Ok(())
    }

    /// Writes many items, 25 per request (DynamoDB's limit), re-sending what the service left unprocessed.
    pub async fn put_batch(&self, items: Vec<Item>) -> Result<(), BackendError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        let mut pending = Vec::with_capacity(items.len());
        for item in items {
            let put = PutRequest::builder().set_item(Some(item)).build().map_err(|e| unavailable("dynamodb", e))?;
            pending.push(WriteRequest::builder().put_request(put).build());
        }
        let mut attempt = 0u32;
        while !pending.is_empty() {
            let rest = pending.split_off(pending.len().min(25));
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.table, std::mem::replace(&mut pending, rest))
                .send()
                .await
                .map_err(|e| unavailable("dynamodb", e))?;
            if let Some(mut left) = output.unprocessed_items.and_then(|mut by_table| by_table.remove(&self.table)) {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt.min(6))).await;
                pending.append(&mut left);
            }
        }
        Ok(())
    }

    /// Writes `item` unless its key already holds a live item; returns the winner otherwise.
    pub async fn put_if_absent(&self, item: Item) -> Result<PutOutcome, BackendError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #ttl < :now")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", AttributeValue::N(now_secs().to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(PutOutcome::Written),
            Err(error) => {
                let service_error = error.into_service_error();
                if let aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(failed) =
                    &service_error
                {
                    return Ok(PutOutcome::Exists(failed.item.clone().unwrap_or_default()));
                }
                Err(unavailable("dynamodb", service_error))
            }
        }
    }

    /// Sets `expiresAt` of an existing item.
    pub async fn set_expiry(&self, pk: &str, sk: &str, expires_at: u64) -> Result<(), BackendError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .update_expression("SET #ttl = :expires")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":expires", AttributeValue::N(expires_at.to_string()))
            .send()
            .await;
        applied(result).map(|_| ())
    }

    /// Adds `delta` to a numeric attribute atomically (creating the item and attribute when missing).
    pub async fn add(&self, pk: &str, sk: &str, attribute: &str, delta: i64) -> Result<(), BackendError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .update_expression("ADD #a :d")
            .expression_attribute_names("#a", attribute)
            .expression_attribute_values(":d", AttributeValue::N(delta.to_string()))
            .send()
            .await
            .map_err(|e| unavailable("dynamodb", e))?;
        Ok(())
    }

    /// Counts one more in the item's `n` unless it already reached `limit`: the count after it, or `None` when it
    /// had (nothing changes). Sets the item's expiry, creating it when missing.
    pub async fn count_below(
        &self,
        pk: &str,
        sk: &str,
        limit: u64,
        expires_at: u64,
    ) -> Result<Option<u64>, BackendError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .update_expression("SET #ttl = :expires ADD #n :one")
            .condition_expression("attribute_not_exists(#n) OR #n < :limit")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_names("#n", "n")
            .expression_attribute_values(":expires", AttributeValue::N(expires_at.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":limit", AttributeValue::N(limit.to_string()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Some(output.attributes.as_ref().and_then(|item| number(item, "n")).unwrap_or(limit))),
            Err(error) => applied(Err(error)).map(|_| None),
        }
    }

    /// Raises a numeric attribute to `value` unless it already holds a larger one (last writer by version wins).
    pub async fn raise(&self, pk: &str, sk: &str, attribute: &str, value: u64) -> Result<(), BackendError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .update_expression("SET #a = :v")
            .condition_expression("attribute_not_exists(#a) OR #a < :v")
            .expression_attribute_names("#a", attribute)
            .expression_attribute_values(":v", AttributeValue::N(value.to_string()))
            .send()
            .await;
        applied(result).map(|_| ())
    }

    /// Sets attributes of an item.
    pub async fn set(&self, pk: &str, sk: &str, values: &[(&str, AttributeValue)]) -> Result<(), BackendError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()));
        let mut assignments = Vec::new();
        let request = assign(request, values, &mut assignments);
        request
            .update_expression(format!("SET {}", assignments.join(", ")))
            .send()
            .await
            .map_err(|e| unavailable("dynamodb", e))?;
        Ok(())
    }

    pub async fn remove_attribute(&self, pk: &str, sk: &str, attribute: &str) -> Result<(), BackendError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .update_expression("REMOVE #a")
            .expression_attribute_names("#a", attribute)
            .send()
            .await
            .map_err(|e| unavailable("dynamodb", e))?;
        Ok(())
    }

    pub async fn delete(&self, pk: &str, sk: &str) -> Result<(), BackendError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .send()
            .await
            .map_err(|e| unavailable("dynamodb", e))?;
        Ok(())
    }

    /// The sort keys (after `prefix`) of a partition's items whose numeric `attribute` is above `floor`.
    pub async fn keys_above(
        &self,
        pk: &str,
        prefix: &str,
        attribute: &str,
        floor: u64,
    ) -> Result<Vec<String>, BackendError> {
        let keys = self.sort_keys(pk, Some(prefix), Some((attribute, floor))).await?;
        Ok(keys.into_iter().filter_map(|sk| sk.strip_prefix(prefix).map(str::to_owned)).collect())
    }

    /// Deletes every item of a partition (a user's profile and credentials, say).
    pub async fn delete_partition(&self, pk: &str) -> Result<usize, BackendError> {
        let keys = self.sort_keys(pk, None, None).await?;
        for sk in &keys {
            self.delete(pk, sk).await?;
        }
        Ok(keys.len())
    }

    /// The items of a partition whose sort key starts with `prefix`, every page of them.
    pub async fn items(&self, pk: &str, prefix: &str) -> Result<Vec<Item>, BackendError> {
        let now = now_secs();
        let items = self.query_all(pk, Some(prefix), None, None).await?;
        Ok(items.into_iter().filter(|item| !is_expired(item, now)).collect())
    }

    /// The sort keys of a partition (those starting with `prefix`; of items whose numeric attribute is above a
    /// floor), every page of them.
    async fn sort_keys(
        &self,
        pk: &str,
        prefix: Option<&str>,
        above: Option<(&str, u64)>,
    ) -> Result<Vec<String>, BackendError> {
        let items = self.query_all(pk, prefix, above, Some("sk")).await?;
        Ok(items
            .iter()
            .filter_map(|item| match item.get("sk") {
                Some(AttributeValue::S(sk)) => Some(sk.clone()),
                _ => None,
            })
            .collect())
    }

    async fn query_all(
        &self,
        pk: &str,
        prefix: Option<&str>,
        above: Option<(&str, u64)>,
        projection: Option<&str>,
    ) -> Result<Vec<Item>, BackendError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
                .set_projection_expression(projection.map(str::to_owned))
                .set_exclusive_start_key(start.take());
            query = match prefix {
                Some(prefix) => query
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned())),
                None => query.key_condition_expression("pk = :pk"),
            };
            if let Some((attribute, floor)) = above {
                query = query
                    .filter_expression("#value > :floor")
                    .expression_attribute_names("#value", attribute)
                    .expression_attribute_values(":floor", AttributeValue::N(floor.to_string()));
            }
            let page = query.send().await.map_err(|e| unavailable("dynamodb", e))?;
            items.extend(page.items().iter().cloned());
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    pub async fn check(&self) -> Result<(), BackendError> {
        self.client.describe_table().table_name(&self.table).send().await.map_err(|e| unavailable("dynamodb", e))?;
        Ok(())
    }
}

/// Whether a conditional update was applied: `false` when its condition did not hold (nothing changed), which is
/// no failure; anything else that went wrong is.
pub fn applied(
    result: Result<UpdateItemOutput, SdkError<UpdateItemError, HttpResponse>>,
) -> Result<bool, BackendError> {
    match result {
        Ok(_) => Ok(true),
        Err(error) => {
            let service_error = error.into_service_error();
            if service_error.is_conditional_check_failed_exception() {
                Ok(false)
            } else {
                Err(unavailable("dynamodb", service_error))
            }
        }
    }
}

/// Adds `#n{i} = :v{i}` to `assignments` for each of `values`, with their names and values bound on `request`.
pub fn assign(
    mut request: UpdateItemFluentBuilder,
    values: &[(&str, AttributeValue)],
    assignments: &mut Vec<String>,
) -> UpdateItemFluentBuilder {
    for (index, (name, value)) in values.iter().enumerate() {
        assignments.push(format!("#n{index} = :v{index}"));
        request = request
            .expression_attribute_names(format!("#n{index}"), *name)
            .expression_attribute_values(format!(":v{index}"), value.clone());
    }
    request
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn is_expired(item: &Item, now: u64) -> bool {
    number(item, TTL_ATTRIBUTE).is_some_and(|expires| expires <= now)
}

pub fn string(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value.clone()),
        _ => None,
    }
}

pub fn number(item: &Item, name: &str) -> Option<u64> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value.parse().ok(),
        _ => None,
    }
}

pub fn number_signed(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value.parse().ok(),
        _ => None,
    }
}

pub fn binary(item: &Item, name: &str) -> Option<Vec<u8>> {
    match item.get(name) {
        Some(AttributeValue::B(value)) => Some(value.clone().into_inner()),
        _ => None,
    }
}

/// Starts an item with its key.
pub fn keyed(pk: &str, sk: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_checked_on_read() {
        let mut item = keyed("p", "s");
        assert!(!is_expired(&item, 100));
        item.insert(TTL_ATTRIBUTE.into(), AttributeValue::N("100".into()));
        assert!(is_expired(&item, 100));
        assert!(!is_expired(&item, 99));
    }

    #[test]
    fn typed_readers_ignore_other_types() {
        let mut item = keyed("p", "s");
        item.insert("n".into(), AttributeValue::S("12".into()));
        assert_eq!(number(&item, "n"), None);
        assert_eq!(string(&item, "n").as_deref(), Some("12"));
    }
}
