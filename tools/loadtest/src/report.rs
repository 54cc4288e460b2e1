//! A sweep's report: JSON (every figure), Markdown (the tables a reader wants) and an SVG plot of delivery latency
//! against people, through the API and direct.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::Scenario;
use crate::metrics::Mode;
use crate::run::StepReport;

/// p95 delivery above which a size is past the knee.
pub const KNEE_MS: f64 = 1000.0;

#[derive(Serialize)]
pub struct Sweep {
    pub command: String,
    pub scenario: Scenario,
    pub steps: Vec<StepReport>,
    /// By mode: the smallest size whose p95 delivery passed 1 s (None: not within the sweep).
    pub knee: std::collections::BTreeMap<String, Option<usize>>,
    /// The size at which the sweep stopped because its world could not be set up, and why.
    pub stopped: Option<String>,
}

impl Sweep {
    pub fn new(command: String, scenario: Scenario, steps: Vec<StepReport>) -> Sweep {
        let knee = Mode::ALL
            .iter()
            .map(|mode| {
                let first = steps
                    .iter()
                    .find(|s| s.phase(*mode).is_some_and(|p| p.delivery.p95_ms > KNEE_MS))
                    .map(|s| s.people);
                (mode.name().to_owned(), first)
            })
            .collect();
        Sweep { command, scenario, steps, knee, stopped: None }
    }

    /// Lost, duplicated or 5xx anywhere: what fails the smoke run.
    pub fn failures(&self) -> Vec<String> {
        let mut problems: Vec<String> = self.stopped.iter().cloned().collect();
        for step in &self.steps {
            for (mode, phase) in &step.phases {
                let n = step.people;
                if phase.lost_deliveries > 0 {
                    problems.push(format!("{n} people, {mode}: {} deliveries lost", phase.lost_deliveries));
                }
                if phase.duplicated_messages > 0 {
                    problems.push(format!("{n} people, {mode}: {} messages duplicated", phase.duplicated_messages));
                }
                if phase.server_errors() > 0 {
                    problems.push(format!("{n} people, {mode}: {} answers were 5xx", phase.server_errors()));
                }
                if phase.messages == 0 {
                    problems.push(format!("{n} people, {mode}: no message was sent"));
                }
            }
        }
        problems
    }

    pub fn write(&self, dir: &Path, name: &str) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(dir.join(format!("{name}.json")), json).map_err(|e| e.to_string())?;
        std::fs::write(dir.join(format!("{name}.md")), self.markdown(name)).map_err(|e| e.to_string())?;
        self.plot(&dir.join(format!("{name}.svg")))
    }

    fn markdown(&self, name: &str) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Load sweep `{name}`\n\nCommand: `{}`\n", self.command);
        let knee = |mode: Mode| match self.knee.get(mode.name()).copied().flatten() {
            Some(n) => format!("{n} people"),
            None => format!("not reached (p95 ≤ 1 s up to {} people)", self.steps.last().map_or(0, |s| s.people)),
        };
        let _ = writeln!(
            md,
            "Knee (p95 delivery > 1 s): through the API {}; direct {}.\n",
            knee(Mode::Api),
            knee(Mode::Direct)
        );
        if let Some(stopped) = &self.stopped {
            let _ = writeln!(md, "The sweep stopped at {stopped}\n");
        }
        let _ = writeln!(md, "## Delivery (send → seen in the other members' /sync), ms\n");
        let _ = writeln!(
            md,
            "| people | rooms (largest) | mode | messages | deliveries | p50 | p95 | p99 | max | lost | dup | 5xx | load avg before/after |"
        );
        let _ = writeln!(md, "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for s in &self.steps {
            for (mode, p) in &s.phases {
                let d = &p.delivery;
                let _ = writeln!(
                    md,
                    "| {} | {} ({}) | {mode} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} / {} |",
                    s.people,
                    s.rooms,
                    s.largest_room,
                    p.messages,
                    p.deliveries,
                    d.p50_ms,
                    d.p95_ms,
                    d.p99_ms,
                    d.max_ms,
                    p.lost_deliveries,
                    p.duplicated_messages,
                    p.server_errors(),
                    s.load_average_before,
                    s.load_average_after
                );
            }
        }
        let _ = writeln!(md, "\n## API and homeserver calls per route (latency ms; status classes)\n");
        let _ = writeln!(md, "| people | mode | route | n | p50 | p95 | p99 | 2xx | 202 | 429 | 4xx | 5xx | failed |");
        let _ = writeln!(md, "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for s in &self.steps {
            for (mode, p) in &s.phases {
                for (route, r) in &p.routes {
                    let c = &r.counts;
                    let _ = writeln!(
                        md,
                        "| {} | {mode} | `{route}` | {} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} |",
                        s.people,
                        r.requests,
                        r.latency.p50_ms,
                        r.latency.p95_ms,
                        r.latency.p99_ms,
                        c.ok_2xx,
                        c.queued_202,
                        c.limited_429,
                        c.other_4xx,
                        c.server_5xx,
                        c.failed
                    );
                }
            }
        }
        let _ = writeln!(md, "\n## Resources (mean cores over the phase and its drain; peak RSS MiB)\n");
        let _ = writeln!(md, "| people | mode | component | cores | RSS MiB |\n|---:|---|---|---:|---:|");
        for s in &self.steps {
            for (mode, components) in &s.usage {
                for (name, u) in components {
                    let _ =
                        writeln!(md, "| {} | {mode} | {name} | {:.2} | {:.0} |", s.people, u.cpu_cores, u.rss_mib_max);
                }
            }
        }
        let _ =
            writeln!(md, "\n## Wire: bytes per person per minute (filter before/after issue 29; kind of traffic)\n");
        let _ = writeln!(md, "| people | mode | filter/traffic | bytes/person-minute |\n|---:|---|---|---:|");
        for s in &self.steps {
            for (mode, rates) in &s.bytes_per_person_minute {
                for (key, rate) in rates {
                    let _ = writeln!(md, "| {} | {mode} | {key} | {rate:.0} |", s.people);
                }
            }
        }
        let _ = writeln!(md, "\n## Catch-up after going offline (API phase)\n");
        let _ =
            writeln!(md, "| people | filter | offline s | missed messages | first sync ms | all seen ms | gap fills |");
        let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|");
        for s in &self.steps {
            for c in &s.catch_ups {
                let complete = c.complete_ms.map_or("not complete".to_owned(), |ms| format!("{ms:.0}"));
                let _ = writeln!(
                    md,
                    "| {} | {:?} | {:.0} | {} | {:.0} | {complete} | {} |",
                    s.people, c.filter, c.offline_secs, c.missed_messages, c.first_sync_ms, c.gap_fills
                );
            }
        }
        md
    }

    fn plot(&self, path: &Path) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| format!("plot {}: {e}", path.display());
        let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let max_people = self.steps.iter().map(|s| s.people).max().unwrap_or(10) as f64;
        let max_ms =
            self.steps.iter().flat_map(|s| s.phases.values().map(|p| p.delivery.p99_ms)).fold(KNEE_MS * 1.2, f64::max);
        let mut chart = ChartBuilder::on(&root)
            .caption("Delivery latency (send → seen in /sync) against people", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..max_people * 1.05, 0.0..max_ms * 1.05)
            .map_err(|e| err(&e))?;
        chart.configure_mesh().x_desc("people").y_desc("ms").draw().map_err(|e| err(&e))?;
        let series = [
            (Mode::Api, "p95", RED),
            (Mode::Direct, "p95", BLUE),
            (Mode::Api, "p50", MAGENTA),
            (Mode::Direct, "p50", CYAN),
        ];
        for (mode, which, colour) in series {
            let points: Vec<(f64, f64)> = self
                .steps
                .iter()
                .filter_map(|s| {
                    s.phase(mode)
                        .map(|p| (s.people as f64, if which == "p95" { p.delivery.p95_ms } else { p.delivery.p50_ms }))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(format!("{} {which}", mode.name()))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, colour.filled()))).map_err(|e| err(&e))?;
        }
        chart
            .draw_series(LineSeries::new(vec![(0.0, KNEE_MS), (max_people * 1.05, KNEE_MS)], BLACK.mix(0.4)))
            .map_err(|e| err(&e))?
            .label("1 s")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.mix(0.4)));
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))
    }
}
