//! The mapping file of `import-zulip` (`docs/cutover-formats.md`): the tenant, which Zulip stream goes into which
//! OpenMeet room, and which Zulip address is which OpenMeet user.
//!
//! ```json
//! {"tenant":"acme","streams":{"general":{"kind":"groups","slug":"chess"}},"users":{"alice@example.com":"alice"}}
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use shared::identity::{RoomKind, Slug, TenantId, UserSlug};

use super::export::{Malformed, Realm};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomFile {
    kind: String,
    slug: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    tenant: String,
    streams: BTreeMap<String, RoomFile>,
    /// In file order, duplicates kept: a repeated address is refused, not silently overwritten.
    #[serde(default, deserialize_with = "pairs")]
    users: Vec<(String, String)>,
}

/// A JSON object as its key/value pairs, repeated keys included.
fn pairs<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<(String, String)>, D::Error> {
    struct Pairs;
    impl<'de> serde::de::Visitor<'de> for Pairs {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of addresses to user ids")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut pairs = Vec::new();
            while let Some(pair) = map.next_entry::<String, String>()? {
                pairs.push(pair);
            }
            Ok(pairs)
        }
    }
    deserializer.deserialize_map(Pairs)
}

#[derive(Debug, Clone)]
pub struct StreamTarget {
    pub stream_id: i64,
    pub stream: String,
    pub kind: RoomKind,
    pub slug: Slug,
}

/// A checked mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub tenant: TenantId,
    pub streams: Vec<StreamTarget>,
    /// Zulip user id → OpenMeet user.
    pub users: BTreeMap<i64, UserSlug>,
    /// SHA-256 of the file, part of the import's identity.
    pub digest: String,
}

/// Reads and checks the mapping against the export: every stream and address it names must exist there.
pub fn load(path: &Path, realm: &Realm) -> Result<Mapping, Malformed> {
    let bytes = super::files::read_capped(path, super::files::MAX_MAPPING).map_err(Malformed)?;
    let file: MappingFile =
        serde_json::from_slice(&bytes).map_err(|e| Malformed(format!("{}: {e}", path.display())))?;
    let bad = |what: String| Malformed(format!("{}: {what}", path.display()));
    let tenant = TenantId::parse(&file.tenant).map_err(|_| bad(format!("{:?} is not a tenant id", file.tenant)))?;
    let mut streams = Vec::new();
    for (name, room) in file.streams {
        let stream = realm.stream_by_name(&name).ok_or_else(|| bad(format!("stream {name:?} is not in the export")))?;
        let kind = RoomKind::from_path(&room.kind)
            .map_err(|_| bad(format!("stream {name:?}: kind must be groups or events, not {:?}", room.kind)))?;
        let slug =
            Slug::parse(&room.slug).map_err(|_| bad(format!("stream {name:?}: {:?} is not a slug", room.slug)))?;
        streams.push(StreamTarget { stream_id: stream.id, stream: name, kind, slug });
    }
    let mut by_email = std::collections::HashMap::new();
    for user in realm.users.values() {
        by_email.insert(Realm::email_of(user).to_ascii_lowercase(), user.id);
        by_email.entry(user.email.to_ascii_lowercase()).or_insert(user.id);
    }
    let mut users = BTreeMap::new();
    for (email, user) in file.users {
        let id = by_email
            .get(&email.to_ascii_lowercase())
            .ok_or_else(|| bad(format!("user {email:?} is not in the export")))?;
        let slug = UserSlug::parse(&user).map_err(|_| bad(format!("user {email:?}: {user:?} is not a user id")))?;
        // The same Zulip user twice (a repeated address, another case, or both of their addresses).
        if users.insert(*id, slug).is_some() {
            return Err(bad(format!("user {email:?}: Zulip user {id} is mapped twice")));
        }
    }
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    Ok(Mapping { tenant, streams, users, digest })
}
