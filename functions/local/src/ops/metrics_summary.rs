//! `openmeet-local ops metrics [LOG_FILE] [--json]`: summarises the Embedded Metric Format lines the functions printed
//! (`shared::metrics`) in a log file: per metric and dimension set, the count, and p50/p95/max for timings.

use std::collections::BTreeMap;

use serde_json::Value;

/// Metric name → dimension set (`Key=value,...`, empty for none) → values.
pub type Samples = BTreeMap<String, BTreeMap<String, Series>>;

#[derive(Debug, Default)]
pub struct Series {
    pub unit: String,
    pub values: Vec<f64>,
}

/// Reads every EMF line of `text`; other lines (ordinary log lines) are skipped.
pub fn collect(text: &str) -> Samples {
    let mut samples = Samples::new();
    for line in text.lines() {
        let line = line.trim();
        if !line.starts_with('{') || !line.contains("\"_aws\"") {
            continue;
        }
        let Ok(object) = serde_json::from_str::<Value>(line) else { continue };
        let Some(directives) = object.pointer("/_aws/CloudWatchMetrics").and_then(Value::as_array) else { continue };
        for directive in directives {
            // The most detailed dimension set names the series; the others are roll-ups of it.
            let keys: Vec<&str> = directive
                .get("Dimensions")
                .and_then(Value::as_array)
                .and_then(|sets| sets.iter().filter_map(Value::as_array).max_by_key(|set| set.len()))
                .map(|set| set.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let dimensions = keys
                .iter()
                .map(|key| format!("{key}={}", object.get(*key).and_then(Value::as_str).unwrap_or("?")))
                .collect::<Vec<_>>()
                .join(",");
            for metric in directive.get("Metrics").and_then(Value::as_array).into_iter().flatten() {
                let Some(name) = metric.get("Name").and_then(Value::as_str) else { continue };
                let unit = metric.get("Unit").and_then(Value::as_str).unwrap_or("None");
                let values: Vec<f64> = match object.get(name) {
                    Some(Value::Array(items)) => items.iter().filter_map(Value::as_f64).collect(),
                    Some(value) => value.as_f64().into_iter().collect(),
                    None => continue,
                };
                let series = samples.entry(name.to_owned()).or_default().entry(dimensions.clone()).or_default();
                series.unit = unit.to_owned();
                series.values.extend(values);
            }
        }
    }
    samples
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One line of the summary: a metric over one dimension set (or `(all)` of them); timings carry percentiles.
#[derive(Debug, serde::Serialize)]
pub struct Row {
    pub metric: String,
    pub dimensions: String,
    pub unit: String,
    pub count: usize,
    pub sum: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p95: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

pub fn rows(samples: &Samples) -> Vec<Row> {
    let mut out = Vec::new();
    for (name, by_dimensions) in samples {
        let mut series: Vec<(String, Series)> = by_dimensions
            .iter()
            .map(|(dims, s)| (dims.clone(), Series { unit: s.unit.clone(), values: s.values.clone() }))
            .collect();
        if by_dimensions.len() > 1 {
            let values = by_dimensions.values().flat_map(|s| s.values.iter().copied()).collect();
            let unit = by_dimensions.values().next().map(|s| s.unit.clone()).unwrap_or_default();
            series.push(("(all)".into(), Series { unit, values }));
        }
        for (dimensions, mut series) in series {
            let timing = series.unit == "Milliseconds";
            series.values.sort_by(f64::total_cmp);
            let sorted = &series.values;
            out.push(Row {
                metric: name.clone(),
                dimensions: if dimensions.is_empty() { "(no dimensions)".into() } else { dimensions },
                count: sorted.len(),
                sum: sorted.iter().sum(),
                p50: timing.then(|| percentile(sorted, 50.0)),
                p95: timing.then(|| percentile(sorted, 95.0)),
                max: timing.then(|| sorted.last().copied().unwrap_or(0.0)),
                unit: series.unit,
            });
        }
    }
    out
}

pub fn render(rows: &[Row]) -> String {
    if rows.is_empty() {
        return "no metric lines found\n".to_owned();
    }
    let mut out = String::new();
    for (at, row) in rows.iter().enumerate() {
        if at == 0 || rows[at - 1].metric != row.metric {
            out.push_str(&format!("{}\n", row.metric));
        }
        let label = &row.dimensions;
        match (row.p50, row.p95, row.max) {
            (Some(p50), Some(p95), Some(max)) => out.push_str(&format!(
                "  {label:<48} count {:>6}  p50 {p50:>7.0} ms  p95 {p95:>7.0} ms  max {max:>7.0} ms\n",
                row.count
            )),
            _ => out.push_str(&format!("  {label:<48} count {:>6}  sum {}\n", row.count, row.sum)),
        }
    }
    out
}

/// The summary of the log at `path`.
pub fn summarise(path: &str) -> Result<Vec<Row>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?;
    Ok(rows(&collect(&String::from_utf8_lossy(&bytes))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::metrics::{Unit, line};

    #[test]
    fn summarises_emf_lines_and_skips_the_rest() {
        let mut text = String::from("{\"level\":\"INFO\",\"fields\":{\"message\":\"request served\"}}\nplain text\n");
        for ms in 1..=100 {
            let dims = [("Route", "getHealth"), ("StatusClass", "2xx")];
            text.push_str(&line("ApiLatency", Unit::Milliseconds, ms as f64, &dims, 1));
            text.push('\n');
        }
        text.push_str(&line(
            "ApiLatency",
            Unit::Milliseconds,
            500.0,
            &[("Route", "putUser"), ("StatusClass", "5xx")],
            1,
        ));
        text.push('\n');
        text.push_str(&line("CircuitOpened", Unit::Count, 1.0, &[], 1));
        let samples = collect(&text);
        let health = &samples["ApiLatency"]["Route=getHealth,StatusClass=2xx"];
        assert_eq!(health.values.len(), 100);
        assert_eq!(samples["CircuitOpened"][""].values, vec![1.0]);
        let rendered = render(&rows(&samples));
        assert!(rendered.contains("p50      50 ms  p95      95 ms  max     100 ms"), "{rendered}");
        assert!(rendered.contains("(all)"), "{rendered}");
        assert!(rendered.contains("CircuitOpened\n  (no dimensions)"), "{rendered}");
    }
}
