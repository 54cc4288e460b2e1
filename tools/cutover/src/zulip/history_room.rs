//! `import-zulip --history-room STREAM`: that stream's history goes into its live room's linked history room
//! (`shared::domain::history_import::history_room`, docs/adr/0010-history-before-live.md) instead of the live room.
//!
//! Before any write the existing history rooms are found (a read) and take the live rooms' place in the import's
//! targets, so their checkpoints and the live check apply to them; after the check the history rooms that will get
//! messages are created or opened; a stream whose import completes closes and links its history room.

use std::collections::{BTreeSet, HashMap};

use ruma::OwnedRoomId;
use serde::Serialize;
use shared::App;
use shared::aws::cutover_runs::RunState;
use shared::domain::history_import::history_room::{self, HistoryRoom};

use super::export::Malformed;
use super::import::{ImportError, ImportReport, Prepared, unavailable};
use super::mapping::{Mapping, StreamTarget};
use crate::exec::with_retries;

/// A stream's history room, as reported.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryRoomReport {
    pub room_id: String,
    pub alias: String,
    pub live_room_id: String,
    /// Created by this run.
    pub created: bool,
    /// Closed (read-only, open to the live room's members) and linked from the live room and its space.
    pub linked: bool,
}

impl Prepared {
    /// Names the streams for `--history-room` (each must be mapped).
    pub fn with_history_rooms(mut self, streams: &[String]) -> Result<Prepared, Malformed> {
        self.history_streams = check_streams(&self.mapping, streams)?;
        Ok(self)
    }
}

/// The streams named by `--history-room`, checked against the mapping: each must be a mapped stream.
pub fn check_streams(mapping: &Mapping, names: &[String]) -> Result<BTreeSet<i64>, Malformed> {
    names
        .iter()
        .map(|name| {
            mapping.streams.iter().find(|t| t.stream == *name).map(|t| t.stream_id).ok_or_else(|| {
                Malformed(format!("--history-room {name:?}: not a stream of the mapping (names are case-sensitive)"))
            })
        })
        .collect()
}

/// The named streams' targets, redirected to their existing history rooms (reads only). Answers the live room of
/// every named stream and the streams whose history room does not exist yet.
pub async fn redirect(
    app: &'static App,
    mapping: &Mapping,
    named: &BTreeSet<i64>,
    targets: &mut [(StreamTarget, OwnedRoomId)],
) -> Result<(HashMap<i64, OwnedRoomId>, BTreeSet<i64>), Malformed> {
    let mut live_rooms = HashMap::new();
    let mut missing = BTreeSet::new();
    for (target, room_id) in targets.iter_mut().filter(|(t, _)| named.contains(&t.stream_id)) {
        live_rooms.insert(target.stream_id, room_id.clone());
        let found = history_room::find(app, &mapping.tenant, target.kind, &target.slug).await;
        match found.map_err(|e| unavailable("the homeserver", e))? {
            Some(history) => *room_id = history,
            None => {
                missing.insert(target.stream_id);
            }
        }
    }
    Ok((live_rooms, missing))
}

/// Creates or opens the history rooms of the named streams that have messages to import, and points their targets
/// at them. Answers them by stream. A failure here may follow writes (a room created): exit 3, run it again.
pub async fn open(
    app: &'static App,
    mapping: &Mapping,
    live_rooms: &HashMap<i64, OwnedRoomId>,
    pending: &BTreeSet<i64>,
    targets: &mut [(StreamTarget, OwnedRoomId)],
) -> Result<HashMap<i64, HistoryRoom>, ImportError> {
    let mut opened = HashMap::new();
    for (target, room_id) in targets.iter_mut() {
        let Some(live) = live_rooms.get(&target.stream_id).filter(|_| pending.contains(&target.stream_id)) else {
            continue;
        };
        let (tenant, kind, slug) = (&mapping.tenant, target.kind, &target.slug);
        let room = with_retries(|| history_room::open(app, tenant, kind, slug, live))
            .await
            .map_err(|e| ImportError::Stopped(format!("stream {:?}: its history room: {e}", target.stream)))?;
        *room_id = room.room_id.clone();
        opened.insert(target.stream_id, room);
    }
    Ok(opened)
}

/// Closes and links the history room of every stream whose import completed; a failure fails that stream.
pub async fn close(
    app: &'static App,
    mapping: &Mapping,
    opened: &HashMap<i64, HistoryRoom>,
    report: &mut ImportReport,
) {
    for stream in report.streams.iter_mut() {
        let Some(target) = mapping.streams.iter().find(|t| t.stream == stream.stream) else { continue };
        let Some(room) = opened.get(&target.stream_id) else { continue };
        let linked = stream.state == RunState::Complete;
        if linked && let Err(error) = with_retries(|| history_room::close(app, room)).await {
            stream.state = RunState::Failed;
            stream.error = Some(format!("closing its history room: {error}"));
            report.state = RunState::Failed;
            continue;
        }
        stream.history_room = Some(HistoryRoomReport {
            room_id: room.room_id.to_string(),
            alias: room.alias.to_string(),
            live_room_id: room.live_room_id.to_string(),
            created: room.created,
            linked,
        });
    }
}

/// A stream's history room in the text report (empty when it has none).
pub fn render(room: Option<&HistoryRoomReport>) -> String {
    let Some(room) = room else { return String::new() };
    let state = if room.linked { "read-only, linked from the live room" } else { "open: the import did not complete" };
    format!("      into history room {} ({}) of {}: {state}\n", room.alias, room.room_id, room.live_room_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::identity::{RoomKind, Slug, TenantId};

    #[test]
    fn only_mapped_streams_get_a_history_room() {
        let target = |id: i64, name: &str| StreamTarget {
            stream_id: id,
            stream: name.to_owned(),
            kind: RoomKind::Group,
            slug: Slug::parse("chess").expect("slug"),
        };
        let mapping = Mapping {
            tenant: TenantId::parse("acme").expect("tenant"),
            streams: vec![target(7, "general"), target(9, "random")],
            users: Default::default(),
            digest: String::new(),
        };
        let named = check_streams(&mapping, &["random".to_owned()]).expect("mapped");
        assert_eq!(named.into_iter().collect::<Vec<_>>(), vec![9]);
        let refused = check_streams(&mapping, &["General".to_owned()]).expect_err("names are exact");
        assert!(refused.0.contains("--history-room \"General\""), "{}", refused.0);
        assert!(render(None).is_empty());
    }
}
