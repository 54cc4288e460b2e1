//! CPU and RSS of the stack's processes (gateway, Synapse, moto), from `/proc/<pid>/stat` and `status`; pids from
//! the stack's pid files (`.local/run/<name>.pid`, functions/local/src/stack/process.rs).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

pub const COMPONENTS: [&str; 3] = ["gateway", "synapse", "moto"];

/// Clock ticks per second of /proc's utime/stime: 100 on Linux x86_64 and arm64 (USER_HZ).
const TICKS_PER_SEC: f64 = 100.0;

fn pid(run_dir: &Path, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(run_dir.join(format!("{name}.pid"))).ok()?;
    text.trim().parse().ok()
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields after the last ')' start at field 3 (state).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SEC)
}

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Usage {
    /// Mean cores used over the window (1.0 = one core busy all the time).
    pub cpu_cores: f64,
    pub rss_mib_max: f64,
}

/// Samples the components every second between `start` and `stop`.
pub struct Sampler {
    started: Instant,
    cpu_at_start: BTreeMap<&'static str, f64>,
    rss_max: BTreeMap<&'static str, f64>,
    pids: BTreeMap<&'static str, u32>,
}

impl Sampler {
    pub fn start(run_dir: &Path) -> Sampler {
        let pids: BTreeMap<&'static str, u32> =
            COMPONENTS.iter().filter_map(|name| pid(run_dir, name).map(|p| (*name, p))).collect();
        let cpu_at_start = pids.iter().filter_map(|(n, p)| cpu_secs(*p).map(|c| (*n, c))).collect();
        let mut sampler = Sampler { started: Instant::now(), cpu_at_start, rss_max: BTreeMap::new(), pids };
        sampler.sample();
        sampler
    }

    pub fn sample(&mut self) {
        for (name, pid) in &self.pids {
            if let Some(rss) = rss_mib(*pid) {
                let max = self.rss_max.entry(name).or_insert(0.0);
                *max = max.max(rss);
            }
        }
    }

    pub fn finish(mut self) -> BTreeMap<String, Usage> {
        self.sample();
        let wall = self.started.elapsed().max(Duration::from_millis(1)).as_secs_f64();
        self.pids
            .iter()
            .map(|(name, pid)| {
                let used = cpu_secs(*pid).zip(self.cpu_at_start.get(name)).map_or(0.0, |(now, then)| now - then);
                let usage =
                    Usage { cpu_cores: used / wall, rss_mib_max: self.rss_max.get(name).copied().unwrap_or(0.0) };
                ((*name).to_owned(), usage)
            })
            .collect()
    }
}

/// The machine's 1-minute load average (the report notes it: other people's builds share these cores).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
