//! `openmeet-local sweep-sessions [TENANT]`: the scheduled session sweep (EventBridge → retry worker in AWS), run
//! once against the environment the variables describe.

pub async fn sweep_sessions() -> Result<(), String> {
    let app = shared::App::from_env().await.map_err(|e| e.to_string())?;
    let tenant = match std::env::args().nth(2) {
        Some(tenant) => Some(shared::identity::TenantId::parse(&tenant).map_err(|e| e.to_string())?),
        None => None,
    };
    let report = shared::domain::sessions::sweep_idle(&app, tenant.as_ref(), None).await.map_err(|e| e.to_string())?;
    println!("checked {} web device(s), logged out {} idle", report.checked, report.logged_out);
    Ok(())
}
