//! `openmeet-local serve` and `bootstrap`: the local gateway's process. It creates the emulated AWS resources
//! (bootstrap.rs), serves every route of the route table on one port by calling the same function code Lambda runs
//! (../gateway.rs, with the demo sign-in and example page of ../demo/), and polls the retry queue for the worker
//! (../worker.rs). It reads the same environment as the functions (`.local/stack.env`); the stack starts it.

mod bootstrap;

use std::sync::Arc;

use crate::{gateway, ops, worker};

/// Creates the emulated AWS resources; returns the configuration with the queue's URL.
pub async fn bootstrap_only() -> Result<(shared::config::Config, aws_config::SdkConfig), String> {
    let mut config = shared::config::Config::from_env().map_err(|e| e.to_string())?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let queue_url = bootstrap::ensure_resources(&config, &sdk).await?;
    config.queue_url = Some(queue_url);
    Ok((config, sdk))
}

pub async fn serve() -> Result<(), String> {
    let (config, sdk) = bootstrap_only().await?;
    let listen = std::env::var("OPENMEET_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let app = Arc::new(shared::App::new(config, &sdk).await.map_err(|e| e.to_string())?);
    let listener = tokio::net::TcpListener::bind(&listen).await.map_err(|e| format!("binding {listen}: {e}"))?;
    tracing::info!(%listen, "local gateway listening");
    let worker = tokio::spawn(worker::poll(app.clone()));
    let self_heal_timer = ops::jobs::spawn_timer(app.clone());
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
