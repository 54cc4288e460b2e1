//! `.local/stack.env`: the KEY=VALUE configuration of the gateway and the integration tests, and the parser of it
//! and of the Synapse secrets file.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// What varies in stack.env; everything else is fixed for the local stack.
pub struct StackEnv<'a> {
    pub jwt_secret: &'a str,
    pub as_token: &'a str,
    pub session_lifetime: &'a str,
    pub rust_log: &'a str,
    pub synapse_pid_file: &'a Path,
    pub log_dir: &'a Path,
}

pub fn render(env: &StackEnv<'_>) -> String {
    let synapse = super::SYNAPSE_URL;
    format!(
        "OPENMEET_JWT_SECRET={jwt}
# The functions call Synapse directly (private); browsers get the public entry's URL (nginx, scripts/gate/).
MATRIX_HOMESERVER_URL={synapse}
MATRIX_PUBLIC_URL={gate}
MATRIX_SERVER_NAME=localhost
MATRIX_AS_TOKEN={as_token}
MATRIX_USER_PREFIX=om_
MATRIX_PLATFORM_LOCALPART=openmeet
OPENMEET_TABLE=openmeet-local
OPENMEET_KMS_KEY_ID=alias/openmeet-local
OPENMEET_QUEUE_NAME=openmeet-local-retry.fifo
# Short timeouts and back-offs locally, so outage tests recover in seconds (AWS uses the defaults).
MATRIX_REQUEST_TIMEOUT_MS=5000
MATRIX_CIRCUIT_THRESHOLD=3
MATRIX_CIRCUIT_COOL_DOWN_MS=5000
OPENMEET_RETRY_BASE_DELAY_MS=250
OPENMEET_RETRY_MAX_DELAY_MS=2000
OPENMEET_RETRY_MAX_ATTEMPTS=20
# Reconciles above 100 joins + kicks are queued (as in AWS); the worker's slices are short so tests see several.
OPENMEET_RECONCILE_INLINE_CHANGES=100
OPENMEET_RECONCILE_SLICE_MS=2000
OPENMEET_AVATAR_HOSTS=127.0.0.1
# API write limits per 60 s window: the contract's (user/tenant/service 120/3000/30000), so a newcomer's stack
# behaves like production; tenants rlt-* (the rate-limit tests) get small budgets, bench-free* none at all (the
# benchmark's baseline without the check); load* (the load test's tenants, hundreds of people in one tenant) large
# ones, like bench* (the benchmarks), so the counters are still paid for but never refuse.
OPENMEET_RATE_USER=120
OPENMEET_RATE_TENANT=3000
OPENMEET_RATE_SERVICE=30000
OPENMEET_RATE_OVERRIDES=rlt-*=5/8/20,bench-free*=0/0/0,bench*=100000/10000000/10000000,load*=100000/10000000/10000000
# API read limits (GETs) per 300 s window: the contract's defaults (600/15000/150000); tenants rbt-* (the read-budget
# test) get small ones, bench-free* none, load* large ones.
OPENMEET_READ_OVERRIDES=rbt-*=12/30/100,bench-free*=0/0/0,bench*=100000/10000000/10000000,load*=100000/10000000/10000000
OPENMEET_MAX_WEB_DEVICES=10
# The only URL a browser's pusher may name (the public entry refuses any other, scripts/gate/gate.js).
OPENMEET_PUSH_GATEWAY_URL={push_gateway}
# The push gateway's ChatNotification events (moto): a rule copies them to the queue the push tests read.
OPENMEET_EVENT_BUS=openmeet-local-notifications
OPENMEET_NOTIFICATION_QUEUE=openmeet-local-notifications
# Browser session tokens expire after this (Synapse's refreshable_access_token_lifetime, rendered from the same value).
MATRIX_SESSION_LIFETIME={lifetime}
AWS_ENDPOINT_URL={moto}
AWS_REGION=us-east-1
AWS_ACCESS_KEY_ID=local
AWS_SECRET_ACCESS_KEY=local
OPENMEET_LISTEN={host}:{gateway_port}
SYNAPSE_PID_FILE={pid_file}
STACK_LOG_DIR={log_dir}
RUST_LOG={rust_log}
",
        jwt = env.jwt_secret,
        as_token = env.as_token,
        lifetime = env.session_lifetime,
        moto = super::MOTO_URL,
        gate = super::gate::GATE_URL,
        push_gateway = super::gate::PUSH_GATEWAY_URL,
        host = super::HOST,
        gateway_port = super::GATEWAY_PORT,
        pid_file = env.synapse_pid_file.display(),
        log_dir = env.log_dir.display(),
        rust_log = env.rust_log,
    )
}

/// The KEY=VALUE lines of a file in order; blank lines and `#` comments are skipped, values are taken verbatim.
pub fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim_end)
        .filter(|line| !line.trim_start().is_empty() && !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .filter(|(key, _)| !key.is_empty() && key.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// The value of `key` in a KEY=VALUE file.
pub fn read_value(path: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    parse(&text).into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Writes `text` readable by the owner only, atomically (a reader never sees half a file).
pub fn write_private(path: &Path, text: &str) -> Result<(), String> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    file.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| format!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_env_lists_what_the_gateway_and_tests_read() {
        let text = render(&StackEnv {
            jwt_secret: "s3",
            as_token: "as",
            session_lifetime: "30s",
            rust_log: "info",
            synapse_pid_file: Path::new("/r/.local/run/synapse.pid"),
            log_dir: Path::new("/r/.local/logs"),
        });
        let vars = parse(&text);
        let get = |key: &str| vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("OPENMEET_JWT_SECRET"), Some("s3"));
        assert_eq!(get("MATRIX_HOMESERVER_URL"), Some("http://127.0.0.1:8008"));
        assert_eq!(get("MATRIX_PUBLIC_URL"), Some("http://127.0.0.1:8088"));
        assert_eq!(get("OPENMEET_PUSH_GATEWAY_URL"), Some("http://127.0.0.1:3000/_matrix/push/v1/notify"));
        assert_eq!(get("AWS_ENDPOINT_URL"), Some("http://127.0.0.1:5100"));
        assert_eq!(get("OPENMEET_LISTEN"), Some("127.0.0.1:3000"));
        assert_eq!(get("SYNAPSE_PID_FILE"), Some("/r/.local/run/synapse.pid"));
        assert_eq!(get("STACK_LOG_DIR"), Some("/r/.local/logs"));
        assert_eq!(
            get("OPENMEET_RATE_OVERRIDES"),
            Some("rlt-*=5/8/20,bench-free*=0/0/0,bench*=100000/10000000/10000000,load*=100000/10000000/10000000")
        );
        assert_eq!(
            get("OPENMEET_READ_OVERRIDES"),
            Some("rbt-*=12/30/100,bench-free*=0/0/0,bench*=100000/10000000/10000000,load*=100000/10000000/10000000")
        );
        assert!(text.lines().all(|line| line.starts_with('#') || line.contains('=')));
    }

    #[test]
    fn parse_skips_comments_and_keeps_equals_in_values() {
        let vars = parse("# note\n\nA=1\nB=x=y\n  # indented\nnot a pair\n=v\nC=\n");
        assert_eq!(vars, [("A".into(), "1".into()), ("B".into(), "x=y".into()), ("C".into(), String::new())]);
    }

    #[test]
    fn private_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("openmeet-env-test-{}.env", std::process::id()));
        write_private(&path, "A=1\n").expect("write");
        assert_eq!(read_value(&path, "A").as_deref(), Some("1"));
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        let _ = std::fs::remove_file(&path);
        assert_eq!(mode, 0o600);
    }
}
