//! Reading Zulip's organization export (`manage.py export`; format of Zulip's `zerver/lib/export.py`, read back by
//! `zerver/lib/import_realm.py`): `realm.json` holds the realm's tables (`zerver_userprofile` and its
//! `_mirrordummy`/`_crossrealm` companions, `zerver_stream`, `zerver_recipient`, `zerver_reaction`,
//! `zerver_realmemoji`, …); `messages-000001.json`, `messages-000002.json`, … hold `zerver_message` (and
//! `zerver_usermessage`) in batches of ids in ascending order; `uploads/records.json` lists the uploaded files kept
//! under `uploads/` (`s3_path` is the `path_id` that messages link as `/user_uploads/{path_id}`, `path` the file).
//!
//! Only the realm tables are held in memory (users, streams, reactions); message files are read one at a time.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::files::{self, Identity};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What makes an export unusable; the import exits 2 on it before sending anything.
#[derive(Debug)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub email: String,
    /// The real address when the realm hides emails (`email` is then `user{id}@{host}`).
    #[serde(default)]
    pub delivery_email: Option<String>,
    #[serde(default)]
    pub full_name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Stream {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub deactivated: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Recipient {
    pub id: i64,
    /// 1 personal, 2 stream, 3 direct-message group (Zulip's `Recipient.PERSONAL | STREAM | DIRECT_MESSAGE_GROUP`).
    #[serde(rename = "type")]
    pub kind: i64,
    pub type_id: i64,
}

pub const STREAM: i64 = 2;

#[derive(Debug, Clone, Deserialize)]
pub struct Reaction {
    pub message: i64,
    pub user_profile: i64,
    pub emoji_name: String,
    pub emoji_code: String,
    #[serde(default = "unicode_emoji")]
    pub reaction_type: String,
}

fn unicode_emoji() -> String {
    "unicode_emoji".into()
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub id: i64,
    pub sender: i64,
    pub recipient: i64,
    /// The topic (the final one, after edits and moves).
    #[serde(default)]
    pub subject: String,
    /// The final text (after edits), in Zulip markdown.
    pub content: String,
    /// Seconds since the epoch (float); `pub_date` in exports before Zulip 3.
    #[serde(default, alias = "pub_date")]
    pub date_sent: Option<f64>,
    #[serde(default)]
    pub last_edit_time: Option<f64>,
    /// JSON text of the edit history, when edited.
    #[serde(default)]
    pub edit_history: Option<String>,
}

impl Message {
    pub fn ts_ms(&self) -> u64 {
        (self.date_sent.unwrap_or(0.0) * 1000.0).round().max(0.0) as u64
    }

    pub fn edited(&self) -> bool {
        self.last_edit_time.is_some() || self.edit_history.as_deref().is_some_and(|h| h != "[]")
    }
}

#[derive(Debug, Deserialize)]
struct RealmRow {
    id: i64,
    #[serde(default)]
    string_id: String,
    #[serde(default)]
    date_created: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct RealmFile {
    zerver_realm: Vec<RealmRow>,
    zerver_userprofile: Vec<User>,
    #[serde(default)]
    zerver_userprofile_mirrordummy: Vec<User>,
    #[serde(default)]
    zerver_userprofile_crossrealm: Vec<User>,
    zerver_stream: Vec<Stream>,
    zerver_recipient: Vec<Recipient>,
    #[serde(default)]
    zerver_reaction: Vec<Reaction>,
}

#[derive(Debug, Deserialize)]
struct MessageFile {
    zerver_message: Vec<Message>,
}

/// An uploaded file of the export.
#[derive(Debug, Clone, Deserialize)]
pub struct Upload {
    /// The `path_id` messages link to.
    pub s3_path: String,
    /// The file, relative to `uploads/`.
    pub path: String,
    #[serde(default)]
    pub content_type: Option<String>,
    /// The file as checked when the export was loaded (opened only if it is still that file).
    #[serde(skip)]
    pub checked: Identity,
}

impl Upload {
    /// The file's path under the export's root.
    pub fn relative(&self) -> PathBuf {
        Path::new("uploads").join(&self.path)
    }
}

/// The realm's tables an import needs.
#[derive(Debug)]
pub struct Realm {
    /// The export's directory, resolved once (every file is checked under it).
    pub dir: PathBuf,
    /// The Zulip organisation (id, subdomain, creation): the same in every export of it, so a later export
    /// continues where an import of an earlier one stopped (message ids are stable).
    pub key: String,
    pub users: HashMap<i64, User>,
    pub streams: HashMap<i64, Stream>,
    /// Recipient id → stream id, for stream recipients.
    pub stream_of_recipient: HashMap<i64, i64>,
    pub recipients: HashMap<i64, Recipient>,
    /// Message id → its reactions.
    pub reactions: HashMap<i64, Vec<Reaction>>,
    /// `path_id` → upload.
    pub uploads: HashMap<String, Upload>,
    pub message_files: Vec<PathBuf>,
}

impl Realm {
    pub fn stream_by_name(&self, name: &str) -> Option<&Stream> {
        self.streams.values().find(|s| s.name == name)
    }

    /// A user's address as the mapping names it: the real one when the realm hides emails.
    pub fn email_of(user: &User) -> &str {
        user.delivery_email.as_deref().filter(|e| !e.is_empty()).unwrap_or(&user.email)
    }
}

/// Reads `realm.json` and `uploads/records.json`, and lists the message files in order. Every upload is checked
/// (plain relative path, no link on the way, a regular file; see [`files`]) before anything is opened.
pub fn load(dir: &Path) -> Result<Realm, Malformed> {
    let dir = &files::root(dir).map_err(Malformed)?;
    let realm: RealmFile = files::read_json(dir, "realm.json", files::MAX_REALM_JSON).map_err(Malformed)?;
    let row = realm.zerver_realm.first().ok_or_else(|| Malformed("realm.json: zerver_realm is empty".into()))?;
    let identity = format!("{}\n{}\n{}", row.id, row.string_id, row.date_created.unwrap_or(0.0));
    let key = hex::encode(<Sha256 as Digest>::digest(identity.as_bytes()))[..20].to_owned();
    let mut users: HashMap<i64, User> = HashMap::new();
    // An address names one user: two users sharing one would silently remap the mapping.
    let mut addresses: HashMap<String, i64> = HashMap::new();
    for user in realm
        .zerver_userprofile
        .into_iter()
        .chain(realm.zerver_userprofile_mirrordummy)
        .chain(realm.zerver_userprofile_crossrealm)
    {
        for address in [Realm::email_of(&user), user.email.as_str()] {
            let address = address.trim().to_ascii_lowercase();
            if address.is_empty() {
                continue;
            }
            match addresses.insert(address.clone(), user.id) {
                Some(other) if other != user.id => {
                    return Err(Malformed(format!(
                        "realm.json: users {other} and {} share the address {address:?}",
                        user.id
                    )));
                }
                _ => {}
            }
        }
        if users.contains_key(&user.id) {
            return Err(Malformed(format!("realm.json: user {} is listed twice", user.id)));
        }
        users.insert(user.id, user);
    }
    let streams: HashMap<i64, Stream> = realm.zerver_stream.into_iter().map(|s| (s.id, s)).collect();
    let mut stream_of_recipient = HashMap::new();
    let mut recipients = HashMap::new();
    for recipient in realm.zerver_recipient {
        if recipient.kind == STREAM {
            if !streams.contains_key(&recipient.type_id) {
                return Err(Malformed(format!("realm.json: recipient {} names no stream", recipient.id)));
            }
            stream_of_recipient.insert(recipient.id, recipient.type_id);
        }
        recipients.insert(recipient.id, recipient);
    }
    let mut reactions: HashMap<i64, Vec<Reaction>> = HashMap::new();
    for reaction in realm.zerver_reaction {
        if !users.contains_key(&reaction.user_profile) {
            return Err(Malformed(format!("realm.json: a reaction by unknown user {}", reaction.user_profile)));
        }
        reactions.entry(reaction.message).or_default().push(reaction);
    }
    let mut uploads = HashMap::new();
    if std::fs::symlink_metadata(dir.join("uploads/records.json")).is_ok() {
        let list: Vec<Upload> =
            files::read_json(dir, "uploads/records.json", files::MAX_RECORDS_JSON).map_err(Malformed)?;
        for mut upload in list {
            let refused = |why: String| Malformed(format!("uploads/records.json: upload {:?}: {why}", upload.path));
            let relative = files::relative(&upload.path).map_err(refused)?;
            upload.checked = files::check(dir, &Path::new("uploads").join(relative)).map_err(refused)?;
            uploads.insert(upload.s3_path.clone(), upload);
        }
    }
    let mut numbered = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Malformed(format!("{}: {e}", dir.display())))? {
        let name = entry.map_err(|e| Malformed(e.to_string()))?.file_name().to_string_lossy().into_owned();
        if let Some(number) = name.strip_prefix("messages-").and_then(|n| n.strip_suffix(".json")) {
            let number: u64 = number.parse().map_err(|_| Malformed(format!("{name}: not a numbered message file")))?;
            numbered.insert(number, dir.join(&name));
        }
    }
    Ok(Realm {
        dir: dir.to_owned(),
        key,
        users,
        streams,
        stream_of_recipient,
        recipients,
        reactions,
        uploads,
        message_files: numbered.into_values().collect(),
    })
}

/// Reads one message file (a batch of at most a few thousand messages), oldest first.
pub fn read_messages(path: &Path) -> Result<Vec<Message>, Malformed> {
    let (Some(root), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Err(Malformed(format!("{}: not a message file of the export", path.display())));
    };
    let file: MessageFile = files::read_json(root, name, files::MAX_MESSAGES_JSON).map_err(Malformed)?;
    let mut messages = file.zerver_message;
    messages.sort_by_key(|m| m.id);
    Ok(messages)
}

/// Per stream: how many messages it has, checked against the realm's tables. Streams every file once. A message
/// sent after `now` (seconds since the epoch: the import's start) is refused: it would sort above everything
/// posted later.
pub fn validate(realm: &Realm, now: f64) -> Result<Tally, Malformed> {
    let mut per_stream: HashMap<i64, u64> = HashMap::new();
    let mut newest: HashMap<i64, i64> = HashMap::new();
    let mut other = 0;
    let mut last = i64::MIN;
    for path in &realm.message_files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for message in read_messages(path)? {
            let at = || format!("{name}: message {}", message.id);
            if message.id <= last {
                return Err(Malformed(format!("{}: ids are not ascending across files", at())));
            }
            last = message.id;
            if !realm.users.contains_key(&message.sender) {
                return Err(Malformed(format!("{}: unknown sender {}", at(), message.sender)));
            }
            if !realm.recipients.contains_key(&message.recipient) {
                return Err(Malformed(format!("{}: unknown recipient {}", at(), message.recipient)));
            }
            if !message.date_sent.is_some_and(|t| t.is_finite() && t > 0.0) {
                return Err(Malformed(format!("{}: no date_sent", at())));
            }
            if message.date_sent.is_some_and(|t| t > now) {
                return Err(Malformed(format!("{}: date_sent is in the future (after the import's start)", at())));
            }
            match realm.stream_of_recipient.get(&message.recipient) {
                Some(stream) => {
                    *per_stream.entry(*stream).or_default() += 1;
                    // Ids ascend across the files: the last one seen is the stream's newest.
                    newest.insert(*stream, message.id);
                }
                None => other += 1,
            }
        }
    }
    Ok(Tally { per_stream, direct: other, newest })
}

/// What [`validate`] counted: messages per stream, direct messages, and each stream's newest message id.
#[derive(Debug)]
pub struct Tally {
    pub per_stream: HashMap<i64, u64>,
    pub direct: u64,
    pub newest: HashMap<i64, i64>,
}

/// SHA-256 of the export for the compliance archive: every file under the directory, in byte order of their
/// relative paths, each as its path, a NUL, its length (8 bytes, big-endian) and its bytes (streamed). A file over
/// [`files::MAX_FILE`] is covered by its path and length only: it is never read (nor imported). Anything in the
/// export that is neither a directory nor a regular file (a link, a FIFO, a device, a socket) is refused.
pub fn sha256(dir: &Path) -> Result<String, Malformed> {
    let root = files::root(dir).map_err(Malformed)?;
    let mut found: Vec<(String, PathBuf, Identity)> = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(next) = pending.pop() {
        let at = root.join(&next);
        for entry in std::fs::read_dir(&at).map_err(|e| Malformed(format!("{}: {e}", next.display())))? {
            let entry = entry.map_err(|e| Malformed(format!("{}: {e}", next.display())))?;
            let relative = next.join(entry.file_name());
            // `DirEntry::file_type` does not follow links.
            let file_type = entry.file_type().map_err(|e| Malformed(format!("{}: {e}", relative.display())))?;
            if file_type.is_dir() {
                pending.push(relative);
            } else {
                let identity = files::check(&root, &relative).map_err(Malformed)?;
                found.push((relative.to_string_lossy().into_owned(), relative, identity));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    for (name, relative, identity) in found {
        hasher.update(name.as_bytes());
        hasher.update([0u8]);
        hasher.update(identity.size.to_be_bytes());
        if identity.size > files::MAX_FILE {
            continue;
        }
        let file = files::open(&root, &relative, identity).map_err(|e| Malformed(format!("{name}: {e}")))?;
        let mut file = file.take(identity.size);
        loop {
            let read = file.read(&mut buffer).map_err(|e| Malformed(format!("{name}: {e}")))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
    }
    Ok(hex::encode(hasher.finalize()))
}
