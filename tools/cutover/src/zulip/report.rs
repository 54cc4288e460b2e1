//! The import's report: per stream what was imported, carried and skipped, as JSON (`--json`) and as text.

use std::collections::BTreeMap;

use serde::Serialize;
use shared::aws::cutover_runs::RunState;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamReport {
    pub stream: String,
    pub kind: &'static str,
    pub slug: String,
    pub room_id: String,
    /// Messages of the stream in the export.
    pub in_export: u64,
    /// Imported so far (every run of this import), and by this run.
    pub messages: u64,
    pub imported_now: u64,
    pub threads: u64,
    pub reactions: u64,
    pub files: u64,
    pub edited: u64,
    /// Edits and deletions made in Zulip after an earlier import, carried by this run.
    pub edits_carried: u64,
    pub deletions_carried: u64,
    pub skipped: BTreeMap<String, u64>,
    /// `complete`, `interrupted` or `failed`.
    pub state: RunState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_room: Option<super::history_room::HistoryRoomReport>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub import_id: String,
    pub export: String,
    pub sha256: String,
    pub tenant: String,
    pub state: RunState,
    pub streams: Vec<StreamReport>,
    /// Streams of the export the mapping leaves out, with their message counts (not imported).
    pub unmapped_streams: BTreeMap<String, u64>,
    /// Direct messages (not in a stream): not imported.
    pub direct_messages: u64,
    pub placeholders_created: u64,
    pub imported_now: u64,
    pub seconds: f64,
    pub messages_per_second: f64,
}

/// The report as text.
pub fn render(report: &ImportReport) -> String {
    let mut text = format!(
        "import {} of {} ({}): {}\n  export sha256 {}\n",
        report.import_id, report.export, report.tenant, report.state, report.sha256
    );
    for s in &report.streams {
        text.push_str(&format!(
            "  {:20} → {}/{}: {} of {} messages ({} now), {} threads, {} reactions, {} files, {} edited, \
             {} edits and {} deletions carried, {}\n",
            s.stream,
            s.kind,
            s.slug,
            s.messages,
            s.in_export,
            s.imported_now,
            s.threads,
            s.reactions,
            s.files,
            s.edited,
            s.edits_carried,
            s.deletions_carried,
            s.state
        ));
        for (reason, count) in &s.skipped {
            text.push_str(&format!("      skipped {count}: {reason}\n"));
        }
        if let Some(error) = &s.error {
            text.push_str(&format!("      error: {error}\n"));
        }
        text.push_str(&super::history_room::render(s.history_room.as_ref()));
    }
    for (stream, count) in &report.unmapped_streams {
        text.push_str(&format!("  not mapped: stream {stream:?} ({count} messages)\n"));
    }
    if report.direct_messages > 0 {
        text.push_str(&format!("  not imported: {} direct messages\n", report.direct_messages));
    }
    text.push_str(&format!(
        "  {} messages in {:.1}s ({:.1}/s), {} placeholder users\n",
        report.imported_now, report.seconds, report.messages_per_second, report.placeholders_created
    ));
    text
}
