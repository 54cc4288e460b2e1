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
}

/// The realm's tables an import needs.
#[derive(Debug)]
pub struct Realm {
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

fn open_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, Malformed> {
    let file = std::fs::File::open(path).map_err(|e| Malformed(format!("{}: {e}", path.display())))?;
    serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| Malformed(format!("{}: {e}", path.display())))
}

/// Reads `realm.json` and `uploads/records.json`, and lists the message files in order.
pub fn load(dir: &Path) -> Result<Realm, Malformed> {
    if !dir.is_dir() {
        return Err(Malformed(format!("{}: not a directory (an unpacked Zulip export)", dir.display())));
    }
    let realm: RealmFile = open_json(&dir.join("realm.json"))?;
    let row = realm.zerver_realm.first().ok_or_else(|| Malformed("realm.json: zerver_realm is empty".into()))?;
    let identity = format!("{}\n{}\n{}", row.id, row.string_id, row.date_created.unwrap_or(0.0));
    let key = hex::encode(<Sha256 as Digest>::digest(identity.as_bytes()))[..20].to_owned();
    let mut users = HashMap::new();
    for user in realm
        .zerver_userprofile
        .into_iter()
        .chain(realm.zerver_userprofile_mirrordummy)
        .chain(realm.zerver_userprofile_crossrealm)
    {
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
    let records = dir.join("uploads/records.json");
    let mut uploads = HashMap::new();
    if records.exists() {
        let list: Vec<Upload> = open_json(&records)?;
        for upload in list {
            let file = dir.join("uploads").join(&upload.path);
            if upload.path.contains("..") || !file.is_file() {
                return Err(Malformed(format!("uploads/records.json: {} is not in the export", upload.path)));
            }
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
    let file: MessageFile = open_json(path)?;
    let mut messages = file.zerver_message;
    messages.sort_by_key(|m| m.id);
    Ok(messages)
}

/// Per stream: how many messages it has, checked against the realm's tables. Streams every file once.
pub fn validate(realm: &Realm) -> Result<(HashMap<i64, u64>, u64), Malformed> {
    let mut per_stream: HashMap<i64, u64> = HashMap::new();
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
            match realm.stream_of_recipient.get(&message.recipient) {
                Some(stream) => *per_stream.entry(*stream).or_default() += 1,
                None => other += 1,
            }
        }
    }
    Ok((per_stream, other))
}

/// SHA-256 of the export for the compliance archive: every file under the directory, in byte order of their
/// relative paths, each as its path, a NUL, its length (8 bytes, big-endian) and its bytes.
pub fn sha256(dir: &Path) -> Result<String, Malformed> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).map_err(|e| Malformed(format!("{}: {e}", next.display())))? {
            let path = entry.map_err(|e| Malformed(e.to_string()))?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let mut relative: Vec<(String, PathBuf)> =
        files.into_iter().map(|p| (p.strip_prefix(dir).unwrap_or(&p).to_string_lossy().into_owned(), p)).collect();
    relative.sort();
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    for (name, path) in relative {
        let mut file = std::fs::File::open(&path).map_err(|e| Malformed(format!("{name}: {e}")))?;
        let length = file.metadata().map(|m| m.len()).unwrap_or(0);
        hasher.update(name.as_bytes());
        hasher.update([0u8]);
        hasher.update(length.to_be_bytes());
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
