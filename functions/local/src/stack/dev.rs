//! `stack dev` (scripts/dev.sh): the stack in the foreground with the gateway's log on the terminal. Ctrl-C stops
//! exactly what this run started; services already running (e.g. from `scripts/stack.sh start`) are reused and left
//! alone.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use super::services::{Failure, Service, Stack, interrupted};
use super::{say, show_log_tail};

pub async fn run(stack: &Stack) -> Result<(), Failure> {
    let gateway_log = Service::Gateway.log(&stack.layout);
    let offset = std::fs::metadata(&gateway_log).map_or(0, |m| m.len());
    stack.start().await?;
    let started = stack.started();
    let reused: Vec<_> = Service::ALL.into_iter().filter(|s| !started.contains(s)).map(Service::name).collect();
    if !started.is_empty() {
        let names: Vec<_> = started.iter().map(|s| s.name()).collect();
        say("dev", &format!("started by this run (Ctrl-C stops them): {}", names.join(" ")));
    }
    if !reused.is_empty() {
        say("dev", &format!("reused (left running on exit): {}", reused.join(" ")));
    }
    say("dev", &format!("gateway log follows ({}); Synapse logs to .local/logs/synapse.log", gateway_log.display()));
    // The whole output of a gateway this run started; the last lines of one it reused.
    let from = if started.contains(&Service::Gateway) { offset } else { tail_start(&gateway_log, 20) };
    let result = tokio::select! {
        code = interrupted() => Err(Failure::Interrupted(code)),
        failure = watch(stack, &started) => Err(failure),
        () = follow(gateway_log, from) => Ok(()),
    };
    println!("\n[stop] stopping what this run started");
    stack.stop_started().await;
    result
}

/// Returns once a service this run started has died, after showing its log.
async fn watch(stack: &Stack, started: &[Service]) -> Failure {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(dead) = started.iter().find(|s| stack.pid(**s).is_none()) {
            // Let the follower print the gateway's last words.
            tokio::time::sleep(Duration::from_millis(500)).await;
            show_log_tail(&dead.log(&stack.layout), 20);
            return Failure::Error("dev", format!("{} exited unexpectedly", dead.name()));
        }
    }
}

/// The byte offset of the last `lines` lines of a file.
fn tail_start(path: &PathBuf, lines: usize) -> u64 {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut newlines = bytes.iter().enumerate().rev().filter(|(_, b)| **b == b'\n').map(|(i, _)| i as u64 + 1);
    newlines.nth(lines).unwrap_or(0)
}

/// Copies what is appended to the file to stdout, as `tail -F` does (a truncated file is read again from its start).
async fn follow(path: PathBuf, mut position: u64) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        if let Ok(mut file) = std::fs::File::open(&path) {
            let len = file.metadata().map_or(0, |m| m.len());
            if len < position {
                position = 0;
            }
            if file.seek(SeekFrom::Start(position)).is_ok() {
                while let Ok(n) = file.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    position += n as u64;
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(&buffer[..n]).and_then(|()| out.flush());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
