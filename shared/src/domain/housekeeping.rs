//! Housekeeping: removes records whose `expiresAt` has passed (idempotency keys, operations, credentials,
//! rate-limit windows, reminder markers). DynamoDB's TTL deletes them too, but only within days, and moto never
//! does; reads already treat an expired item as absent (`crate::aws::store`). A bounded scan per run, resumed from
//! a cursor by the next run.

use serde::Serialize;

use crate::app::App;
use crate::aws::desired_state::{DesiredStates, scan_expired};
use crate::domain::DomainError;
use crate::domain::drift::SelfHealSettings;

const JOB: &str = "sweep";
/// Separates pk and sk in the stored cursor (neither contains it).
const SEPARATOR: char = '\u{1f}';

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub scanned: usize,
    pub deleted: usize,
    /// The scan reached the end of the table (the next run starts again from the beginning).
    pub complete: bool,
}

/// Deletes expired items: up to `settings.sweep_items` scanned from the stored cursor, or, with `whole`, the whole
/// table from the beginning (the cursor untouched).
pub async fn sweep(app: &App, settings: &SelfHealSettings, now: u64, whole: bool) -> Result<SweepReport, DomainError> {
    let desired_states = DesiredStates(&app.store);
    let mut start = if whole {
        None
    } else {
        desired_states
            .cursor(JOB)
            .await?
            .and_then(|c| c.split_once(SEPARATOR).map(|(p, s)| (p.to_owned(), s.to_owned())))
    };
    let mut report = SweepReport::default();
    loop {
        let page = scan_expired(&app.store, start.take(), 1000, now).await?;
        report.scanned += page.scanned;
        for (pk, sk) in &page.keys {
            app.store.delete(pk, sk).await?;
            report.deleted += 1;
        }
        start = page.next;
        if start.is_none() {
            report.complete = true;
            break;
        }
        if !whole && report.scanned >= settings.sweep_items {
            break;
        }
    }
    if !whole {
        let cursor = start.map(|(pk, sk)| format!("{pk}{SEPARATOR}{sk}"));
        desired_states.set_cursor(JOB, cursor.as_deref()).await?;
    }
    tracing::info!(scanned = report.scanned, deleted = report.deleted, complete = report.complete, "sweep finished");
    Ok(report)
}
