//! Benchmark of the window's Zulip import against the staged one, in the same run, with the built
//! `openmeet-cutover` beside this binary, against the running stack:
//!
//!   set -a; . .local/stack.env; set +a
//!   cargo build -p openmeet-cutover --bin openmeet-cutover --bin bench_zulip_window
//!   target/debug/bench_zulip_window [MESSAGES STREAMS CONCURRENCY]
//!
//! Stages an export E (the first 98 % of a synthetic export) as `import-zulip` does days ahead, then imports E2 (the
//! whole export, 1 % of E's messages edited and 0.5 % deleted in Zulip since) as in the window, then E2 again
//! (nothing new). Prints each import's time, the window's cost per change (new message, carried edit or deletion)
//! as a ratio of the staged import's cost per message, and the unchanged re-run as a ratio of the staged import.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};

fn cutover(args: &[&str]) -> Value {
    let binary = std::env::current_exe().expect("this binary").with_file_name("openmeet-cutover");
    let output = Command::new(binary).args(args).output().expect("openmeet-cutover runs");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    assert!(output.status.success(), "{args:?}: {report} {}", String::from_utf8_lossy(&output.stderr));
    report
}

fn message_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("export")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("messages-")))
        .collect();
    files.sort();
    files
}

/// Replaces the export's message files by one holding `messages`.
fn write_messages(dir: &Path, messages: &[Value]) {
    for file in message_files(dir) {
        std::fs::remove_file(file).expect("remove");
    }
    let body = json!({"zerver_message": messages, "zerver_usermessage": []});
    std::fs::write(dir.join("messages-000001.json"), body.to_string()).expect("write");
}

/// Imports; answers seconds, new messages, edits and deletions carried.
fn import(export: &str, mapping: &str, concurrency: &str) -> (f64, u64, u64, u64) {
    let started = Instant::now();
    let report =
        cutover(&["import-zulip", "--export", export, "--mapping", mapping, "--concurrency", concurrency, "--json"]);
    let seconds = started.elapsed().as_secs_f64();
    let streams = report["streams"].as_array().cloned().unwrap_or_default();
    let sum = |field: &str| streams.iter().filter_map(|s| s[field].as_u64()).sum::<u64>();
    (seconds, sum("importedNow"), sum("editsCarried"), sum("deletionsCarried"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_owned());
    let (messages, streams, concurrency) = (arg(0, "2000"), arg(1, "6"), arg(2, "6"));
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let tenant = format!("bzw{stamp}");
    let base = std::env::temp_dir().join(format!("bench-zulip-window-{tenant}"));
    let (dir, mapping, snapshot) = (base.join("export"), base.join("mapping.json"), base.join("snapshot.jsonl"));
    let (dir_s, mapping_s, snapshot_s) =
        (dir.display().to_string(), mapping.display().to_string(), snapshot.display().to_string());
    let shape = ["--users", "20", "--ghosts", "1", "--streams", &streams, "--topics", "10", "--messages", &messages];
    let out = ["--upload-every", "0", "--seed", "5", "--out", &dir_s, "--mapping-out", &mapping_s];
    let rest = ["--snapshot-out", &snapshot_s];
    cutover(&[&["generate-zulip", "--tenant", &tenant][..], &shape, &out, &rest].concat());
    cutover(&["run", "--snapshot", &snapshot_s, "--json"]);

    let mut all = Vec::new();
    for file in message_files(&dir) {
        let batch: Value = serde_json::from_slice(&std::fs::read(file).expect("file")).expect("json");
        all.extend(batch["zerver_message"].as_array().cloned().unwrap_or_default());
    }
    let staged_count = all.len() * 98 / 100;
    write_messages(&dir, &all[..staged_count]);
    let staged = import(&dir_s, &mapping_s, &concurrency);

    // E2: every message; since E, 1 % of E's messages edited and 0.5 % deleted in Zulip.
    let mut newer = all.clone();
    for (index, message) in newer.iter_mut().enumerate().take(staged_count) {
        if index % 100 == 7 {
            let sent = message["date_sent"].as_f64().unwrap_or(0.0);
            message["content"] = json!(format!("Edited in Zulip after staging ({index})."));
            message["last_edit_time"] = json!(sent + 600.0);
        }
    }
    let deleted: Vec<Value> = (0..staged_count).filter(|i| i % 200 == 51).map(|i| all[i]["id"].clone()).collect();
    newer.retain(|m| !deleted.contains(&m["id"]));
    write_messages(&dir, &newer);
    let window = import(&dir_s, &mapping_s, &concurrency);
    let again = import(&dir_s, &mapping_s, &concurrency);

    let per_message = staged.0 / staged.1.max(1) as f64;
    let changes = window.1 + window.2 + window.3;
    let per_change = window.0 / changes.max(1) as f64;
    println!("zulip import: staged export vs the window's newer export, {streams} streams, concurrency {concurrency}");
    println!("staged   {:>6} messages in {:>7.1}s: {:>6.1} messages/s", staged.1, staged.0, 1.0 / per_message);
    println!(
        "window   {:>6} new, {} edits, {} deletions carried in {:.1}s: {:.1} changes/s",
        window.1,
        window.2,
        window.3,
        window.0,
        1.0 / per_change
    );
    println!("re-run   {:>6} changes in {:>7.1}s", again.1 + again.2 + again.3, again.0);
    println!("ratio window cost per change / staged cost per message {:.2}", per_change / per_message);
    println!("ratio unchanged re-run / staged import {:.2}", again.0 / staged.0);
    let _ = std::fs::remove_dir_all(base);
}
