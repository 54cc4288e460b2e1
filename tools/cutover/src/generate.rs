//! `generate`: a synthetic snapshot, deterministic for a seed, of any size, shaped like a real community: a few
//! big groups and a long tail of small ones, many small events (most in a group, some cancelled or archived),
//! and popular users in many rooms. Every room has an owner first; a few members are moderators or admins.

use std::collections::HashSet;
use std::io::Write;

use serde::Serialize;

#[derive(Debug, Clone)]
pub struct Shape {
    pub tenant: String,
    pub users: u64,
    pub groups: u64,
    pub events: u64,
    pub memberships: u64,
    pub seed: u64,
}

/// splitmix64: tiny, and the same on every platform and version (a seed must give the same file forever).
pub(crate) struct Random(pub(crate) u64);

impl Random {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

const FIRST: &[&str] = &["Ada", "Bo", "Chen", "Dana", "Emil", "Fatima", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lena"];
const LAST: &[&str] = &["Berg", "Costa", "Diaz", "Eng", "Fox", "Gray", "Haas", "Ito", "Jones", "Kim", "Lund", "Moss"];
const TOPICS: &[&str] = &["Chess", "Hiking", "Rust", "Jazz", "Cooking", "Books", "Cycling", "Photo", "Go", "Salsa"];

// The snapshot's lines (`docs/cutover-formats.md`), fields in alphabetical order: the order the first version
// wrote them in, so that a seed still gives the same file byte for byte.

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserLine<'a> {
    pub(crate) avatar_url: Option<&'a str>,
    pub(crate) display_name: String,
    pub(crate) tenant: &'a str,
    pub(crate) r#type: &'static str,
    pub(crate) user_id: String,
}

#[derive(Serialize)]
pub(crate) struct GroupLine<'a> {
    pub(crate) name: String,
    pub(crate) slug: String,
    pub(crate) tenant: &'a str,
    pub(crate) topic: Option<String>,
    pub(crate) r#type: &'static str,
    pub(crate) visibility: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventLine<'a> {
    pub(crate) ends_at: Option<String>,
    pub(crate) group_slug: Option<String>,
    pub(crate) location: Option<String>,
    pub(crate) name: String,
    pub(crate) slug: String,
    pub(crate) starts_at: String,
    pub(crate) status: &'static str,
    pub(crate) tenant: &'a str,
    pub(crate) r#type: &'static str,
    pub(crate) visibility: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MemberLine<'a> {
    pub(crate) kind: &'static str,
    pub(crate) role: &'static str,
    pub(crate) slug: &'a str,
    pub(crate) tenant: &'a str,
    pub(crate) r#type: &'static str,
    pub(crate) user_id: String,
}

pub(crate) fn write_line(out: &mut impl Write, line: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    writeln!(out)
}

/// How many members each room gets: groups by a power law (a few big ones), events small; exactly `total`,
/// no room above the number of users.
fn room_sizes(shape: &Shape) -> Vec<u64> {
    let weights: Vec<f64> = (0..shape.groups)
        .map(|i| 4.0 / ((i + 1) as f64).powf(0.9))
        .chain((0..shape.events).map(|i| 1.0 / (1 + i % 7) as f64))
        .collect();
    let sum: f64 = weights.iter().sum();
    let cap = shape.users;
    let mut sizes: Vec<u64> =
        weights.iter().map(|w| ((shape.memberships as f64 * w / sum).floor() as u64).clamp(1, cap)).collect();
    let mut assigned: u64 = sizes.iter().sum();
    // Hand out (or take back) the rounding difference, biggest rooms first.
    let mut index = 0;
    let rooms = sizes.len();
    while assigned != shape.memberships && rooms > 0 {
        let room = index % rooms;
        if assigned < shape.memberships && sizes[room] < cap {
            sizes[room] += 1;
            assigned += 1;
        } else if assigned > shape.memberships && sizes[room] > 1 {
            sizes[room] -= 1;
            assigned -= 1;
        }
        index += 1;
        if index > rooms * (cap as usize + 2) {
            break;
        }
    }
    sizes
}

pub fn generate(shape: &Shape, out: &mut impl Write) -> std::io::Result<()> {
    let mut random = Random(shape.seed);
    let tenant = &shape.tenant;
    for i in 0..shape.users {
        let name = format!(
            "{} {}",
            FIRST[random.below(FIRST.len() as u64) as usize],
            LAST[random.below(LAST.len() as u64) as usize]
        );
        let line =
            UserLine { avatar_url: None, display_name: name, tenant, r#type: "user", user_id: format!("u{i:06}") };
        write_line(out, &line)?;
    }
    for i in 0..shape.groups {
        let topic = TOPICS[(i % TOPICS.len() as u64) as usize];
        let visibility = if random.unit() < 0.8 { "public" } else { "private" };
        let described = random.unit() < 0.5;
        let line = GroupLine {
            name: format!("{topic} club {i}"),
            slug: format!("g{i:04}"),
            tenant,
            topic: described.then(|| format!("All about {}", topic.to_lowercase())),
            r#type: "group",
            visibility,
        };
        write_line(out, &line)?;
    }
    for i in 0..shape.events {
        let in_group = shape.groups > 0 && random.unit() < 0.7;
        let roll = random.unit();
        let status = if roll < 0.85 {
            "active"
        } else if roll < 0.95 {
            "cancelled"
        } else {
            "archived"
        };
        let (day, hour) = (1 + i % 28, 17 + random.below(4));
        // Drawn in the first version's order: location, group, visibility.
        let location = (random.unit() < 0.6).then(|| format!("Room {}", random.below(40)));
        let group_slug = in_group.then(|| format!("g{:04}", random.below(shape.groups)));
        let visibility = if random.unit() < 0.9 { "public" } else { "private" };
        let line = EventLine {
            ends_at: None,
            group_slug,
            location,
            name: format!("Meetup {i}"),
            slug: format!("e{i:05}"),
            starts_at: format!("2031-{:02}-{day:02}T{hour:02}:00:00Z", 1 + (i / 28) % 12),
            status,
            tenant,
            r#type: "event",
            visibility,
        };
        write_line(out, &line)?;
    }
    for (room, size) in room_sizes(shape).into_iter().enumerate() {
        let room = room as u64;
        let (kind, slug) = if room < shape.groups {
            ("groups", format!("g{room:04}"))
        } else {
            ("events", format!("e{:05}", room - shape.groups))
        };
        let mut chosen = HashSet::new();
        let mut next_free = 0;
        while (chosen.len() as u64) < size {
            // Squaring skews towards low indices: some people are in many rooms.
            let pick = (random.unit().powi(2) * shape.users as f64) as u64;
            let user = if chosen.contains(&pick) {
                while chosen.contains(&next_free) {
                    next_free += 1;
                }
                next_free
            } else {
                pick
            };
            let roll = random.unit();
            let role = match chosen.len() {
                0 => "owner",
                _ if roll < 0.02 => "admin",
                _ if roll < 0.06 => "moderator",
                _ if roll < 0.08 => "speaker",
                _ => "member",
            };
            chosen.insert(user);
            let line = MemberLine { kind, role, slug: &slug, tenant, r#type: "member", user_id: format!("u{user:06}") };
            write_line(out, &line)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(seed: u64) -> Shape {
        Shape { tenant: "t".into(), users: 200, groups: 30, events: 60, memberships: 1500, seed }
    }

    #[test]
    fn a_seed_gives_the_same_valid_snapshot_of_the_asked_size() {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        generate(&shape(7), &mut a).expect("generate");
        generate(&shape(7), &mut b).expect("generate");
        generate(&shape(8), &mut c).expect("generate");
        assert_eq!(a, b);
        assert_ne!(a, c);
        let path = std::env::temp_dir().join(format!("generated-{}.jsonl", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, &a).expect("write");
        let summary = crate::snapshot::validate(&path).expect("valid");
        assert_eq!((summary.users, summary.groups, summary.events, summary.memberships), (200, 30, 60, 1500));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_seed_still_gives_the_first_versions_file() {
        let mut written = Vec::new();
        generate(&shape(7), &mut written).expect("generate");
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&written));
        assert_eq!(digest, "55659b82b521322176d0912267d838d7aa1f8ed161f3922f0450128e167513b5");
    }

    #[test]
    fn rooms_are_skewed_and_capped() {
        let sizes = room_sizes(&shape(1));
        assert_eq!(sizes.iter().sum::<u64>(), 1500);
        assert!(sizes.iter().all(|&s| (1..=200).contains(&s)));
        assert!(sizes[0] > 10 * sizes[29], "the biggest group is not much bigger than the tail: {sizes:?}");
    }
}
