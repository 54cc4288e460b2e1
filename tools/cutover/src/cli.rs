//! The command line of `openmeet-cutover`: every flag has help text (tests/tests/docs_check.rs checks it), and
//! `--help` states the exit codes, the environment and the runbook.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The `after_help` of a command: its examples, then the exit codes, environment and runbook every command shares
/// (the same conventions as `openmeet-local`: functions/local/src/conventions.rs).
macro_rules! after_help {
    ($($example:literal),+ $(,)?) => {
        concat!(
            "Examples:\n",
            $("  ", $example, "\n",)+
            "
Exit codes:
  0  done: everything applied, no discrepancy, a complete plan
  1  some items failed (listed), verify found discrepancies, or plan could not read some entities
  2  bad input or configuration (a snapshot line, an argument, a missing variable): nothing was changed
  3  stopped part-way (the run record or a backing service failed): changes may have been made;
     run the same command again to continue, or roll the run back

Environment (the functions' own; locally `set -a; . .local/stack.env; set +a`):
  MATRIX_HOMESERVER_URL, MATRIX_SERVER_NAME, MATRIX_AS_TOKEN (or OPENMEET_SECRETS_ARN in AWS),
  MATRIX_USER_PREFIX, OPENMEET_TABLE, OPENMEET_KMS_KEY_ID, OPENMEET_QUEUE_URL or OPENMEET_QUEUE_NAME,
  AWS credentials and region (AWS_ENDPOINT_URL locally); RUST_LOG: JSON log lines on stderr.

Runbook: docs/cutover.md; formats and --json reports: docs/cutover-formats.md"
        )
    };
}

#[derive(Parser)]
#[command(
    name = "openmeet-cutover",
    about = "Bring an OpenMeet community onto Matrix in one maintenance window",
    after_help = after_help!(
        "openmeet-cutover plan --snapshot community.jsonl",
        "openmeet-cutover run --snapshot community.jsonl --concurrency 8",
        "openmeet-cutover verify --snapshot community.jsonl && echo clean",
    )
)]
pub struct Cli {
    /// One machine-readable JSON report on stdout (progress stays on stderr).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// What `run` would create, change and remove; changes nothing (exit 1 when some reads failed). With a base
    /// run (the newest complete one of the same tenants, or --base), only the entities changed since it are read.
    #[command(after_help = after_help!(
        "openmeet-cutover plan --snapshot community.jsonl",
        "openmeet-cutover plan --snapshot window.jsonl --json > delta.json",
        "openmeet-cutover plan --snapshot window.jsonl --full",
    ))]
    Plan {
        /// The community's snapshot (JSON Lines, docs/cutover-formats.md).
        #[arg(long)]
        snapshot: PathBuf,
        /// Homeserver reads in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[command(flatten)]
        base: BaseArgs,
    },
    /// Makes the homeserver match the snapshot; a re-run continues an unfinished run. A new snapshot is applied
    /// as a delta against the newest complete run of the same tenants (unchanged entities cost no homeserver call).
    #[command(after_help = after_help!(
        "openmeet-cutover run --snapshot community.jsonl --concurrency 8",
        "openmeet-cutover run --snapshot staged.jsonl --until rooms",
        "openmeet-cutover run --snapshot window.jsonl --base <RUN_ID>",
    ))]
    Run {
        /// The community's snapshot (JSON Lines, docs/cutover-formats.md).
        #[arg(long)]
        snapshot: PathBuf,
        /// Homeserver operations in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Stop after this phase (users; rooms: users, groups, events): the run is left staged, and the next run
        /// of the snapshot continues it.
        #[arg(long, value_enum)]
        until: Option<Stage>,
        #[command(flatten)]
        base: BaseArgs,
        /// Fan the work out through the SQS queue to the Lambda functions (not available yet: exits 2).
        #[arg(long)]
        via_queue: bool,
    },
    /// Compares the snapshot with the homeserver; exit 1 on any discrepancy.
    #[command(after_help = after_help!("openmeet-cutover verify --snapshot community.jsonl && echo clean"))]
    Verify {
        /// The community's snapshot (JSON Lines, docs/cutover-formats.md).
        #[arg(long)]
        snapshot: PathBuf,
        /// Homeserver reads in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Undoes a run: restores exactly what it changed.
    #[command(after_help = after_help!("openmeet-cutover rollback --run <RUN_ID>"))]
    Rollback {
        /// The run id that `run` printed (or `status` lists).
        #[arg(long)]
        run: String,
        /// Homeserver operations in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Progress, failures and timing of a run (of every run without --run).
    #[command(after_help = after_help!("openmeet-cutover status", "openmeet-cutover status --run <RUN_ID> --json"))]
    Status {
        /// The run id; all runs when absent.
        #[arg(long)]
        run: Option<String>,
    },
    /// Imports Zulip's organization export into the mapped rooms; a re-run continues and imports nothing twice.
    #[command(after_help = after_help!(
        "openmeet-cutover import-zulip --export zulip-export/ --mapping mapping.json",
        "openmeet-cutover import-zulip --export zulip-export/ --mapping mapping.json --history-room general",
    ))]
    ImportZulip {
        /// The unpacked export (`realm.json`, `messages-*.json`, `uploads/`).
        #[arg(long)]
        export: PathBuf,
        /// The mapping: tenant, streams to rooms, addresses to users.
        #[arg(long)]
        mapping: PathBuf,
        /// Imports this mapped stream into a read-only history room linked from its room instead of the room
        /// itself (for rooms where people already posted); repeatable.
        #[arg(long = "history-room", value_name = "STREAM")]
        history_room: Vec<String>,
        /// Messages in flight at once (rooms in parallel; one at a time within a room).
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Writes a synthetic Zulip export (deterministic for a seed), its mapping and a snapshot provisioning it.
    #[command(after_help = after_help!(
        "openmeet-cutover generate-zulip --out z/ --mapping-out z.mapping.json --snapshot-out z.jsonl",
    ))]
    GenerateZulip(GenerateZulip),
    /// Writes a synthetic snapshot (deterministic for a seed).
    #[command(after_help = after_help!("openmeet-cutover generate --users 1000 --out community.jsonl"))]
    Generate(Generate),
}

/// The last phase of a staged run: `users`, or `rooms` (users, then group and event rooms, not their members).
// No doc comments on the variants: clap would switch `--help` to its long layout.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Stage {
    Users,
    Rooms,
}

/// Which earlier run a delta compares with.
#[derive(clap::Args)]
pub struct BaseArgs {
    /// The run to compare with (default: the newest complete run of the snapshot's tenants, unless it ran this
    /// very snapshot).
    #[arg(long, conflicts_with = "full")]
    pub base: Option<String>,
    /// No base: read and converge every entity (repairs drift made since the last run).
    #[arg(long)]
    pub full: bool,
}

/// `generate-zulip`'s shape and output files.
#[derive(clap::Args)]
pub struct GenerateZulip {
    /// The tenant of the generated users and rooms.
    #[arg(long, default_value = "synthetic")]
    pub tenant: String,
    /// Mapped users.
    #[arg(long, default_value_t = 6)]
    pub users: u64,
    /// Users missing from the mapping (imported as placeholders).
    #[arg(long, default_value_t = 1)]
    pub ghosts: u64,
    /// Streams (each becomes a group room).
    #[arg(long, default_value_t = 2)]
    pub streams: u64,
    /// Topics per stream (each becomes a thread).
    #[arg(long, default_value_t = 3)]
    pub topics: u64,
    /// Messages in all.
    #[arg(long, default_value_t = 60)]
    pub messages: u64,
    /// Every n-th message links an upload (0: none).
    #[arg(long, default_value_t = 9)]
    pub upload_every: u64,
    /// Seed of the generator: the same seed writes the same files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The export directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// The mapping file to write.
    #[arg(long)]
    pub mapping_out: PathBuf,
    /// The snapshot to write (run it before import-zulip).
    #[arg(long)]
    pub snapshot_out: PathBuf,
}

/// `generate`'s shape and output.
#[derive(clap::Args)]
pub struct Generate {
    /// The tenant of every generated entity.
    #[arg(long, default_value = "synthetic")]
    pub tenant: String,
    /// Users.
    #[arg(long, default_value_t = 200)]
    pub users: u64,
    /// Groups.
    #[arg(long, default_value_t = 30)]
    pub groups: u64,
    /// Events (some in a group).
    #[arg(long, default_value_t = 60)]
    pub events: u64,
    /// Memberships in all (at most users x rooms).
    #[arg(long, default_value_t = 1500)]
    pub memberships: u64,
    /// Seed of the generator: the same seed writes the same snapshot.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output file (stdout when absent).
    #[arg(long)]
    pub out: Option<PathBuf>,
}
