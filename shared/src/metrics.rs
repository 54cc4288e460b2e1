//! Metrics as CloudWatch Embedded Metric Format lines: one JSON object per data point, printed as one line to
//! stdout, which Lambda ships to CloudWatch Logs, where CloudWatch extracts the metrics (namespace
//! `OpenMeet/Matrix`). Every metric is also published without dimensions, so alarms can watch the aggregate.
//! `openmeet-local ops metrics` summarises the same lines from the local gateway's log.

use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "OpenMeet/Matrix";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Milliseconds,
    Count,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Milliseconds => "Milliseconds",
            Unit::Count => "Count",
        }
    }
}

/// How a caller was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// OpenMeet's JWT on an API request.
    Jwt,
    /// A device login on the homeserver (as the appservice).
    HomeserverLogin,
}

impl AuthKind {
    fn as_str(self) -> &'static str {
        match self {
            AuthKind::Jwt => "jwt",
            AuthKind::HomeserverLogin => "homeserver_login",
        }
    }
}

/// The EMF line of one data point (without the trailing newline).
pub fn line(name: &str, unit: Unit, value: f64, dimensions: &[(&str, &str)], timestamp_ms: u64) -> String {
    let keys: Vec<&str> = dimensions.iter().map(|(key, _)| *key).collect();
    let dimension_sets = if keys.is_empty() { json!([[]]) } else { json!([keys, []]) };
    let mut object = Map::new();
    object.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": dimension_sets,
                "Metrics": [{"Name": name, "Unit": unit.as_str()}],
            }],
        }),
    );
    for (key, value) in dimensions {
        object.insert((*key).into(), Value::String((*value).into()));
    }
    object.insert(name.into(), json!(value));
    Value::Object(object).to_string()
}

/// Where metric lines go: 0 stdout (Lambda), 1 stderr, 2 nowhere.
static SINK: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// For command-line tools whose stdout carries a report: metric lines to stderr (`true`) or nowhere (`false`).
pub fn off_stdout(to_stderr: bool) {
    SINK.store(if to_stderr { 1 } else { 2 }, std::sync::atomic::Ordering::Relaxed);
}

/// Prints one data point to stdout.
pub fn emit(name: &str, unit: Unit, value: f64, dimensions: &[(&str, &str)]) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    // One write of the whole line (stdout's lock is held), and never a panic when stdout is gone.
    let mut text = line(name, unit, value, dimensions, now as u64);
    text.push('\n');
    match SINK.load(std::sync::atomic::Ordering::Relaxed) {
        0 => drop(std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())),
        1 => drop(std::io::Write::write_all(&mut std::io::stderr().lock(), text.as_bytes())),
        _ => {}
    }
}

fn count(name: &str, dimensions: &[(&str, &str)]) {
    emit(name, Unit::Count, 1.0, dimensions);
}

/// `2xx`, `4xx`, `5xx`, ...
pub fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

/// Response time of one API request.
pub fn api_latency(route: &str, status: u16, latency_ms: u64) {
    let dimensions = [("Route", route), ("StatusClass", status_class(status))];
    emit("ApiLatency", Unit::Milliseconds, latency_ms as f64, &dimensions);
}

pub fn auth(kind: AuthKind, success: bool) {
    count(if success { "AuthSuccess" } else { "AuthFailure" }, &[("Kind", kind.as_str())]);
}

pub fn room_created(success: bool) {
    count(if success { "RoomCreated" } else { "RoomCreateFailed" }, &[]);
}

/// From the request's acceptance to the homeserver's event id; `queued` for sends the retry worker delivered.
pub fn message_delivered(queued: bool, latency_ms: u64) {
    let path = if queued { "queued" } else { "direct" };
    emit("MessageDeliveryLatency", Unit::Milliseconds, latency_ms as f64, &[("Path", path)]);
}

pub fn retry_attempt() {
    count("RetryAttempt", &[]);
}

/// A deferred operation reached its end: delivered, or failed for good.
pub fn operation_finished(delivered: bool) {
    count(if delivered { "OperationDelivered" } else { "OperationFailed" }, &[]);
}

pub fn circuit(opened: bool) {
    count(if opened { "CircuitOpened" } else { "CircuitClosed" }, &[]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_emf_object() {
        let text = line("ApiLatency", Unit::Milliseconds, 42.0, &[("Route", "getHealth"), ("StatusClass", "2xx")], 7);
        assert!(!text.contains('\n'));
        let value: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(
            value,
            json!({
                "_aws": {
                    "Timestamp": 7,
                    "CloudWatchMetrics": [{
                        "Namespace": "OpenMeet/Matrix",
                        "Dimensions": [["Route", "StatusClass"], []],
                        "Metrics": [{"Name": "ApiLatency", "Unit": "Milliseconds"}],
                    }],
                },
                "Route": "getHealth",
                "StatusClass": "2xx",
                "ApiLatency": 42.0,
            })
        );
    }

    #[test]
    fn metrics_without_dimensions_have_one_empty_set() {
        let value: Value = serde_json::from_str(&line("CircuitOpened", Unit::Count, 1.0, &[], 1)).expect("JSON");
        assert_eq!(value["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
        assert_eq!(
            value["_aws"]["CloudWatchMetrics"][0]["Metrics"][0],
            json!({"Name": "CircuitOpened", "Unit": "Count"})
        );
        assert_eq!(value["CircuitOpened"], json!(1.0));
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(404), "4xx");
        assert_eq!(status_class(503), "5xx");
    }
}
