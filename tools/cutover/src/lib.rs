//! The hard cutover (`docs/cutover-formats.md`): `openmeet-cutover plan | run | verify | rollback | status`
//! over the functions' own domain code, plus a synthetic snapshot generator. See `docs/cutover.md`.

pub mod before;
pub mod calls;
pub mod delta;
pub mod exec;
pub mod generate;
pub mod member_buckets;
pub mod plan;
pub mod record;
pub mod rollback;
pub mod run;
pub mod snapshot;
pub mod verify;
pub mod zulip;

/// Builds the functions' clients from the environment (locally `.local/stack.env`), with the reconcile limit
/// lifted: the cutover is itself the background job that a large reconcile would be queued for.
pub async fn app() -> Result<&'static shared::App, String> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    // In AWS the secrets come from OPENMEET_SECRETS_ARN, as for the functions.
    let mut config = shared::config::Config::load(&sdk).await.map_err(|e| e.to_string())?;
    config.reconcile.inline_changes = usize::MAX;
    let app = shared::App::new(config, &sdk).await.map_err(|e| e.to_string())?;
    // The clients live as long as the process; tasks borrow them.
    Ok(Box::leak(Box::new(app)))
}
