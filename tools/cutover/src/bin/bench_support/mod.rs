//! What the cutover's benchmarks share: the raw ceiling's sweep (the best rate over a few concurrencies, measured on
//! a warm-up slice) and the CPU time of each Synapse process, read from `/proc`.

#![allow(dead_code)] // Each bench binary uses a part.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Instant;

/// The concurrencies a ceiling is swept over (rooms at once, one write in flight per room).
pub const SWEEP: [usize; 5] = [1, 4, 8, 16, 32];

/// Runs `slice(c)` for each concurrency (it returns how many operations it made) and returns the best concurrency
/// with every rate, printed as it goes.
pub async fn sweep<F, Fut>(what: &str, levels: &[usize], slice: F) -> (usize, Vec<(usize, f64)>)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = u64>,
{
    let mut rates = Vec::new();
    for &c in levels {
        let started = Instant::now();
        let done = slice(c).await;
        let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
        eprintln!("  sweep {what}: {c:2} at once: {rate:6.1}/s ({done} in {:.1}s)", started.elapsed().as_secs_f64());
        rates.push((c, rate));
    }
    let best = rates.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)).map_or(1, |(c, _)| c);
    (best, rates)
}

/// The Synapse processes measured: those whose command line holds `BENCH_SYNAPSE_CONFIG` (a part of their config
/// path); by default the PostgreSQL bench's Synapse when the homeserver is on port 8009, else the local stack's.
fn measured_config() -> String {
    std::env::var("BENCH_SYNAPSE_CONFIG").unwrap_or_else(|_| {
        let url = std::env::var("MATRIX_HOMESERVER_URL").unwrap_or_default();
        if url.ends_with(":8009") { "/.local/pg/".into() } else { "/.local/synapse/".into() }
    })
}

/// CPU milliseconds (user + system) of each Synapse process so far, by a short name (its worker name or `main`).
pub fn synapse_cpu_ms() -> BTreeMap<String, f64> {
    let mut cpu = BTreeMap::new();
    let config = measured_config();
    let ticks = 100.0; // USER_HZ on Linux.
    let Ok(entries) = std::fs::read_dir("/proc") else { return cpu };
    for entry in entries.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let Some(app) = args.iter().find(|a| a.starts_with("synapse.app.")) else { continue };
        if !args.iter().any(|a| a.contains(&config)) {
            continue;
        }
        // A worker's config file names it (`…/<name>.yaml`); the main process has only the homeserver config.
        let name = args
            .iter()
            .filter(|a| a.ends_with(".yaml") && !a.ends_with("homeserver.yaml"))
            .filter_map(|a| a.rsplit('/').next())
            .map(|file| file.trim_end_matches(".yaml").to_owned())
            .next()
            .unwrap_or_else(|| if app.ends_with("homeserver") { "main".into() } else { format!("{app}:{pid}") });
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
        let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace().collect();
        let used: f64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<f64>().ok()).sum();
        *cpu.entry(name).or_insert(0.0) += used * 1000.0 / ticks;
    }
    cpu
}

/// CPU-ms per unit of each process between two readings, as one line.
pub fn cpu_line(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, units: u64, unit: &str) -> String {
    let per: Vec<String> = after
        .iter()
        .map(|(name, ms)| {
            let spent = ms - before.get(name).copied().unwrap_or(0.0);
            format!("{name} {:.2}", spent / units.max(1) as f64)
        })
        .collect();
    let total: f64 = after.iter().map(|(n, ms)| ms - before.get(n).copied().unwrap_or(0.0)).sum();
    format!("CPU-ms per {unit}: {} (all Synapse processes {:.2})", per.join(", "), total / units.max(1) as f64)
}
