//! `--help` of the one-shot commands whose arguments are parsed by hand (self_heal.rs, sweep.rs, metrics): every
//! flag with a line of its own (tests/tests/docs_check.rs checks each flag the parsers accept is described here).

/// The help of `command`, for the commands this file describes.
pub fn of(command: &str) -> Option<&'static str> {
    match command {
        "repair-drift" => Some(REPAIR_DRIFT),
        "retention" => Some(RETENTION),
        "reminders" => Some(REMINDERS),
        "sweep-expired" => Some(SWEEP_EXPIRED),
        "sweep-sessions" => Some(SWEEP_SESSIONS),
        "metrics" => Some(METRICS),
        _ => None,
    }
}

/// Whether the arguments ask for help.
pub fn asked(args: &[String]) -> bool {
    args.iter().any(|a| a == "--help" || a == "-h")
}

const REPAIR_DRIFT: &str = "usage: openmeet-local repair-drift [--dry-run] [--tenant T | --all] [--json]
  one drift-repair pass (README \"Self-healing\"; every 10 min in AWS)
  --dry-run         list the drift, change nothing (not even the cursor)
  --tenant T        only tenant T's managed rooms
  --all             every managed room from the first, however many (no cursor, no per-run budget)
  --json            the report as one JSON line on stdout
Exit codes: 0 done; 1 failed (or some rooms failed, listed); 2 bad arguments, nothing done.
Environment: the functions' own (locally: set -a; . .local/stack.env; set +a). Runbook: docs/deploy.md.
Example: openmeet-local repair-drift --dry-run --tenant acme";

const RETENTION: &str = "usage: openmeet-local retention [--dry-run] [--tenant T] [--now TIME] [--json]
  archives (and, when OPENMEET_RETENTION_PURGE_DAYS > 0, purges) event rooms past their retention; every 6 h in AWS
  --dry-run         list what is due, change nothing
  --tenant T        only tenant T's event rooms
  --now TIME        pretend it is TIME (RFC 3339 or epoch seconds)
  --json            the report as one JSON line on stdout
Exit codes: 0 done; 1 failed (or some rooms failed, listed); 2 bad arguments, nothing done.
Environment: the functions' own (locally: set -a; . .local/stack.env; set +a). Runbook: docs/deploy.md.
Example: openmeet-local retention --dry-run --now 2031-01-01T00:00:00Z";

const REMINDERS: &str = "usage: openmeet-local reminders [--tenant T] [--now TIME] [--json]
  posts the event reminders that are due, each once; every 5 min in AWS
  --tenant T        only tenant T's event rooms
  --now TIME        pretend it is TIME (RFC 3339 or epoch seconds)
  --json            the report as one JSON line on stdout
Exit codes: 0 done; 1 failed (or some rooms failed, listed); 2 bad arguments, nothing done.
Environment: the functions' own (locally: set -a; . .local/stack.env; set +a). Runbook: docs/deploy.md.
Example: openmeet-local reminders --tenant acme";

const SWEEP_EXPIRED: &str = "usage: openmeet-local sweep-expired [--all] [--json]
  deletes expired records DynamoDB's TTL has not removed yet (OPENMEET_SWEEP_ITEMS per run, from a cursor); hourly
  --all             the whole table in one go, from the start (no cursor, no item budget)
  --json            the report as one JSON line on stdout
Exit codes: 0 done; 1 failed (or some rooms failed, listed); 2 bad arguments, nothing done.
Environment: the functions' own (locally: set -a; . .local/stack.env; set +a). Runbook: docs/deploy.md.
Example: openmeet-local sweep-expired";

const SWEEP_SESSIONS: &str = "usage: openmeet-local sweep-sessions [TENANT]
  logs out browser devices idle for OPENMEET_SESSION_IDLE_SECS (the hourly sweep, once)
  TENANT            only this tenant's users (all when absent)
Exit codes: 0 done; 1 failed.
Environment: the functions' own (locally: set -a; . .local/stack.env; set +a). Runbook: docs/deploy.md.
Example: openmeet-local sweep-sessions acme";

const METRICS: &str = "usage: openmeet-local metrics [LOG_FILE]
  count and p50/p95/max of every metric line in a log, per metric and dimension set
  LOG_FILE          the log to read (default .local/logs/gateway.log)
Exit codes: 0 done; 1 the log could not be read.
Example: openmeet-local metrics .local/logs/gateway.log";

#[cfg(test)]
mod tests {
    #[test]
    fn every_described_command_names_its_exit_codes() {
        for command in ["repair-drift", "retention", "reminders", "sweep-expired", "sweep-sessions", "metrics"] {
            let help = super::of(command).expect("described");
            assert!(help.starts_with(&format!("usage: openmeet-local {command}")), "{command}");
            assert!(help.contains("Exit codes:"), "{command}");
        }
    }
}
