//! The four services and the start/stop/status sequences over them.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::process::{self, Launch, StackLock};
use super::{GATEWAY_URL, Layout, MOTO_URL, SYNAPSE_URL, env_file, env_or, gate, say, show_log_tail, synapse};

/// Why a command failed: a signal (its exit status) or an error in a step.
pub enum Failure {
    Interrupted(i32),
    Error(&'static str, String),
}

fn fail(step: &'static str) -> impl Fn(String) -> Failure {
    move |error| Failure::Error(step, error)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Service {
    Moto,
    Synapse,
    /// The homeserver's public entry (nginx), in front of Synapse.
    Gate,
    Gateway,
}

impl Service {
    /// Start order; stop goes in reverse.
    pub const ALL: [Service; 4] = [Service::Moto, Service::Synapse, Service::Gate, Service::Gateway];

    pub fn name(self) -> &'static str {
        match self {
            Service::Moto => "moto",
            Service::Synapse => "synapse",
            Service::Gate => "gate",
            Service::Gateway => "gateway",
        }
    }

    /// What our process's command line contains (the shell scripts used the same, so either stops the other's).
    fn pattern(self, layout: &Layout) -> String {
        match self {
            Service::Moto => layout.venv.join("bin/moto_server").display().to_string(),
            Service::Synapse => {
                format!("synapse.app.homeserver -c {}", layout.synapse.join("homeserver.yaml").display())
            }
            // nginx's master keeps its arguments in its title: "nginx: master process /usr/sbin/nginx -c …".
            Service::Gate => format!("-c {}", gate::config_file(layout).display()),
            Service::Gateway => "openmeet-local serve".to_owned(),
        }
    }

    fn url(self) -> &'static str {
        match self {
            Service::Moto => MOTO_URL,
            Service::Synapse => SYNAPSE_URL,
            Service::Gate => gate::GATE_URL,
            Service::Gateway => GATEWAY_URL,
        }
    }

    pub fn log(self, layout: &Layout) -> PathBuf {
        let file =
            if self == Service::Synapse { "synapse-stdout.log".to_owned() } else { format!("{}.log", self.name()) };
        layout.logs.join(file)
    }

    fn start_timeout(self) -> Duration {
        let (key, default) = match self {
            Service::Moto => ("MOTO_START_TIMEOUT", 60),
            Service::Synapse => ("SYNAPSE_START_TIMEOUT", 180),
            Service::Gate => ("GATE_START_TIMEOUT", 30),
            Service::Gateway => ("GATEWAY_START_TIMEOUT", 120),
        };
        Duration::from_secs(std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default))
    }
}

fn stop_timeout() -> Duration {
    Duration::from_secs(std::env::var("STOP_TIMEOUT").ok().and_then(|v| v.parse().ok()).unwrap_or(20))
}

/// Ctrl-C (130) or SIGTERM (143).
pub async fn interrupted() -> i32 {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match term.as_mut() {
            Some(signal) => signal.recv().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => 130,
        _ = terminated => 143,
    }
}

/// The client that health-checks the stack's services: loopback only, never through an HTTP(S)_PROXY from the
/// environment, and quick to give up.
pub fn loopback_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap_or_default()
}

pub struct Stack {
    pub layout: Layout,
    http: reqwest::Client,
    /// Services this run started: the ones a failure or Ctrl-C stops.
    pub started: Mutex<Vec<Service>>,
}

impl Stack {
    pub fn new(layout: Layout) -> Stack {
        Stack { layout, http: loopback_client(), started: Mutex::new(Vec::new()) }
    }

    pub fn started(&self) -> Vec<Service> {
        self.started.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn pid(&self, service: Service) -> Option<i32> {
        process::running_pid(&self.layout.run, service.name(), &service.pattern(&self.layout))
    }

    /// Whether the service answers: Synapse and the gate (through to Synapse) with 200 on the versions, the others
    /// with anything.
    async fn answers(&self, service: Service) -> bool {
        let path = match service {
            Service::Moto => "/moto-api/",
            Service::Synapse | Service::Gate => "/_matrix/client/versions",
            Service::Gateway => "/v1/health",
        };
        match self.http.get(format!("{}{path}", service.url())).send().await {
            Ok(response) => !matches!(service, Service::Synapse | Service::Gate) || response.status() == 200,
            Err(_) => false,
        }
    }

    fn spawn(
        &self,
        service: Service,
        program: PathBuf,
        args: Vec<String>,
        envs: Vec<(String, String)>,
    ) -> Result<(), String> {
        let log = service.log(&self.layout);
        let launch = Launch { name: service.name(), program: &program, args, envs, log: &log };
        let pid = process::spawn(&self.layout.run, &self.layout.root, launch)?;
        if let Ok(mut started) = self.started.lock() {
            started.push(service);
        }
        say(service.name(), &format!("started (pid {pid}), log {}", log.display()));
        Ok(())
    }

    async fn stop_service(&self, service: Service) -> bool {
        process::stop(&self.layout.run, service.name(), &service.pattern(&self.layout), stop_timeout()).await
    }

    /// Polls until the service answers; fails with its log's tail on timeout, or as soon as our process died.
    async fn wait_until_healthy(&self, service: Service, step: &'static str) -> Result<(), Failure> {
        let ours = if self.started().contains(&service) { self.pid(service) } else { None };
        let deadline = Instant::now() + service.start_timeout();
        let log = service.log(&self.layout);
        while !self.answers(service).await {
            let problem = if ours.is_some_and(|pid| !process::alive(pid)) {
                "exited during start-up"
            } else if Instant::now() >= deadline {
                "did not answer in time"
            } else {
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            };
            show_log_tail(&log, 40);
            return Err(Failure::Error(step, format!("{} {problem} (see {})", service.name(), log.display())));
        }
        say(step, &format!("healthy: {}", service.url()));
        Ok(())
    }

    /// The whole start sequence, under the stack's lock; a failure or a signal stops what this run started.
    pub async fn start(&self) -> Result<(), Failure> {
        let t0 = Instant::now();
        let result = tokio::select! {
            result = self.up() => result,
            code = interrupted() => Err(Failure::Interrupted(code)),
        };
        if result.is_err() && !self.started().is_empty() {
            let names: Vec<_> = self.started().iter().map(|s| s.name()).collect();
            eprintln!("[start] failed: stopping what this run started: {}", names.join(" "));
            self.stop_started().await;
            eprintln!("[start] logs are in {}", self.layout.logs.display());
        }
        result?;
        self.print_summary();
        say("ready", &format!("healthy after {}s; stop with: scripts/stack.sh stop", t0.elapsed().as_secs()));
        Ok(())
    }

    pub async fn up(&self) -> Result<(), Failure> {
        let _lock = StackLock::acquire(&self.layout.run).await.map_err(fail("stack"))?;
        let layout = &self.layout;
        if !layout.venv.join("bin/python").exists() {
            return Err(Failure::Error(
                "1/8 venv",
                format!("{} is missing: run scripts/stack.sh start", layout.venv.display()),
            ));
        }
        let step = "2/8 synapse-config";
        for dir in [layout.synapse.join("media_store"), layout.logs.clone(), layout.run.clone()] {
            std::fs::create_dir_all(&dir).map_err(|e| Failure::Error(step, format!("{}: {e}", dir.display())))?;
        }
        if synapse::ensure_secrets(layout).map_err(fail(step))? {
            say(step, "generated the secrets once into .local/synapse/secrets.env");
        }
        let lifetime = env_or("OPENMEET_LOCAL_SESSION_LIFETIME", "30s");
        let changed = synapse::render_all(layout, &lifetime).map_err(fail(step))?;
        let state = if changed { "changed" } else { "unchanged" };
        say(step, &format!("config {state}: {}", layout.synapse.join("homeserver.yaml").display()));
        synapse::ensure_signing_key(layout).await.map_err(fail(step))?;
        self.launch_moto().await.map_err(fail("3/8 moto"))?;
        self.launch_synapse().await.map_err(fail("3/8 synapse"))?;
        self.wait_until_healthy(Service::Moto, "5/8 moto").await?;
        self.wait_until_healthy(Service::Synapse, "5/8 synapse").await?;
        synapse::ensure_platform_admin(layout).await.map_err(fail("6/8 platform-admin"))?;
        self.launch_gate().await.map_err(fail("6/8 gate"))?;
        self.wait_until_healthy(Service::Gate, "6/8 gate").await?;
        self.write_stack_env().map_err(fail("7/8 stack-env"))?;
        self.launch_gateway().await
    }

    async fn launch_moto(&self) -> Result<(), String> {
        let step = "3/8 moto";
        if self.answers(Service::Moto).await {
            let whose = if self.pid(Service::Moto).is_some() {
                "already running (ours)"
            } else {
                "something already answers: reusing it"
            };
            say(step, &format!("{whose}, {MOTO_URL}"));
            return Ok(());
        }
        self.stop_service(Service::Moto).await; // ours but not answering: replace it
        let args = ["-H", super::HOST, "-p", "5100"].map(str::to_owned).to_vec();
        self.spawn(Service::Moto, self.layout.venv.join("bin/moto_server"), args, Vec::new())
    }

    async fn launch_synapse(&self) -> Result<(), String> {
        let step = "3/8 synapse";
        let want = synapse::config_hash(&self.layout);
        let stamp = process::stamp_file(&self.layout.run, "synapse");
        if self.answers(Service::Synapse).await {
            if self.pid(Service::Synapse).is_none() {
                say(step, &format!("something already answers on {SYNAPSE_URL}: reusing it"));
                return Ok(());
            }
            if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == want) {
                say(step, &format!("already running (ours), {SYNAPSE_URL}"));
                return Ok(());
            }
            say(step, "config changed since it started: restarting");
        }
        self.stop_service(Service::Synapse).await;
        let config = self.layout.synapse.join("homeserver.yaml").display().to_string();
        let args = ["-m", "synapse.app.homeserver", "-c", &config].map(str::to_owned).to_vec();
        // The tenant-walls module (synapse-module/) is loaded from the repository itself.
        let envs = vec![("PYTHONPATH".to_owned(), self.layout.root.join("synapse-module").display().to_string())];
        self.spawn(Service::Synapse, self.layout.venv.join("bin/python"), args, envs)?;
        std::fs::write(stamp, format!("{want}\n")).map_err(|e| e.to_string())
    }

    async fn launch_gate(&self) -> Result<(), String> {
        let step = "6/8 gate";
        gate::ensure_installed().await?;
        let changed = gate::render(&self.layout)?;
        let state = if changed { "changed" } else { "unchanged" };
        say(step, &format!("config {state}: {}", gate::config_file(&self.layout).display()));
        let want = gate::config_hash(&self.layout);
        let stamp = process::stamp_file(&self.layout.run, "gate");
        if self.answers(Service::Gate).await {
            if self.pid(Service::Gate).is_none() {
                say(step, &format!("something already answers on {}: reusing it", gate::GATE_URL));
                return Ok(());
            }
            if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == want) {
                say(step, &format!("already running (ours), {}", gate::GATE_URL));
                return Ok(());
            }
            say(step, "config or gate.js changed since it started: restarting");
        }
        self.stop_service(Service::Gate).await;
        self.spawn(Service::Gate, gate::NGINX.into(), gate::args(&self.layout), Vec::new())?;
        std::fs::write(stamp, format!("{want}\n")).map_err(|e| e.to_string())
    }

    fn write_stack_env(&self) -> Result<(), String> {
        let secrets = self.layout.synapse.join("secrets.env");
        let as_token = env_file::read_value(&secrets, "AS_TOKEN")
            .ok_or_else(|| format!("no AS_TOKEN in {}", secrets.display()))?;
        let text = env_file::render(&env_file::StackEnv {
            jwt_secret: &env_or("OPENMEET_JWT_SECRET", super::DEFAULT_JWT_SECRET),
            as_token: &as_token,
            session_lifetime: &env_or("OPENMEET_LOCAL_SESSION_LIFETIME", "30s"),
            rust_log: &env_or("RUST_LOG", "info"),
            synapse_pid_file: &process::pid_file(&self.layout.run, "synapse"),
            log_dir: &self.layout.logs,
        });
        env_file::write_private(&self.layout.env_file, &text)?;
        say("7/8 stack-env", &format!("wrote {}", self.layout.env_file.display()));
        Ok(())
    }

    /// `OPENMEET_LOCAL_BIN`, else this very binary (scripts/stack.sh has just built it).
    fn gateway_binary() -> Result<PathBuf, String> {
        match std::env::var("OPENMEET_LOCAL_BIN") {
            Ok(bin) if !bin.is_empty() => Ok(PathBuf::from(bin)),
            _ => std::env::current_exe().map_err(|e| e.to_string()),
        }
    }

    /// What a running gateway depends on: its binary, stack.env, and the moto instance (moto keeps everything in
    /// memory: a new moto needs the gateway to create its table, key and queues again).
    fn gateway_stamp(&self, binary: &std::path::Path) -> String {
        use std::os::unix::fs::MetadataExt;
        let mut hash = Sha256::new();
        if let Ok(meta) = std::fs::metadata(binary) {
            hash.update(format!("{} {} {}\n", meta.mtime(), meta.size(), meta.ino()));
        }
        hash.update(std::fs::read(&self.layout.env_file).unwrap_or_default());
        let moto = std::fs::read(process::pid_file(&self.layout.run, "moto"));
        hash.update(moto.unwrap_or_else(|_| b"foreign-moto".to_vec()));
        hex::encode(hash.finalize())
    }

    async fn launch_gateway(&self) -> Result<(), Failure> {
        let step = "8/8 gateway";
        let binary = Self::gateway_binary().map_err(fail(step))?;
        let want = self.gateway_stamp(&binary);
        let stamp = process::stamp_file(&self.layout.run, "gateway");
        if self.pid(Service::Gateway).is_some() {
            if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == want) && self.answers(Service::Gateway).await {
                say(step, &format!("already running (ours), {GATEWAY_URL}"));
                return Ok(());
            }
            say(step, "binary, stack.env or moto changed (or it stopped answering): restarting");
            self.stop_service(Service::Gateway).await;
        } else if self.answers(Service::Gateway).await {
            say(step, &format!("WARNING: something not started by this command answers on {GATEWAY_URL}: reusing it"));
            return Ok(());
        }
        let text = std::fs::read_to_string(&self.layout.env_file).map_err(|e| Failure::Error(step, e.to_string()))?;
        self.spawn(Service::Gateway, binary, vec!["serve".to_owned()], env_file::parse(&text)).map_err(fail(step))?;
        std::fs::write(stamp, format!("{want}\n")).map_err(|e| Failure::Error(step, e.to_string()))?;
        self.wait_until_healthy(Service::Gateway, step).await
    }

    /// Stops, in reverse order, exactly the services this run started.
    pub async fn stop_started(&self) {
        for service in Service::ALL.into_iter().rev().filter(|s| self.started().contains(s)) {
            self.stop_service(service).await;
        }
        if let Ok(mut started) = self.started.lock() {
            started.clear();
        }
    }

    /// Stops every service with a live pid file, whoever started it.
    pub async fn stop(&self) -> Result<(), Failure> {
        let _lock = StackLock::acquire(&self.layout.run).await.map_err(fail("stop"))?;
        let mut any = false;
        for service in Service::ALL.into_iter().rev() {
            any |= self.stop_service(service).await;
        }
        if !any {
            say("stop", "nothing started by stack.sh is running");
        }
        for service in Service::ALL {
            if self.answers(service).await {
                say("stop", &format!("WARNING: something not started by stack.sh still answers on {}", service.url()));
            }
        }
        say("stop", "stopped");
        Ok(())
    }

    /// Whether every service answers.
    pub async fn healthy(&self) -> bool {
        for service in Service::ALL {
            if !self.answers(service).await {
                return false;
            }
        }
        true
    }

    /// One line per service; true when all answer.
    /// One line per service (with `json`, one JSON object); returns whether every service answers.
    pub async fn print_status(&self, json: bool) -> bool {
        let mut services = Vec::new();
        for service in Service::ALL {
            let (pid, answering) = (self.pid(service), self.answers(service).await);
            services.push(serde_json::json!({
                "name": service.name(), "pid": pid, "url": service.url(), "answering": answering
            }));
            if json {
                continue;
            }
            let mut state = match pid {
                Some(pid) => format!("running (pid {pid})"),
                None => "not started by stack.sh".to_owned(),
            };
            let answers = if answering { "answering" } else { "NOT answering" };
            state.push_str(&format!(", {answers} on {}", service.url()));
            println!("{:<8} {state}", service.name());
        }
        let healthy = services.iter().all(|s| s["answering"] == true);
        let env = self.layout.env_file.is_file().then(|| self.layout.env_file.display().to_string());
        if json {
            let logs = self.layout.logs.display().to_string();
            println!("{}", serde_json::json!({"healthy": healthy, "services": services, "env": env, "logs": logs}));
            return healthy;
        }
        if let Some(env) = env {
            println!("{:<8} {env}", "env");
        }
        println!("{:<8} {}", "logs", self.layout.logs.display());
        healthy
    }

    fn print_summary(&self) {
        let secret = if std::env::var("OPENMEET_JWT_SECRET").is_ok_and(|s| !s.is_empty()) {
            "from $OPENMEET_JWT_SECRET".to_owned()
        } else {
            format!("the local default '{}'", super::DEFAULT_JWT_SECRET)
        };
        let l = &self.layout;
        println!(
            "[ready] The local stack is up:
  API (gateway)     {GATEWAY_URL}            (GET /v1/health; every route of the route table)
  Homeserver        {SYNAPSE_URL}            server_name localhost, platform user @openmeet:localhost (server admin)
  Public entry      {}            nginx in front of the homeserver: the URL browsers get (MATRIX_PUBLIC_URL)
  AWS (moto)        {MOTO_URL}            DynamoDB openmeet-local, KMS alias/openmeet-local, SQS openmeet-local-retry
  Config            {}   (export it: set -a; . .local/stack.env; set +a)
  Synapse config    {}
  Logs              {}/{{gateway,synapse,synapse-stdout,moto,gate,gate-error,gate-access}}.log
  PIDs              {}/*.pid
  JWT secret        {secret} (OPENMEET_JWT_SECRET in stack.env)
  Mint a token      scripts/stack.sh token <sub> <tenant> [service|user] [display name]
                    e.g. curl -H \"Authorization: Bearer $(scripts/stack.sh token openmeet-api acme)\" {GATEWAY_URL}/v1/users/alice",
            gate::GATE_URL,
            l.env_file.display(),
            l.synapse.join("homeserver.yaml").display(),
            l.logs.display(),
            l.run.display(),
        );
    }
}
