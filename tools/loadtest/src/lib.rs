//! Load generator of the whole path (issue 29, docs/adr/0009-load.md): N simulated people, each with a browser
//! session from `POST /v1/me/matrix-session`, long-polling `/sync` on the homeserver with the page's filter, typing,
//! reading receipts, posting through the API (or, in the direct phase, as the appservice masquerading as the same
//! person), reading history and opening rooms. Delivery is measured on the receivers' side: every message carries a
//! unique marker and its send time is kept; each receiver's sync notes when it first sees it.
//!
//! Loopback only: the stack's URLs must be 127.0.0.1/localhost; every run is bounded in time and stops by itself.

pub mod metrics;
pub mod person;
pub mod procstat;
pub mod report;
pub mod run;
pub mod sync;
pub mod world;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The running local stack, read from `.local/stack.env` (as the integration tests do).
#[derive(Clone)]
pub struct Stack {
    pub api: String,
    pub homeserver: String,
    pub server_name: String,
    pub user_prefix: String,
    jwt_secret: String,
    as_token: String,
    pub run_dir: PathBuf,
}

impl std::fmt::Debug for Stack {
    // Tokens and the JWT secret never reach a Debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack").field("api", &self.api).field("homeserver", &self.homeserver).finish_non_exhaustive()
    }
}

impl Stack {
    /// Reads `stack.env` at `path` (`OPENMEET_STACK_ENV` or `<root>/.local/stack.env`).
    pub fn load(root: &Path) -> Result<Stack, String> {
        let path =
            std::env::var("OPENMEET_STACK_ENV").map(PathBuf::from).unwrap_or_else(|_| root.join(".local/stack.env"));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{} ({e}): start the stack with `scripts/stack.sh start`", path.display()))?;
        let env: HashMap<String, String> = text
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let get = |name: &str| env.get(name).cloned().ok_or(format!("{name} missing from {}", path.display()));
        let stack = Stack {
            api: format!("http://{}", env.get("OPENMEET_LISTEN").map(String::as_str).unwrap_or("127.0.0.1:3000")),
            homeserver: get("MATRIX_HOMESERVER_URL")?,
            server_name: get("MATRIX_SERVER_NAME")?,
            user_prefix: get("MATRIX_USER_PREFIX")?,
            jwt_secret: get("OPENMEET_JWT_SECRET")?,
            as_token: get("MATRIX_AS_TOKEN")?,
            run_dir: env
                .get("SYNAPSE_PID_FILE")
                .and_then(|p| Path::new(p).parent().map(Path::to_path_buf))
                .unwrap_or_else(|| root.join(".local/run")),
        };
        if !is_loopback(&stack.api) || !is_loopback(&stack.homeserver) {
            return Err(format!("loopback only: the gateway is {} and the homeserver {}", stack.api, stack.homeserver));
        }
        Ok(stack)
    }

    pub fn as_token(&self) -> &str {
        &self.as_token
    }

    pub fn matrix_user_id(&self, tenant: &str, user: &str) -> String {
        format!("@{}{tenant}.{user}:{}", self.user_prefix, self.server_name)
    }

    fn jwt(&self, claims: serde_json::Value) -> Result<String, String> {
        let key = jsonwebtoken::EncodingKey::from_secret(self.jwt_secret.as_bytes());
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).map_err(|e| format!("JWT: {e}"))
    }

    pub fn service_jwt(&self, tenant: &str) -> Result<String, String> {
        self.jwt(
            serde_json::json!({"sub": "openmeet-api", "tenant": tenant, "role": "service", "exp": now_secs() + 7200}),
        )
    }

    pub fn user_jwt(&self, tenant: &str, user: &str) -> Result<String, String> {
        self.jwt(serde_json::json!({"sub": user, "tenant": tenant, "role": "user", "exp": now_secs() + 7200}))
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub fn is_loopback(url: &str) -> bool {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest).split('/').next().unwrap_or("");
    let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host);
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A scenario file (JSON, `tools/loadtest/scenarios/`): the sizes to sweep and how people behave.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Numbers of concurrent people, one step each (a fresh tenant world per step).
    pub people: Vec<usize>,
    /// Length of each phase (API, then direct) of a step.
    pub phase_secs: u64,
    /// After the last send of a phase, how long receivers may still see it before it counts as lost.
    pub drain_secs: u64,
    /// Two people of the first step (one per filter) stop syncing this long during its API phase, which lasts until
    /// 15 s after their return, then catch up (0: none).
    pub offline_secs: u64,
    /// Mean seconds between two posts of one person (exponential gaps).
    pub post_every_secs: f64,
    /// Share of posts that are reactions to a message seen, and replies to one.
    pub reaction_share: f64,
    pub reply_share: f64,
    /// Mean seconds between two history pages read through the API, and between two room switches.
    pub history_every_secs: f64,
    pub open_room_every_secs: f64,
    /// Room shape: big groups (each person in each with probability `group_share`), small event rooms of
    /// `event_size` people per `people_per_event` people, and a share of people in `hub_rooms` more event rooms.
    pub big_groups: usize,
    pub group_share: f64,
    pub people_per_event: usize,
    pub event_size: [usize; 2],
    pub hub_share: f64,
    pub hub_rooms: usize,
    /// Long-poll timeout of /sync, as the page's SDK uses (30 s).
    pub sync_timeout_ms: u64,
    pub seed: u64,
}

impl Scenario {
    pub fn from_file(path: &Path) -> Result<Scenario, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let scenario: Scenario = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        scenario.check()?;
        Ok(scenario)
    }

    /// Bounds that keep a run finite and on this machine's scale.
    pub fn check(&self) -> Result<(), String> {
        let shares = [self.reaction_share, self.reply_share, self.group_share, self.hub_share];
        if self.people.is_empty() || self.people.iter().any(|n| !(2..=500).contains(n)) {
            return Err("people: 1 to n sizes, each 2..=500".into());
        }
        if !(5..=900).contains(&self.phase_secs) || self.drain_secs > 120 || self.offline_secs > 600 {
            return Err("phase_secs 5..=900, drain_secs <= 120, offline_secs <= 600".into());
        }
        if shares.iter().any(|s| !(0.0..=1.0).contains(s)) || self.reaction_share + self.reply_share > 1.0 {
            return Err("shares are within 0..=1 (reaction + reply too)".into());
        }
        let rates = [self.post_every_secs, self.history_every_secs, self.open_room_every_secs];
        if rates.iter().any(|r| !(0.5..=3600.0).contains(r)) {
            return Err("*_every_secs within 0.5..=3600".into());
        }
        if self.event_size[0] < 2 || self.event_size[0] > self.event_size[1] || self.people_per_event == 0 {
            return Err("event_size [min, max] with 2 <= min <= max; people_per_event >= 1".into());
        }
        if !(1_000..=60_000).contains(&self.sync_timeout_ms) {
            return Err("sync_timeout_ms within 1000..=60000".into());
        }
        Ok(())
    }
}

/// Runs every step of `scenario` (offline people in the first step only) and answers the sweep; `progress` gets
/// one line per step.
pub async fn sweep(
    stack: &Stack,
    scenario: &Scenario,
    command: String,
    progress: impl Fn(String),
) -> Result<report::Sweep, String> {
    let mut steps = Vec::new();
    let mut stopped = None;
    for (i, n) in scenario.people.iter().enumerate() {
        let offline = if i == 0 { scenario.offline_secs } else { 0 };
        // A size that cannot even be set up ends the sweep; the report keeps the sizes measured before it.
        let step = match run::step(stack, scenario, *n, offline).await {
            Ok(step) => step,
            Err(error) => {
                progress(format!("{n} people: not measured: {error}"));
                stopped = Some(format!("{n} people: {error}"));
                break;
            }
        };
        for (mode, phase) in &step.phases {
            progress(format!(
                "{n} people, {mode}: {} messages, delivery p50 {:.0} ms p95 {:.0} ms p99 {:.0} ms, lost {}, duplicated {}, 5xx {}",
                phase.messages,
                phase.delivery.p50_ms,
                phase.delivery.p95_ms,
                phase.delivery.p99_ms,
                phase.lost_deliveries,
                phase.duplicated_messages,
                phase.server_errors()
            ));
        }
        steps.push(step);
    }
    let mut sweep = report::Sweep::new(command, scenario.clone(), steps);
    sweep.stopped = stopped;
    Ok(sweep)
}
