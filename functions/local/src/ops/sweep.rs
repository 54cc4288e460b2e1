//! `openmeet-local ops sweep-sessions [TENANT]`: the scheduled session sweep (EventBridge → retry worker in AWS),
//! run once against the environment the variables describe.

use shared::identity::TenantId;

use super::{Failure, app_error, print_report};

pub async fn sweep_sessions(tenant: Option<TenantId>, json: bool) -> Result<(), Failure> {
    let app = shared::App::from_env().await.map_err(app_error)?;
    let report = shared::domain::sessions::sweep_idle(&app, tenant.as_ref(), None).await.map_err(app_error)?;
    let summary = format!("checked {} web device(s), logged out {} idle", report.checked, report.logged_out);
    print_report(json, &report, Vec::new(), &summary);
    Ok(())
}
