//! The conventions of both command-line tools (`openmeet-local` here, `openmeet-cutover` in
//! tools/cutover/src/cli.rs): clap derive; `--json` on every command that reports, the report then being one JSON
//! line, the last on stdout (a failure too: `{"error": {"code", "message"}}`); the exit codes below; and a `--help`
//! ending in examples, the exit codes, the environment and the runbook.

/// The `after_help` of a command: its examples (`ops:` commands need the functions' environment, `stack:` ones
/// only the repository), then the exit codes and the runbook every command shares.
macro_rules! after_help {
    (ops: $($example:literal),+ $(,)?) => {
        after_help!(@
            "Environment: the functions' own (README \"Configuration\"): MATRIX_HOMESERVER_URL, MATRIX_SERVER_NAME,\n"
            "  MATRIX_AS_TOKEN (or OPENMEET_SECRETS_ARN), OPENMEET_TABLE, OPENMEET_KMS_KEY_ID, OPENMEET_QUEUE_URL or\n"
            "  OPENMEET_QUEUE_NAME, AWS credentials and region; locally: set -a; . .local/stack.env; set +a.\n"
            "  With --stack NAME, redrive and upgrade-rooms read a deployed stack's retry-worker environment (AWS CLI).";
            $($example),+)
    };
    (stack: $($example:literal),+ $(,)?) => {
        after_help!(stack ""; $($example),+)
    };
    // `$settings`: the command's own environment variables, first.
    (stack $($settings:literal)+; $($example:literal),+ $(,)?) => {
        after_help!(@ $($settings)+
            "Environment: none needed; run inside the repository (OPENMEET_STACK_ROOT overrides), normally through\n"
            "  scripts/stack.sh, dev.sh, web.sh and bench-postgres.sh (they install the Python venv first).";
            $($example),+)
    };
    (@ $($environment:literal)+; $($example:literal),+) => {
        concat!(
            "Examples:\n",
            $("  ", $example, "\n",)+
            "\nExit codes:\n",
            "  0  done\n",
            "  1  could not run (configuration, I/O, a backing service), or some items failed (listed)\n",
            "  2  bad input (an argument or a setting): nothing was changed\n",
            "  3  stopped part-way: changes may have been made; run the same command again to continue\n",
            "\n",
            $($environment,)+
            "\n\nRunbooks: docs/deploy.md (operators), docs/cutover.md (the cutover); README \"The local stack\"."
        )
    };
}

/// Exit 2: bad input, nothing was changed.
pub const BAD_INPUT: u8 = 2;
/// Exit 1: could not run, or some items failed.
pub const FAILED: u8 = 1;

/// Reports a command's failure: on stderr for people and, with `--json`, as the last line of stdout.
pub fn fail(command: &str, code: u8, message: &str, json: bool) -> std::process::ExitCode {
    if json {
        let kind = if code == BAD_INPUT { "bad_input" } else { "failed" };
        println!("{}", serde_json::json!({"error": {"code": kind, "message": message}}));
    }
    eprintln!("openmeet-local {command}: {message}");
    std::process::ExitCode::from(code)
}
