//! Typed records over the store: a repository describes its item as a `#[derive(Serialize, Deserialize)]` struct
//! (attribute names in camelCase, optional attributes skipped when absent) and converts it with `serde_dynamo`, so
//! no domain code sees an `AttributeValue`. The key (`pk`, `sk`) comes from [`crate::aws::keys`], never from the
//! record: a record's struct holds its other attributes only (the key attributes are ignored on reading).

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::keys::Key;
use super::store::{self, Item, PutOutcome, Store};
use crate::aws::BackendError;

fn corrupt(error: serde_dynamo::Error) -> BackendError {
    BackendError::Corrupt { service: "dynamodb", detail: format!("record: {error}") }
}

/// The item of `record` under `key`.
pub fn encode<T: Serialize>(key: &Key, record: &T) -> Result<Item, BackendError> {
    let mut item: Item = serde_dynamo::to_item(record).map_err(corrupt)?;
    item.insert("pk".into(), AttributeValue::S(key.pk.clone()));
    item.insert("sk".into(), AttributeValue::S(key.sk.clone()));
    Ok(item)
}

/// The record an item holds (its key attributes and unknown attributes ignored).
pub fn decode<T: DeserializeOwned>(item: Item) -> Result<T, BackendError> {
    serde_dynamo::from_item(item).map_err(corrupt)
}

/// An item's sort key.
pub fn sort_key(item: &Item) -> Option<String> {
    store::string(item, "sk")
}

impl Store {
    /// The live record under `key`.
    pub async fn record<T: DeserializeOwned>(&self, key: &Key) -> Result<Option<T>, BackendError> {
        self.get(&key.pk, &key.sk).await?.map(decode).transpose()
    }

    /// Writes (replaces) the record under `key`.
    pub async fn put_record<T: Serialize>(&self, key: &Key, record: &T) -> Result<(), BackendError> {
        self.put(encode(key, record)?).await
    }

    /// Writes the record unless `key` holds a live one; `Some(theirs)` when someone wrote it first.
    pub async fn put_record_if_absent<T: Serialize + DeserializeOwned>(
        &self,
        key: &Key,
        record: &T,
    ) -> Result<Option<T>, BackendError> {
        match self.put_if_absent(encode(key, record)?).await? {
            PutOutcome::Written => Ok(None),
            PutOutcome::Exists(theirs) => decode(theirs).map(Some),
        }
    }

    /// The live records of a partition whose sort key starts with `prefix`, with their sort key after `prefix`.
    /// An item that is not such a record is skipped (and logged), as a reader of single attributes would.
    pub async fn records<T: DeserializeOwned>(&self, pk: &str, prefix: &str) -> Result<Vec<(String, T)>, BackendError> {
        let mut records = Vec::new();
        for item in self.items(pk, prefix).await? {
            let Some(rest) = sort_key(&item).and_then(|sk| sk.strip_prefix(prefix).map(str::to_owned)) else {
                continue;
            };
            match decode(item) {
                Ok(record) => records.push((rest, record)),
                Err(error) => tracing::warn!(%error, "unreadable record skipped"),
            }
        }
        Ok(records)
    }

    pub async fn delete_key(&self, key: &Key) -> Result<(), BackendError> {
        self.delete(&key.pk, &key.sk).await
    }
}

/// A record without attributes of its own (a marker, an index entry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Bare {}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An item as a writer of single attributes made it: `S` for text, `N` for numbers (`n:` prefix).
    pub(crate) fn item(pk: &str, sk: &str, attributes: &[(&str, &str)]) -> Item {
        let mut item = store::keyed(pk, sk);
        for (name, value) in attributes {
            let value = match value.strip_prefix("n:") {
                Some(number) => AttributeValue::N(number.to_owned()),
                None => AttributeValue::S((*value).to_owned()),
            };
            item.insert((*name).to_owned(), value);
        }
        item
    }

    /// Item → record → item gives the item back, key included.
    pub(crate) fn round_trips<T: Serialize + DeserializeOwned>(item: Item) -> T {
        let key = Key { pk: store::string(&item, "pk").expect("pk"), sk: store::string(&item, "sk").expect("sk") };
        let record: T = decode(item.clone()).expect("decodes");
        assert_eq!(encode(&key, &record).expect("encodes"), item);
        record
    }

    #[test]
    fn a_bare_record_is_its_key() {
        round_trips::<Bare>(item("p", "s", &[]));
    }
}
