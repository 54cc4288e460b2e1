//! `openmeet-local ops upgrade-rooms [TENANT]`: the one-shot tenant-walls migration of rooms made before them
//! (docs/adr/0003-tenant-walls.md). Safe to repeat: the second run writes nothing.

use serde::Serialize;
use shared::domain::tenancy::{self, UpgradeReport};
use shared::identity::TenantId;

use super::{Failure, app_error, print_report};

/// The `--json` form of [`UpgradeReport`].
#[derive(Serialize)]
struct Report<'a> {
    rooms_seen: usize,
    rooms_changed: usize,
    writes: usize,
    users_admitted: usize,
    space_members_added: usize,
    foreign_members_removed: &'a [(String, String)],
    failed: &'a [(String, String)],
}

impl<'a> From<&'a UpgradeReport> for Report<'a> {
    fn from(r: &'a UpgradeReport) -> Self {
        Report {
            rooms_seen: r.rooms_seen,
            rooms_changed: r.rooms_changed,
            writes: r.writes,
            users_admitted: r.users_admitted,
            space_members_added: r.space_members_added,
            foreign_members_removed: &r.foreign_members_removed,
            failed: &r.failed,
        }
    }
}

/// Upgrades every managed room (of `tenant`); returns how many could not be upgraded (listed).
pub async fn run(tenant: Option<TenantId>, json: bool) -> Result<usize, Failure> {
    let app = shared::App::from_env().await.map_err(app_error)?;
    let report = tenancy::upgrade_all(&app, tenant.as_ref()).await.map_err(app_error)?;
    let mut lines: Vec<String> = report
        .foreign_members_removed
        .iter()
        .map(|(room_id, user)| format!("removed {user} from {room_id}: a member of another tenant"))
        .collect();
    lines.extend(report.failed.iter().map(|(room_id, reason)| format!("failed: {room_id}: {reason}")));
    let mut summary = format!(
        "managed rooms: {} seen, {} changed ({} writes); users admitted to their tenant's space: {}; group-space joins: {}",
        report.rooms_seen, report.rooms_changed, report.writes, report.users_admitted, report.space_members_added
    );
    if !report.failed.is_empty() {
        summary.push_str(&format!("\n{} room(s) not upgraded; run again once the cause is fixed", report.failed.len()));
    }
    print_report(json, &Report::from(&report), lines, &summary);
    Ok(report.failed.len())
}
