//! The run record in DynamoDB (the functions' table): what a run was given, what it finished, what failed, and the
//! state of everything it changed as it was before (so `rollback` restores exactly that). Items:
//!
//! | pk | sk | holds |
//! |---|---|---|
//! | `CUTOVER#{run}` | `META` | snapshot path and digest, state, start/finish, per-phase counts and seconds |
//! | `CUTOVER#{run}` | `BEFORE#{entity}` | the entity before the run first touched it (written before any change) |
//! | `CUTOVER#{run}` | `DONE#{entity}` | the entity is as the snapshot says |
//! | `CUTOVER#{run}` | `FAIL#{entity}` | its last failure |
//! | `CUTOVER#SNAPSHOT#{digest}` | `RUN` | the unfinished run of that snapshot, which a re-run continues |
//! | `CUTOVER#RUNS` | `{started}#{run}` | the index `status` lists |
//!
//! Markers are written in batches by one recorder task; a `BEFORE` record is acknowledged before its change starts.

use std::collections::HashSet;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use shared::aws::store::{self, Item, Store};
use tokio::sync::{mpsc, oneshot};

pub fn partition(run: &str) -> String {
    format!("CUTOVER#{run}")
}

fn snapshot_key(digest: &str) -> String {
    format!("CUTOVER#SNAPSHOT#{digest}")
}

const RUNS: &str = "CUTOVER#RUNS";

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub type Error = shared::error::BackendError;

/// The run a `run` of this snapshot continues (its id and start), or a new one.
pub async fn open_run(store: &Store, path: &str, digest: &str) -> Result<(String, u64, bool), Error> {
    if let Some(item) = store.get(&snapshot_key(digest), "RUN").await?
        && let Some(run) = store::string(&item, "run")
        && let Some(meta) = store.get(&partition(&run), "META").await?
        && matches!(store::string(&meta, "state").as_deref(), Some("running" | "failed"))
    {
        return Ok((run, store::number(&meta, "startedAt").unwrap_or(0), true));
    }
    let run = format!("{}-{}", chrono_like_stamp(), &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let started = store::now_secs();
    let mut meta = store::keyed(&partition(&run), "META");
    meta.insert("snapshot".into(), s(path));
    meta.insert("digest".into(), s(digest));
    meta.insert("state".into(), s("running"));
    meta.insert("startedAt".into(), AttributeValue::N(started.to_string()));
    store.put(meta).await?;
    let mut pointer = store::keyed(&snapshot_key(digest), "RUN");
    pointer.insert("run".into(), s(&run));
    store.put(pointer).await?;
    let mut index = store::keyed(RUNS, &format!("{started:012}#{run}"));
    index.insert("run".into(), s(&run));
    store.put(index).await?;
    Ok((run, started, false))
}

/// A sortable, readable run id prefix (UTC, seconds).
fn chrono_like_stamp() -> String {
    let secs = store::now_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}", rest / 3600, rest / 60 % 60, rest % 60)
}

pub async fn meta(store: &Store, run: &str) -> Result<Option<Item>, Error> {
    store.get(&partition(run), "META").await
}

/// Sets attributes of the run's META item.
pub async fn set_meta(store: &Store, run: &str, values: &[(&str, AttributeValue)]) -> Result<(), Error> {
    store.set(&partition(run), "META", values).await
}

/// Marks the run's state. A complete or rolled-back run is no longer what a run of its snapshot continues; a failed
/// one is (its failures are redone, its done entities skipped, its `BEFORE#` records kept).
pub async fn finish(store: &Store, run: &str, digest: &str, state: &str) -> Result<(), Error> {
    set_meta(store, run, &[("state", s(state)), ("finishedAt", AttributeValue::N(store::now_secs().to_string()))])
        .await?;
    if !matches!(state, "running" | "failed") {
        store.delete(&snapshot_key(digest), "RUN").await?;
    }
    Ok(())
}

/// The entity keys of a run's items of one kind (`BEFORE#`, `DONE#`, `FAIL#`).
pub async fn keys(store: &Store, run: &str, prefix: &str) -> Result<HashSet<String>, Error> {
    let items = store.items(&partition(run), prefix).await?;
    Ok(items.iter().filter_map(|i| store::string(i, "sk")?.strip_prefix(prefix).map(str::to_owned)).collect())
}

/// A run's items of one kind with their `value` JSON.
pub async fn values(store: &Store, run: &str, prefix: &str) -> Result<Vec<(String, Value)>, Error> {
    let items = store.items(&partition(run), prefix).await?;
    Ok(items
        .iter()
        .filter_map(|i| {
            let key = store::string(i, "sk")?.strip_prefix(prefix)?.to_owned();
            let value = serde_json::from_str(&store::string(i, "value").unwrap_or_default()).unwrap_or(Value::Null);
            Some((key, value))
        })
        .collect())
}

/// The runs, oldest first.
pub async fn runs(store: &Store) -> Result<Vec<String>, Error> {
    // Start times are zero-padded to 12 digits: every index key starts with "00".
    let items = store.items(RUNS, "00").await?;
    Ok(items.iter().filter_map(|i| store::string(i, "run")).collect())
}

enum Write {
    Item(Item, Option<oneshot::Sender<Result<(), String>>>),
    Flush(oneshot::Sender<Result<(), String>>),
}

/// Writes a run's items in batches from one task. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    run: String,
    sender: mpsc::UnboundedSender<Write>,
}

impl Recorder {
    pub fn start(store: Store, run: &str) -> Recorder {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Write>();
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = vec![first];
                while batch.len() < 100
                    && let Ok(next) = receiver.try_recv()
                {
                    batch.push(next);
                }
                let mut items = Vec::new();
                let mut waiting = Vec::new();
                for write in batch {
                    match write {
                        Write::Item(item, ack) => {
                            items.push(item);
                            waiting.extend(ack);
                        }
                        Write::Flush(ack) => waiting.push(ack),
                    }
                }
                // One batch may not write a key twice (a checkpoint is rewritten often): the latest write wins.
                let mut seen = HashSet::new();
                items.reverse();
                items.retain(|item| seen.insert(store::string(item, "sk").unwrap_or_default()));
                items.reverse();
                let outcome =
                    if items.is_empty() { Ok(()) } else { store.put_batch(items).await.map_err(|e| e.to_string()) };
                for ack in waiting {
                    let _ = ack.send(outcome.clone());
                }
            }
        });
        Recorder { run: run.to_owned(), sender }
    }

    fn item(&self, kind: &str, entity: &str, value: Option<String>) -> Item {
        let mut item = store::keyed(&partition(&self.run), &format!("{kind}{entity}"));
        if let Some(value) = value {
            item.insert("value".into(), s(value));
        }
        item.insert("at".into(), AttributeValue::N(store::now_secs().to_string()));
        item
    }

    async fn acknowledged(&self, item: Item) -> Result<(), String> {
        let (ack, done) = oneshot::channel();
        self.sender.send(Write::Item(item, Some(ack))).map_err(|_| "the recorder stopped".to_owned())?;
        done.await.map_err(|_| "the recorder stopped".to_owned())?
    }

    /// Records the entity's state before the run changes it; returns once it is stored.
    pub async fn before(&self, entity: &str, state: &Value) -> Result<(), String> {
        self.acknowledged(self.item("BEFORE#", entity, Some(state.to_string()))).await
    }

    pub fn done(&self, entity: &str) {
        let _ = self.sender.send(Write::Item(self.item("DONE#", entity, None), None));
    }

    pub fn failed(&self, entity: &str, error: &str) {
        let _ = self.sender.send(Write::Item(self.item("FAIL#", entity, Some(Value::from(error).to_string())), None));
    }

    /// Stores `value` under `{kind}{entity}` (replacing it), in the next batch.
    pub fn put(&self, kind: &str, entity: &str, value: &Value) {
        let _ = self.sender.send(Write::Item(self.item(kind, entity, Some(value.to_string())), None));
    }

    /// Stores `value` under `{kind}{entity}`; returns once it is stored.
    pub async fn put_acked(&self, kind: &str, entity: &str, value: &Value) -> Result<(), String> {
        self.acknowledged(self.item(kind, entity, Some(value.to_string()))).await
    }

    /// Waits until everything sent so far is stored.
    pub async fn flush(&self) -> Result<(), String> {
        let (ack, done) = oneshot::channel();
        self.sender.send(Write::Flush(ack)).map_err(|_| "the recorder stopped".to_owned())?;
        done.await.map_err(|_| "the recorder stopped".to_owned())?
    }
}
