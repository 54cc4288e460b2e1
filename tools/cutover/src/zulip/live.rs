//! Before `import-zulip` writes anything: no room it would send to holds a message people posted (ADR 0010,
//! `shared::domain::history_import::live`).

use std::sync::Arc;

use shared::App;
use shared::domain::history_import as history;
use tokio::sync::Semaphore;

use super::export::Malformed;
use super::import::{ImportError, unavailable};
use super::mapping;

/// History never lands after a message people posted (ADR 0010): every room with messages still to import is
/// checked before anything is written, and one live room refuses the whole import, naming each such stream and room.
pub async fn refuse_live_rooms(
    app: &'static App,
    targets: &[(mapping::StreamTarget, ruma::OwnedRoomId)],
    concurrency: usize,
) -> Result<(), ImportError> {
    // One read per room, several rooms at once (10,000 rooms one after the other would take minutes).
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut reads = tokio::task::JoinSet::new();
    for (target, room_id) in targets.iter().cloned() {
        let permits = permits.clone();
        reads.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let live = history::live::newest_live_message(app, &room_id).await;
            (target, room_id, live)
        });
    }
    let mut live = Vec::new();
    while let Some(read) = reads.join_next().await {
        let (target, room_id, found) = read.map_err(|e| unavailable("internal: a room's read", e))?;
        match found {
            Ok(None) => {}
            Ok(Some(message)) => live.push(format!(
                "stream {:?} → {}/{} (room {room_id}): {} posted {}",
                target.stream,
                target.kind.path_segment(),
                target.slug,
                message.sender,
                message.event_id
            )),
            Err(error) => return Err(unavailable("the homeserver", error).into()),
        }
    }
    live.sort();
    if live.is_empty() {
        return Ok(());
    }
    Err(Malformed(format!(
        "people already posted in the room of {} stream(s); imported history would appear after their messages, \
         so nothing was imported (to import such a stream into a read-only history room linked from its room, name \
         it with --history-room): {}",
        live.len(),
        live.join("; ")
    ))
    .into())
}
