//! `import-zulip`: checks the export and the mapping (nothing sent on any error), then imports every mapped stream
//! into its room, rooms in parallel (`--concurrency` messages in flight across rooms), each room in order. One
//! reader streams the message files and hands each message to its room's worker; a stop request (SIGINT/SIGTERM)
//! ends reading, lets the messages in flight finish and be checkpointed, and reports `interrupted`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use ruma::OwnedUserId;
use shared::App;
use shared::aws::cutover_runs::{RunMeta, RunState};
use shared::aws::keys::{CutoverEntity, CutoverEntry};
use shared::domain::DomainError;
use shared::domain::history_import as history;
use shared::domain::messages::mentions::{MentionTarget, Mentionables};
use shared::domain::rooms;
use shared::identity::{TenantId, UserSlug};
use tokio::sync::{Mutex, OnceCell, Semaphore, mpsc};

use super::export::{self, Malformed, Message, Realm};
use super::files;
use super::mapping::{self, Mapping};
pub use super::report::{ImportReport, StreamReport, render};
use super::room::{self, Counts, Room, ThreadRoot};
use crate::exec::Progress;
use crate::record::{self, Recorder};

/// The export and mapping, checked offline.
pub struct Prepared {
    pub realm: Realm,
    pub mapping: Mapping,
    /// Stream id → its messages in the export.
    pub per_stream: HashMap<i64, u64>,
    /// Messages outside streams (direct messages): not imported.
    pub direct: u64,
    /// Stream id → its newest message id in the export.
    pub newest: HashMap<i64, i64>,
    pub sha256: String,
    /// `--history-room`: streams whose history goes into their live room's linked history room.
    pub history_streams: std::collections::BTreeSet<i64>,
}

/// Reads and checks everything that needs no homeserver: a malformed export or mapping is refused here.
pub fn prepare(export_dir: &Path, mapping_file: &Path) -> Result<Prepared, Malformed> {
    let realm = export::load(export_dir)?;
    let mapping = mapping::load(mapping_file, &realm)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let export::Tally { per_stream, direct, newest } = export::validate(&realm, now)?;
    let sha256 = export::sha256(export_dir)?;
    Ok(Prepared { realm, mapping, per_stream, direct, newest, sha256, history_streams: Default::default() })
}

/// What every room's worker shares.
pub struct Shared {
    pub app: &'static App,
    pub realm: Realm,
    pub tenant: TenantId,
    pub realm_key: String,
    pub recorder: Recorder,
    pub mentionables: Mentionables,
    users: BTreeMap<i64, UserSlug>,
    by_name: HashMap<String, i64>,
    senders: Mutex<HashMap<i64, Arc<OnceCell<OwnedUserId>>>>,
    placeholders: AtomicU64,
    /// Files larger than this are skipped unread: the homeserver's `m.upload.size`, at most [`files::MAX_FILE`].
    pub upload_limit: u64,
    pub stop: Arc<AtomicBool>,
    permits: Semaphore,
    /// Every message id of the export, once it was read to its end (what was deleted in Zulip is not in it).
    pub export_ids: std::sync::OnceLock<HashSet<i64>>,
}

impl Shared {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The OpenMeet user id of a mentioned Zulip user (by id, else by full name), if mapped.
    pub fn person(&self, name: &str, id: Option<i64>) -> Option<String> {
        let id = id.or_else(|| self.by_name.get(&name.to_lowercase()).copied())?;
        self.users.get(&id).map(|slug| slug.to_string())
    }

    /// The Matrix user a Zulip user's events are sent as: their OpenMeet user, else their placeholder (made once).
    pub async fn sender(&self, zulip_id: i64) -> Result<OwnedUserId, DomainError> {
        let cell = self.senders.lock().await.entry(zulip_id).or_default().clone();
        let user = cell
            .get_or_try_init(|| async {
                match self.users.get(&zulip_id) {
                    Some(slug) => {
                        let user = self.app.identities.matrix_user_id(&self.tenant, slug);
                        crate::exec::with_retries(|| history::ensure_sender(self.app, &user)).await?;
                        Ok::<_, DomainError>(user)
                    }
                    None => {
                        let name = self.realm.users.get(&zulip_id).map_or("Zulip user", |u| u.full_name.as_str());
                        let user = crate::exec::with_retries(|| {
                            history::ensure_placeholder(self.app, &self.tenant, zulip_id, name)
                        })
                        .await?;
                        self.placeholders.fetch_add(1, Ordering::Relaxed);
                        Ok(user)
                    }
                }
            })
            .await?;
        Ok(user.clone())
    }
}

pub(super) fn unavailable(what: &str, error: impl std::fmt::Display) -> Malformed {
    Malformed(format!("{what}: {error}"))
}

/// Why an import did not finish: refused before anything was sent (exit 2), or stopped part-way because a room's
/// worker died mid-run (exit 3: run it again to continue).
#[derive(Debug)]
pub enum ImportError {
    Refused(Malformed),
    Stopped(String),
}

impl From<Malformed> for ImportError {
    fn from(refused: Malformed) -> Self {
        ImportError::Refused(refused)
    }
}

/// Imports (or continues importing) the export. `Err` only for what stops it before anything is sent, or a room's
/// worker dying.
pub async fn import(
    app: &'static App,
    prepared: Prepared,
    export_dir: &Path,
    concurrency: usize,
    quiet: bool,
    stop: Arc<AtomicBool>,
) -> Result<ImportReport, ImportError> {
    let started = Instant::now();
    let Prepared { realm, mapping, per_stream, direct, newest, sha256, history_streams } = prepared;
    let tenant = mapping.tenant.clone();
    // The homeserver side of the checks: every room exists, every mapped user is provisioned.
    let mut targets = Vec::new();
    for target in &mapping.streams {
        let room = match rooms::resolve(app, &tenant, target.kind, &target.slug).await {
            Ok(room) => room,
            Err(DomainError::NotFound { .. }) => {
                return Err(ImportError::Refused(Malformed(format!(
                    "stream {:?}: {}/{} has no room in tenant {tenant} (run the cutover first)",
                    target.stream,
                    target.kind.path_segment(),
                    target.slug
                ))));
            }
            Err(error) => return Err(unavailable("the homeserver", error).into()),
        };
        targets.push((target.clone(), room.room_id));
    }
    for (zulip_id, slug) in &mapping.users {
        let user = app.identities.matrix_user_id(&tenant, slug);
        match history::user_exists(app, &user).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(
                    Malformed(format!("user {slug} (Zulip user {zulip_id}) is not provisioned in {tenant}")).into()
                );
            }
            Err(error) => return Err(unavailable("the homeserver", error).into()),
        }
    }

    let (live_rooms, uncreated) = super::history_room::redirect(app, &mapping, &history_streams, &mut targets).await?;
    let stated =
        history::upload_limit(app).await.map_err(|e| unavailable("the homeserver's media configuration", e))?;
    let upload_limit = stated.unwrap_or(files::MAX_FILE).min(files::MAX_FILE);

    // The import's record: checkpoints, thread roots, who was joined for it, finished rooms.
    let import_id = format!("ZULIP#{}#{tenant}", realm.key);
    let backend = |e| unavailable("the run record (DynamoDB)", e);
    let checkpoints: HashMap<String, Option<Counts>> =
        record::values(&app.store, &import_id, CutoverEntry::Checkpoint).await.map_err(backend)?.into_iter().collect();
    let roots: Vec<(CutoverEntity, ThreadRoot)> = record::values(&app.store, &import_id, CutoverEntry::ThreadRoot)
        .await
        .map_err(backend)?
        .into_iter()
        .filter_map(|(key, root)| Some((key.parse().ok()?, root?)))
        .collect();
    let joined: Vec<CutoverEntity> = record::keys(&app.store, &import_id, CutoverEntry::Joined)
        .await
        .map_err(backend)?
        .into_iter()
        .filter_map(|key| key.parse().ok())
        .collect();
    let done = record::keys(&app.store, &import_id, CutoverEntry::Done).await.map_err(backend)?;
    let mut ledgers = super::delta::Recorded::load(&app.store, &import_id).await.map_err(backend)?;
    // Only rooms that would get a message: a finished import re-run after its rooms opened sends nothing and goes on.
    let pending: Vec<_> = targets
        .iter()
        .filter(|(target, room_id)| {
            let entity = room::entity(target.stream_id, room_id).to_string();
            let last = checkpoints.get(&entity).cloned().flatten().map_or(i64::MIN, |c| c.last);
            let last = if uncreated.contains(&target.stream_id) { i64::MIN } else { last };
            newest.get(&target.stream_id).is_some_and(|newest| *newest > last)
        })
        .cloned()
        .collect();
    // A history room yet to be created has nobody in it to check.
    let existing: Vec<_> = pending.iter().filter(|(t, _)| !uncreated.contains(&t.stream_id)).cloned().collect();
    super::live::refuse_live_rooms(app, &existing, concurrency).await?;
    let pending = pending.iter().map(|(t, _)| t.stream_id).collect();
    let history_rooms = super::history_room::open(app, &mapping, &live_rooms, &pending, &mut targets).await?;
    let meta = RunMeta {
        state: Some(RunState::Running),
        export: Some(export_dir.display().to_string()),
        sha256: Some(sha256.clone()),
        ..RunMeta::default()
    };
    record::set_meta(&app.store, &import_id, &meta).await.map_err(backend)?;

    let mut mentionables = Mentionables::default();
    let mut by_name = HashMap::new();
    for user in realm.users.values() {
        by_name.insert(user.full_name.to_lowercase(), user.id);
    }
    for (zulip_id, slug) in &mapping.users {
        let name = realm.users.get(zulip_id).map_or(slug.to_string(), |u| u.full_name.clone());
        let user_id = app.identities.matrix_user_id(&tenant, slug).to_string();
        mentionables.insert(slug.as_str(), MentionTarget { user_id, display_name: name });
    }
    let total: u64 = targets.iter().map(|(t, _)| per_stream.get(&t.stream_id).copied().unwrap_or(0)).sum();
    let progress = Progress::new(total, quiet);
    progress.phase("import");
    let files = realm.message_files.clone();
    let stream_of_recipient = realm.stream_of_recipient.clone();
    let unmapped_streams: BTreeMap<String, u64> = realm
        .streams
        .values()
        .filter(|s| !mapping.streams.iter().any(|t| t.stream_id == s.id))
        .map(|s| (s.name.clone(), per_stream.get(&s.id).copied().unwrap_or(0)))
        .collect();
    let shared = Arc::new(Shared {
        app,
        realm,
        tenant: tenant.clone(),
        realm_key: import_id.clone(),
        recorder: Recorder::start(app.store.clone(), &import_id),
        mentionables,
        users: mapping.users.clone(),
        by_name,
        senders: Mutex::new(HashMap::new()),
        placeholders: AtomicU64::new(0),
        upload_limit,
        stop: stop.clone(),
        permits: Semaphore::new(concurrency.max(1)),
        export_ids: std::sync::OnceLock::new(),
    });

    // One worker per room, fed by the reader through a bounded channel.
    let mut channels: HashMap<i64, Vec<mpsc::Sender<Message>>> = HashMap::new();
    let mut workers = Vec::new();
    for (target, room_id) in &targets {
        let entity = room::entity(target.stream_id, room_id).to_string();
        let counts: Counts = checkpoints.get(&entity).cloned().flatten().unwrap_or_default();
        let this_room = |stream: &i64, room: &String| *stream == target.stream_id && room == room_id.as_str();
        let room_roots = roots
            .iter()
            .filter_map(|(key, root)| match key {
                CutoverEntity::Thread { stream, room, topic } if this_room(stream, room) => {
                    Some((topic.clone(), (root.event.clone(), root.message_id)))
                }
                _ => None,
            })
            .collect();
        // A finished room's import-joined senders have left already: a later import (the window's) must not make
        // them leave again once the run's memberships made them members.
        let finished = done.contains(&entity);
        let recorded: HashSet<String> = joined
            .iter()
            .filter_map(|key| match key {
                CutoverEntity::Joined { stream, room, user } if !finished && this_room(stream, room) => {
                    Some(user.clone())
                }
                _ => None,
            })
            .collect();
        let mut room = Room::new(target.stream_id, room_id.clone(), counts, room_roots);
        ledgers.give(&mut room);
        let (sender, receiver) = mpsc::channel(512);
        channels.entry(target.stream_id).or_default().push(sender);
        let done_before = done.contains(&entity);
        let (shared, progress) = (shared.clone(), progress.clone());
        workers.push((target.clone(), tokio::spawn(work(shared, room, receiver, recorded, done_before, progress))));
    }
    let reader_stop = stop.clone();
    let reader_shared = shared.clone();
    let reader = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let mut ids = HashSet::new();
        for path in files {
            if reader_stop.load(Ordering::Relaxed) {
                break;
            }
            let messages = export::read_messages(&path).map_err(|e| e.0)?;
            for message in messages {
                if reader_stop.load(Ordering::Relaxed) {
                    break;
                }
                ids.insert(message.id);
                let Some(stream) = stream_of_recipient.get(&message.recipient) else { continue };
                let Some(senders) = channels.get(stream) else { continue };
                for sender in senders {
                    // A worker that stopped (failed room) has closed its end: nothing more to hand it.
                    let _ = sender.blocking_send(message.clone());
                }
            }
        }
        // Set before the channels close: a room's finish redacts only against a complete read.
        if !reader_stop.load(Ordering::Relaxed) {
            let _ = reader_shared.export_ids.set(ids);
        }
        Ok(())
    });
    let read = reader.await.map_err(|e| e.to_string()).and_then(|r| r);

    let mut report = ImportReport {
        import_id: import_id.clone(),
        export: export_dir.display().to_string(),
        sha256,
        tenant: tenant.to_string(),
        state: RunState::Complete,
        streams: Vec::new(),
        unmapped_streams,
        direct_messages: direct,
        placeholders_created: 0,
        imported_now: 0,
        seconds: 0.0,
        messages_per_second: 0.0,
    };
    for (target, worker) in workers {
        let (room, state, error) = match worker.await {
            Ok(outcome) => outcome,
            Err(error) => return Err(ImportError::Stopped(format!("internal: a room's worker ended: {error}"))),
        };
        let state = match (&read, state) {
            (Err(_), RunState::Complete) => RunState::Failed,
            (_, state) => state,
        };
        if state != RunState::Complete && report.state != RunState::Failed {
            report.state = state;
        }
        report.imported_now += room.sent_now;
        let c = &room.counts;
        report.streams.push(StreamReport {
            stream: target.stream.clone(),
            kind: target.kind.path_segment(),
            slug: target.slug.to_string(),
            room_id: room.room_id.to_string(),
            in_export: per_stream.get(&target.stream_id).copied().unwrap_or(0),
            messages: c.messages,
            imported_now: room.sent_now,
            threads: c.threads,
            reactions: c.reactions,
            files: c.files,
            edited: c.edited,
            edits_carried: room.edits_now,
            deletions_carried: room.deletions_now,
            skipped: c.skipped.clone(),
            state,
            error: error.or_else(|| read.as_ref().err().map(|e| format!("reading the export: {e}"))),
            history_room: None,
        });
    }
    progress.finish();
    let flushed = shared.recorder.flush().await;
    if let Err(error) = flushed {
        report.state = RunState::Failed;
        tracing::error!(%error, "the import's record could not be stored");
    }
    super::history_room::close(app, &mapping, &history_rooms, &mut report).await;
    report.placeholders_created = shared.placeholders.load(Ordering::Relaxed);
    report.seconds = started.elapsed().as_secs_f64();
    report.messages_per_second = report.imported_now as f64 / report.seconds.max(0.001);
    let state = RunMeta { state: Some(report.state), ..RunMeta::default() };
    let _ = record::set_meta(&app.store, &import_id, &state).await;
    Ok(report)
}

/// A room's worker: its messages in order, then its finish. Answers the room, its state and its error.
async fn work(
    shared: Arc<Shared>,
    mut room: Room,
    mut messages: mpsc::Receiver<Message>,
    recorded: HashSet<String>,
    done_before: bool,
    progress: Progress,
) -> (Room, RunState, Option<String>) {
    let mut error = room.load_members(&shared, recorded).await.err().map(|e| e.to_string());
    let mut interrupted = false;
    while let Some(message) = messages.recv().await {
        if error.is_some() || interrupted {
            // Keep draining: the reader must never wait on a room that stopped.
            progress.add(1);
            continue;
        }
        if shared.stopping() {
            interrupted = true;
            continue;
        }
        let permit = shared.permits.acquire().await;
        if let Err(failure) = room.message(&shared, &message).await {
            error = Some(format!("message {}: {failure}", message.id));
        }
        drop(permit);
        progress.add(1);
    }
    interrupted |= shared.stopping();
    let mark_read = room.sent_now > 0 || !done_before;
    if error.is_none() && !interrupted && (mark_read || room.changes_pending(&shared)) {
        let _permit = shared.permits.acquire().await;
        if let Err(failure) = room.finish(&shared, mark_read).await {
            error = Some(format!("read markers: {failure}"));
        }
    }
    let state = match (&error, interrupted) {
        (Some(_), _) => RunState::Failed,
        (None, true) => RunState::Interrupted,
        (None, false) => RunState::Complete,
    };
    (room, state, error)
}

pub type ExportDir = PathBuf;
