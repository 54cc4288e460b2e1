//! The snapshot (JSON Lines, `docs/cutover-formats.md`): records, the validation of the whole file before
//! anything changes, and streaming reads for the phases of a run. Memberships are spilled into bucket files by
//! room, so that a room's list is complete without holding every membership in memory.

use std::collections::HashSet;
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::domain::membership::Role;
use shared::domain::room_lifecycle::{EventRoomInput, GroupRoomInput, Lifecycle, RoomSpec, Visibility};
use shared::domain::users;
use shared::identity::{RoomKind, Slug, TenantId, UserSlug};

pub use crate::member_buckets::MemberBuckets;

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Record {
    User(UserRecord),
    Group(GroupRecord),
    Event(EventRecord),
    Member(MemberRecord),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UserRecord {
    pub tenant: String,
    pub user_id: String,
    pub display_name: String,
    #[serde(default)]
    pub avatar_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupRecord {
    pub tenant: String,
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub topic: Option<String>,
    pub visibility: Visibility,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EventRecord {
    pub tenant: String,
    pub slug: String,
    pub name: String,
    pub starts_at: String,
    #[serde(default)]
    pub ends_at: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub group_slug: Option<String>,
    pub visibility: Visibility,
    pub status: Lifecycle,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MemberRecord {
    pub tenant: String,
    pub kind: String,
    pub slug: String,
    pub user_id: String,
    pub role: Role,
}

/// A validated user.
#[derive(Debug, Clone)]
pub struct User {
    pub tenant: TenantId,
    pub user: UserSlug,
    pub display_name: String,
    pub avatar_url: Option<String>,
    /// What a delta compares with the base run's record ([`fingerprint`]).
    pub fingerprint: String,
}

/// A validated group or event room.
#[derive(Debug, Clone)]
pub struct Room {
    pub tenant: TenantId,
    pub kind: RoomKind,
    pub slug: Slug,
    pub spec: RoomSpec,
    pub lifecycle: Lifecycle,
    /// What a delta compares with the base run's record ([`fingerprint`]).
    pub fingerprint: String,
}

/// One room's desired member list (possibly empty).
#[derive(Debug, Clone)]
pub struct RoomMembers {
    pub tenant: TenantId,
    pub kind: RoomKind,
    pub slug: Slug,
    pub members: Vec<(UserSlug, Role)>,
}

impl RoomMembers {
    /// The fingerprint of the member list: its members with their roles, sorted (the file's order does not count).
    pub fn fingerprint(&self) -> String {
        let mut members: Vec<(&str, &str)> = self.members.iter().map(|(u, r)| (u.as_str(), r.as_str())).collect();
        members.sort_unstable();
        fingerprint(&members)
    }
}

/// SHA-256 (hex) over the canonical JSON of an entity's snapshot input: a record's fields in their declared order.
/// Two snapshots that give an entity the same input give it the same fingerprint, so a delta run skips it.
pub fn fingerprint<T: Serialize>(input: &T) -> String {
    hex::encode(Sha256::digest(serde_json::to_vec(input).unwrap_or_default()))
}

pub enum Valid {
    User(User),
    Room(Room),
    Member(TenantId, RoomKind, Slug, UserSlug, Role),
}

/// What a validated snapshot holds.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub users: u64,
    pub groups: u64,
    pub events: u64,
    pub memberships: u64,
    pub tenants: Vec<String>,
    /// SHA-256 of the file: the identity of a run's input.
    pub digest: String,
}

/// Bad input: exit 2 with this message, nothing changed.
#[derive(Debug)]
pub struct Invalid(pub String);

/// The largest snapshot read (streamed: the cap bounds time, not memory).
pub const MAX_SNAPSHOT: u64 = 16 << 30;
/// The longest line (one record): what a line costs in memory.
pub const MAX_LINE: u64 = 64 << 10;

fn at(line: usize, message: impl std::fmt::Display) -> Invalid {
    Invalid(format!("line {line}: {message}"))
}

fn kind_of(kind: &str) -> Result<RoomKind, String> {
    RoomKind::from_path(kind).map_err(|_| format!("kind must be groups or events, not {kind:?}"))
}

/// Parses and validates one line with the functions' own validation (ids, names, times, avatar URLs).
pub fn parse_line(text: &str) -> Result<Valid, String> {
    let record: Record = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let tenant = |t: &str| TenantId::parse(t).map_err(|e| e.to_string());
    Ok(match record {
        Record::User(u) => {
            let print = fingerprint(&u);
            let avatar = users::parse_avatar(Some(u.avatar_url.clone()), &[]).map_err(|e| e.to_string())?;
            let avatar_url = match avatar {
                users::AvatarChange::Mxc(mxc) => Some(mxc),
                _ => None,
            };
            Valid::User(User {
                tenant: tenant(&u.tenant)?,
                user: UserSlug::parse(&u.user_id).map_err(|e| e.to_string())?,
                display_name: users::validate_display_name(&u.display_name).map_err(|e| e.to_string())?,
                avatar_url,
                fingerprint: print,
            })
        }
        Record::Group(g) => Valid::Room(Room {
            fingerprint: fingerprint(&g),
            tenant: tenant(&g.tenant)?,
            kind: RoomKind::Group,
            slug: Slug::parse(&g.slug).map_err(|e| e.to_string())?,
            spec: RoomSpec::group(GroupRoomInput { name: g.name, topic: g.topic, visibility: g.visibility })
                .map_err(|e| e.to_string())?,
            lifecycle: Lifecycle::Active,
        }),
        Record::Event(e) => Valid::Room(Room {
            fingerprint: fingerprint(&e),
            tenant: tenant(&e.tenant)?,
            kind: RoomKind::Event,
            slug: Slug::parse(&e.slug).map_err(|e| e.to_string())?,
            spec: RoomSpec::event(EventRoomInput {
                name: e.name,
                topic: None,
                starts_at: e.starts_at,
                ends_at: e.ends_at,
                location: e.location,
                group_slug: e.group_slug,
                visibility: e.visibility,
            })
            .map_err(|e| e.to_string())?,
            lifecycle: e.status,
        }),
        Record::Member(m) => Valid::Member(
            tenant(&m.tenant)?,
            kind_of(&m.kind)?,
            Slug::parse(&m.slug).map_err(|e| e.to_string())?,
            UserSlug::parse(&m.user_id).map_err(|e| e.to_string())?,
            m.role,
        ),
    })
}

pub(crate) fn key(parts: &[&str]) -> u64 {
    let mut hasher = DefaultHasher::new();
    parts.hash(&mut hasher);
    hasher.finish()
}

/// Reads the whole file once: every line must parse and validate, no entity may appear twice, and every member,
/// and every event's group, must name a user or room of the snapshot. Only hashes are kept, not records.
pub fn validate(path: &Path) -> Result<Summary, Invalid> {
    // Non-blocking: a FIFO must be refused, not waited on.
    let file = std::os::unix::fs::OpenOptionsExt::custom_flags(File::options().read(true), libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Invalid(format!("{}: {e}", path.display())))?;
    // Checked before a byte is read: a regular file (read again by every phase) within the cap.
    let meta = file.metadata().map_err(|e| Invalid(format!("{}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(Invalid("not a regular file".into()));
    }
    if meta.len() > MAX_SNAPSHOT {
        return Err(Invalid(format!("{} bytes, over the cap of {MAX_SNAPSHOT} bytes for a snapshot", meta.len())));
    }
    let mut reader = BufReader::new(HashingReader { inner: file, hasher: Sha256::new() });
    let (mut users, mut rooms, mut members) = (HashSet::new(), HashSet::new(), HashSet::new());
    let mut references: Vec<(usize, u64, &'static str)> = Vec::new();
    let mut tenants = std::collections::BTreeSet::new();
    let mut summary = Summary::default();
    let mut line = String::new();
    let mut number = 0;
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE + 1)
            .read_line(&mut line)
            .map_err(|e| at(number + 1, format!("not UTF-8 text ({e})")))?;
        if read == 0 {
            break;
        }
        number += 1;
        if read as u64 > MAX_LINE {
            return Err(at(number, format!("longer than {MAX_LINE} bytes")));
        }
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line.trim_end()).map_err(|e| at(number, e))? {
            Valid::User(u) => {
                tenants.insert(u.tenant.to_string());
                if !users.insert(key(&[u.tenant.as_str(), u.user.as_str()])) {
                    return Err(at(number, format!("user {} of {} is listed twice", u.user, u.tenant)));
                }
                summary.users += 1;
            }
            Valid::Room(r) => {
                tenants.insert(r.tenant.to_string());
                if !rooms.insert(key(&[r.tenant.as_str(), r.kind.as_str(), r.slug.as_str()])) {
                    return Err(at(number, format!("{} {} of {} is listed twice", r.kind.as_str(), r.slug, r.tenant)));
                }
                if let Some(group) = &r.spec.group {
                    references.push((number, key(&[r.tenant.as_str(), "group", group.as_str()]), "group"));
                }
                match r.kind {
                    RoomKind::Group => summary.groups += 1,
                    RoomKind::Event => summary.events += 1,
                }
            }
            Valid::Member(tenant, kind, slug, user, _) => {
                tenants.insert(tenant.to_string());
                let room = [tenant.as_str(), kind.as_str(), slug.as_str()];
                if !members.insert(key(&[tenant.as_str(), kind.as_str(), slug.as_str(), user.as_str()])) {
                    return Err(at(number, format!("{user} is listed twice in {} {slug}", kind.as_str())));
                }
                references.push((number, key(&room), "room"));
                references.push((number, key(&[tenant.as_str(), user.as_str()]), "user"));
                summary.memberships += 1;
            }
        }
    }
    for (number, reference, what) in references {
        let known = if what == "user" { users.contains(&reference) } else { rooms.contains(&reference) };
        if !known {
            return Err(at(number, format!("names a {what} that the snapshot does not contain")));
        }
    }
    summary.tenants = tenants.into_iter().collect();
    summary.digest = hex::encode(reader.into_inner().hasher.finalize());
    Ok(summary)
}

struct HashingReader {
    inner: File,
    hasher: Sha256,
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Streams the valid records of an already validated file.
pub fn stream(path: &Path) -> Result<impl Iterator<Item = Valid>, Invalid> {
    let file = File::open(path).map_err(|e| Invalid(format!("{}: {e}", path.display())))?;
    Ok(BufReader::new(file).lines().map_while(Result::ok).filter_map(|line| parse_line(line.trim_end()).ok()))
}

pub fn users(path: &Path) -> Result<impl Iterator<Item = User>, Invalid> {
    Ok(stream(path)?.filter_map(|v| if let Valid::User(u) = v { Some(u) } else { None }))
}

pub fn rooms(path: &Path, kind: RoomKind) -> Result<impl Iterator<Item = Room>, Invalid> {
    Ok(stream(path)?.filter_map(move |v| match v {
        Valid::Room(r) if r.kind == kind => Some(r),
        _ => None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write<S: AsRef<str>>(lines: &[S]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("snapshot-test-{}.jsonl", uuid::Uuid::new_v4().simple()));
        let text: Vec<&str> = lines.iter().map(AsRef::as_ref).collect();
        std::fs::write(&path, text.join("\n")).expect("write");
        path
    }

    const USER: &str = r#"{"type":"user","tenant":"acme","userId":"alice","displayName":"Alice","avatarUrl":null}"#;
    const GROUP: &str =
        r#"{"type":"group","tenant":"acme","slug":"chess","name":"Chess club","topic":null,"visibility":"public"}"#;
    const EVENT: &str = r#"{"type":"event","tenant":"acme","slug":"launch","name":"Launch","startsAt":"2031-01-01T18:00:00Z","endsAt":null,"location":null,"groupSlug":"chess","visibility":"public","status":"active"}"#;
    const MEMBER: &str =
        r#"{"type":"member","tenant":"acme","kind":"groups","slug":"chess","userId":"alice","role":"owner"}"#;

    #[test]
    fn the_contracts_example_validates_in_any_order() {
        let path = write(&[MEMBER, EVENT, GROUP, USER]);
        let summary = validate(&path).expect("valid");
        assert_eq!((summary.users, summary.groups, summary.events, summary.memberships), (1, 1, 1, 1));
        assert_eq!(summary.tenants, ["acme"]);
        assert_eq!(summary.digest.len(), 64);
        let buckets = MemberBuckets::spill(&path, 1, 10).expect("spill");
        let rooms: Vec<RoomMembers> = (0..buckets.count()).flat_map(|i| buckets.bucket(i).expect("bucket")).collect();
        assert_eq!(rooms.len(), 2, "both rooms, the event with an empty list");
        assert!(rooms.iter().any(|r| r.kind == RoomKind::Group && r.members.len() == 1));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn fingerprints_change_with_the_input_only() {
        let user = |line: &str| match parse_line(line) {
            Ok(Valid::User(u)) => u.fingerprint,
            _ => panic!("a user"),
        };
        assert_eq!(user(USER), user(USER));
        assert_ne!(user(USER), user(&USER.replace("\"Alice\"", "\"Alicia\"")));
        let Ok(Valid::Room(group)) = parse_line(GROUP) else { panic!("a group") };
        let Ok(Valid::Room(renamed)) = parse_line(&GROUP.replace("Chess club", "Chess")) else { panic!("a group") };
        assert_ne!(group.fingerprint, renamed.fingerprint);
        let slug = |s: &str| UserSlug::parse(s).expect("slug");
        let list = |members: Vec<(UserSlug, Role)>| RoomMembers {
            tenant: group.tenant.clone(),
            kind: RoomKind::Group,
            slug: group.slug.clone(),
            members,
        };
        let (a, b) = ((slug("a"), Role::Owner), (slug("b"), Role::Member));
        let one = list(vec![a.clone(), b.clone()]).fingerprint();
        assert_eq!(one, list(vec![b.clone(), a.clone()]).fingerprint(), "the file's order does not count");
        assert_ne!(one, list(vec![a.clone(), (slug("b"), Role::Moderator)]).fingerprint(), "a role counts");
        assert_ne!(one, list(vec![a]).fingerprint(), "a member counts");
    }

    #[test]
    fn the_sample_snapshot_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/cutover-sample.jsonl");
        let summary = validate(&path).expect("valid");
        assert_eq!((summary.users, summary.groups, summary.events, summary.memberships), (4, 2, 3, 12));
    }

    #[test]
    fn hostile_snapshots_are_refused_before_they_are_read() {
        let path = write(&[USER.to_owned(), format!("{{\"pad\":\"{}\"}}", "x".repeat(MAX_LINE as usize))]);
        let error = validate(&path).expect_err("a line over the cap");
        assert!(error.0.starts_with("line 2") && error.0.contains("longer than"), "{}", error.0);
        std::fs::File::options().append(true).open(&path).expect("open").set_len(MAX_SNAPSHOT + 1).expect("sparse");
        assert!(validate(&path).expect_err("over the cap").0.contains("over the cap"));
        let _ = std::fs::remove_file(&path);
        let made = std::process::Command::new("mkfifo").arg(&path).status().expect("mkfifo");
        assert!(made.success());
        assert!(validate(&path).expect_err("a FIFO").0.contains("not a regular file"));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn bad_lines_are_named() {
        let cases = [
            (
                vec![
                    USER.to_owned(),
                    r#"{"type":"user","tenant":"acme","userId":"bob","displayName":"B","admin":true}"#.to_owned(),
                ],
                "line 2",
            ),
            (vec![USER.to_owned(), "{not json".to_owned()], "line 2"),
            (vec![r#"{"type":"robot","tenant":"acme"}"#.to_owned()], "line 1"),
            (vec![USER.to_owned(), USER.to_owned()], "line 2"),
            (vec![USER.to_owned(), GROUP.to_owned(), MEMBER.replace("alice", "zed")], "line 3"),
            (vec![USER.to_owned(), EVENT.to_owned()], "line 2"),
            (vec![r#"{"type":"user","tenant":"Acme","userId":"a","displayName":"A"}"#.to_owned()], "line 1"),
        ];
        for (lines, expected) in cases {
            let path = write(&lines);
            let error = validate(&path).expect_err("invalid");
            assert!(error.0.starts_with(expected), "{lines:?}: {}", error.0);
            let _ = std::fs::remove_file(path);
        }
    }
}
