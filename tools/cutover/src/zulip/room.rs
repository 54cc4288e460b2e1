//! One stream into its room: messages in order (one at a time), each with its files and reactions, then the
//! members' read markers. Every event's transaction id derives from the Zulip message, so a resend after a crash
//! returns the first event; the room's checkpoint (the last message done, with the counts so far) is rewritten after
//! every message, and thread roots are stored before the messages that need them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::aws::keys::{CutoverEntity, CutoverEntry};
use shared::domain::DomainError;
use shared::domain::history_import::{self as history, content};
use shared::domain::messages::content::Placement;
use shared::domain::messages::idempotency::derived_txn_id;
use shared::domain::messages::{Attachment, media};

use super::export::Message;
use super::files;
use super::import::Shared;
use crate::exec::with_retries;

/// How much of a file is read to find an image's dimensions.
const HEAD: u64 = 64 << 10;

/// What a room has done so far (cumulative over runs): its checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// The last Zulip message done, and the newest event sent for it.
    pub last: i64,
    pub event: Option<String>,
    pub messages: u64,
    pub threads: u64,
    pub reactions: u64,
    pub files: u64,
    pub edited: u64,
    pub skipped: BTreeMap<String, u64>,
    /// Edits and deletions made in Zulip after the message was imported, carried by later imports.
    #[serde(default)]
    pub edits_carried: u64,
    #[serde(default)]
    pub deletions_carried: u64,
}

/// A topic's thread root, as recorded ([`CutoverEntry::ThreadRoot`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadRoot {
    pub event: String,
    /// The Zulip message it was sent for.
    pub message_id: i64,
}

/// A room being imported.
pub struct Room {
    pub stream_id: i64,
    pub room_id: OwnedRoomId,
    pub counts: Counts,
    /// Topic key → thread root and the Zulip message it came from.
    pub roots: HashMap<String, (String, i64)>,
    last_in_thread: HashMap<String, String>,
    joined: HashSet<String>,
    /// Users the import joined only to send their history (they leave at the end).
    pub joined_by_import: HashSet<String>,
    pub sent_now: u64,
    /// What a later export's changes need ([`super::delta`]): the imported messages, the senders raised to post
    /// into a read-only room, the room's posting level once read, the message events of the message being sent.
    pub ledger: super::delta::Ledger,
    pub raised: HashMap<String, super::delta::RaisedLevel>,
    pub(super) posting: Option<(i64, shared::domain::roles::PowerLevels)>,
    pub(super) sent_events: Vec<String>,
    pub edits_now: u64,
    pub deletions_now: u64,
}

pub fn entity(stream_id: i64, room_id: &OwnedRoomId) -> CutoverEntity {
    CutoverEntity::Stream { stream: stream_id, room: room_id.to_string() }
}

pub fn topic_key(topic: &str) -> String {
    // Zulip compares topics case-insensitively.
    let key = topic.to_lowercase();
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(key.as_bytes()))[..24].to_owned()
}

impl Room {
    pub fn new(stream_id: i64, room_id: OwnedRoomId, counts: Counts, roots: HashMap<String, (String, i64)>) -> Room {
        Room {
            stream_id,
            room_id,
            counts,
            roots,
            last_in_thread: HashMap::new(),
            joined: HashSet::new(),
            joined_by_import: HashSet::new(),
            sent_now: 0,
            ledger: Default::default(),
            raised: HashMap::new(),
            posting: None,
            sent_events: Vec::new(),
            edits_now: 0,
            deletions_now: 0,
        }
    }

    /// The key of this stream's import into this room in the run record.
    pub fn entity(&self) -> CutoverEntity {
        entity(self.stream_id, &self.room_id)
    }

    pub async fn load_members(&mut self, shared: &Shared, recorded: HashSet<String>) -> Result<(), DomainError> {
        self.joined = history::joined_members(shared.app, &self.room_id).await?;
        self.joined_by_import = recorded;
        Ok(())
    }

    pub(super) fn txn(&self, shared: &Shared, message: i64, part: &str) -> String {
        derived_txn_id(&["zulip-import", &shared.realm_key, self.room_id.as_str(), &message.to_string(), part])
    }

    /// Joins a sender who is not in the room, recording first that the import did it.
    pub(super) async fn ensure_joined(&mut self, shared: &Shared, user: &UserId) -> Result<(), DomainError> {
        if self.joined.contains(user.as_str()) {
            return Ok(());
        }
        let entity =
            CutoverEntity::Joined { stream: self.stream_id, room: self.room_id.to_string(), user: user.to_string() };
        shared.recorder.put_acked(CutoverEntry::Joined, &entity, &user.as_str()).await.map_err(recorder_down)?;
        history::join(shared.app, &self.room_id, user).await?;
        self.joined.insert(user.to_string());
        self.joined_by_import.insert(user.to_string());
        Ok(())
    }

    /// Imports one message with its files and reactions; safe to repeat (same transaction ids).
    async fn import_one(&mut self, shared: &Shared, message: &Message) -> Result<Counts, DomainError> {
        let mut delta = Counts::default();
        let sender = shared.sender(message.sender).await?;
        self.ensure_joined(shared, &sender).await?;
        let person = |name: &str, id: Option<i64>| shared.person(name, id);
        let converted = content::convert(&message.content, &person);
        let key = topic_key(&message.subject);
        let origin = |part| content::Origin { message_id: message.id, topic: &message.subject, part };
        // A root stored before a crash whose message is replayed is that message itself: it stays the root.
        let root = self.roots.get(&key).filter(|(_, id)| *id != message.id).map(|(event, _)| event.clone());
        let mut last = self.last_in_thread.get(&key).cloned().or_else(|| root.clone());
        let placement = |root: &str, last: &Option<String>| Placement::Thread {
            root: root.to_owned(),
            in_reply_to: last.clone().unwrap_or_else(|| root.to_owned()),
            is_falling_back: true,
        };
        let ts = message.ts_ms();
        let has_text = !converted.text.trim().is_empty();
        let root_id = match &root {
            Some(root) if has_text => {
                let content = content::text_message(
                    &converted.text,
                    &shared.mentionables,
                    &placement(root, &last),
                    &origin("message"),
                    message.edited(),
                )?;
                let txn = self.txn(shared, message.id, "message");
                last = self.send(shared, &sender, &txn, ts, "m.room.message", &content).await?.or(last);
                root.clone()
            }
            Some(root) => root.clone(),
            None => {
                let content = content::text_message(
                    &converted.text,
                    &shared.mentionables,
                    &Placement::Timeline,
                    &origin("message"),
                    message.edited(),
                )?;
                let txn = self.txn(shared, message.id, "message");
                let event = self.send(shared, &sender, &txn, ts, "m.room.message", &content).await?;
                let event = event.ok_or(DomainError::Internal)?;
                let entity = CutoverEntity::Thread {
                    stream: self.stream_id,
                    room: self.room_id.to_string(),
                    topic: key.clone(),
                };
                let root = ThreadRoot { event: event.clone(), message_id: message.id };
                shared.recorder.put_acked(CutoverEntry::ThreadRoot, &entity, &root).await.map_err(recorder_down)?;
                self.roots.insert(key.clone(), (event.clone(), message.id));
                delta.threads += 1;
                last = Some(event.clone());
                event
            }
        };
        // Reactions go to the message's own text event, else to its first file.
        let mut reaction_target = if has_text || root.is_none() { last.clone() } else { None };
        if has_text || root.is_none() {
            delta.messages += 1;
            delta.edited += u64::from(message.edited());
        } else if converted.uploads.is_empty() {
            *delta.skipped.entry("empty message".into()).or_default() += 1;
        } else {
            delta.messages += 1;
        }
        for (index, path) in converted.uploads.iter().enumerate() {
            let Some(attachment) = self.upload(shared, path, &mut delta).await? else { continue };
            let content = content::file_message(&attachment, &placement(&root_id, &last), &origin("file"))?;
            let txn = self.txn(shared, message.id, &format!("file:{index}"));
            last = self.send(shared, &sender, &txn, ts, "m.room.message", &content).await?.or(last);
            reaction_target = reaction_target.or_else(|| last.clone());
            delta.files += 1;
        }
        for reaction in shared.realm.reactions.get(&message.id).into_iter().flatten() {
            let Some(target) = &reaction_target else { break };
            let reactor = shared.sender(reaction.user_profile).await?;
            self.ensure_joined(shared, &reactor).await?;
            let key = history::emoji::reaction_key(&reaction.reaction_type, &reaction.emoji_code, &reaction.emoji_name);
            let part = format!("reaction:{}:{}:{}", reaction.user_profile, reaction.reaction_type, reaction.emoji_code);
            let txn = self.txn(shared, message.id, &part);
            let content = content::reaction(target, &key, &origin("reaction"));
            self.send(shared, &reactor, &txn, ts, "m.reaction", &content).await?;
            delta.reactions += 1;
        }
        if let Some(last) = &last {
            self.last_in_thread.insert(key, last.clone());
        }
        delta.event = last;
        Ok(delta)
    }

    pub(super) async fn send(
        &mut self,
        shared: &Shared,
        sender: &UserId,
        txn: &str,
        ts: u64,
        event_type: &str,
        content: &Value,
    ) -> Result<Option<String>, DomainError> {
        self.may_post(shared, sender).await?;
        let event = history::send(shared.app, &self.room_id, sender, txn, ts, event_type, content).await?;
        let event = event.map(|e: OwnedEventId| e.to_string());
        if let (Some(event), "m.room.message") = (&event, event_type) {
            self.sent_events.push(event.clone());
        }
        Ok(event)
    }

    /// The linked upload in the media repository, or `None` (counted as skipped) when the export lacks it.
    async fn upload(&self, shared: &Shared, path: &str, delta: &mut Counts) -> Result<Option<Attachment>, DomainError> {
        let Some(upload) = shared.realm.uploads.get(path) else {
            *delta.skipped.entry("file not in the export".into()).or_default() += 1;
            return Ok(None);
        };
        // Over the homeserver's limit (or the import's cap): skipped from the checked size, never opened.
        if upload.checked.size > shared.upload_limit {
            *delta.skipped.entry("file larger than the homeserver accepts".into()).or_default() += 1;
            return Ok(None);
        }
        let Ok(file) = files::open(&shared.realm.dir, &upload.relative(), upload.checked) else {
            *delta.skipped.entry("file unreadable or changed after the check".into()).or_default() += 1;
            return Ok(None);
        };
        let filename = path.rsplit('/').next().unwrap_or("file").to_owned();
        let mime = upload.content_type.clone().unwrap_or_else(|| guess_type(&filename).to_owned());
        let essence = mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        // An image's dimensions are in its first bytes: read those only (the body is streamed).
        let mut head = vec![0u8; HEAD.min(upload.checked.size) as usize];
        let read = std::os::unix::fs::FileExt::read_at(&file, &mut head, 0).unwrap_or(0);
        let dimensions = media::image_dimensions(&essence, &head[..read]);
        let size = upload.checked.size;
        let uri = match history::upload(shared.app, &filename, &mime, file, size).await {
            Ok(uri) => uri,
            Err(error) if error.is_refusal(413) => {
                *delta.skipped.entry("file larger than the homeserver accepts".into()).or_default() += 1;
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        Ok(Some(Attachment {
            content_uri: uri,
            mime_type: if essence.contains('/') { essence } else { "application/octet-stream".into() },
            size,
            thumbnail_uri: None,
            filename: Some(filename),
            width: dimensions.map(|d| d.0),
            height: dimensions.map(|d| d.1),
        }))
    }

    /// Imports the message unless done before; `Err` stops the room (its order must hold).
    pub async fn message(&mut self, shared: &Shared, message: &Message) -> Result<bool, DomainError> {
        if message.id <= self.counts.last {
            self.carry_edit(shared, message).await?;
            return Ok(false);
        }
        let delta = with_retries(|| {
            // Each attempt starts from the same state: sends are repeated with the same transaction ids.
            let mut attempt = self.snapshot();
            async move {
                let delta = attempt.import_one(shared, message).await;
                delta.map(|d| (d, attempt))
            }
        })
        .await;
        let (delta, mut after) = delta?;
        let events = std::mem::take(&mut after.sent_events);
        // The text's event comes first when there is one: more message events than files.
        let had_text = events.len() as u64 > delta.files;
        self.restore(after);
        self.remember(shared, message, had_text, events);
        self.add(message.id, delta);
        self.sent_now += 1;
        shared.recorder.put(CutoverEntry::Checkpoint, &self.entity(), &self.counts);
        Ok(true)
    }

    fn snapshot(&self) -> Room {
        Room {
            stream_id: self.stream_id,
            room_id: self.room_id.clone(),
            counts: Counts::default(),
            roots: self.roots.clone(),
            last_in_thread: self.last_in_thread.clone(),
            joined: self.joined.clone(),
            joined_by_import: self.joined_by_import.clone(),
            sent_now: 0,
            ledger: Default::default(),
            raised: self.raised.clone(),
            posting: self.posting.clone(),
            sent_events: Vec::new(),
            edits_now: 0,
            deletions_now: 0,
        }
    }

    fn restore(&mut self, after: Room) {
        self.roots = after.roots;
        self.last_in_thread = after.last_in_thread;
        self.joined = after.joined;
        self.joined_by_import = after.joined_by_import;
        self.raised = after.raised;
        self.posting = after.posting;
    }

    fn add(&mut self, id: i64, delta: Counts) {
        let counts = &mut self.counts;
        counts.last = id;
        if delta.event.is_some() {
            counts.event = delta.event;
        }
        counts.messages += delta.messages;
        counts.threads += delta.threads;
        counts.reactions += delta.reactions;
        counts.files += delta.files;
        counts.edited += delta.edited;
        for (reason, n) in delta.skipped {
            *counts.skipped.entry(reason).or_default() += n;
        }
    }

    /// After the last message: messages deleted in Zulip redacted (after a complete read of the export), every
    /// member's read marker at the newest imported event (when `mark_read`: new messages came), senders raised for
    /// the import put back, users joined only for the import leave.
    pub async fn finish(&mut self, shared: &Shared, mark_read: bool) -> Result<(), DomainError> {
        if let Some(in_export) = shared.export_ids.get() {
            self.carry_deletions(shared, in_export).await?;
        }
        if mark_read && let Some(event) = self.counts.event.clone().and_then(|e| OwnedEventId::try_from(e).ok()) {
            let members = history::joined_members(shared.app, &self.room_id).await?;
            for member in members {
                let Ok(user) = OwnedUserId::try_from(member.as_str()) else { continue };
                let openmeet = shared.app.identities.openmeet_user(&user).is_some();
                if openmeet && !self.joined_by_import.contains(member.as_str()) && !shared.stopping() {
                    with_retries(|| history::mark_read(shared.app, &self.room_id, &user, &event)).await?;
                }
            }
        }
        self.restore_levels(shared).await?;
        for member in self.joined_by_import.clone() {
            let Ok(user) = OwnedUserId::try_from(member.as_str()) else { continue };
            with_retries(|| history::leave(shared.app, &self.room_id, &user)).await?;
        }
        shared.recorder.done(&self.entity());
        Ok(())
    }
}

pub(super) fn recorder_down(error: String) -> DomainError {
    tracing::error!(%error, "could not record the import's progress");
    DomainError::Backend(shared::error::BackendError::Unavailable {
        service: "run record",
        detail: "see the log".into(),
    })
}

/// A media type from a file name, for uploads whose record has none.
pub fn guess_type(name: &str) -> &'static str {
    let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "txt" | "log" | "md" => "text/plain",
        "csv" => "text/csv",
        "mp4" => "video/mp4",
        "mp3" => "audio/mpeg",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

pub type SharedRef = Arc<Shared>;
