//! Hostile exports (docs/cutover.md, "Hostile exports"): each is refused naming the record, before anything is
//! sent, without reading outside the export or reading a huge file.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::export::{self, Malformed};
use super::{files, mapping};

const UPLOAD: &str = "1/ab/report.txt";

/// A one-stream export with one message linking one upload, in a fresh directory; answers (directory, export).
fn export_with(records: Value, users: Value, date_sent: f64) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("zulip-hostile-{}", uuid::Uuid::new_v4().simple()));
    let export = dir.join("export");
    std::fs::create_dir_all(export.join("uploads/1/ab")).expect("dirs");
    let realm = json!({
        "zerver_realm": [{"id": 1, "string_id": "hostile", "date_created": 1.0}],
        "zerver_userprofile": users,
        "zerver_stream": [{"id": 100, "name": "general"}],
        "zerver_recipient": [{"id": 200, "type": 2, "type_id": 100}],
    });
    std::fs::write(export.join("realm.json"), realm.to_string()).expect("realm");
    let message = json!({"id": 1, "sender": 10, "recipient": 200, "subject": "t",
        "content": format!("see [report](/user_uploads/{UPLOAD})"), "date_sent": date_sent});
    std::fs::write(export.join("messages-000001.json"), json!({"zerver_message": [message]}).to_string())
        .expect("messages");
    std::fs::write(export.join("uploads").join(UPLOAD), b"the report").expect("upload");
    std::fs::write(export.join("uploads/records.json"), records.to_string()).expect("records");
    (dir, export)
}

fn users() -> Value {
    json!([{"id": 10, "email": "alice@example.com", "full_name": "Alice"},
           {"id": 11, "email": "bob@example.com", "full_name": "Bob"}])
}

fn with_path(path: &str) -> (PathBuf, PathBuf) {
    export_with(json!([{"s3_path": UPLOAD, "path": path}]), users(), 1_700_000_000.0)
}

fn refused(export: &Path) -> String {
    match export::load(export).and_then(|realm| export::sha256(export).map(|_| realm)) {
        Ok(_) => panic!("{} was accepted", export.display()),
        Err(Malformed(why)) => why,
    }
}

#[test]
fn a_well_formed_export_loads() {
    let (dir, export) = with_path(UPLOAD);
    let realm = export::load(&export).expect("loads");
    assert_eq!(realm.uploads[UPLOAD].checked.size, 10);
    export::validate(&realm, 1_800_000_000.0).expect("valid");
    export::sha256(&export).expect("hash");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn absolute_and_climbing_paths_are_refused_naming_the_upload() {
    for path in ["/proc/self/environ", "/etc/passwd", "../../outside.txt", "1/../../realm.json", "./1/ab/report.txt"] {
        let (dir, export) = with_path(path);
        std::fs::write(dir.join("outside.txt"), b"secret").expect("outside");
        let why = refused(&export);
        assert!(why.contains("uploads/records.json") && why.contains(path), "{path}: {why}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn links_are_refused_wherever_they_are() {
    // A link as the upload, a linked directory on the way, and a link the records do not name.
    let (dir, export) = with_path("1/ab/link.txt");
    std::os::unix::fs::symlink("/etc/hostname", export.join("uploads/1/ab/link.txt")).expect("link");
    let why = refused(&export);
    assert!(why.contains("1/ab/link.txt") && why.contains("symbolic link"), "{why}");
    let _ = std::fs::remove_dir_all(dir);

    let (dir, export) = with_path("etc/passwd");
    std::os::unix::fs::symlink("/etc", export.join("uploads/etc")).expect("link");
    let why = refused(&export);
    assert!(why.contains("etc/passwd") && why.contains("symbolic link"), "{why}");
    let _ = std::fs::remove_dir_all(dir);

    let (dir, export) = with_path(UPLOAD);
    std::os::unix::fs::symlink("/dev/zero", export.join("uploads/zero")).expect("link");
    let why = refused(&export);
    assert!(why.contains("uploads/zero") && why.contains("symbolic link"), "{why}");
    let _ = std::fs::remove_dir_all(dir);

    let (dir, export) = with_path(UPLOAD);
    std::os::unix::fs::symlink("../..", export.join("uploads/loop")).expect("link");
    let why = refused(&export);
    assert!(why.contains("uploads/loop"), "{why}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_hard_link_to_a_file_outside_is_refused() {
    let (dir, export) = with_path("1/ab/linked.txt");
    std::fs::write(dir.join("outside.txt"), b"secret").expect("outside");
    std::fs::hard_link(dir.join("outside.txt"), export.join("uploads/1/ab/linked.txt")).expect("hard link");
    let why = refused(&export);
    assert!(why.contains("1/ab/linked.txt") && why.contains("hard links"), "{why}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn fifos_and_directories_are_refused_without_blocking() {
    let (dir, export) = with_path("1/ab/pipe");
    let made = std::process::Command::new("mkfifo").arg(export.join("uploads/1/ab/pipe")).status().expect("mkfifo");
    assert!(made.success());
    let why = refused(&export);
    assert!(why.contains("1/ab/pipe") && why.contains("FIFO"), "{why}");
    let _ = std::fs::remove_dir_all(dir);

    let (dir, export) = with_path("1/ab");
    let why = refused(&export);
    assert!(why.contains("1/ab") && why.contains("directory"), "{why}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_huge_sparse_file_is_never_read() {
    // Two 10 GiB sparse files differing in one byte hash alike: the hash covers the name and length only.
    let (dir, export) = with_path("1/ab/huge.bin");
    let huge = export.join("uploads/1/ab/huge.bin");
    let file = std::fs::File::create(&huge).expect("create");
    file.set_len(10 << 30).expect("sparse");
    let realm = export::load(&export).expect("a large file is a skip, not a refusal");
    assert!(realm.uploads[UPLOAD].checked.size > files::MAX_FILE);
    let before = export::sha256(&export).expect("hash");
    std::os::unix::fs::FileExt::write_at(&file, b"x", 5 << 30).expect("write");
    assert_eq!(before, export::sha256(&export).expect("hash"), "the huge file was read");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn json_files_over_their_cap_are_refused_naming_the_file() {
    let (dir, export) = with_path(UPLOAD);
    let messages = std::fs::OpenOptions::new().append(true).open(export.join("messages-000001.json")).expect("open");
    messages.set_len(files::MAX_MESSAGES_JSON + 1).expect("sparse");
    let realm = export::load(&export).expect("loads");
    let Err(Malformed(why)) = export::validate(&realm, f64::MAX) else { panic!("accepted") };
    assert!(why.contains("messages-000001.json") && why.contains("over the cap"), "{why}");
    std::fs::File::create(export.join("realm.json")).expect("realm").set_len(files::MAX_REALM_JSON + 1).expect("set");
    let why = refused(&export);
    assert!(why.contains("realm.json") && why.contains("over the cap"), "{why}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_file_swapped_after_the_check_is_not_opened() {
    let (dir, export) = with_path(UPLOAD);
    let realm = export::load(&export).expect("loads");
    let upload = &realm.uploads[UPLOAD];
    files::open(&realm.dir, &upload.relative(), upload.checked).expect("still the checked file");
    let path = export.join("uploads").join(UPLOAD);
    std::fs::remove_file(&path).expect("remove");
    std::os::unix::fs::symlink("/etc/hostname", &path).expect("link");
    assert!(files::open(&realm.dir, &upload.relative(), upload.checked).is_err(), "followed a swapped-in link");
    std::fs::write(path.with_extension("new"), b"the report").expect("another file, same size");
    std::fs::rename(path.with_extension("new"), &path).expect("swapped in");
    assert!(files::open(&realm.dir, &upload.relative(), upload.checked).is_err(), "opened another inode");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn duplicate_addresses_are_refused_in_the_export_and_in_the_mapping() {
    let twins = json!([{"id": 10, "email": "alice@example.com", "full_name": "Alice"},
                       {"id": 11, "email": "user11@zulip", "delivery_email": "Alice@Example.com", "full_name": "Eve"}]);
    let (dir, export) = export_with(json!([{"s3_path": UPLOAD, "path": UPLOAD}]), twins, 1_700_000_000.0);
    let why = refused(&export);
    assert!(why.contains("users 10 and 11") && why.contains("alice@example.com"), "{why}");
    let _ = std::fs::remove_dir_all(dir);

    let (dir, export) = with_path(UPLOAD);
    let realm = export::load(&export).expect("loads");
    let file = dir.join("mapping.json");
    let streams = r#""streams":{"general":{"kind":"groups","slug":"general"}}"#;
    for users in [
        r#"{"alice@example.com":"alice","alice@example.com":"mallory"}"#,
        r#"{"alice@example.com":"alice","ALICE@example.com":"mallory"}"#,
    ] {
        std::fs::write(&file, format!(r#"{{"tenant":"acme",{streams},"users":{users}}}"#)).expect("mapping");
        let Err(Malformed(why)) = mapping::load(&file, &realm) else { panic!("{users} accepted") };
        assert!(why.contains("Zulip user 10 is mapped twice"), "{why}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_message_from_the_future_is_refused_naming_it() {
    let (dir, export) = export_with(json!([{"s3_path": UPLOAD, "path": UPLOAD}]), users(), 4_000_000_000.0);
    let realm = export::load(&export).expect("loads");
    let Err(Malformed(why)) = export::validate(&realm, 1_800_000_000.0) else { panic!("accepted") };
    assert!(why.contains("message 1") && why.contains("future"), "{why}");
    let _ = std::fs::remove_dir_all(dir);
}
