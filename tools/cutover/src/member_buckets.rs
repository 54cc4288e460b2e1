//! The snapshot's memberships spilled into bucket files by room, so that a room's list is complete without
//! holding every membership in memory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::value::{Error as ValueError, StrDeserializer};
use shared::domain::membership::Role;
use shared::identity::{RoomKind, Slug, TenantId, UserSlug};

use crate::snapshot::{Invalid, RoomMembers, Valid, key, stream};

/// Every room's member list, bucket by bucket: the file is spilled into bucket files by room (about
/// `per_bucket` memberships each), and one bucket at a time is held in memory.
pub struct MemberBuckets {
    dir: PathBuf,
    buckets: usize,
}

impl MemberBuckets {
    pub fn spill(path: &Path, memberships: u64, per_bucket: u64) -> Result<MemberBuckets, Invalid> {
        let buckets = (memberships / per_bucket.max(1) + 1) as usize;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("openmeet-cutover-{}-{nanos}", std::process::id()));
        let io = |e: std::io::Error| Invalid(format!("spilling memberships to {}: {e}", dir.display()));
        std::fs::create_dir_all(&dir).map_err(io)?;
        let mut files = (0..buckets)
            .map(|i| File::create(dir.join(format!("{i}.tsv"))).map(BufWriter::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(io)?;
        for valid in stream(path)? {
            // Rooms are written too, so that a room nobody is listed in still gets its (empty) list.
            let (tenant, kind, slug, member) = match valid {
                Valid::Room(r) => (r.tenant, r.kind, r.slug, String::new()),
                Valid::Member(tenant, kind, slug, user, role) => {
                    (tenant, kind, slug, format!("{user}\t{}", role.as_str()))
                }
                Valid::User(_) => continue,
            };
            let bucket = (key(&[tenant.as_str(), kind.as_str(), slug.as_str()]) % buckets as u64) as usize;
            writeln!(files[bucket], "{tenant}\t{}\t{slug}\t{member}", kind.path_segment()).map_err(io)?;
        }
        for file in &mut files {
            file.flush().map_err(io)?;
        }
        Ok(MemberBuckets { dir, buckets })
    }

    /// The rooms of one bucket with their lists, in a stable order.
    pub fn bucket(&self, index: usize) -> Result<Vec<RoomMembers>, Invalid> {
        let path = self.dir.join(format!("{index}.tsv"));
        let text = std::fs::read_to_string(&path).map_err(|e| Invalid(format!("{}: {e}", path.display())))?;
        let mut rooms: BTreeMap<(String, String, String), Vec<(UserSlug, Role)>> = BTreeMap::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split('\t').collect();
            let [tenant, kind, slug, rest @ ..] = fields.as_slice() else { continue };
            let list = rooms.entry(((*tenant).to_owned(), (*kind).to_owned(), (*slug).to_owned())).or_default();
            if let [user, role] = rest
                && let (Ok(user), Ok(role)) =
                    (UserSlug::parse(user), Role::deserialize(StrDeserializer::<ValueError>::new(role)))
            {
                list.push((user, role));
            }
        }
        Ok(rooms
            .into_iter()
            .filter_map(|((tenant, kind, slug), members)| {
                Some(RoomMembers {
                    tenant: TenantId::parse(&tenant).ok()?,
                    kind: RoomKind::from_path(&kind).ok()?,
                    slug: Slug::parse(&slug).ok()?,
                    members,
                })
            })
            .collect())
    }

    pub fn count(&self) -> usize {
        self.buckets
    }
}

impl Drop for MemberBuckets {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
