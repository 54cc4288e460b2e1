//! Benchmark of the window's delta. Stages a synthetic community S (one full run), then applies S2 (S with about 2 %
//! changes: users added and removed, rooms renamed, member roles changed) twice in the same run: as a delta against
//! the staged run, and, after rolling that back, with `--full` (every entity read, as before deltas existed). Prints
//! the seconds and homeserver calls of both and their ratio, and the calls per changed entity.
//!
//! `cargo run --release -p openmeet-cutover --bin bench_delta -- [users groups events memberships concurrency]`
//! against the local stack (`set -a; . .local/stack.env; set +a`); defaults 1000 50 100 3000 8.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use openmeet_cutover::delta::Base;
use openmeet_cutover::generate::{Shape, generate};
use openmeet_cutover::run::{Options, RunReport, run_with};
use openmeet_cutover::{calls, rollback, snapshot};
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// S2 from S: every 100th user removed (with their memberships), as many added (each a member of the first
/// group), every 50th room renamed, every 100th membership's role changed. Returns the lines and the changes.
fn changed(lines: &[Value], tenant: &str) -> (Vec<Value>, u64) {
    let users: Vec<&str> = lines.iter().filter(|l| l["type"] == "user").filter_map(|l| l["userId"].as_str()).collect();
    let removed: Vec<String> = users.iter().step_by(100).map(|u| (*u).to_owned()).collect();
    let (mut out, mut rooms, mut members, mut changes) = (Vec::new(), 0u64, 0u64, 0u64);
    for line in lines {
        let mut line = line.clone();
        let user = line["userId"].as_str().unwrap_or_default().to_owned();
        match line["type"].as_str() {
            Some("user" | "member") if removed.contains(&user) => continue,
            Some("group" | "event") => {
                rooms += 1;
                if rooms % 50 == 0 {
                    line["name"] = json!(format!("{} (renamed)", line["name"].as_str().unwrap_or_default()));
                    changes += 1;
                }
            }
            Some("member") => {
                members += 1;
                if members % 100 == 0 && line["role"] != "owner" {
                    line["role"] = json!(if line["role"] == "member" { "moderator" } else { "member" });
                }
            }
            _ => {}
        }
        out.push(line);
    }
    for (i, _) in removed.iter().enumerate() {
        let user = format!("new{i:05}");
        out.push(
            json!({"type": "user", "tenant": tenant, "userId": user, "displayName": "Newcomer", "avatarUrl": null}),
        );
        out.push(json!({"type": "member", "tenant": tenant, "kind": "groups", "slug": "g0000", "userId": user, "role": "member"}));
    }
    // Users added and removed, rooms renamed; member lists changed are counted by the run itself.
    (out, changes + 2 * removed.len() as u64)
}

async fn timed_run(app: &'static shared::App, path: &Path, base: Base, concurrency: usize) -> (RunReport, f64) {
    let summary = snapshot::validate(path).unwrap_or_else(|e| panic!("{}: {}", path.display(), e.0));
    let options = Options { concurrency, quiet: true, until: None, base };
    let started = Instant::now();
    let report = run_with(app, path, summary, &options).await.unwrap_or_else(|e| panic!("run: {}", e.0));
    assert!(report.failures.is_empty(), "failures: {:?}", report.failures);
    (report, started.elapsed().as_secs_f64())
}

fn applied(report: &RunReport) -> u64 {
    report.phases.iter().map(|p| p.applied).sum()
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let arg = |i: usize, default: u64| args.get(i).copied().unwrap_or(default);
    let (users, groups, events, memberships) = (arg(0, 1000), arg(1, 50), arg(2, 100), arg(3, 3000));
    let concurrency = arg(4, 8) as usize;
    tracing_subscriber::registry().with(calls::Counter).init();
    shared::metrics::off_stdout(false);
    let app = openmeet_cutover::app().await.expect("configuration: export .local/stack.env");
    let tenant = format!("delta{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let dir = std::env::temp_dir();
    let (s, s2) = (dir.join(format!("{tenant}-s.jsonl")), dir.join(format!("{tenant}-s2.jsonl")));
    let shape = Shape { tenant: tenant.clone(), users, groups, events, memberships, seed: 11 };
    let mut file = std::fs::File::create(&s).expect("snapshot file");
    generate(&shape, &mut file).expect("generate");
    let text = std::fs::read_to_string(&s).expect("read S");
    let lines: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let (next, entity_changes) = changed(&lines, &tenant);
    let mut out = std::fs::File::create(&s2).expect("S2 file");
    for line in &next {
        writeln!(out, "{line}").expect("write S2");
    }

    let (staged, stage_seconds) = timed_run(app, &s, Base::Full, concurrency).await;
    let stage_calls = staged.homeserver_calls;
    let (delta, delta_seconds) = timed_run(app, &s2, Base::Newest, concurrency).await;
    assert_eq!(delta.base.as_deref(), Some(staged.run_id.as_str()), "the delta took another base");
    let started = Instant::now();
    let back = rollback::rollback(app, &delta.run_id, concurrency, true).await.expect("rollback");
    let rollback_seconds = started.elapsed().as_secs_f64();
    assert!(back.failures.is_empty(), "rollback failures: {:?}", back.failures);
    let (full, full_seconds) = timed_run(app, &s2, Base::Full, concurrency).await;

    let items = users + groups + events;
    println!(
        "community {users} users, {} rooms, {memberships} memberships; S2 changes {entity_changes} users/rooms and \
         the member lists they touch; concurrency {concurrency}",
        groups + events
    );
    println!("staging (full run of S): {stage_seconds:.1} s, {stage_calls} homeserver calls");
    println!(
        "window delta of S2:      {delta_seconds:.1} s, {} homeserver calls, {} entities applied ({:.1} calls each)",
        delta.homeserver_calls,
        applied(&delta),
        delta.homeserver_calls as f64 / applied(&delta).max(1) as f64
    );
    println!(
        "full run of S2 (--full): {full_seconds:.1} s, {} homeserver calls, {} entities applied",
        full.homeserver_calls,
        applied(&full)
    );
    println!(
        "ratio delta/full: time {:.3}, calls {:.3}; rollback of the delta {rollback_seconds:.1} s ({} restored); \
         {items} users+rooms",
        delta_seconds / full_seconds.max(0.001),
        delta.homeserver_calls as f64 / full.homeserver_calls.max(1) as f64,
        back.restored
    );
}
