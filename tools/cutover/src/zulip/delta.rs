//! The window's import of a newer export: what changed in Zulip after a message was imported. Every imported
//! message is kept in the import's record (its ledger: Zulip id → its events and a digest of its text, in blocks of
//! [`BLOCK`] per item, written with the checkpoint), so a later export's edit of it is carried as an `m.replace` by
//! its original sender (once: the ledger keeps the new digest; the transaction id derives from the edit), and its
//! absence from a complete later export as a redaction by the platform (once: the entry is marked). A read-only room
//! (a cancelled event's) is opened to exactly the senders the import needs, at the posting level and no higher, and
//! each is put back when the room finishes (recorded first, so a crashed import puts them back on its re-run).

use std::collections::{HashMap, HashSet};

use ruma::{OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use shared::aws::keys::{CutoverEntity, CutoverEntry};
use shared::domain::DomainError;
use shared::domain::history_import::{self as history, content, delta};
use shared::domain::messages::content::Placement;
use shared::domain::roles::PowerLevels;
use shared::error::BackendError;

use super::export::Message;
use super::import::Shared;
use super::room::{Room, topic_key};
use crate::exec::with_retries;
use crate::record;

/// Messages per ledger item: about 130 bytes each, far below DynamoDB's 400 KB, and a rewrite stays small.
pub const BLOCK: usize = 128;

const ROOT: u8 = 1;
const TEXT: u8 = 2;
const DELETED: u8 = 4;

/// One imported message: Zulip id, digest of its Zulip text, its `m.room.message` events (the text's first when it
/// has text), flags ([`ROOT`], [`TEXT`], [`DELETED`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry(pub i64, pub String, pub Vec<String>, #[serde(default)] pub u8);

/// A room's imported messages, in import order, in blocks.
#[derive(Debug, Default)]
pub struct Ledger {
    blocks: Vec<Vec<Entry>>,
    index: HashMap<i64, (usize, usize)>,
}

impl Ledger {
    pub fn from_blocks(mut blocks: Blocks) -> Ledger {
        blocks.sort_by_key(|(number, _)| *number);
        let mut ledger = Ledger::default();
        for (_, block) in blocks {
            let number = ledger.blocks.len();
            for (position, entry) in block.iter().enumerate() {
                ledger.index.insert(entry.0, (number, position));
            }
            ledger.blocks.push(block);
        }
        ledger
    }

    pub fn get(&self, id: i64) -> Option<&Entry> {
        let (block, position) = self.index.get(&id)?;
        self.blocks.get(*block)?.get(*position)
    }

    /// Adds (or replaces) a message's entry; answers the block to write.
    pub fn put(&mut self, entry: Entry) -> (u32, &Vec<Entry>) {
        let (block, position) = match self.index.get(&entry.0) {
            Some(at) => *at,
            None => {
                if self.blocks.last().is_none_or(|b| b.len() >= BLOCK) {
                    self.blocks.push(Vec::new());
                }
                let block = self.blocks.len() - 1;
                (block, self.blocks[block].len())
            }
        };
        self.index.insert(entry.0, (block, position));
        let slot = &mut self.blocks[block];
        if position < slot.len() {
            slot[position] = entry;
        } else {
            slot.push(entry);
        }
        (block as u32, &self.blocks[block])
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.blocks.iter().flatten()
    }
}

/// A sender the import raised in a read-only room ([`CutoverEntry::Raised`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RaisedLevel {
    pub before: Option<i64>,
    pub granted: i64,
    #[serde(default)]
    pub restored: bool,
}

/// A ledger's blocks as recorded: block number, entries.
type Blocks = Vec<(u32, Vec<Entry>)>;

/// What the record holds for the import's rooms: ledgers and raised senders, by `(stream, room)`.
#[derive(Default)]
pub struct Recorded {
    ledgers: HashMap<(i64, String), Blocks>,
    raised: HashMap<(i64, String), HashMap<String, RaisedLevel>>,
}

impl Recorded {
    pub async fn load(store: &shared::aws::store::Store, import_id: &str) -> Result<Recorded, BackendError> {
        let mut recorded = Recorded::default();
        for (key, block) in record::values::<Vec<Entry>>(store, import_id, CutoverEntry::Ledger).await? {
            if let (Ok(CutoverEntity::Block { stream, room, block: number }), Some(block)) = (key.parse(), block) {
                recorded.ledgers.entry((stream, room)).or_default().push((number, block));
            }
        }
        for (key, level) in record::values::<RaisedLevel>(store, import_id, CutoverEntry::Raised).await? {
            if let (Ok(CutoverEntity::Joined { stream, room, user }), Some(level)) = (key.parse(), level)
                && !level.restored
            {
                recorded.raised.entry((stream, room)).or_default().insert(user, level);
            }
        }
        Ok(recorded)
    }

    /// Hands a room its ledger and its senders still raised.
    pub fn give(&mut self, room: &mut Room) {
        let key = (room.stream_id, room.room_id.to_string());
        room.ledger = Ledger::from_blocks(self.ledgers.remove(&key).unwrap_or_default());
        room.raised = self.raised.remove(&key).unwrap_or_default();
    }
}

impl Room {
    fn block_entity(&self, block: u32) -> CutoverEntity {
        CutoverEntity::Block { stream: self.stream_id, room: self.room_id.to_string(), block }
    }

    fn raised_entity(&self, user: &str) -> CutoverEntity {
        CutoverEntity::Joined { stream: self.stream_id, room: self.room_id.to_string(), user: user.to_owned() }
    }

    /// Records a message just imported (its events were collected by `send`), before its checkpoint.
    pub(super) fn remember(&mut self, shared: &Shared, message: &Message, had_text: bool, events: Vec<String>) {
        if events.is_empty() {
            return;
        }
        let key = topic_key(&message.subject);
        let root = self.roots.get(&key).is_some_and(|(_, id)| *id == message.id);
        let flags = if root { ROOT } else { 0 } | if had_text { TEXT } else { 0 };
        let entry = Entry(message.id, delta::digest(&message.content), events, flags);
        let (block, entries) = self.ledger.put(entry);
        let entries = entries.clone();
        shared.recorder.put(CutoverEntry::Ledger, &self.block_entity(block), &entries);
    }

    /// A message at or before the checkpoint: its edit since it was imported, carried once. Answers whether it sent.
    pub(super) async fn carry_edit(&mut self, shared: &Shared, message: &Message) -> Result<bool, DomainError> {
        let Some(entry) = self.ledger.get(message.id).cloned() else { return Ok(false) };
        let digest = delta::digest(&message.content);
        if entry.3 & (DELETED | TEXT) != TEXT || entry.1 == digest {
            return Ok(false);
        }
        let Some(original) = entry.2.first().cloned() else { return Ok(false) };
        let sender = shared.sender(message.sender).await?;
        let (block, entries) = self.ledger.put(Entry(entry.0, digest.clone(), entry.2.clone(), entry.3));
        let entries = entries.clone();
        // Clients apply only the sender's own edits: one imported under another account (a user since unmapped
        // or newly mapped) or redacted since is left as it is, counted once.
        let original_sender = with_retries(|| delta::sender_of(shared.app, &self.room_id, &original)).await?;
        if original_sender.as_deref() != Some(&*sender) {
            shared.recorder.put(CutoverEntry::Ledger, &self.block_entity(block), &entries);
            *self.counts.skipped.entry("edit of a message sent by another account or redacted".into()).or_default() +=
                1;
            shared.recorder.put(CutoverEntry::Checkpoint, &self.entity(), &self.counts);
            return Ok(false);
        }
        self.ensure_joined(shared, &sender).await?;
        let person = |name: &str, id: Option<i64>| shared.person(name, id);
        let converted = content::convert(&message.content, &person);
        let placement = if entry.3 & ROOT != 0 {
            Placement::Timeline
        } else {
            Placement::Thread { root: original.clone(), in_reply_to: original.clone(), is_falling_back: true }
        };
        let origin = content::Origin { message_id: message.id, topic: &message.subject, part: "edit" };
        let replacement = content::text_message(&converted.text, &shared.mentionables, &placement, &origin, true)?;
        let edit = delta::edit_content(&original, &replacement);
        // One edit per Zulip edit: a re-run (or a retry) of the same edit sends it once.
        let stamp = message.last_edit_time.map_or_else(|| digest.clone(), |t| format!("{}", (t * 1000.0) as i64));
        let txn = self.txn(shared, message.id, &format!("edit:{stamp}"));
        let ts = message.last_edit_time.map_or(message.ts_ms(), |t| (t * 1000.0).round().max(0.0) as u64);
        self.may_post(shared, &sender).await?;
        let room = &self.room_id;
        with_retries(|| history::send(shared.app, room, &sender, &txn, ts, "m.room.message", &edit)).await?;
        shared.recorder.put(CutoverEntry::Ledger, &self.block_entity(block), &entries);
        self.counts.edits_carried += 1;
        self.edits_now += 1;
        shared.recorder.put(CutoverEntry::Checkpoint, &self.entity(), &self.counts);
        Ok(true)
    }

    /// After a complete read of the export: every imported message it no longer holds (deleted in Zulip) is
    /// redacted, once. A message moved to another stream is still in the export: it stays where it was imported.
    pub(super) async fn carry_deletions(
        &mut self,
        shared: &Shared,
        in_export: &HashSet<i64>,
    ) -> Result<(), DomainError> {
        let gone: Vec<Entry> =
            self.ledger.entries().filter(|e| e.3 & DELETED == 0 && !in_export.contains(&e.0)).cloned().collect();
        for entry in gone {
            for (index, event) in entry.2.iter().enumerate() {
                let txn = self.txn(shared, entry.0, &format!("redact:{index}"));
                with_retries(|| delta::redact_deleted(shared.app, &self.room_id, event, &txn)).await?;
            }
            let (block, entries) = self.ledger.put(Entry(entry.0, entry.1, entry.2, entry.3 | DELETED));
            let entries = entries.clone();
            shared.recorder.put(CutoverEntry::Ledger, &self.block_entity(block), &entries);
            self.counts.deletions_carried += 1;
            self.deletions_now += 1;
        }
        if self.deletions_now > 0 {
            shared.recorder.put(CutoverEntry::Checkpoint, &self.entity(), &self.counts);
        }
        Ok(())
    }

    /// Whether the room's finish has something to do although nothing new came: an edit was carried, a deletion
    /// is to be carried, or senders are still raised.
    pub fn changes_pending(&self, shared: &Shared) -> bool {
        let deleted =
            |in_export: &HashSet<i64>| self.ledger.entries().any(|e| e.3 & DELETED == 0 && !in_export.contains(&e.0));
        self.edits_now > 0 || !self.raised.is_empty() || shared.export_ids.get().is_some_and(deleted)
    }

    /// Before `sender` posts: in a room where their level is below posting (a cancelled event's), raise them to it,
    /// recording first what it was. The room's power levels are read once per run, on its first send.
    pub(super) async fn may_post(&mut self, shared: &Shared, sender: &UserId) -> Result<(), DomainError> {
        if self.raised.contains_key(sender.as_str()) {
            return Ok(());
        }
        let (needed, levels) = match &self.posting {
            Some(known) => known.clone(),
            None => {
                let (needed, levels) = delta::posting_level(shared.app, &self.room_id).await?;
                let known = (needed, PowerLevels::from_content(&levels));
                self.posting = Some(known.clone());
                known
            }
        };
        if levels.level_of(sender.as_str()) >= needed {
            return Ok(());
        }
        let level =
            RaisedLevel { before: levels.users.get(sender.as_str()).copied(), granted: needed, restored: false };
        let entity = self.raised_entity(sender.as_str());
        shared.recorder.put_acked(CutoverEntry::Raised, &entity, &level).await.map_err(super::room::recorder_down)?;
        delta::raise(shared.app, &self.room_id, sender, needed).await?;
        self.raised.insert(sender.to_string(), level);
        Ok(())
    }

    /// Puts every sender the import raised back to their level before (this run's and a crashed run's).
    pub(super) async fn restore_levels(&mut self, shared: &Shared) -> Result<(), DomainError> {
        for (user, level) in self.raised.clone() {
            let Ok(user_id) = OwnedUserId::try_from(user.as_str()) else { continue };
            with_retries(|| delta::restore(shared.app, &self.room_id, &user_id, level.before, level.granted)).await?;
            let entity = self.raised_entity(&user);
            let restored = RaisedLevel { restored: true, ..level };
            shared.recorder.put(CutoverEntry::Raised, &entity, &restored);
            self.raised.remove(&user);
        }
        self.posting = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_fills_blocks_in_order_and_replaces_in_place() {
        let mut ledger = Ledger::default();
        for id in 0..(BLOCK as i64 + 3) {
            let (block, entries) = ledger.put(Entry(id, "d".into(), vec![format!("$e{id}")], TEXT));
            assert_eq!(block as i64, id / BLOCK as i64);
            assert_eq!(entries.last().map(|e| e.0), Some(id));
        }
        let (block, entries) = ledger.put(Entry(5, "new".into(), vec!["$e5".into()], TEXT));
        assert_eq!((block, entries.len()), (0, BLOCK));
        assert_eq!(ledger.get(5).map(|e| e.1.as_str()), Some("new"));
        let blocks = vec![(1, ledger.blocks[1].clone()), (0, ledger.blocks[0].clone())];
        let again = Ledger::from_blocks(blocks);
        assert_eq!(again.entries().count(), BLOCK + 3);
        assert_eq!(again.get(BLOCK as i64 + 2).map(|e| e.2[0].as_str()), Some(format!("$e{}", BLOCK + 2).as_str()));
        let json = serde_json::to_string(&Entry(7, "ab".into(), vec!["$x".into()], 3)).unwrap_or_default();
        assert_eq!(json, r#"[7,"ab",["$x"],3]"#);
    }
}
