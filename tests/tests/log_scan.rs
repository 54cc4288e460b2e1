//! Runs after every other integration test (the test command orders it last): no secret the tests handled
//! (session tokens, JWTs) and not the appservice token may appear in any log the stack wrote: the gateway, the homeserver, the emulator.

use integration_tests::{repo_root, stack};

#[test]
fn no_secret_reaches_a_log_line() {
    let s = stack();
    let seen = std::fs::read_to_string(repo_root().join(".local/secrets-seen.txt"))
        .expect("the other integration tests record the secrets they handle; run them first");
    let mut secrets: Vec<String> = seen.lines().filter(|l| l.len() >= 16).map(str::to_owned).collect();
    secrets.push(s.var("MATRIX_AS_TOKEN").to_owned());
    secrets.push(s.var("OPENMEET_JWT_SECRET").to_owned());
    assert!(secrets.len() > 5, "too few secrets recorded to make this scan meaningful");
    let log_dir = std::path::PathBuf::from(s.var("STACK_LOG_DIR"));
    let mut scanned_lines = 0;
    for entry in std::fs::read_dir(&log_dir).expect("log directory") {
        let path = entry.expect("log entry").path();
        if !path.is_file() {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&path).expect("readable log")).into_owned();
        scanned_lines += text.lines().count();
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{} contains a secret", path.display());
        }
    }
    assert!(scanned_lines > 50, "the logs are suspiciously short ({scanned_lines} lines)");
}
