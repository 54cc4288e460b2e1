//! Bounded concurrency with retries, and progress: a bar with rate and ETA on a terminal, plain lines otherwise.

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shared::domain::DomainError;
use shared::homeserver::HomeserverError;
use tokio::task::JoinSet;

/// Attempts of one item before it is recorded as failed.
const MAX_ATTEMPTS: u32 = 8;

/// Whether a failure may pass by itself: the homeserver's rate limit (`M_LIMIT_EXCEEDED`, whose `retry_after_ms`
/// the wait honours), an outage, or a room another process is creating right now.
fn retry_delay(error: &DomainError, attempt: u32) -> Option<Duration> {
    match error {
        DomainError::Homeserver(HomeserverError::RateLimited { retry_after }) => Some(*retry_after),
        // An outage or an open circuit: back off up to 16 s (about a minute in all).
        _ if error.retryable() => Some(Duration::from_secs(1 << attempt.min(4))),
        DomainError::RoomBeingCreated => Some(Duration::from_secs(5)),
        _ => None,
    }
}

/// Runs `task` until it succeeds, fails for good, or runs out of attempts.
pub async fn with_retries<T, F, Fut>(task: F) -> Result<T, DomainError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, DomainError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match task().await {
            Ok(value) => return Ok(value),
            Err(error) => match retry_delay(&error, attempt) {
                Some(delay) if attempt < MAX_ATTEMPTS => {
                    // Rate limits are expected at scale: waiting them out is the normal path, not a failure.
                    tracing::debug!(attempt, delay_ms = delay.as_millis() as u64, error = %error, "retrying");
                    tokio::time::sleep(delay).await;
                }
                _ => return Err(error),
            },
        }
    }
}

/// Runs one future per item, at most `limit` at a time, on the runtime's threads; `on_done` sees each outcome.
pub async fn for_each<T, R, F, Fut>(
    items: impl IntoIterator<Item = T>,
    limit: usize,
    task: F,
    mut on_done: impl FnMut(R),
) where
    F: Fn(T) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let mut running = JoinSet::new();
    for item in items {
        while running.len() >= limit.max(1) {
            if let Some(Ok(outcome)) = running.join_next().await {
                on_done(outcome);
            }
        }
        running.spawn(task(item));
    }
    while let Some(joined) = running.join_next().await {
        if let Ok(outcome) = joined {
            on_done(outcome);
        }
    }
}

/// Progress of a command over a known total of items.
#[derive(Clone)]
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    done: Arc<AtomicU64>,
    total: u64,
    started: Instant,
    last_line: Arc<std::sync::Mutex<Instant>>,
    phase: Arc<std::sync::Mutex<String>>,
    quiet: bool,
}

impl Progress {
    /// A bar on a terminal (stderr), plain lines every few seconds otherwise; nothing with `quiet`.
    pub fn new(total: u64, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{msg:12} [{bar:40}] {pos}/{len} {per_sec} ETA {eta} (elapsed {elapsed})",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Progress {
            bar,
            done: Arc::new(AtomicU64::new(0)),
            total,
            started: Instant::now(),
            last_line: Arc::new(std::sync::Mutex::new(Instant::now())),
            phase: Arc::new(std::sync::Mutex::new(String::new())),
            quiet,
        }
    }

    pub fn phase(&self, name: &str) {
        if let Ok(mut phase) = self.phase.lock() {
            *phase = name.to_owned();
        }
        if let Some(bar) = &self.bar {
            bar.set_message(name.to_owned());
        } else if !self.quiet {
            self.line();
        }
    }

    pub fn add(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        let due = self.last_line.lock().map(|mut last| {
            let due = last.elapsed() >= Duration::from_secs(2);
            if due {
                *last = Instant::now();
            }
            due
        });
        if !self.quiet && (due.unwrap_or(false) || done == self.total) {
            self.line();
        }
    }

    fn line(&self) {
        let done = self.done.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = done as f64 / elapsed;
        let eta =
            if rate > 0.0 { format!("{:.0}s", (self.total.saturating_sub(done)) as f64 / rate) } else { "?".into() };
        let phase = self.phase.lock().map(|p| p.clone()).unwrap_or_default();
        eprintln!("[{phase}] {done}/{} items, {rate:.1}/s, ETA {eta}, elapsed {elapsed:.0}s", self.total);
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        } else if !self.quiet {
            self.line();
        }
    }
}
