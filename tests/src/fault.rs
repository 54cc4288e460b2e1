//! Fault injection for the reliability tests: pausing the real homeserver, a TCP proxy that can drop answers or
//! refuse connections, and a second gateway process wired through that proxy to its own retry queue.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{Stack, repo_root};

/// Pauses the homeserver process (SIGSTOP) until dropped or resumed: connections are accepted by the kernel but
/// never answered, the nastiest kind of outage.
pub struct PausedHomeserver {
    pid: String,
    resumed: bool,
}

impl PausedHomeserver {
    pub fn pause(stack: &Stack) -> PausedHomeserver {
        let pid = std::fs::read_to_string(stack.var("SYNAPSE_PID_FILE")).expect("Synapse pid file").trim().to_owned();
        signal(&pid, "STOP");
        PausedHomeserver { pid, resumed: false }
    }

    pub fn resume(mut self) {
        signal(&self.pid, "CONT");
        self.resumed = true;
    }
}

impl Drop for PausedHomeserver {
    fn drop(&mut self) {
        if !self.resumed {
            signal(&self.pid, "CONT");
        }
    }
}

fn signal(pid: &str, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(pid).status().expect("kill runs");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// How the proxy treats traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ProxyMode {
    PassThrough = 0,
    /// The next client chunk that sends a room message reaches the homeserver, its answer never comes back.
    DropNextSendAnswer = 1,
    /// Every connection is closed at once.
    Refuse = 2,
    /// Room message sends are answered `429 M_LIMIT_EXCEEDED` by the proxy itself (they never reach the
    /// homeserver), as Synapse answers a rate-limited sender; everything else passes.
    RateLimitSends = 3,
}

/// A loopback TCP proxy in front of the homeserver.
pub struct Proxy {
    pub port: u16,
    mode: Arc<AtomicU8>,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let mode = Arc::new(AtomicU8::new(ProxyMode::PassThrough as u8));
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let shared_mode = mode.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, mode) = (upstream.clone(), shared_mode.clone());
                tokio::spawn(async move { relay(client, &upstream, &mode).await });
            }
        });
        Proxy { port, mode }
    }

    pub fn set(&self, mode: ProxyMode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

async fn relay(mut client: TcpStream, upstream: &str, mode: &AtomicU8) {
    if mode.load(Ordering::SeqCst) == ProxyMode::Refuse as u8 {
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
    let (mut client_buf, mut server_buf) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        tokio::select! {
            read = client.read(&mut client_buf) => {
                let Ok(n) = read else { return };
                if n == 0 { return; }
                let chunk = &client_buf[..n];
                let current = mode.load(Ordering::SeqCst);
                if current == ProxyMode::Refuse as u8 {
                    return;
                }
                let is_send = contains(chunk, b"/send/m.room.message/");
                if current == ProxyMode::RateLimitSends as u8 && is_send {
                    let _ = client.write_all(LIMIT_EXCEEDED).await;
                    return;
                }
                if server.write_all(chunk).await.is_err() { return; }
                if current == ProxyMode::DropNextSendAnswer as u8 && is_send {
                    // Let the homeserver process it, then vanish: the caller never learns the outcome.
                    mode.store(ProxyMode::Refuse as u8, Ordering::SeqCst);
                    let _ = tokio::time::timeout(Duration::from_secs(3), server.read(&mut server_buf)).await;
                    return;
                }
            }
            read = server.read(&mut server_buf) => {
                let Ok(n) = read else { return };
                if n == 0 { return; }
                if mode.load(Ordering::SeqCst) == ProxyMode::Refuse as u8 { return; }
                if client.write_all(&server_buf[..n]).await.is_err() { return; }
            }
        }
    }
}

const LIMIT_EXCEEDED: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 79\r\n\r\n{\"errcode\":\"M_LIMIT_EXCEEDED\",\"error\":\"Too Many Requests\",\"retry_after_ms\":500}";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// A second gateway process (same binary as the stack's), reaching the homeserver through `homeserver_url` and
/// using its own retry queue, so its worker alone replays what it queued.
pub struct SecondGateway {
    child: Child,
    pub api: String,
    pub env: Vec<(String, String)>,
}

impl SecondGateway {
    pub async fn start(stack: &Stack, port: u16, homeserver_url: &str, queue_name: &str) -> SecondGateway {
        let mut env: Vec<(String, String)> = stack.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let set = |env: &mut Vec<(String, String)>, key: &str, value: String| {
            env.retain(|(k, _)| k != key);
            env.push((key.to_owned(), value));
        };
        set(&mut env, "OPENMEET_LISTEN", format!("127.0.0.1:{port}"));
        set(&mut env, "MATRIX_HOMESERVER_URL", homeserver_url.to_owned());
        set(&mut env, "OPENMEET_QUEUE_NAME", queue_name.to_owned());
        let log_dir = std::path::PathBuf::from(stack.var("STACK_LOG_DIR"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir.join("gateway-fault.log"))
            .expect("fault gateway log");
        let mut child = Command::new(repo_root().join("target/debug/openmeet-local"))
            .arg("serve")
            .envs(env.iter().cloned())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("the stack's openmeet-local binary (built by scripts/stack.sh start)");
        let api = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http.get(format!("{api}/v1/health")).send().await.is_ok() {
                return SecondGateway { child, api, env };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the second gateway did not come up; see gateway-fault.log");
    }

    /// Runs `openmeet-local ops <command>` with this gateway's environment; returns its stdout.
    pub fn run(&self, command: &str) -> String {
        let output = Command::new(repo_root().join("target/debug/openmeet-local"))
            .args(["ops", command])
            .envs(self.env.iter().cloned())
            .output()
            .expect("openmeet-local runs");
        assert!(output.status.success(), "openmeet-local {command}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

impl Drop for SecondGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
