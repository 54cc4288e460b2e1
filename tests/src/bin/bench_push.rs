//! What push evaluation costs (docs/adr/0008-notifications.md): Synapse evaluates every joined member's push rules
//! for every event once the `@om_` user namespace is non-exclusive. Three throwaway Synapses from the stack's venv,
//! in the same run, each with a fresh SQLite database and the stack's rendered config: `exclusive` (the baseline:
//! nobody's rules are evaluated, as before issue 23), `non-exclusive` (now) and `push-off` (non-exclusive with
//! `push.enabled: false`, the cutover window's switch). The local stack (moto, its DynamoDB table) must be running;
//! its own Synapse is not touched.
//!
//!   cargo build -p openmeet-cutover --bin bench_cutover --bin bench_zulip
//!   cargo run -p integration-tests --bin bench_push [-- MEMBERS SENDS MEMBERSHIPS MESSAGES]
//!
//! Prints each figure for the three and the ratios non-exclusive/exclusive and push-off/exclusive:
//! - a send into a MEMBERS-member room (default 1,000; 0 skips it): p50 and p90 of SENDS sequential sends, interleaved in rounds
//!   between the homeservers (order reversed every round); and the joins that built the room;
//! - the cutover's membership phase (`bench_cutover 60 8 8 MEMBERSHIPS 8`, default 200; its "memberships run …/s");
//! - the Zulip import (`bench_zulip MESSAGES 4 8`, default 300; its "import … messages/s": the import's rooms
//!   already have their members, as in today's cutover).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{encode_path, repo_root};
use reqwest::Method;
use serde_json::{Value, json};

const CONCURRENCY: usize = 8;
/// The benchmark's users' tenant in both homeservers (the tenant-walls module admits them to the room).
const TENANT: &str = "benchpush";

struct Homeserver {
    name: &'static str,
    url: String,
    process: Child,
}

impl Drop for Homeserver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn secret(name: &str) -> String {
    let path = repo_root().join(".local/synapse/secrets.env");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (start the stack)", path.display()));
    let value = text.lines().find_map(|line| line.strip_prefix(&format!("{name}=")));
    value.map(|v| v.trim().trim_matches('"').to_owned()).unwrap_or_else(|| panic!("{name} missing"))
}

fn python() -> PathBuf {
    repo_root().join(".local/venv/bin/python")
}

/// The stack's rendered Synapse config on another port, database, media store, log and appservice registration.
const RENDER: &str = r#"
import sys, yaml
source, out, port, exclusive, push = sys.argv[1:]
config = yaml.safe_load(open(f"{source}/homeserver.yaml"))
registration = yaml.safe_load(open(f"{source}/appservice.yaml"))
for namespace in registration["namespaces"]["users"]:
    namespace["exclusive"] = exclusive == "true"
open(f"{out}/appservice.yaml", "w").write(yaml.safe_dump(registration))
config["listeners"][0]["port"] = int(port)
config["public_baseurl"] = f"http://127.0.0.1:{port}/"
config["database"] = {"name": "sqlite3", "args": {"database": f"{out}/homeserver.db"}}
config["media_store_path"] = f"{out}/media_store"
config["app_service_config_files"] = [f"{out}/appservice.yaml"]
config["push"] = dict(config.get("push") or {}, enabled=push == "true")
for module in config.get("modules") or []:
    if "appservice_registration" in (module.get("config") or {}):
        module["config"]["appservice_registration"] = f"{out}/appservice.yaml"
log = yaml.safe_load(open(config["log_config"]))
for handler in log.get("handlers", {}).values():
    if "filename" in handler:
        handler["filename"] = f"{out}/synapse.log"
open(f"{out}/log.yaml", "w").write(yaml.safe_dump(log))
config["log_config"] = f"{out}/log.yaml"
open(f"{out}/homeserver.yaml", "w").write(yaml.safe_dump(config))
"#;

async fn start(name: &'static str, port: u16, exclusive: bool, push: bool) -> Homeserver {
    let root = repo_root();
    let dir = root.join(".local/bench-push").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench directory");
    let (source, out) = (root.join(".local/synapse"), dir.display().to_string());
    let rendered = Command::new(python())
        .args(["-c", RENDER, &source.display().to_string(), &out, &port.to_string()])
        .args([exclusive.to_string(), push.to_string()])
        .status()
        .expect("python");
    assert!(rendered.success(), "rendering the {name} config failed");
    let log = std::fs::File::create(dir.join("stdout.log")).expect("log file");
    let process = Command::new(python())
        .args(["-m", "synapse.app.homeserver", "-c", &format!("{out}/homeserver.yaml")])
        .env("PYTHONPATH", root.join("synapse-module"))
        .current_dir(&source)
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("starting Synapse");
    let server = Homeserver { name, url: format!("http://127.0.0.1:{port}"), process };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while !http.get(format!("{}/health", server.url)).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "Synapse {name} did not start: see {}/stdout.log", dir.display());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let script = root.join("scripts/synapse/grant_admin.py").display().to_string();
    let granted = Command::new(python())
        .args([&script, "--homeserver", &server.url, "--shared-secret", &secret("REGISTRATION_SHARED_SECRET")])
        .args(["--admin-user", "stack-admin", "--admin-password", &secret("BOOTSTRAP_ADMIN_PASSWORD")])
        .args(["--platform-user", "@openmeet:localhost", "--as-token", &secret("AS_TOKEN"), "--prefix", "[bench]"])
        .stdout(Stdio::null())
        .status()
        .expect("grant_admin.py");
    assert!(granted.success(), "making the platform user an admin of {name} failed");
    server
}

/// One appservice call; panics on anything but success (a benchmark with failures measures nothing).
async fn call(http: &reqwest::Client, server: &Homeserver, method: Method, path: &str, body: Value) -> Value {
    call_url(http, server.name, &server.url, method, path, body).await
}

async fn call_url(http: &reqwest::Client, name: &str, url: &str, method: Method, path: &str, body: Value) -> Value {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let response = http
        .request(method, format!("{url}{path}"))
        .bearer_auth(TOKEN.get_or_init(|| secret("AS_TOKEN")))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let status = response.status();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{name} {path}: {status} {value}");
    value
}

/// Registers MEMBERS users through the appservice and joins them to one new room; returns (room id, joins/s).
async fn big_room(http: &reqwest::Client, server: &Homeserver, members: usize) -> (String, f64) {
    let body = json!({"preset": "public_chat", "initial_state": [
        {"type": "org.openmeet.room", "state_key": "", "content": {"tenant": TENANT, "kind": "group", "slug": "big"}}]});
    let room = call(http, server, Method::POST, "/_matrix/client/v3/createRoom", body).await;
    let room_id = room["room_id"].as_str().expect("room_id").to_owned();
    let users: Vec<String> = (0..members).map(|i| format!("om_{TENANT}.u{i}")).collect();
    let register = |user: &String| {
        let body = json!({"type": "m.login.application_service", "username": user, "inhibit_login": true});
        (Method::POST, "/_matrix/client/v3/register".to_owned(), body)
    };
    concurrently(http, server, users.iter().map(register).collect()).await;
    let started = Instant::now();
    let join = |user: &String| {
        let user_id = encode_path(&format!("@{user}:localhost"));
        let path = format!("/_matrix/client/v3/rooms/{}/join?user_id={user_id}", encode_path(&room_id));
        (Method::POST, path, json!({}))
    };
    concurrently(http, server, users.iter().map(join).collect()).await;
    (room_id, members as f64 / started.elapsed().as_secs_f64())
}

/// The calls, CONCURRENCY at a time.
async fn concurrently(http: &reqwest::Client, server: &Homeserver, calls: Vec<(Method, String, Value)>) {
    let mut pending = calls.into_iter();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < CONCURRENCY {
            let Some((method, path, body)) = pending.next() else { break };
            let (http, name, url) = (http.clone(), server.name, server.url.clone());
            running.spawn(async move { call_url(&http, name, &url, method, &path, body).await });
        }
        match running.join_next().await {
            Some(joined) => drop(joined.expect("a call panicked")),
            None => return,
        }
    }
}

/// Milliseconds of `count` sequential sends by member 0 into the room.
async fn sends(http: &reqwest::Client, server: &Homeserver, room_id: &str, count: usize, round: usize) -> Vec<f64> {
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/m.room.message/bench-{round}-{i}?user_id={}",
            encode_path(room_id),
            encode_path(&format!("@om_{TENANT}.u0:localhost"))
        );
        let started = Instant::now();
        call(http, server, Method::PUT, &path, json!({"msgtype": "m.text", "body": format!("hello {i}")})).await;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times
}

fn percentile(times: &[f64], p: f64) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs one of the cutover's benchmarks against `server` and returns the number its `line` prefix reports before
/// `unit`, with the output echoed; `None` when the benchmark failed (its error output is shown: a restart of the
/// stack's moto, which it uses, makes one fail).
fn cutover_bench(server: &Homeserver, bench: &str, args: &[&str], line: &str, unit: &str) -> Option<f64> {
    let root = repo_root();
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from);
    let program = target.join("debug").join(bench);
    assert!(program.exists(), "{} missing: cargo build -p openmeet-cutover --bin {bench}", program.display());
    let env_text = std::fs::read_to_string(root.join(".local/stack.env")).expect(".local/stack.env");
    let env = env_text.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split_once('='));
    let output = Command::new(&program)
        .args(args)
        .envs(env.map(|(k, v)| (k.trim(), v.trim())))
        .env("MATRIX_HOMESERVER_URL", &server.url)
        .env("MATRIX_PUBLIC_URL", &server.url)
        .env_remove("RUST_LOG")
        .current_dir(&root)
        .output()
        .expect(bench);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    for l in text.lines() {
        println!("  [{}] {l}", server.name);
    }
    if !output.status.success() {
        let errors = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = errors.lines().filter(|l| !l.starts_with("  ")).collect();
        println!("  [{}] {bench} failed: {}", server.name, lines[lines.len().saturating_sub(8)..].join("\n    "));
        return None;
    }
    number_before(&text, line, unit)
}

/// In the first line starting with `line`, the number just before the first occurrence of `unit`.
fn number_before(text: &str, line: &str, unit: &str) -> Option<f64> {
    let found = text.lines().find(|l| l.trim_start().starts_with(line))?;
    let before = &found[..found.find(unit)?];
    before.split_whitespace().last()?.trim_end_matches('/').parse().ok()
}

fn row(name: &str, values: [Option<f64>; 3], unit: &str) {
    let shown = values.map(|v| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}")));
    let ratio = |v: Option<f64>| match (v, values[0]) {
        (Some(v), Some(base)) => format!("{:.2}", v / base),
        _ => "-".to_owned(),
    };
    println!(
        "{name:40} {:>8} {:>8} {:>8} {unit:11} ratio {} / {}",
        shown[0],
        shown[1],
        shown[2],
        ratio(values[1]),
        ratio(values[2])
    );
}

fn header() {
    println!("push evaluation, same run: exclusive @om_ namespace (baseline), non-exclusive, non-exclusive with");
    println!("push.enabled false; ratios non-exclusive/exclusive and push-off/exclusive");
    println!("{:40} {:>8} {:>8} {:>8}", "", "excl.", "non-excl", "push off");
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let members = args.first().copied().unwrap_or(1000);
    let send_count = args.get(1).copied().unwrap_or(60);
    let cutover_memberships = args.get(2).copied().unwrap_or(200).to_string();
    let zulip_messages = args.get(3).copied().unwrap_or(300).to_string();
    let servers = [
        start("exclusive", 8010, true, true).await,
        start("non-exclusive", 8011, false, true).await,
        start("push-off", 8012, false, false).await,
    ];
    println!("bench_push: three Synapses from {}", python().display());
    let http = reqwest::Client::new();

    let mut rooms = Vec::new();
    let mut join_rates = Vec::new();
    // MEMBERS 0: only the cutover's benchmarks.
    for server in servers.iter().filter(|_| members > 0) {
        let (room_id, rate) = big_room(&http, server, members).await;
        rooms.push(room_id);
        join_rates.push(rate);
    }
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    let rounds = 6;
    for round in (0..rounds).filter(|_| members > 0) {
        // Alternate which homeserver goes first, so neither always runs on a warmer machine.
        let order = if round % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
        for i in order {
            let batch = sends(&http, &servers[i], &rooms[i], send_count.div_ceil(rounds), round).await;
            times[i].extend(batch);
        }
    }

    // The sends' figures first: they stand even if a cutover benchmark fails later.
    println!();
    header();
    let p50 = |i: usize| (members > 0).then(|| percentile(&times[i], 0.5));
    let p90 = |i: usize| (members > 0).then(|| percentile(&times[i], 0.9));
    let sends_p50 = [p50(0), p50(1), p50(2)];
    let sends_p90 = [p90(0), p90(1), p90(2)];
    let join = |i: usize| join_rates.get(i).copied();
    let joins = [join(0), join(1), join(2)];
    let sends_row = format!("send into {members}-member room p50");
    let sends_row90 = format!("send into {members}-member room p90");
    let joins_row = format!("joins building the {members}-member room");
    row(&sends_row, sends_p50, "ms");
    row(&sends_row90, sends_p90, "ms");
    row(&joins_row, joins, "joins/s");

    let cutover_args = ["60", "8", "8", cutover_memberships.as_str(), "8"];
    let memberships: Vec<Option<f64>> =
        servers.iter().map(|s| cutover_bench(s, "bench_cutover", &cutover_args, "memberships", "/s")).collect();
    let zulip_args = [zulip_messages.as_str(), "4", "8"];
    let imports: Vec<Option<f64>> =
        servers.iter().map(|s| cutover_bench(s, "bench_zulip", &zulip_args, "import", "messages/s")).collect();

    println!();
    header();
    row(&sends_row, sends_p50, "ms");
    row(&sends_row90, sends_p90, "ms");
    row(&joins_row, joins, "joins/s");
    row("cutover membership phase (run)", [memberships[0], memberships[1], memberships[2]], "members/s");
    row("zulip import", [imports[0], imports[1], imports[2]], "messages/s");
}
