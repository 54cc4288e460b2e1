//! `generate-zulip`: a synthetic Zulip organization export in Zulip's own format (see `export`), deterministic for a
//! seed, with what an import must carry: users, streams with topics, edited messages, mentions, reactions (Unicode
//! and a custom emoji), uploads (a PNG image and a text file), direct messages, a stream left out of the mapping and
//! users missing from it. Beside the export it writes the mapping and a cutover snapshot that provisions the mapped
//! users and rooms (`openmeet-cutover run --snapshot`).

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use crate::generate::{GroupLine, MemberLine, Random, UserLine, write_line};

#[derive(Debug, Clone)]
pub struct ZulipShape {
    pub tenant: String,
    /// Users in the mapping (plus `ghosts` who are not).
    pub users: u64,
    pub ghosts: u64,
    /// Mapped streams (plus one unmapped).
    pub streams: u64,
    pub topics: u64,
    pub messages: u64,
    /// Every n-th message links an upload (0: none).
    pub upload_every: u64,
    pub seed: u64,
}

/// A 2×2 PNG (valid header and data), so the image has dimensions and a thumbnail.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x00, 0x00, 0x02, 0x08, 0x02, 0x00, 0x00, 0x00, 0xFD, 0xD4, 0x9A, 0x73, 0x00, 0x00, 0x00, 0x16, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0, 0x1F, 0x08, 0x19, 0x18, 0xFE, 0x03, 0x00, 0x3E, 0x6A,
    0x07, 0xF9, 0x3A, 0x2F, 0xB9, 0xE1, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

pub const REALM_ID: i64 = 2;
const FIRST_MESSAGE_ID: i64 = 1000;
/// Zulip writes message files in batches of this many messages.
const BATCH: usize = 1000;
/// The first message's date (2024-01-01T00:00:00Z); one minute between messages.
const START: f64 = 1_704_067_200.0;

pub fn stream_name(index: u64) -> String {
    format!("stream-{index}")
}

pub fn topic_name(index: u64) -> String {
    format!("Topic {index}")
}

pub fn user_slug(index: u64) -> String {
    format!("zu{index:04}")
}

pub fn room_slug(index: u64) -> String {
    format!("zs{index:03}")
}

fn write_json(path: &Path, value: &Value) -> std::io::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    serde_json::to_writer(&mut file, value)?;
    file.flush()
}

/// Writes the export into `dir` (created), `mapping` and the cutover `snapshot`.
pub fn generate(shape: &ZulipShape, dir: &Path, mapping: &Path, snapshot: &Path) -> std::io::Result<()> {
    let mut random = Random(shape.seed);
    std::fs::create_dir_all(dir.join("uploads"))?;
    let people = shape.users + shape.ghosts;
    let user_id = |i: u64| 10 + i as i64;
    let full_name = |i: u64| if i < shape.users { format!("Member {i}") } else { format!("Ghost {i}") };
    let users: Vec<Value> = (0..people)
        .map(|i| {
            json!({"id": user_id(i), "email": format!("user{}@zulip.example", user_id(i)),
                   "delivery_email": format!("person{i}@example.com"), "full_name": full_name(i),
                   "is_active": true, "is_bot": false, "role": 400, "realm": REALM_ID})
        })
        .collect();
    let crossrealm = json!([{"id": 1, "email": "notification-bot@zulip.com", "full_name": "Notification Bot"}]);
    let stream_count = shape.streams + 1;
    let streams: Vec<Value> = (0..stream_count)
        .map(|s| {
            json!({"id": 100 + s as i64, "name": stream_name(s), "realm": REALM_ID, "deactivated": false,
                         "invite_only": false, "recipient": 200 + s as i64, "description": ""})
        })
        .collect();
    let mut recipients: Vec<Value> =
        (0..stream_count).map(|s| json!({"id": 200 + s as i64, "type": 2, "type_id": 100 + s as i64})).collect();
    recipients.extend((0..people).map(|i| json!({"id": 300 + i as i64, "type": 1, "type_id": user_id(i)})));

    let mut messages = Vec::new();
    let mut reactions = Vec::new();
    let mut records = Vec::new();
    for n in 0..shape.messages {
        let id = FIRST_MESSAGE_ID + n as i64;
        let author = random.below(people);
        let direct = n % 20 == 19;
        let stream = if n % 13 == 12 { shape.streams } else { n % shape.streams.max(1) };
        let topic = topic_name((n / shape.streams.max(1)) % shape.topics.max(1));
        let mut content = format!("Message {n} about {}.", topic.to_lowercase());
        if n % 5 == 1 {
            let other = (author + 1) % people;
            content.push_str(&format!(" Thanks @**{}|{}** :tada:", full_name(other), user_id(other)));
        }
        if shape.upload_every > 0 && n % shape.upload_every == 2 {
            let (name, bytes, kind): (String, &[u8], &str) = if n % 2 == 0 {
                (format!("photo{n}.png"), PNG, "image/png")
            } else {
                (format!("notes{n}.txt"), b"meeting notes\n", "text/plain")
            };
            let path_id = format!("{REALM_ID}/{:02x}/f{n}/{name}", n % 256);
            let file = format!("{REALM_ID}/{:02x}/f{n}/{name}", n % 256);
            let target = dir.join("uploads").join(&file);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&target, bytes)?;
            records.push(json!({"realm_id": REALM_ID, "user_profile_id": user_id(author), "s3_path": path_id,
                                "path": file, "content_type": kind, "size": bytes.len()}));
            content.push_str(&format!(" [{name}](/user_uploads/{path_id})"));
        }
        let edited = n % 6 == 3;
        if edited {
            content.push_str(" (final text)");
        }
        let sent = START + 60.0 * n as f64;
        let recipient = if direct { 300 + ((author + 1) % people) as i64 } else { 200 + stream as i64 };
        messages.push(json!({
            "id": id, "sender": user_id(author), "recipient": recipient, "realm": REALM_ID,
            "subject": if direct { String::new() } else { topic }, "content": content,
            "rendered_content": null, "rendered_content_version": 1, "date_sent": sent,
            "last_edit_time": if edited { json!(sent + 30.0) } else { Value::Null },
            "edit_history": if edited {
                json!(json!([{"timestamp": sent + 30.0, "user_id": user_id(author), "prev_content": "first draft",
                               "prev_rendered_content": "<p>first draft</p>"}]).to_string())
            } else { Value::Null },
            "sending_client": 1, "has_attachment": false, "has_image": false, "has_link": false,
        }));
        if n % 4 == 0 {
            let reactor = (author + 2) % people;
            reactions.push(json!({"id": reactions.len() + 1, "message": id, "user_profile": user_id(reactor),
                                  "emoji_name": "+1", "emoji_code": "1f44d", "reaction_type": "unicode_emoji"}));
            if n % 8 == 0 {
                reactions.push(json!({"id": reactions.len() + 1, "message": id, "user_profile": user_id(author),
                                      "emoji_name": "party_parrot", "emoji_code": "1", "reaction_type": "realm_emoji"}));
            }
        }
    }
    let realm = json!({
        "zerver_realm": [{"id": REALM_ID, "string_id": format!("synthetic-{}", shape.seed), "name": "Synthetic",
                          "date_created": START - 86_400.0}],
        "zerver_userprofile": users,
        "zerver_userprofile_mirrordummy": [],
        "zerver_userprofile_crossrealm": crossrealm,
        "zerver_stream": streams,
        "zerver_recipient": recipients,
        "zerver_subscription": [],
        "zerver_reaction": reactions,
        "zerver_realmemoji": [{"id": 1, "name": "party_parrot", "file_name": "1.gif", "author": user_id(0),
                               "deactivated": false, "realm": REALM_ID}],
    });
    write_json(&dir.join("realm.json"), &realm)?;
    for (index, batch) in messages.chunks(BATCH).enumerate() {
        let file = json!({"zerver_message": batch, "zerver_usermessage": []});
        write_json(&dir.join(format!("messages-{:06}.json", index + 1)), &file)?;
    }
    write_json(&dir.join("uploads/records.json"), &Value::Array(records))?;

    let stream_map: serde_json::Map<String, Value> =
        (0..shape.streams).map(|s| (stream_name(s), json!({"kind": "groups", "slug": room_slug(s)}))).collect();
    let user_map: serde_json::Map<String, Value> =
        (0..shape.users).map(|i| (format!("person{i}@example.com"), json!(user_slug(i)))).collect();
    write_json(mapping, &json!({"tenant": shape.tenant, "streams": stream_map, "users": user_map}))?;

    let mut out = std::io::BufWriter::new(std::fs::File::create(snapshot)?);
    let tenant = &shape.tenant;
    for i in 0..shape.users {
        let (user_id, display_name) = (user_slug(i), full_name(i));
        write_line(&mut out, &UserLine { avatar_url: None, display_name, tenant, r#type: "user", user_id })?;
    }
    for s in 0..shape.streams {
        let (name, slug) = (stream_name(s), room_slug(s));
        let group = GroupLine { name, slug: slug.clone(), tenant, topic: None, r#type: "group", visibility: "public" };
        write_line(&mut out, &group)?;
        for i in 0..shape.users {
            let role = if i == 0 { "owner" } else { "member" };
            let member =
                MemberLine { kind: "groups", role, slug: &slug, tenant, r#type: "member", user_id: user_slug(i) };
            write_line(&mut out, &member)?;
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zulip::{export, mapping};

    fn shape() -> ZulipShape {
        ZulipShape {
            tenant: "acme".into(),
            users: 3,
            ghosts: 1,
            streams: 2,
            topics: 2,
            messages: 30,
            upload_every: 9,
            seed: 5,
        }
    }

    #[test]
    fn a_generated_export_reads_back_and_a_broken_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("zulip-unit-{}", uuid::Uuid::new_v4().simple()));
        let (export_dir, mapping_file, snapshot) = (dir.join("export"), dir.join("m.json"), dir.join("s.jsonl"));
        generate(&shape(), &export_dir, &mapping_file, &snapshot).expect("generates");
        let realm = export::load(&export_dir).expect("loads");
        let export::Tally { per_stream, direct, .. } = export::validate(&realm, f64::MAX).expect("valid");
        assert_eq!(per_stream.values().sum::<u64>() + direct, 30);
        assert!(direct > 0 && realm.uploads.len() >= 2 && !realm.reactions.is_empty());
        let mapped = mapping::load(&mapping_file, &realm).expect("mapping");
        assert_eq!((mapped.streams.len(), mapped.users.len()), (2, 3));
        let digest = export::sha256(&export_dir).expect("digest");
        assert_eq!(digest, export::sha256(&export_dir).expect("digest"));

        let messages = export_dir.join("messages-000001.json");
        let text = std::fs::read_to_string(&messages).expect("messages");
        std::fs::write(&messages, text.replacen("\"sender\":", "\"sender\":999999,\"x\":", 1)).expect("write");
        let refused =
            export::validate(&export::load(&export_dir).expect("loads"), f64::MAX).expect_err("unknown sender");
        assert!(refused.0.contains("unknown sender 999999"), "{refused}");
        std::fs::write(&messages, &text[..text.len() / 2]).expect("write");
        assert!(export::validate(&export::load(&export_dir).expect("loads"), f64::MAX).is_err());
        std::fs::remove_dir_all(export_dir.join("uploads").join(REALM_ID.to_string())).expect("removed");
        assert!(export::load(&export_dir).is_err(), "an upload record without its file");
        let _ = std::fs::remove_dir_all(dir);
    }
}
