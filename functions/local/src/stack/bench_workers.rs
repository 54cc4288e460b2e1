//! `openmeet-local stack bench-workers` (scripts/stack.sh bench-workers): the cutover benchmark (bench_cutover) and
//! the Zulip import benchmark (bench_zulip) against the workers profile (started when it is not running), while the
//! CPU time of every process of the homeserver is read from `/proc/<pid>/stat` (utime+stime; PostgreSQL's backends
//! summed into "postgres", with the children it has reaped) at each phase the benchmark announces on stderr ("run:",
//! "ceiling:", "import:"). Prints, per phase, CPU-ms per membership (cutover) or per message (import) for main,
//! persister1, persister2, worker1, worker2, postgres, redis and the router. The benches print their own rates and
//! their ratio to the baseline measured in the same run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use tokio::io::AsyncBufReadExt;

use super::Layout;
use super::env_file::parse;
use super::workers::{Proc, Workers};

#[derive(clap::Args, Debug)]
pub struct BenchWorkersArgs {
    /// bench_cutover's arguments: USERS GROUPS EVENTS MEMBERSHIPS CONCURRENCY (one string)
    #[arg(long, default_value = "")]
    cutover: String,
    /// bench_zulip's arguments: MESSAGES STREAMS CONCURRENCY (one string)
    #[arg(long, default_value = "")]
    zulip: String,
    /// Only this benchmark: cutover or zulip
    #[arg(long)]
    only: Option<String>,
}

const MEASURED: [Proc; 8] = [
    Proc::Main,
    Proc::Persister1,
    Proc::Persister2,
    Proc::Worker1,
    Proc::Worker2,
    Proc::Postgres,
    Proc::Redis,
    Proc::Router,
];

/// `(ppid, utime+stime, cutime+cstime)` in clock ticks from the text of `/proc/<pid>/stat`.
pub fn parse_times(stat: &str) -> Option<(i32, u64, u64)> {
    let fields: Vec<&str> = stat.get(stat.rfind(") ")? + 2..)?.split(' ').collect();
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let ppid = fields.get(1)?.parse().ok()?;
    Some((ppid, num(11)? + num(12)?, num(13)? + num(14)?))
}

fn times(pid: i32) -> Option<(i32, u64, u64)> {
    parse_times(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU ticks of a process and its live children (and the children it has reaped: PostgreSQL's backends, nginx's).
fn ticks_of_tree(pid: i32) -> u64 {
    let Some((_, own, reaped)) = times(pid) else {
        return 0;
    };
    let children: u64 = std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter_map(times)
                .filter(|(ppid, _, _)| *ppid == pid)
                .map(|(_, t, _)| t)
                .sum()
        })
        .unwrap_or(0);
    own + reaped + children
}

fn snapshot(workers: &Workers) -> BTreeMap<&'static str, u64> {
    MEASURED.iter().map(|p| (p.name(), workers.pid(*p).map_or(0, ticks_of_tree))).collect()
}

fn tick_ms() -> f64 {
    // SAFETY: sysconf(3) has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { 1000.0 / hz as f64 } else { 10.0 }
}

/// The number just before `word` in a line ("run: 200 users, 20 rooms, 500 memberships" → 500 for "memberships").
pub fn count_before(line: &str, word: &str) -> Option<u64> {
    let words: Vec<&str> = line.split(|c: char| c.is_whitespace() || c == ',').filter(|w| !w.is_empty()).collect();
    words.windows(2).find(|w| w[1] == word).and_then(|w| w[0].parse().ok())
}

struct Phase {
    name: String,
    seconds: f64,
    cpu: BTreeMap<&'static str, u64>,
}

async fn run_one(workers: &Workers, bench: &str, args: &str, unit: &str) -> Result<(), String> {
    let layout = &workers.layout;
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(|_| layout.root.join("target"), PathBuf::from);
    let env_text = std::fs::read_to_string(&workers.dirs.env_file).map_err(|e| e.to_string())?;
    println!("== {bench} {args} on the workers profile ({})", super::workers_setup::ROUTER_URL);
    let mut child = tokio::process::Command::new(target.join("debug").join(bench))
        .args(args.split_whitespace())
        .envs(parse(&env_text))
        .env_remove("RUST_LOG")
        .current_dir(&layout.root)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{bench}: {e}"))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let (mut phases, mut units) = (Vec::<Phase>::new(), None);
    let mut current: Option<(String, Instant, BTreeMap<&'static str, u64>)> = None;
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("{line}");
        let Some((name, _)) =
            line.split_once(':').filter(|(n, _)| ["run", "baseline", "ceiling", "import"].contains(n))
        else {
            continue;
        };
        units = count_before(&line, unit).or(units);
        let now = snapshot(workers);
        if let Some((previous, t0, before)) = current.take() {
            phases.push(close(previous, t0, &before, &now));
        }
        current = Some((name.to_owned(), Instant::now(), now));
    }
    let status = child.wait().await.map_err(|e| e.to_string())?;
    if let Some((previous, t0, before)) = current.take() {
        phases.push(close(previous, t0, &before, &snapshot(workers)));
    }
    if !status.success() {
        return Err(format!("{bench} failed ({status})"));
    }
    print_table(bench, unit, units, &phases);
    Ok(())
}

fn close(
    name: String,
    t0: Instant,
    before: &BTreeMap<&'static str, u64>,
    after: &BTreeMap<&'static str, u64>,
) -> Phase {
    let cpu = after.iter().map(|(k, v)| (*k, v.saturating_sub(before.get(k).copied().unwrap_or(0)))).collect();
    Phase { name, seconds: t0.elapsed().as_secs_f64(), cpu }
}

fn print_table(bench: &str, unit: &str, units: Option<u64>, phases: &[Phase]) {
    let ms = tick_ms();
    let per = units.unwrap_or(1).max(1) as f64;
    let singular = unit.trim_end_matches('s');
    println!("{bench}: CPU-ms per {singular} ({} {unit} a phase), per Synapse process and service (/proc)", per);
    let mut header = format!("{:<10} {:>7}", "phase", "wall s");
    for proc in MEASURED {
        header.push_str(&format!(" {:>10}", proc.name()));
    }
    println!("{header} {:>10} {:>12}", "total", "cores busy");
    for phase in phases {
        let mut row = format!("{:<10} {:>7.1}", phase.name, phase.seconds);
        let mut total = 0.0;
        for proc in MEASURED {
            let value = phase.cpu.get(proc.name()).copied().unwrap_or(0) as f64 * ms / per;
            total += value;
            row.push_str(&format!(" {value:>10.2}"));
        }
        let busy = total * per / 1000.0 / phase.seconds.max(0.001);
        println!("{row} {total:>10.2} {busy:>12.2}");
    }
}

pub async fn main(layout: Layout, args: BenchWorkersArgs) -> Result<(), String> {
    let workers = Workers::new(layout);
    if !workers.status(false).await {
        workers.start().await?;
    }
    let root = workers.layout.root.clone();
    let status = tokio::process::Command::new("cargo")
        .args(["build", "-q", "-p", "openmeet-cutover", "--bin", "bench_cutover", "--bin", "bench_zulip"])
        .current_dir(&root)
        .status()
        .await
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("cargo build of the benchmarks failed".to_owned());
    }
    let only = args.only.as_deref();
    if only.is_none_or(|o| o == "cutover") {
        run_one(&workers, "bench_cutover", &args.cutover, "memberships").await?;
    }
    if only.is_none_or(|o| o == "zulip") {
        run_one(&workers, "bench_zulip", &args.zulip, "messages").await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_times_skip_a_command_name_with_spaces() {
        let stat = "42 (python -m x) S 7 42 42 0 -1 4194560 100 0 0 0 250 50 3 4 20 0 5 0 1 2 3";
        assert_eq!(parse_times(stat), Some((7, 300, 7)));
    }

    #[test]
    fn counts_are_read_before_their_word() {
        let line = "run: 200 users, 20 rooms, 500 memberships, concurrency 8";
        assert_eq!(count_before(line, "memberships"), Some(500));
        assert_eq!(count_before("baseline: 3000 messages into 8 rooms", "messages"), Some(3000));
        assert_eq!(count_before("import: the same export", "messages"), None);
    }
}
