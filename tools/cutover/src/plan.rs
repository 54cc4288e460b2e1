//! `plan`: what `run` would create, change and remove, read from the homeserver; changes nothing. With a base run
//! (a delta), an entity whose fingerprint the base recorded as done is unchanged without a read, users the base had
//! and the snapshot lost are to remove, and rooms it lost are listed as left.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;
use shared::App;
use shared::aws::keys::CutoverEntity;
use shared::domain::cutover;
use shared::identity::RoomKind;

use crate::delta::{self, Base};
use crate::exec::{Progress, for_each, with_retries};
use crate::record;
use crate::snapshot::{self, Invalid, MemberBuckets, Summary};
use crate::verify::{room_discrepancies, user_discrepancies};

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KindPlan {
    pub create: Vec<String>,
    pub change: Vec<String>,
    pub remove: Vec<String>,
    pub unchanged: u64,
    /// Rooms the base run had that the snapshot no longer lists: a run leaves them as they are.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanReport {
    pub snapshot: Summary,
    /// The run the delta compares with; none: every entity was read.
    pub base: Option<String>,
    pub users: KindPlan,
    pub rooms: KindPlan,
    pub memberships: KindPlan,
    /// Entities that could not be read (the plan is incomplete for them).
    pub errors: Vec<String>,
}

enum Item {
    Create(String),
    Change(String),
    Remove(Vec<String>),
    Unchanged,
    Error(String),
}

/// An entity that does not exist (`None`) is created; one that differs is changed.
fn classify(key: String, read: Result<Option<Vec<String>>, shared::domain::DomainError>) -> Item {
    match read {
        Ok(None) => Item::Create(key),
        Ok(Some(differences)) if differences.is_empty() => Item::Unchanged,
        Ok(Some(differences)) => Item::Change(differences.join("; ")),
        Err(error) => Item::Error(format!("{key}: {error}")),
    }
}

fn add(plan: &mut KindPlan, errors: &mut Vec<String>, items: Vec<Item>) {
    for item in items {
        match item {
            Item::Create(what) => plan.create.push(what),
            Item::Change(what) => plan.change.push(what),
            Item::Remove(mut what) => plan.remove.append(&mut what),
            Item::Unchanged => plan.unchanged += 1,
            Item::Error(error) => errors.push(error),
        }
    }
}

/// The plan against the newest base.
pub async fn plan(
    app: &'static App,
    path: &Path,
    summary: Summary,
    concurrency: usize,
    quiet: bool,
) -> Result<PlanReport, Invalid> {
    plan_with(app, path, summary, concurrency, quiet, &Base::Newest).await
}

/// Whether the base recorded this entity as done with this fingerprint.
fn same(base: &HashMap<String, String>, key: &str, fingerprint: &str) -> bool {
    base.get(key).is_some_and(|print| print == fingerprint)
}

pub async fn plan_with(
    app: &'static App,
    path: &Path,
    summary: Summary,
    concurrency: usize,
    quiet: bool,
    base: &Base,
) -> Result<PlanReport, Invalid> {
    let backend = |e: record::Error| Invalid(format!("the run record (DynamoDB) is unavailable: {e}"));
    let base_id = delta::choose(&app.store, &summary, base).await?;
    let fingerprints = match &base_id {
        Some(run) => record::fingerprints(&app.store, run).await.map_err(backend)?,
        None => HashMap::new(),
    };
    let fingerprints = std::sync::Arc::new(fingerprints);
    let progress = Progress::new(summary.users + summary.groups + summary.events + summary.memberships, quiet);
    let mut report = PlanReport {
        base: base_id,
        snapshot: summary.clone(),
        users: KindPlan::default(),
        rooms: KindPlan::default(),
        memberships: KindPlan::default(),
        errors: Vec::new(),
    };
    progress.phase("users");
    let (plan, errors) = (&mut report.users, &mut report.errors);
    for_each(
        snapshot::users(path)?,
        concurrency,
        |u| {
            let prints = fingerprints.clone();
            async move {
                let key = CutoverEntity::User(u.tenant.clone(), u.user.clone()).to_string();
                if same(&prints, &key, &u.fingerprint) {
                    return Item::Unchanged;
                }
                let read = with_retries(|| cutover::read_user(app, &u.tenant, &u.user)).await;
                classify(key, read.map(|state| state.exists.then(|| user_discrepancies(&u, &state))))
            }
        },
        |item| {
            progress.add(1);
            add(plan, errors, vec![item]);
        },
    )
    .await;

    progress.phase("rooms");
    for kind in [RoomKind::Group, RoomKind::Event] {
        let (plan, errors) = (&mut report.rooms, &mut report.errors);
        for_each(
            snapshot::rooms(path, kind)?,
            concurrency,
            |r| {
                let prints = fingerprints.clone();
                async move {
                    let key = CutoverEntity::Room(r.tenant.clone(), r.kind, r.slug.clone()).to_string();
                    if same(&prints, &key, &r.fingerprint) {
                        return Item::Unchanged;
                    }
                    let alias = app.identities.room_alias(&r.tenant, r.kind, &r.slug);
                    let read = with_retries(|| cutover::read_room(app, &alias)).await;
                    classify(key, read.map(|state| state.map(|state| room_discrepancies(&r, &state, None))))
                }
            },
            |item| {
                progress.add(1);
                add(plan, errors, vec![item]);
            },
        )
        .await;
    }

    progress.phase("memberships");
    let buckets = MemberBuckets::spill(path, summary.memberships, 20_000)?;
    for index in 0..buckets.count() {
        let (plan, errors) = (&mut report.memberships, &mut report.errors);
        for_each(
            buckets.bucket(index)?,
            concurrency,
            |r| {
                let prints = fingerprints.clone();
                async move {
                    let key = CutoverEntity::Members(r.tenant.clone(), r.kind, r.slug.clone()).to_string();
                    let who = |user: &str| format!("{key}:{user}");
                    let units = r.members.len() as u64;
                    if same(&prints, &key, &r.fingerprint()) {
                        return (units, (0..units).map(|_| Item::Unchanged).collect());
                    }
                    let alias = app.identities.room_alias(&r.tenant, r.kind, &r.slug);
                    let items = match with_retries(|| cutover::read_room(app, &alias)).await {
                        Ok(None) => r.members.iter().map(|(user, _)| Item::Create(who(user.as_str()))).collect(),
                        Ok(Some(_)) => {
                            match with_retries(|| {
                                cutover::reconcile_members(app, &r.tenant, r.kind, &r.slug, &r.members, true)
                            })
                            .await
                            {
                                Ok(diff) => {
                                    let mut items: Vec<Item> =
                                        diff.added.iter().map(|u| Item::Create(who(u))).collect();
                                    items.extend(diff.role_changed.iter().map(|u| Item::Change(who(u))));
                                    items.push(Item::Remove(diff.removed.iter().map(|u| who(u)).collect()));
                                    items.extend((0..diff.unchanged).map(|_| Item::Unchanged));
                                    items
                                }
                                Err(error) => vec![Item::Error(format!("{key}: {error}"))],
                            }
                        }
                        Err(error) => vec![Item::Error(format!("{key}: {error}"))],
                    };
                    (units, items)
                }
            },
            |(units, items)| {
                progress.add(units);
                add(plan, errors, items);
            },
        )
        .await;
    }
    progress.finish();
    let gone = delta::gone_users(&fingerprints, &summary, path)?;
    report.users.remove =
        gone.iter().map(|(tenant, user)| CutoverEntity::User(tenant.clone(), user.clone()).to_string()).collect();
    report.rooms.left = delta::gone_rooms(&fingerprints, &summary, path)?;
    Ok(report)
}

/// The plan as text: counts per kind, then the first few of each list.
pub fn render(report: &PlanReport) -> String {
    let mut out = String::new();
    for (name, plan) in [("users", &report.users), ("rooms", &report.rooms), ("memberships", &report.memberships)] {
        out.push_str(&format!(
            "{name:12} create {:>7}  change {:>7}  remove {:>7}  unchanged {:>7}\n",
            plan.create.len(),
            plan.change.len(),
            plan.remove.len(),
            plan.unchanged
        ));
        for (verb, list) in [("create", &plan.create), ("change", &plan.change), ("remove", &plan.remove)] {
            for item in list.iter().take(5) {
                out.push_str(&format!("  {verb} {item}\n"));
            }
            if list.len() > 5 {
                out.push_str(&format!("  … and {} more to {verb}\n", list.len() - 5));
            }
        }
    }
    for room in &report.rooms.left {
        out.push_str(&format!("  left {room}: no longer in the snapshot, a run leaves it as it is\n"));
    }
    if let Some(base) = &report.base {
        out.push_str(&format!("delta against run {base} (unchanged: skipped without a homeserver read)\n"));
    }
    for error in &report.errors {
        out.push_str(&format!("could not read: {error}\n"));
    }
    out
}
