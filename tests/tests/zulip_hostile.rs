//! Hostile Zulip exports (docs/cutover.md, "Hostile exports"), run as the built `openmeet-cutover import-zulip`
//! against the local stack: an upload path that is absolute, climbs out, is a link or a FIFO, two users sharing an
//! address, a message from the future — each exits 2 naming the record, and nothing reaches the rooms (read with the
//! admin token). A huge sparse upload is skipped unread and the rest comes across.

use std::path::Path;

use integration_tests::cutover_cli::{ExportShape, ZulipExport};
use integration_tests::{encode_path, stack, unique};
use reqwest::Method;
use serde_json::Value;

const ORIGIN: &str = "org.openmeet.zulip";

/// The file (relative to `uploads/`) of an upload linked from a mapped stream's message.
fn mapped_upload(export: &ZulipExport) -> String {
    let (realm, messages) = (export.read("realm.json"), export.read("messages-000001.json"));
    let mapping: Value = serde_json::from_slice(&std::fs::read(&export.mapping).expect("mapping")).expect("json");
    let mapped: Vec<&Value> = realm["zerver_stream"]
        .as_array()
        .expect("streams")
        .iter()
        .filter(|s| s["name"].as_str().is_some_and(|n| !mapping["streams"][n].is_null()))
        .filter_map(|s| {
            realm["zerver_recipient"].as_array()?.iter().find(|r| r["type"] == 2 && r["type_id"] == s["id"])
        })
        .map(|r| &r["id"])
        .collect();
    let records = export.read("uploads/records.json");
    let linked = |m: &Value, r: &Value| {
        m["content"]
            .as_str()
            .is_some_and(|c| c.contains(&format!("/user_uploads/{}", r["s3_path"].as_str().unwrap_or("-"))))
    };
    records
        .as_array()
        .expect("records")
        .iter()
        .find(|r| {
            messages["zerver_message"]
                .as_array()
                .expect("messages")
                .iter()
                .any(|m| mapped.contains(&&m["recipient"]) && linked(m, r))
        })
        .and_then(|r| r["path"].as_str())
        .expect("an upload in a mapped stream")
        .to_owned()
}

/// The first upload's file (relative to `uploads/`) as records.json names it.
fn first_upload(export: &ZulipExport) -> String {
    export.read("uploads/records.json")[0]["path"].as_str().expect("path").to_owned()
}

/// A synthetic export for a fresh tenant whose users and rooms the cutover has provisioned.
fn provisioned(prefix: &str) -> ZulipExport {
    ZulipExport::provisioned(prefix, ExportShape { users: 3, messages: 20, upload_every: 4, seed: 7 })
}

/// Events the import sent into the tenant's mapped rooms, read with the admin token.
async fn imported_events(tenant: &str) -> Vec<Value> {
    let s = stack();
    let mut imported = Vec::new();
    for slug in ["zs000", "zs001"] {
        let alias = format!("#om_{tenant}.group.{slug}:{}", s.var("MATRIX_SERVER_NAME"));
        let path = format!("/_matrix/client/v3/directory/room/{}", encode_path(&alias));
        let (status, body) = s.matrix(Method::GET, &path, None, None).await;
        assert_eq!(status, 200, "{body}");
        let room = body["room_id"].as_str().expect("room id").to_owned();
        let path = format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=500", encode_path(&room));
        let (status, page) = s.matrix(Method::GET, &path, None, None).await;
        assert_eq!(status, 200, "{page}");
        let chunk = page["chunk"].as_array().cloned().unwrap_or_default();
        imported.extend(chunk.into_iter().filter(|e| !e["content"][ORIGIN].is_null()));
    }
    imported
}

/// Replaces a file of the export for one case and puts the original back afterwards.
fn swap_file(path: &Path, make: impl FnOnce(&Path)) -> Vec<u8> {
    let saved = std::fs::read(path).expect("file");
    std::fs::remove_file(path).expect("remove");
    make(path);
    saved
}

#[tokio::test]
async fn hostile_exports_exit_2_naming_the_record_and_import_nothing() {
    let export = provisioned("zhos");
    let upload = first_upload(&export);
    let upload_file = export.dir.join("uploads").join(&upload);
    let secret = std::env::temp_dir().join(format!("zulip-secret-{}", unique("s")));
    std::fs::write(&secret, b"OPERATOR SECRET").expect("secret");

    // Upload paths: absolute, climbing out, through `.`.
    let records = export.read("uploads/records.json");
    let outside = format!("../../{}", secret.file_name().expect("name").to_string_lossy());
    for path in ["/proc/self/environ", secret.to_str().expect("utf-8"), outside.as_str()] {
        let mut hostile = records.clone();
        hostile[0]["path"] = Value::from(path);
        export.write("uploads/records.json", &hostile);
        let (code, report, stderr) = export.import();
        assert_eq!(code, 2, "{path}: {report} {stderr}");
        assert!(stderr.contains("uploads/records.json") && stderr.contains(path), "{path}: {stderr}");
    }
    export.write("uploads/records.json", &records);

    // The upload itself a link to a file outside, then a FIFO (which must not hang the import).
    let saved = swap_file(&upload_file, |p| std::os::unix::fs::symlink(&secret, p).expect("link"));
    let (code, report, stderr) = export.import();
    assert_eq!(code, 2, "a link: {report} {stderr}");
    assert!(stderr.contains(&upload) && stderr.contains("symbolic link"), "{stderr}");
    std::fs::remove_file(&upload_file).expect("remove");
    let made = std::process::Command::new("mkfifo").arg(&upload_file).status().expect("mkfifo");
    assert!(made.success());
    let (code, report, stderr) = export.import();
    assert_eq!(code, 2, "a FIFO: {report} {stderr}");
    assert!(stderr.contains(&upload) && stderr.contains("FIFO"), "{stderr}");
    std::fs::remove_file(&upload_file).expect("remove");
    std::fs::write(&upload_file, saved).expect("restore");

    // Two users sharing an address: the mapping would silently pick one.
    let realm = export.read("realm.json");
    let mut twins = realm.clone();
    let address = twins["zerver_userprofile"][0]["delivery_email"].clone();
    let (first, second) = (twins["zerver_userprofile"][0]["id"].clone(), twins["zerver_userprofile"][1]["id"].clone());
    twins["zerver_userprofile"][1]["delivery_email"] = address;
    export.write("realm.json", &twins);
    let (code, report, stderr) = export.import();
    assert_eq!(code, 2, "shared address: {report} {stderr}");
    assert!(stderr.contains(&format!("users {first} and {second}")), "{stderr}");
    export.write("realm.json", &realm);

    // A message from the future.
    let messages = export.read("messages-000001.json");
    let mut future = messages.clone();
    let id = future["zerver_message"][3]["id"].clone();
    future["zerver_message"][3]["date_sent"] = Value::from(4_000_000_000.0);
    export.write("messages-000001.json", &future);
    let (code, report, stderr) = export.import();
    assert_eq!(code, 2, "future: {report} {stderr}");
    assert!(stderr.contains(&format!("message {id}")) && stderr.contains("future"), "{stderr}");
    export.write("messages-000001.json", &messages);

    assert!(imported_events(&export.tenant).await.is_empty(), "something was imported");
    let _ = std::fs::remove_file(secret);
    let _ = std::fs::remove_dir_all(export.dir.parent().expect("dir"));
}

#[tokio::test]
async fn a_huge_sparse_upload_is_skipped_unread_and_the_rest_comes_across() {
    let export = provisioned("zbig");
    let upload_file = export.dir.join("uploads").join(mapped_upload(&export));
    std::fs::OpenOptions::new().write(true).open(&upload_file).expect("open").set_len(10 << 30).expect("sparse");
    let (code, report, stderr) = export.import();
    assert_eq!(code, 0, "{report} {stderr}");
    assert_eq!(report["state"], "complete", "{report}");
    let skipped: u64 = report["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| s["skipped"]["file larger than the homeserver accepts"].as_u64())
        .sum();
    assert_eq!(skipped, 1, "{report}");
    assert!(!imported_events(&export.tenant).await.is_empty());
    let _ = std::fs::remove_dir_all(export.dir.parent().expect("dir"));
}
