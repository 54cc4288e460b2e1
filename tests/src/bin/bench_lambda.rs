//! Size, start-up and memory of the Lambda binaries, against two baselines built with the same profile:
//! `baseline-hello` (an empty `lambda_runtime` function) and `baseline-skeleton` (the same AWS + HTTP clients as the
//! functions, answering trivially); see `benches/baselines`.
//!
//! ```sh
//! cargo build --release -p openmeet-provisioning -p openmeet-rooms -p openmeet-membership -p openmeet-messages \
//!     -p openmeet-retry-worker -p openmeet-baselines
//! cargo run --release -p integration-tests --bin bench_lambda -- [--dir target/release] [--starts 5] [--invocations 1000]
//! ```
//!
//! Each binary runs against a tiny Lambda runtime API emulated here on 127.0.0.1: start-up is the time from
//! spawning the process to its first `GET /2018-06-01/runtime/invocation/next` (median of several starts); memory
//! is VmRSS after the warm invocations (an API Gateway v2 `GET /v1/health` event for HTTP functions, an empty SQS
//! batch for the worker). The functions read the running stack's environment (`.local/stack.env`), so the
//! provisioning function's health checks really reach Synapse and the emulator.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

const HTTP_EVENT: &str = r#"{
  "version": "2.0", "routeKey": "$default", "rawPath": "/v1/health", "rawQueryString": "",
  "headers": {"accept": "application/json", "host": "bench.execute-api.eu-west-1.amazonaws.com"},
  "requestContext": {"accountId": "123456789012", "apiId": "bench", "domainName": "bench.execute-api.eu-west-1.amazonaws.com",
    "http": {"method": "GET", "path": "/v1/health", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "bench"},
    "requestId": "bench", "routeKey": "$default", "stage": "$default", "time": "20/Mar/2027:17:59:12 +0000",
    "timeEpoch": 1805565552000},
  "isBase64Encoded": false
}"#;
const SQS_EVENT: &str = r#"{"Records": []}"#;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Http,
    Sqs,
}

/// What the emulator saw of one process.
struct Runtime {
    addr: SocketAddr,
    event: &'static str,
    to_hand_out: AtomicUsize,
    handed_out: AtomicUsize,
    answered: AtomicUsize,
    errors: AtomicUsize,
    first_next: Mutex<Option<Instant>>,
    init_error: Mutex<Option<String>>,
    changed: Notify,
}

impl Runtime {
    async fn start(event: &'static str, invocations: usize) -> Arc<Runtime> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the runtime API");
        let runtime = Arc::new(Runtime {
            addr: listener.local_addr().expect("address"),
            event,
            to_hand_out: AtomicUsize::new(invocations),
            handed_out: AtomicUsize::new(0),
            answered: AtomicUsize::new(0),
            errors: AtomicUsize::new(0),
            first_next: Mutex::new(None),
            init_error: Mutex::new(None),
            changed: Notify::new(),
        });
        let accepting = runtime.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(accepting.clone().connection(stream));
            }
        });
        runtime
    }

    async fn connection(self: Arc<Self>, stream: TcpStream) {
        let mut stream = BufReader::new(stream);
        loop {
            let mut request_line = String::new();
            if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                return;
            }
            let mut content_length = 0usize;
            loop {
                let mut header = String::new();
                if stream.read_line(&mut header).await.unwrap_or(0) == 0 {
                    return;
                }
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    content_length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; content_length];
            if stream.read_exact(&mut body).await.is_err() {
                return;
            }
            let mut parts = request_line.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let answer = if method == "GET" && path.ends_with("/runtime/invocation/next") {
                self.first_next.lock().expect("lock").get_or_insert_with(Instant::now);
                self.changed.notify_waiters();
                let available =
                    self.to_hand_out.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                if !available {
                    // No more work: hold the call, as Lambda does with a frozen container, until the process ends.
                    std::future::pending::<()>().await;
                }
                let number = self.handed_out.fetch_add(1, Ordering::SeqCst);
                let deadline = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() + 60_000)
                    .unwrap_or(0);
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: bench-{number}\r\n\
                     lambda-runtime-deadline-ms: {deadline}\r\n\
                     lambda-runtime-invoked-function-arn: arn:aws:lambda:eu-west-1:123456789012:function:bench\r\n\
                     lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000;Sampled=0\r\n\
                     content-length: {}\r\n\r\n{}",
                    self.event.len(),
                    self.event
                )
            } else if method == "POST" && path.ends_with("/response") {
                self.answered.fetch_add(1, Ordering::SeqCst);
                self.changed.notify_waiters();
                "HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}".to_owned()
            } else if method == "POST" && path.ends_with("/error") {
                if path.contains("/runtime/init/") {
                    *self.init_error.lock().expect("lock") = Some(String::from_utf8_lossy(&body).into_owned());
                } else {
                    self.errors.fetch_add(1, Ordering::SeqCst);
                }
                self.changed.notify_waiters();
                "HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}".to_owned()
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_owned()
            };
            if stream.get_mut().write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    /// Waits until `done` holds, or fails after `timeout`.
    async fn wait(&self, timeout: Duration, what: &str, done: impl Fn(&Runtime) -> bool) -> Result<(), String> {
        let until = Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            if let Some(error) = self.init_error.lock().expect("lock").clone() {
                return Err(format!("init error: {error}"));
            }
            if done(self) {
                return Ok(());
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("timed out waiting for {what}"));
            }
            // Woken by the emulator, or re-checked every 200 ms.
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), changed).await;
        }
    }
}

struct Run {
    start: Duration,
    rss_kib: Option<u64>,
    warm: Option<Duration>,
    errors: usize,
}

async fn run_once(
    binary: &PathBuf,
    kind: Kind,
    env: &HashMap<String, String>,
    invocations: usize,
) -> Result<Run, String> {
    let runtime = Runtime::start(if kind == Kind::Http { HTTP_EVENT } else { SQS_EVENT }, invocations).await;
    let name = binary.file_name().and_then(|n| n.to_str()).unwrap_or("bench").to_owned();
    let mut command = tokio::process::Command::new(binary);
    command
        .env_clear()
        .envs(env)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", runtime.addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", &name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let spawned = Instant::now();
    let mut child = command.spawn().map_err(|e| format!("{}: {e}", binary.display()))?;
    let pid = child.id().unwrap_or(0);
    let outcome = async {
        runtime
            .wait(Duration::from_secs(30), "the first /next", |r| r.first_next.lock().expect("lock").is_some())
            .await?;
        let first = runtime.first_next.lock().expect("lock").unwrap_or(spawned);
        let start = first.duration_since(spawned);
        if invocations == 0 {
            return Ok(Run { start, rss_kib: None, warm: None, errors: 0 });
        }
        let warm_started = Instant::now();
        runtime
            .wait(Duration::from_secs(600), "the invocations", |r| {
                r.answered.load(Ordering::SeqCst) + r.errors.load(Ordering::SeqCst) >= invocations
            })
            .await?;
        let warm = warm_started.elapsed();
        // The process is now parked in its next /next call.
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(Run { start, rss_kib: rss_kib(pid), warm: Some(warm), errors: runtime.errors.load(Ordering::SeqCst) })
    }
    .await;
    let _ = child.kill().await;
    outcome
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// Resolves the retry queue's URL once, so the functions start as in AWS (`OPENMEET_QUEUE_URL` set, no lookup).
async fn queue_url(env: &HashMap<String, String>) -> Option<String> {
    let endpoint = env.get("AWS_ENDPOINT_URL")?;
    let name = env.get("OPENMEET_QUEUE_NAME")?;
    let form = [("Action", "GetQueueUrl"), ("QueueName", name.as_str()), ("Version", "2012-11-05")];
    let text = reqwest::Client::new().get(endpoint).query(&form).send().await.ok()?.text().await.ok()?;
    let start = text.find("<QueueUrl>")? + "<QueueUrl>".len();
    let end = text[start..].find("</QueueUrl>")? + start;
    Some(text[start..end].to_owned())
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(arg(&args, "--dir").unwrap_or_else(|| "target/release".into()));
    let starts: usize = arg(&args, "--starts").and_then(|v| v.parse().ok()).unwrap_or(5).max(1);
    let invocations: usize = arg(&args, "--invocations").and_then(|v| v.parse().ok()).unwrap_or(1000);
    let mut env = integration_tests::stack().env.clone();
    env.retain(|name, _| !name.starts_with("SYNAPSE_") && !name.starts_with("STACK_") && name != "OPENMEET_LISTEN");
    if let Some(url) = queue_url(&env).await {
        env.remove("OPENMEET_QUEUE_NAME");
        env.insert("OPENMEET_QUEUE_URL".into(), url);
    }
    let binaries = [
        ("baseline-hello", Kind::Http),
        ("baseline-skeleton", Kind::Http),
        ("provisioning", Kind::Http),
        ("rooms", Kind::Http),
        ("membership", Kind::Http),
        ("messages", Kind::Http),
        ("retry-worker", Kind::Sqs),
    ];
    println!("{} starts each (median), {invocations} warm invocations, binaries from {}\n", starts, dir.display());
    struct Row {
        name: &'static str,
        size: u64,
        start: Duration,
        rss_kib: u64,
        warm: Duration,
        errors: usize,
    }
    let mut rows: Vec<Row> = Vec::new();
    for (name, kind) in binaries {
        let path = dir.join(name);
        let Ok(meta) = std::fs::metadata(&path) else {
            eprintln!("{}: missing; build it with --release first", path.display());
            std::process::exit(1);
        };
        let mut start_times = Vec::new();
        for _ in 0..starts {
            match run_once(&path, kind, &env, 0).await {
                Ok(run) => start_times.push(run.start),
                Err(error) => {
                    eprintln!("{name}: {error}");
                    std::process::exit(1);
                }
            }
        }
        let warm = match run_once(&path, kind, &env, invocations).await {
            Ok(run) => run,
            Err(error) => {
                eprintln!("{name}: {error}");
                std::process::exit(1);
            }
        };
        start_times.push(warm.start);
        rows.push(Row {
            name,
            size: meta.len(),
            start: median(start_times),
            rss_kib: warm.rss_kib.unwrap_or(0),
            warm: warm.warm.unwrap_or_default(),
            errors: warm.errors,
        });
    }
    let (hello, skeleton) = (&rows[0], &rows[1]);
    let ratio = |a: f64, b: f64| if b > 0.0 { format!("{:.2}x", a / b) } else { "-".into() };
    println!(
        "{:<18} {:>9} {:>7} {:>7} {:>9} {:>7} {:>7} {:>8} {:>7} {:>7} {:>10} {:>6}",
        "binary",
        "size MB",
        "/hello",
        "/skel",
        "start ms",
        "/hello",
        "/skel",
        "RSS MB",
        "/hello",
        "/skel",
        "warm ms/inv",
        "errors"
    );
    for row in &rows {
        let mb = |bytes: f64| bytes / 1_048_576.0;
        println!(
            "{:<18} {:>9.2} {:>7} {:>7} {:>9.1} {:>7} {:>7} {:>8.1} {:>7} {:>7} {:>10.3} {:>6}",
            row.name,
            mb(row.size as f64),
            ratio(row.size as f64, hello.size as f64),
            ratio(row.size as f64, skeleton.size as f64),
            row.start.as_secs_f64() * 1000.0,
            ratio(row.start.as_secs_f64(), hello.start.as_secs_f64()),
            ratio(row.start.as_secs_f64(), skeleton.start.as_secs_f64()),
            row.rss_kib as f64 / 1024.0,
            ratio(row.rss_kib as f64, hello.rss_kib as f64),
            ratio(row.rss_kib as f64, skeleton.rss_kib as f64),
            row.warm.as_secs_f64() * 1000.0 / invocations.max(1) as f64,
            row.errors,
        );
    }
    println!(
        "\nsize: the file as built (the release profile strips symbols); start: spawn to the first /next; RSS: VmRSS \
         after the warm invocations; errors: invocations the function reported as failed to the runtime API."
    );
}
