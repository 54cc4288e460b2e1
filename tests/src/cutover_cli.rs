//! The `openmeet-cutover` command as the tests run it: the built binary, configured by the stack's environment.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::{repo_root, stack, unique};

/// Builds the binary once (the tests crate cannot depend on another crate's binary).
pub fn binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--locked", "-p", "openmeet-cutover", "--bin", "openmeet-cutover"])
                .current_dir(repo_root())
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building openmeet-cutover failed");
            let target =
                std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| repo_root().join("target"));
            target.join("debug/openmeet-cutover")
        })
        .clone()
}

/// The command, configured by the stack's environment (as `set -a; . .local/stack.env` would).
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command.args(args).env_remove("RUST_LOG");
    for (key, value) in &stack().env {
        if key != "RUST_LOG" {
            command.env(key, value);
        }
    }
    command
}

/// Runs it; returns the exit code, the `--json` report (Null when stdout is not JSON) and stderr.
pub fn cutover(args: &[&str]) -> (i32, Value, String) {
    let output = command(args).output().expect("openmeet-cutover runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (output.status.code().unwrap_or(-1), report, String::from_utf8_lossy(&output.stderr).into_owned())
}

/// The shape of a synthetic Zulip export (`generate-zulip`).
pub struct ExportShape {
    pub users: u32,
    pub messages: u64,
    pub upload_every: u32,
    pub seed: u32,
}

/// A synthetic Zulip export for a fresh tenant whose users and rooms the cutover's `run` has provisioned (two
/// streams of two topics, one unmapped author).
pub struct ZulipExport {
    pub tenant: String,
    pub dir: PathBuf,
    pub mapping: PathBuf,
}

impl ZulipExport {
    pub fn provisioned(prefix: &str, shape: ExportShape) -> Self {
        let (export, snapshot) = Self::generated(prefix, shape);
        let snapshot = snapshot.display().to_string();
        let (code, report, stderr) = cutover(&["run", "--snapshot", &snapshot, "--json"]);
        assert_eq!(code, 0, "provisioning failed: {report} {stderr}");
        export
    }

    /// The export, its mapping and the snapshot that provisions it (not run), for a fresh tenant.
    pub fn generated(prefix: &str, shape: ExportShape) -> (Self, PathBuf) {
        let tenant = unique(prefix).replace('-', "");
        let base = std::env::temp_dir().join(format!("zulip-{tenant}"));
        let export = Self { tenant: tenant.clone(), dir: base.join("export"), mapping: base.join("mapping.json") };
        let snapshot = base.join("snapshot.jsonl").display().to_string();
        let (dir, mapping) = (export.dir.display().to_string(), export.mapping.display().to_string());
        let (users, messages) = (shape.users.to_string(), shape.messages.to_string());
        let (upload_every, seed) = (shape.upload_every.to_string(), shape.seed.to_string());
        let args = [
            "generate-zulip",
            "--tenant",
            &tenant,
            "--users",
            &users,
            "--ghosts",
            "1",
            "--streams",
            "2",
            "--topics",
            "2",
            "--messages",
            &messages,
            "--upload-every",
            &upload_every,
            "--seed",
            &seed,
            "--out",
            &dir,
            "--mapping-out",
            &mapping,
            "--snapshot-out",
            &snapshot,
        ];
        let (code, _, stderr) = cutover(&args);
        assert_eq!(code, 0, "{stderr}");
        (export, base.join("snapshot.jsonl"))
    }

    /// `import-zulip --json` of another export directory (a later export of the same realm) with this mapping.
    pub fn import_from(&self, dir: &std::path::Path) -> (i32, Value, String) {
        let (dir, mapping) = (dir.display().to_string(), self.mapping.display().to_string());
        cutover(&["import-zulip", "--export", &dir, "--mapping", &mapping, "--json"])
    }

    /// `import-zulip --json` of this export with its mapping.
    pub fn import(&self) -> (i32, Value, String) {
        self.import_from(&self.dir)
    }

    /// The records of the snapshot that provisions this export's community.
    fn snapshot_records(&self) -> Vec<Value> {
        let path = self.dir.parent().expect("the export's base").join("snapshot.jsonl");
        let text = std::fs::read_to_string(path).expect("snapshot");
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).expect("a snapshot record"))
            .collect()
    }

    /// The slug of a group of the provisioning snapshot that has members.
    pub fn a_group(&self) -> String {
        let records = self.snapshot_records();
        let member = records.iter().find(|r| r["type"] == "member" && r["kind"] == "groups").expect("a group member");
        member["slug"].as_str().expect("slug").to_owned()
    }

    /// The provisioning snapshot plus `events` (event records of `group`), each with the group's members, written
    /// beside it as `name`.
    pub fn snapshot_with_events(&self, name: &str, group: &str, events: &[Value]) -> PathBuf {
        let records = self.snapshot_records();
        let members: Vec<&Value> =
            records.iter().filter(|r| r["type"] == "member" && r["kind"] == "groups" && r["slug"] == group).collect();
        let mut lines: Vec<String> = records.iter().map(Value::to_string).collect();
        for event in events {
            lines.push(event.to_string());
            for member in &members {
                let mut member = (*member).clone();
                (member["kind"], member["slug"]) = (Value::from("events"), event["slug"].clone());
                lines.push(member.to_string());
            }
        }
        let path = self.dir.parent().expect("the export's base").join(name);
        std::fs::write(&path, lines.join("\n")).expect("write the snapshot");
        path
    }

    /// A JSON file of the export, by its path inside it.
    pub fn read(&self, name: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.dir.join(name)).expect(name)).expect("json")
    }

    pub fn write(&self, name: &str, value: &Value) {
        std::fs::write(self.dir.join(name), value.to_string()).expect(name);
    }

    /// Cuts the message file `name` back to its older `kept`/`of` of the messages, as an earlier export of the same
    /// realm would hold; answers the whole file, which written back makes the later export.
    pub fn keep_older(&self, name: &str, kept: usize, of: usize) -> Value {
        let full = self.read(name);
        let mut older = full.clone();
        let all = full["zerver_message"].as_array().expect("messages");
        older["zerver_message"] = Value::Array(all[..all.len() * kept / of].to_vec());
        self.write(name, &older);
        full
    }
}

/// The room of a tenant's group, by its alias (the platform resolves it).
pub async fn group_room(tenant: &str, slug: &str) -> String {
    let alias = format!("#om_{tenant}.group.{slug}:{}", stack().var("MATRIX_SERVER_NAME"));
    let path = format!("/_matrix/client/v3/directory/room/{}", crate::encode_path(&alias));
    let (status, body) = stack().matrix(reqwest::Method::GET, &path, None, None).await;
    assert_eq!(status, 200, "{body}");
    body["room_id"].as_str().expect("room id").to_owned()
}
