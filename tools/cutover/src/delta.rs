//! The window's delta: which earlier run a run (or a plan) compares its snapshot with, and what the base had that
//! the snapshot no longer lists. A run of a new snapshot skips every entity whose fingerprint the base recorded as
//! done; a user gone from the snapshot is deactivated (as OpenMeet's `DELETE /v1/users/{id}` does); a room gone
//! from it is reported and left as it is (deleting a community's room is an operator's decision).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use shared::App;
use shared::aws::cutover_runs::RunState;
use shared::aws::keys::{CutoverEntity, CutoverEntry};
use shared::aws::store::Store;
use shared::domain::{cutover, users};
use shared::identity::{TenantId, UserSlug};

use crate::before::RoomBefore;
use crate::record;
use crate::run::{Outcome, Run, collect};
use crate::snapshot::{self, Invalid, Summary};

/// Which run a delta compares with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// The newest complete run covering the snapshot's tenants, unless it ran this very snapshot (a re-run of the
    /// snapshot last applied reads everything again: it is how drift made since is repaired).
    Newest,
    /// This run (`--base RUN`).
    Run(String),
    /// None: every entity is read (`--full`).
    Full,
}

/// The base run's id, if any.
pub async fn choose(store: &Store, summary: &Summary, base: &Base) -> Result<Option<String>, Invalid> {
    let backend = |e: record::Error| Invalid(format!("the run record (DynamoDB) is unavailable: {e}"));
    match base {
        Base::Full => Ok(None),
        Base::Run(run) => match record::meta(store, run).await.map_err(backend)? {
            Some(meta) if matches!(meta.state, Some(RunState::Complete | RunState::Staged)) => Ok(Some(run.clone())),
            Some(meta) => Err(Invalid(format!(
                "--base {run}: the run is {}, not complete",
                meta.state.map_or("unknown", RunState::as_str)
            ))),
            None => Err(Invalid(format!("--base {run}: no such run"))),
        },
        Base::Newest => {
            let Some(run) = record::newest_base(store, &summary.tenants).await.map_err(backend)? else {
                return Ok(None);
            };
            let meta = record::meta(store, &run).await.map_err(backend)?;
            Ok(meta.filter(|meta| meta.digest.as_deref() != Some(summary.digest.as_str())).map(|_| run))
        }
    }
}

/// Entities of the base whose tenant the snapshot covers.
fn in_tenants<'a>(base: &'a HashMap<String, String>, summary: &'a Summary) -> impl Iterator<Item = CutoverEntity> + 'a {
    let tenant_of = |entity: &CutoverEntity| match entity {
        CutoverEntity::User(tenant, _) | CutoverEntity::Room(tenant, ..) => Some(tenant.to_string()),
        _ => None,
    };
    base.keys()
        .filter_map(|key| key.parse::<CutoverEntity>().ok())
        .filter(move |entity| tenant_of(entity).is_some_and(|tenant| summary.tenants.contains(&tenant)))
}

/// Users the base had that the snapshot no longer lists, sorted.
pub fn gone_users(
    base: &HashMap<String, String>,
    summary: &Summary,
    path: &Path,
) -> Result<Vec<(TenantId, UserSlug)>, Invalid> {
    if base.is_empty() {
        return Ok(Vec::new());
    }
    let listed: HashSet<String> =
        snapshot::users(path)?.map(|u| CutoverEntity::User(u.tenant, u.user).to_string()).collect();
    let mut gone: Vec<(TenantId, UserSlug)> = in_tenants(base, summary)
        .filter(|entity| !listed.contains(&entity.to_string()))
        .filter_map(|entity| match entity {
            CutoverEntity::User(tenant, user) => Some((tenant, user)),
            _ => None,
        })
        .collect();
    gone.sort_by(|a, b| (a.0.as_str(), a.1.as_str()).cmp(&(b.0.as_str(), b.1.as_str())));
    Ok(gone)
}

/// Rooms the base had that the snapshot no longer lists (entity keys, sorted).
pub fn gone_rooms(base: &HashMap<String, String>, summary: &Summary, path: &Path) -> Result<Vec<String>, Invalid> {
    if base.is_empty() {
        return Ok(Vec::new());
    }
    let listed: HashSet<String> = snapshot::stream(path)?
        .filter_map(|valid| match valid {
            snapshot::Valid::Room(r) => Some(CutoverEntity::Room(r.tenant, r.kind, r.slug).to_string()),
            _ => None,
        })
        .collect();
    let mut gone: Vec<String> = in_tenants(base, summary)
        .filter(|entity| matches!(entity, CutoverEntity::Room(..)))
        .map(|entity| entity.to_string())
        .filter(|key| !listed.contains(key))
        .collect();
    gone.sort();
    Ok(gone)
}

/// Deactivates the users gone from the snapshot, each recorded first (so a rollback reactivates them).
pub(crate) async fn remove_users(run: &Arc<Run>, gone: Vec<(TenantId, UserSlug)>, concurrency: usize) -> Vec<Outcome> {
    collect(gone, concurrency, |(tenant, user)| {
        let run = run.clone();
        async move {
            let key = CutoverEntity::User(tenant.clone(), user.clone());
            let app = run.app;
            let (tenant, user) = (&tenant, &user);
            // No fingerprint: the next delta must not count a removed user as present.
            run.step(key, None, 1, cutover::read_user(app, tenant, user), |known| async move {
                let current = match known {
                    Some(current) => current,
                    None => cutover::read_user(app, tenant, user).await?,
                };
                if current.exists && !current.deactivated {
                    users::delete(app, tenant, user).await?;
                }
                Ok(false)
            })
            .await
        }
    })
    .await
}

/// The rooms this run created in an earlier part (their `Before` is an absent room), as member-list entities.
pub async fn created_rooms(app: &App, run: &str) -> Result<HashSet<CutoverEntity>, record::Error> {
    let before = record::documents(&app.store, run, CutoverEntry::Before).await?;
    Ok(before
        .into_iter()
        .filter_map(|(key, value)| {
            let entity = key.parse::<CutoverEntity>().ok()?;
            if !matches!(entity, CutoverEntity::Room(..)) {
                return None;
            }
            let room: RoomBefore = serde_json::from_str(value.as_deref()?).ok()?;
            room.state.is_none().then(|| entity.members_of()).flatten()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_base_had_and_the_snapshot_lost() {
        let lines = [
            r#"{"type":"user","tenant":"acme","userId":"alice","displayName":"Alice","avatarUrl":null}"#,
            r#"{"type":"group","tenant":"acme","slug":"chess","name":"Chess","topic":null,"visibility":"public"}"#,
        ];
        let path = std::env::temp_dir().join(format!("delta-test-{}.jsonl", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, lines.join("\n")).expect("write");
        let summary = snapshot::validate(&path).expect("valid");
        let base: HashMap<String, String> = [
            "user:acme:alice",
            "user:acme:bob",
            "user:globex:carol",
            "room:acme:groups:chess",
            "room:acme:events:gone",
            "members:acme:events:gone",
        ]
        .into_iter()
        .map(|key| (key.to_owned(), "print".to_owned()))
        .collect();
        let users = gone_users(&base, &summary, &path).expect("users");
        let names: Vec<String> = users.iter().map(|(t, u)| format!("{t}/{u}")).collect();
        assert_eq!(names, ["acme/bob"], "another tenant's user is not this snapshot's to remove");
        assert_eq!(gone_rooms(&base, &summary, &path).expect("rooms"), ["room:acme:events:gone"]);
        assert!(gone_users(&HashMap::new(), &summary, &path).expect("no base").is_empty());
        let _ = std::fs::remove_file(path);
    }
}
