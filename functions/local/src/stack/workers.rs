//! `openmeet-local stack workers start|stop|restart|status` (scripts/stack.sh workers …): Synapse on workers, beside
//! the default stack, on its own ports and state in `.local/workers/`: PostgreSQL and Redis from Debian, Synapse main,
//! 2 event persisters (the events stream sharded by room) + 2 generic workers from the venv, a router (nginx + njs) on
//! 127.0.0.1:8018 that sends room-scoped client calls to the room's persister, room creation and sync to the generic
//! workers, and the rest to main,
//! and a gateway on 127.0.0.1:3010 whose homeserver is the router. It shares the default stack's moto, secrets and
//! appservice, so the same tests run against it with `OPENMEET_STACK_ENV=.local/workers/stack.env`
//! (scripts/test-workers.sh). ADR 0012.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::process::{self, Launch, StackLock};
use super::workers_setup::{self as setup, Dirs, GATEWAY_URL, REDIS, REDIS_PORT, ROUTER_URL};
use super::{Layout, say, show_log_tail};

#[derive(clap::Subcommand, Debug)]
pub enum WorkersCommand {
    /// Start what is not running yet (the default stack's moto must run); returns once every process is healthy
    Start,
    /// Stop every process of the profile
    Stop,
    /// Stop, then start
    Restart,
    /// One line per process; exit status 1 unless all answer
    Status {
        /// One JSON object on stdout
        #[arg(long)]
        json: bool,
    },
}

/// The profile's processes, in start order (stop goes in reverse).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Proc {
    Postgres,
    Redis,
    Main,
    Persister1,
    Persister2,
    Worker1,
    Worker2,
    Router,
    Gateway,
}

impl Proc {
    pub const ALL: [Proc; 9] = [
        Proc::Postgres,
        Proc::Redis,
        Proc::Main,
        Proc::Persister1,
        Proc::Persister2,
        Proc::Worker1,
        Proc::Worker2,
        Proc::Router,
        Proc::Gateway,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Proc::Postgres => "postgres",
            Proc::Redis => "redis",
            Proc::Main => "main",
            Proc::Persister1 => "persister1",
            Proc::Persister2 => "persister2",
            Proc::Worker1 => "worker1",
            Proc::Worker2 => "worker2",
            Proc::Router => "router",
            Proc::Gateway => "gateway",
        }
    }

    /// What the process's command line contains (nginx's master and redis rewrite their titles, keeping this).
    fn pattern(self, dirs: &Dirs) -> String {
        let w = dirs.root.display();
        match self {
            Proc::Postgres => format!("-D {w}/pg/data"),
            // Redis retitles itself "redis-server 127.0.0.1:PORT"; the pid file is ours alone.
            Proc::Redis => "redis-server".to_owned(),
            Proc::Main => format!("synapse.app.homeserver -c {w}/homeserver.yaml"),
            Proc::Router => format!("-c {w}/router.conf"),
            Proc::Gateway => "openmeet-local serve".to_owned(),
            worker => format!("-c {w}/{}.yaml", worker.name()),
        }
    }

    /// Where it answers: an HTTP URL (Synapse's /health on its listener), or None (checked by a command).
    fn health(self) -> Option<String> {
        let port = match self {
            Proc::Main => 8090,
            Proc::Persister1 => 9091,
            Proc::Persister2 => 9092,
            Proc::Worker1 => 8091,
            Proc::Worker2 => 8092,
            Proc::Router => return Some(format!("{ROUTER_URL}/_matrix/client/versions")),
            Proc::Gateway => return Some(format!("{GATEWAY_URL}/v1/health")),
            Proc::Postgres | Proc::Redis => return None,
        };
        Some(format!("http://127.0.0.1:{port}/health"))
    }

    pub fn log(self, dirs: &Dirs) -> PathBuf {
        match self {
            Proc::Gateway => dirs.logs.join("gateway.log"),
            _ => dirs.logs.join(format!("{}-stdout.log", self.name())),
        }
    }
}

/// A process's program, arguments and environment.
type Command = (PathBuf, Vec<String>, Vec<(String, String)>);

pub struct Workers {
    pub layout: Layout,
    pub dirs: Dirs,
    http: reqwest::Client,
}

impl Workers {
    pub fn new(layout: Layout) -> Workers {
        Workers { dirs: Dirs::new(&layout), layout, http: super::services::loopback_client() }
    }

    pub fn pid(&self, proc: Proc) -> Option<i32> {
        process::running_pid(&self.dirs.run, proc.name(), &proc.pattern(&self.dirs))
    }

    async fn answers(&self, proc: Proc) -> bool {
        match proc.health() {
            Some(url) => self.http.get(url).send().await.is_ok_and(|r| r.status().is_success()),
            None if proc == Proc::Postgres => setup::database_exists(&self.dirs).await.is_ok(),
            None => tokio::net::TcpStream::connect(format!("127.0.0.1:{REDIS_PORT}")).await.is_ok(),
        }
    }

    fn command(&self, proc: Proc) -> Result<Command, String> {
        let w = self.dirs.root.display().to_string();
        let python = self.layout.venv.join("bin/python");
        // The tenant-walls module is loaded by every Synapse process (it reads the shared homeserver.yaml).
        let module = vec![("PYTHONPATH".to_owned(), self.layout.root.join("synapse-module").display().to_string())];
        let config = format!("{w}/homeserver.yaml");
        Ok(match proc {
            Proc::Postgres => {
                let (program, args) = setup::postgres_command(&self.dirs)?;
                (program, args, Vec::new())
            }
            Proc::Redis => {
                let args =
                    ["--bind", "127.0.0.1", "--port", REDIS_PORT, "--save", "", "--appendonly", "no", "--dir", &w];
                (PathBuf::from(REDIS), args.map(str::to_owned).to_vec(), Vec::new())
            }
            Proc::Main => (python, ["-m", "synapse.app.homeserver", "-c", &config].map(str::to_owned).to_vec(), module),
            Proc::Router => {
                let args = ["-c", &format!("{w}/router.conf"), "-p", &format!("{w}/"), "-g", "daemon off;"];
                (PathBuf::from(super::gate::NGINX), args.map(str::to_owned).to_vec(), Vec::new())
            }
            Proc::Gateway => {
                let text = std::fs::read_to_string(&self.dirs.env_file).map_err(|e| e.to_string())?;
                let binary = match std::env::var("OPENMEET_LOCAL_BIN") {
                    Ok(bin) if !bin.is_empty() => PathBuf::from(bin),
                    _ => std::env::current_exe().map_err(|e| e.to_string())?,
                };
                (binary, vec!["serve".to_owned()], super::env_file::parse(&text))
            }
            worker => {
                let own = format!("{w}/{}.yaml", worker.name());
                let args = ["-m", "synapse.app.generic_worker", "-c", &config, "-c", &own];
                (python, args.map(str::to_owned).to_vec(), module)
            }
        })
    }

    async fn launch(&self, proc: Proc) -> Result<(), String> {
        if self.pid(proc).is_some() && self.answers(proc).await {
            say(proc.name(), "already running");
            return Ok(());
        }
        process::stop(&self.dirs.run, proc.name(), &proc.pattern(&self.dirs), Duration::from_secs(20)).await;
        let (program, args, envs) = self.command(proc)?;
        let log = proc.log(&self.dirs);
        let launch = Launch { name: proc.name(), program: &program, args, envs, log: &log };
        let pid = process::spawn(&self.dirs.run, &self.layout.root, launch)?;
        say(proc.name(), &format!("started (pid {pid}), log {}", log.display()));
        self.wait(proc).await
    }

    async fn wait(&self, proc: Proc) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(240);
        while !self.answers(proc).await {
            // Alive, whatever its command line says yet (a child not yet exec'd, a process that retitled itself).
            let pid_file = process::pid_file(&self.dirs.run, proc.name());
            let pid = std::fs::read_to_string(pid_file).ok().and_then(|t| process::parse_pid(&t));
            let gone = !pid.is_some_and(process::alive);
            if gone || Instant::now() >= deadline {
                let log = proc.log(&self.dirs);
                show_log_tail(&log, 30);
                let why = if gone { "exited during start-up" } else { "did not answer in time" };
                return Err(format!("{} {why} (see {})", proc.name(), log.display()));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        say(proc.name(), "healthy");
        Ok(())
    }

    pub async fn start(&self) -> Result<(), String> {
        let t0 = Instant::now();
        std::fs::create_dir_all(&self.dirs.run).map_err(|e| e.to_string())?;
        let _lock = StackLock::acquire(&self.dirs.run).await?;
        if self.http.get(format!("{}/moto-api/", super::MOTO_URL)).send().await.is_err() {
            return Err(format!("moto does not answer on {}: start the default stack first", super::MOTO_URL));
        }
        setup::ensure_installed(&self.layout).await?;
        // The router is the gate's nginx with njs (it computes each room's persister).
        super::gate::ensure_installed().await?;
        setup::render(&self.layout, &self.dirs).await?;
        setup::ensure_cluster(&self.layout, &self.dirs).await?;
        setup::write_stack_env(&self.layout, &self.dirs)?;
        for proc in Proc::ALL {
            self.launch(proc).await?;
            if proc == Proc::Postgres {
                setup::ensure_database(&self.dirs).await?;
            }
        }
        setup::ensure_platform_admin(&self.layout, &self.dirs).await?;
        say(
            "workers",
            &format!(
                "ready after {}s: homeserver {ROUTER_URL} (router), gateway {GATEWAY_URL}; tests: \
                 OPENMEET_STACK_ENV={} cargo test -p integration-tests --test rooms",
                t0.elapsed().as_secs(),
                self.dirs.env_file.display()
            ),
        );
        Ok(())
    }

    pub async fn stop(&self) -> Result<(), String> {
        std::fs::create_dir_all(&self.dirs.run).map_err(|e| e.to_string())?;
        let _lock = StackLock::acquire(&self.dirs.run).await?;
        for proc in Proc::ALL.into_iter().rev() {
            process::stop(&self.dirs.run, proc.name(), &proc.pattern(&self.dirs), Duration::from_secs(20)).await;
        }
        say("workers", "stopped");
        Ok(())
    }

    pub async fn status(&self, json: bool) -> bool {
        let mut all = Vec::new();
        for proc in Proc::ALL {
            let (pid, answering) = (self.pid(proc), self.answers(proc).await);
            if !json {
                let pid_text = pid.map_or_else(|| "not running".to_owned(), |p| format!("running (pid {p})"));
                let state = if answering { "answering" } else { "NOT answering" };
                println!("{:<10} {pid_text}, {state}", proc.name());
            }
            all.push(serde_json::json!({"name": proc.name(), "pid": pid, "answering": answering}));
        }
        let healthy = all.iter().all(|p| p["answering"] == true);
        if json {
            let env = self.dirs.env_file.display().to_string();
            println!(
                "{}",
                serde_json::json!({"healthy": healthy, "processes": all, "env": env, "homeserver": ROUTER_URL})
            );
        } else {
            println!("{:<10} {}", "env", self.dirs.env_file.display());
        }
        healthy
    }
}

pub async fn main(layout: Layout, command: WorkersCommand) -> i32 {
    let workers = Workers::new(layout);
    let result = match command {
        WorkersCommand::Start => workers.start().await,
        WorkersCommand::Stop => workers.stop().await,
        WorkersCommand::Restart => match workers.stop().await {
            Ok(()) => workers.start().await,
            Err(error) => Err(error),
        },
        WorkersCommand::Status { json } => return i32::from(!workers.status(json).await),
    };
    match result {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("[workers] ERROR: {error}");
            1
        }
    }
}
