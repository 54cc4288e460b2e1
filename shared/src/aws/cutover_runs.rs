//! The records of cutover runs and Zulip imports (the `cutover` tool decides what they mean): a run's summary
//! (`META`), its entries (one [`CutoverEntry`] kind each, with an optional JSON `value`), the pointer from a
//! snapshot to its unfinished run and the index of runs. Keys in [`crate::aws::keys`].

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use serde::de::value::{Error as ValueError, StrDeserializer};
use serde::{Deserialize, Deserializer, Serialize};

use super::keys::{self, CutoverEntry};
use super::records::encode;
use super::store::{self, Store};
use crate::aws::BackendError;

/// A run's summary. Every attribute is optional: a write sets the ones it holds and leaves the others.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunMeta {
    /// The snapshot's path (a cutover run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// A state this version does not know reads as none.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "known_state")]
    pub state: Option<RunState>,
    /// Epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
    /// Per-phase counts and seconds, JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phases: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<u64>,
    /// Stored as a number with millisecond precision; read as a number or as text.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "number_or_text")]
    pub seconds: Option<f64>,
    /// The export directory (a Zulip import).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The snapshot's tenants, comma-separated (a cutover run): what a later delta run's base must cover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenants: Option<String>,
    /// The run a delta run compared its snapshot with (its unchanged entities were skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
}

/// Where a run or an import stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunState {
    Running,
    /// Stopped on purpose after a phase (`run --until`): the next run of the snapshot continues it.
    Staged,
    Complete,
    Failed,
    /// An import stopped on request (SIGINT/SIGTERM): running it again continues.
    Interrupted,
    RolledBack,
    RollbackFailed,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Staged => "staged",
            RunState::Complete => "complete",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
            RunState::RolledBack => "rolledBack",
            RunState::RollbackFailed => "rollbackFailed",
        }
    }

    /// A run in this state is what the next run of its snapshot continues (a failed one: its failures are redone).
    pub fn continues(self) -> bool {
        matches!(self, RunState::Running | RunState::Staged | RunState::Failed)
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state as stored (text), or none when this version does not know it.
fn known_state<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<RunState>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?;
    Ok(text.and_then(|text| RunState::deserialize(StrDeserializer::<ValueError>::new(&text)).ok()))
}

fn number_or_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Number(f64),
        Text(String),
    }
    Ok(match Seconds::deserialize(deserializer)? {
        Seconds::Number(seconds) => Some(seconds),
        Seconds::Text(text) => text.parse().ok(),
    })
}

/// Rounds to milliseconds, as summaries store seconds.
pub fn milliseconds(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// One entry of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: CutoverEntry,
    pub entity: String,
    /// JSON.
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct EntryRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    /// Epoch seconds of the write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<u64>,
}

/// The snapshot pointer and the index entry: a run id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RunRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run: Option<String>,
}

/// The cutover runs repository over the table.
#[derive(Clone, Copy)]
pub struct CutoverRuns<'a>(pub &'a Store);

impl CutoverRuns<'_> {
    /// The run recorded as the snapshot's unfinished one.
    pub async fn run_of_snapshot(&self, digest: &str) -> Result<Option<String>, BackendError> {
        let pointer: Option<RunRef> = self.0.record(&keys::cutover_snapshot(digest)).await?;
        Ok(pointer.and_then(|pointer| pointer.run))
    }

    /// Records a new run: its summary, the snapshot's pointer to it and its index entry.
    pub async fn start(&self, run: &str, meta: &RunMeta, digest: &str, started: u64) -> Result<(), BackendError> {
        self.0.put_record(&keys::cutover_meta(run), meta).await?;
        let reference = RunRef { run: Some(run.to_owned()) };
        self.0.put_record(&keys::cutover_snapshot(digest), &reference).await?;
        self.0.put_record(&keys::cutover_index(started, run), &reference).await
    }

    /// The newest complete run of a set of tenants (`tenants`: the digest the tool makes of it).
    pub async fn base_of(&self, tenants: &str) -> Result<Option<String>, BackendError> {
        let pointer: Option<RunRef> = self.0.record(&keys::cutover_base(tenants)).await?;
        Ok(pointer.and_then(|pointer| pointer.run))
    }

    /// Sets (or, with `None`, clears) the newest complete run of a set of tenants.
    pub async fn set_base(&self, tenants: &str, run: Option<&str>) -> Result<(), BackendError> {
        match run {
            Some(run) => self.0.put_record(&keys::cutover_base(tenants), &RunRef { run: Some(run.to_owned()) }).await,
            None => self.0.delete_key(&keys::cutover_base(tenants)).await,
        }
    }

    /// The snapshot no longer has an unfinished run.
    pub async fn forget_snapshot(&self, digest: &str) -> Result<(), BackendError> {
        self.0.delete_key(&keys::cutover_snapshot(digest)).await
    }

    pub async fn meta(&self, run: &str) -> Result<Option<RunMeta>, BackendError> {
        self.0.record(&keys::cutover_meta(run)).await
    }

    /// Sets the summary's attributes that `update` holds (creating the summary when missing).
    pub async fn update_meta(&self, run: &str, update: &RunMeta) -> Result<(), BackendError> {
        let key = keys::cutover_meta(run);
        let mut item = encode(&key, update)?;
        item.remove("pk");
        item.remove("sk");
        let mut values: Vec<_> = item.into_iter().collect();
        values.sort_by(|(a, _), (b, _)| a.cmp(b));
        if values.is_empty() {
            return Ok(());
        }
        let values: Vec<_> = values.iter().map(|(name, value)| (name.as_str(), value.clone())).collect();
        self.0.set(&key.pk, &key.sk, &values).await
    }

    /// Writes entries (replacing those of the same kind and entity), in batches.
    pub async fn put_entries(&self, run: &str, entries: Vec<Entry>) -> Result<(), BackendError> {
        let at = store::now_secs();
        let mut items = Vec::with_capacity(entries.len());
        for entry in entries {
            let record = EntryRecord { value: entry.value, at: Some(at) };
            items.push(encode(&keys::cutover_entry(run, entry.kind, &entry.entity), &record)?);
        }
        self.0.put_batch(items).await
    }

    /// The entities of a run's entries of one kind.
    pub async fn entities(&self, run: &str, kind: CutoverEntry) -> Result<HashSet<String>, BackendError> {
        let entries = self.0.records::<EntryRecord>(&keys::cutover_run(run), kind.prefix()).await?;
        Ok(entries.into_iter().map(|(entity, _)| entity).collect())
    }

    /// A run's entries of one kind with their values as stored (JSON text), for a reader that decides their type
    /// by the entity.
    pub async fn documents(
        &self,
        run: &str,
        kind: CutoverEntry,
    ) -> Result<Vec<(String, Option<String>)>, BackendError> {
        let entries = self.0.records::<EntryRecord>(&keys::cutover_run(run), kind.prefix()).await?;
        Ok(entries.into_iter().map(|(entity, record)| (entity, record.value)).collect())
    }

    /// A run's entries of one kind with their values (`None` when absent or not a `T`).
    pub async fn values<T: DeserializeOwned>(
        &self,
        run: &str,
        kind: CutoverEntry,
    ) -> Result<Vec<(String, Option<T>)>, BackendError> {
        let documents = self.documents(run, kind).await?;
        Ok(documents
            .into_iter()
            .map(|(entity, value)| (entity, value.and_then(|value| serde_json::from_str(&value).ok())))
            .collect())
    }

    /// The runs, oldest first.
    pub async fn runs(&self) -> Result<Vec<String>, BackendError> {
        // Start times are zero-padded to 12 digits: every index key starts with "00".
        let index = self.0.records::<RunRef>(keys::CUTOVER_RUNS, "00").await?;
        Ok(index.into_iter().filter_map(|(_, reference)| reference.run).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::records::tests::{item, round_trips};

    #[test]
    fn records_keep_the_first_versions_layout() {
        let started = [("snapshot", "/tmp/s.json"), ("digest", "d1"), ("startedAt", "n:1764000000")];
        let finished = [("state", "complete"), ("finishedAt", "n:1764000100"), ("phases", "[]"), ("total", "n:12")];
        let counted = [("failures", "n:0"), ("seconds", "n:99.5")];
        let meta = item("CUTOVER#20261126T051600-abcdef", "META", &[&started[..], &finished, &counted].concat());
        let read: RunMeta = round_trips(meta);
        assert_eq!((read.seconds, read.total, read.state), (Some(99.5), Some(12), Some(RunState::Complete)));
        let import = item("CUTOVER#ZULIP#r#acme", "META", &[("state", "running"), ("sha256", "ab")]);
        assert_eq!(round_trips::<RunMeta>(import).sha256.as_deref(), Some("ab"));
        let entry = |kind| keys::cutover_entry("r1", kind, "user:jane");
        let before = entry(CutoverEntry::Before);
        round_trips::<EntryRecord>(item(&before.pk, &before.sk, &[("value", "{}"), ("at", "n:1764000000")]));
        let done = entry(CutoverEntry::Done);
        round_trips::<EntryRecord>(item(&done.pk, &done.sk, &[("at", "n:1764000000")]));
        round_trips::<RunRef>(item("CUTOVER#RUNS", "001764000000#r1", &[("run", "r1")]));
    }

    #[test]
    fn states_are_written_as_the_first_version_wrote_them() {
        for state in
            [RunState::Running, RunState::Staged, RunState::Failed, RunState::Interrupted, RunState::RollbackFailed]
        {
            let text = serde_json::to_string(&state).expect("serialises");
            assert_eq!(text, format!("\"{state}\""));
        }
        let unknown = item("CUTOVER#r1", "META", &[("state", "paused"), ("total", "n:3")]);
        let read = crate::aws::records::decode::<RunMeta>(unknown).expect("decodes");
        assert_eq!((read.state, read.total), (None, Some(3)));
    }

    #[test]
    fn seconds_written_as_text_still_read() {
        let meta = item("CUTOVER#r1", "META", &[("seconds", "1.250")]);
        assert_eq!(crate::aws::records::decode::<RunMeta>(meta).expect("decodes").seconds, Some(1.25));
        assert_eq!(milliseconds(12.345_678), 12.346);
    }
}
