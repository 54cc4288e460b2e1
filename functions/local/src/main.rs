//! The local stack's own process: creates the emulated AWS resources, serves every route of the route table on
//! one local gateway by calling the same function code Lambda runs, and polls the retry queue for the worker.
//!
//! `openmeet-local serve` reads the same environment as the functions (see `.local/stack.env`);
//! `openmeet-local sweep-sessions [TENANT]` logs out idle browser sessions (the scheduled sweep, once);
//! `openmeet-local upgrade-rooms [TENANT]` carries rooms made before the tenant walls over (see docs/adr/0003);
//! `openmeet-local stack start|stop|restart|status|dev|token|env` supervises the local stack (scripts/stack.sh);
//! `openmeet-local repair-drift|retention|reminders|sweep-expired ...` run the self-healing jobs once (self_heal.rs);
//! `openmeet-local redrive [--stack NAME]` moves the retry DLQ back to the retry queue (deployed.rs, redrive.rs);
//! `openmeet-local metrics [LOG_FILE]` summarises the metric lines of a log (default `.local/logs/gateway.log`).

mod bootstrap;
mod demo;
mod deployed;
mod gateway;
mod help;
mod metrics_summary;
mod redrive;
mod self_heal;
mod stack;
mod sweep;
mod web;
mod worker;

use std::sync::Arc;

const USAGE: &str = "openmeet-local: the local stack's supervisor and gateway, and one-shot operator commands

Usage: openmeet-local COMMAND [ARGS]   (every COMMAND but serve and bootstrap takes --help)
  stack start|stop|restart|status|dev|token|env|deny|fuzz|lambda-build   the local stack (scripts/stack.sh)
  serve                                  the local gateway + retry worker poller (the stack starts it)
  bootstrap                              creates the emulated AWS resources and exits
  redrive [--stack NAME]                 moves the retry DLQ back to the retry queue (each replayed once)
  upgrade-rooms [--stack NAME] [TENANT]  carries rooms made before the tenant walls over (ADR 0003)
  repair-drift | retention | reminders | sweep-expired [...]   a self-healing job, once
  sweep-sessions [TENANT]                logs out idle browser sessions, once
  metrics [LOG_FILE]                     summarises metric lines (default .local/logs/gateway.log)

Exit codes: 0 done; 1 failed (or a job reported failures); 2 bad arguments, nothing done.

Environment: the functions' own (README \"Configuration\"): MATRIX_HOMESERVER_URL, MATRIX_SERVER_NAME,
  MATRIX_AS_TOKEN (or OPENMEET_SECRETS_ARN), OPENMEET_TABLE, OPENMEET_KMS_KEY_ID, OPENMEET_QUEUE_URL or
  OPENMEET_QUEUE_NAME, AWS credentials and region; locally: set -a; . .local/stack.env; set +a.
  --stack NAME reads a deployed stack's retry-worker environment with the AWS CLI instead.

Example:
  openmeet-local redrive --stack openmeet-matrix
  openmeet-local upgrade-rooms --stack openmeet-matrix

Runbooks: docs/deploy.md (operators), docs/cutover.md (the cutover).";

#[tokio::main]
async fn main() {
    let command = std::env::args().nth(1).unwrap_or_default();
    // The supervisor prints for people; its services log JSON themselves.
    if command == "stack" {
        let args: Vec<String> = std::env::args().skip(2).collect();
        std::process::exit(stack::main(&args).await);
    }
    let rest: Vec<String> = std::env::args().skip(2).collect();
    if let Some(help) = help::of(&command).filter(|_| help::asked(&rest)) {
        println!("{help}");
        return;
    }
    shared::app::init_logging();
    if self_heal::COMMANDS.contains(&command.as_str()) {
        let args: Vec<String> = std::env::args().skip(2).collect();
        std::process::exit(self_heal::main(&command, &args).await);
    }
    let result = match command.as_str() {
        "serve" => serve().await,
        "bootstrap" => bootstrap_only().await.map(|_| ()),
        "redrive" => match deployed::parse(&std::env::args().skip(2).collect::<Vec<_>>()) {
            Ok(deployed::Target::Environment) => redrive().await,
            Ok(deployed::Target::Stack(stack)) => deployed::rerun(&stack, "redrive", &[]).await,
            Ok(deployed::Target::Help) => {
                println!("{}", deployed::REDRIVE_USAGE);
                Ok(())
            }
            Err(error) => {
                eprintln!("openmeet-local: {error}\n{}", deployed::REDRIVE_USAGE);
                std::process::exit(2);
            }
        },
        "metrics" => metrics(),
        "upgrade-rooms" => match deployed::parse_with_rest(&std::env::args().skip(2).collect::<Vec<_>>(), 1) {
            Ok((deployed::Target::Environment, tenant)) => upgrade_rooms(tenant.first().cloned()).await,
            Ok((deployed::Target::Stack(stack), tenant)) => deployed::rerun(&stack, "upgrade-rooms", &tenant).await,
            Ok((deployed::Target::Help, _)) => {
                println!("{}", deployed::UPGRADE_ROOMS_USAGE);
                Ok(())
            }
            Err(error) => {
                eprintln!("openmeet-local: {error}\n{}", deployed::UPGRADE_ROOMS_USAGE);
                std::process::exit(2);
            }
        },
        "sweep-sessions" => sweep::sweep_sessions().await,
        "--help" | "-h" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(error) = result {
        eprintln!("openmeet-local: {error}");
        std::process::exit(1);
    }
}

async fn bootstrap_only() -> Result<(shared::config::Config, aws_config::SdkConfig), String> {
    let mut config = shared::config::Config::from_env().map_err(|e| e.to_string())?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let queue_url = bootstrap::ensure_resources(&config, &sdk).await?;
    config.queue_url = Some(queue_url);
    Ok((config, sdk))
}

/// Works against any environment the variables describe (the local stack, or AWS with `OPENMEET_QUEUE_URL`).
async fn redrive() -> Result<(), String> {
    let app = shared::App::from_env().await.map_err(|e| e.to_string())?;
    let moved = redrive::redrive(&app).await?;
    println!("redrove {moved} operation(s) from the DLQ to the retry queue");
    Ok(())
}

/// The one-shot tenant-walls migration of rooms made before them (docs/adr/0003-tenant-walls.md). Safe to repeat.
async fn upgrade_rooms(tenant: Option<String>) -> Result<(), String> {
    let app = shared::App::from_env().await.map_err(|e| e.to_string())?;
    let tenant = tenant
        .map(|t| shared::identity::TenantId::parse(&t).map_err(|_| format!("{t} is not a tenant id")))
        .transpose()?;
    let report = shared::domain::tenancy::upgrade_all(&app, tenant.as_ref()).await.map_err(|e| e.to_string())?;
    println!(
        "managed rooms: {} seen, {} changed ({} writes); users admitted to their tenant's space: {}; group-space joins: {}",
        report.rooms_seen, report.rooms_changed, report.writes, report.users_admitted, report.space_members_added
    );
    for (room_id, user) in &report.foreign_members_removed {
        println!("removed {user} from {room_id}: a member of another tenant");
    }
    for (room_id, reason) in &report.failed {
        println!("failed: {room_id}: {reason}");
    }
    match report.failed.len() {
        0 => Ok(()),
        n => Err(format!("{n} room(s) not upgraded; run again once the cause is fixed")),
    }
}

/// Summarises the metric lines of a log (the local gateway's by default).
fn metrics() -> Result<(), String> {
    let path = std::env::args().nth(2).unwrap_or_else(|| ".local/logs/gateway.log".to_owned());
    print!("{}", metrics_summary::summarise(&path)?);
    Ok(())
}

async fn serve() -> Result<(), String> {
    let (config, sdk) = bootstrap_only().await?;
    let listen = std::env::var("OPENMEET_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let app = Arc::new(shared::App::new(config, &sdk).await.map_err(|e| e.to_string())?);
    let listener = tokio::net::TcpListener::bind(&listen).await.map_err(|e| format!("binding {listen}: {e}"))?;
    tracing::info!(%listen, "local gateway listening");
    let worker = tokio::spawn(worker::poll(app.clone()));
    let self_heal_timer = self_heal::spawn_timer(app.clone());
    // The peer's address reaches the handlers: the demo sign-in answers loopback peers only.
    let router = gateway::router(app).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served =
        axum::serve(listener, router).with_graceful_shutdown(shutdown_signal()).await.map_err(|e| e.to_string());
    worker.abort();
    if let Some(timer) = self_heal_timer {
        timer.abort();
    }
    served
}

/// Ctrl-C in a terminal, SIGTERM from the stack scripts.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
