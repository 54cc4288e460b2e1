//! The run record in DynamoDB (the functions' table): what a run was given, what it finished, what failed, and the
//! state of everything it changed as it was before (so `rollback` restores exactly that). Items:
//!
//! | pk | sk | holds |
//! |---|---|---|
//! | `CUTOVER#{run}` | `META` | snapshot path and digest, state, start/finish, per-phase counts and seconds |
//! | `CUTOVER#{run}` | `{kind}{entity}` | [`CutoverEntry::Before`]: the entity before the run first touched it (written before any change); `Done`: it is as the snapshot says; `Failed`: its last failure |
//! | `CUTOVER#SNAPSHOT#{digest}` | `RUN` | the unfinished run of that snapshot, which a re-run continues |
//! | `CUTOVER#RUNS` | `{started}#{run}` | the index `status` lists |
//!
//! Markers are written in batches by one recorder task; a `BEFORE` record is acknowledged before its change starts.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use shared::aws::cutover_runs::{CutoverRuns, Entry, RunMeta, RunState};
use shared::aws::keys::{CutoverEntity, CutoverEntry};
use shared::aws::store::{self, Store};
use tokio::sync::{mpsc, oneshot};

pub type Error = shared::error::BackendError;

/// The run a `run` of this snapshot continues (its id, its summary and `true`), or a new one (`base`: the run it
/// compares with, recorded in its summary).
pub async fn open_run(
    store: &Store,
    path: &str,
    digest: &str,
    tenants: &[String],
    base: Option<&str>,
) -> Result<(String, RunMeta, bool), Error> {
    let runs = CutoverRuns(store);
    if let Some(run) = runs.run_of_snapshot(digest).await?
        && let Some(meta) = runs.meta(&run).await?
        && meta.state.is_some_and(RunState::continues)
    {
        return Ok((run, meta, true));
    }
    let run = format!("{}-{}", chrono_like_stamp(), &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let started = store::now_secs();
    let meta = RunMeta {
        snapshot: Some(path.to_owned()),
        digest: Some(digest.to_owned()),
        state: Some(RunState::Running),
        started_at: Some(started),
        tenants: Some(tenants.join(",")),
        base: base.map(str::to_owned),
        ..RunMeta::default()
    };
    runs.start(&run, &meta, digest, started).await?;
    Ok((run, meta, false))
}

/// The key of a set of tenants: SHA-256 of the sorted, comma-joined ids (a key stays short for any number).
pub fn tenants_key(tenants: &[String]) -> String {
    let mut sorted: Vec<&str> = tenants.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    hex::encode(Sha256::digest(sorted.join(",").as_bytes()))
}

/// The newest complete run of exactly these tenants (one read: a pointer each complete run moves to itself, and a
/// rollback moves back to the run's own base). Runs recorded before fingerprints never set it.
pub async fn newest_base(store: &Store, tenants: &[String]) -> Result<Option<String>, Error> {
    CutoverRuns(store).base_of(&tenants_key(tenants)).await
}

/// After a run completes it is the tenants' newest base; after a rollback of that run, its own base is again.
async fn move_base(store: &Store, run: &str, meta: &RunMeta, state: RunState) -> Result<(), Error> {
    let Some(tenants) = meta.tenants.as_deref().filter(|t| !t.is_empty()) else { return Ok(()) };
    let tenants: Vec<String> = tenants.split(',').map(str::to_owned).collect();
    let key = tenants_key(&tenants);
    let runs = CutoverRuns(store);
    match state {
        RunState::Complete => runs.set_base(&key, Some(run)).await,
        RunState::RolledBack | RunState::RollbackFailed if runs.base_of(&key).await?.as_deref() == Some(run) => {
            let previous = match meta.base.as_deref() {
                Some(base) => runs.meta(base).await?.filter(|m| m.state == Some(RunState::Complete)).map(|_| base),
                None => None,
            };
            runs.set_base(&key, previous).await
        }
        _ => Ok(()),
    }
}

/// A run's `Done` entities with the fingerprint each was done with (entities done without one are left out: a
/// delta cannot tell whether they changed).
pub async fn fingerprints(store: &Store, run: &str) -> Result<HashMap<String, String>, Error> {
    let done = CutoverRuns(store).values::<String>(run, CutoverEntry::Done).await?;
    Ok(done.into_iter().filter_map(|(entity, print)| Some((entity, print?))).collect())
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

pub async fn meta(store: &Store, run: &str) -> Result<Option<RunMeta>, Error> {
    CutoverRuns(store).meta(run).await
}

/// Sets the attributes `update` holds on the run's META item.
pub async fn set_meta(store: &Store, run: &str, update: &RunMeta) -> Result<(), Error> {
    CutoverRuns(store).update_meta(run, update).await
}

/// Marks the run's state. A complete or rolled-back run is no longer what a run of its snapshot continues; a failed
/// one is (its failures are redone, its done entities skipped, its `Before` records kept).
pub async fn finish(store: &Store, run: &str, digest: &str, state: RunState) -> Result<(), Error> {
    let update = RunMeta { state: Some(state), finished_at: Some(store::now_secs()), ..RunMeta::default() };
    set_meta(store, run, &update).await?;
    if let Some(meta) = meta(store, run).await? {
        move_base(store, run, &meta, state).await?;
    }
    if !state.continues() {
        CutoverRuns(store).forget_snapshot(digest).await?;
    }
    Ok(())
}

/// The entity keys of a run's items of one kind.
pub async fn keys(store: &Store, run: &str, kind: CutoverEntry) -> Result<HashSet<String>, Error> {
    CutoverRuns(store).entities(run, kind).await
}

/// A run's items of one kind with their values (`None`: absent or not a `T`).
pub async fn values<T: DeserializeOwned>(
    store: &Store,
    run: &str,
    kind: CutoverEntry,
) -> Result<Vec<(String, Option<T>)>, Error> {
    CutoverRuns(store).values(run, kind).await
}

/// A run's items of one kind with their values as stored (JSON text).
pub async fn documents(store: &Store, run: &str, kind: CutoverEntry) -> Result<Vec<(String, Option<String>)>, Error> {
    CutoverRuns(store).documents(run, kind).await
}

/// The runs, oldest first.
pub async fn runs(store: &Store) -> Result<Vec<String>, Error> {
    CutoverRuns(store).runs().await
}

enum Write {
    Entry(Entry, Option<oneshot::Sender<Result<(), String>>>),
    Flush(oneshot::Sender<Result<(), String>>),
}

/// Writes a run's items in batches from one task. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    sender: mpsc::UnboundedSender<Write>,
}

impl Recorder {
    pub fn start(store: Store, run: &str) -> Recorder {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Write>();
        let run_id = run.to_owned();
        tokio::spawn(async move {
            let run = run_id;
            while let Some(first) = receiver.recv().await {
                let mut batch = vec![first];
                while batch.len() < 100
                    && let Ok(next) = receiver.try_recv()
                {
                    batch.push(next);
                }
                let mut entries = Vec::new();
                let mut waiting = Vec::new();
                for write in batch {
                    match write {
                        Write::Entry(entry, ack) => {
                            entries.push(entry);
                            waiting.extend(ack);
                        }
                        Write::Flush(ack) => waiting.push(ack),
                    }
                }
                // One batch may not write a key twice (a checkpoint is rewritten often): the latest write wins.
                let mut seen = HashSet::new();
                entries.reverse();
                entries.retain(|entry: &Entry| seen.insert((entry.kind, entry.entity.clone())));
                entries.reverse();
                let outcome = if entries.is_empty() {
                    Ok(())
                } else {
                    CutoverRuns(&store).put_entries(&run, entries).await.map_err(|e| e.to_string())
                };
                for ack in waiting {
                    let _ = ack.send(outcome.clone());
                }
            }
        });
        Recorder { sender }
    }

    fn item(&self, kind: CutoverEntry, entity: &CutoverEntity, value: Option<String>) -> Entry {
        Entry { kind, entity: entity.to_string(), value }
    }

    /// `value` as the JSON an entry stores.
    fn json<T: Serialize>(value: &T) -> Result<String, String> {
        serde_json::to_string(value).map_err(|e| format!("unrecordable value: {e}"))
    }

    async fn acknowledged(&self, item: Entry) -> Result<(), String> {
        let (ack, done) = oneshot::channel();
        self.sender.send(Write::Entry(item, Some(ack))).map_err(|_| "the recorder stopped".to_owned())?;
        done.await.map_err(|_| "the recorder stopped".to_owned())?
    }

    /// Records the entity's state before the run changes it; returns once it is stored.
    pub async fn before<T: Serialize>(&self, entity: &CutoverEntity, state: &T) -> Result<(), String> {
        self.put_acked(CutoverEntry::Before, entity, state).await
    }

    pub fn done(&self, entity: &CutoverEntity) {
        let _ = self.sender.send(Write::Entry(self.item(CutoverEntry::Done, entity, None), None));
    }

    /// Done, with the fingerprint of the snapshot input it was done with (what the next delta compares).
    pub fn done_with(&self, entity: &CutoverEntity, fingerprint: &str) {
        self.put(CutoverEntry::Done, entity, &fingerprint);
    }

    pub fn failed(&self, entity: &CutoverEntity, error: &str) {
        self.put(CutoverEntry::Failed, entity, &error);
    }

    /// Stores `value` under `{kind}{entity}` (replacing it), in the next batch.
    pub fn put<T: Serialize>(&self, kind: CutoverEntry, entity: &CutoverEntity, value: &T) {
        let value = Recorder::json(value).map_err(|error| tracing::error!(%error, "not recorded")).ok();
        let _ = self.sender.send(Write::Entry(self.item(kind, entity, value), None));
    }

    /// Stores `value` under `{kind}{entity}`; returns once it is stored.
    pub async fn put_acked<T: Serialize>(
        &self,
        kind: CutoverEntry,
        entity: &CutoverEntity,
        value: &T,
    ) -> Result<(), String> {
        self.acknowledged(self.item(kind, entity, Some(Recorder::json(value)?))).await
    }

    /// Waits until everything sent so far is stored.
    pub async fn flush(&self) -> Result<(), String> {
        let (ack, done) = oneshot::channel();
        self.sender.send(Write::Flush(ack)).map_err(|_| "the recorder stopped".to_owned())?;
        done.await.map_err(|_| "the recorder stopped".to_owned())?
    }
}
