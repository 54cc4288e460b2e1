//! `plan`: what `run` would create, change and remove, read from the homeserver; changes nothing.

use std::path::Path;

use serde::Serialize;
use shared::App;
use shared::aws::keys::CutoverEntity;
use shared::domain::cutover;
use shared::identity::RoomKind;

use crate::exec::{Progress, for_each, with_retries};
use crate::snapshot::{self, Invalid, MemberBuckets, Summary};
use crate::verify::{room_discrepancies, user_discrepancies};

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KindPlan {
    pub create: Vec<String>,
    pub change: Vec<String>,
    pub remove: Vec<String>,
    pub unchanged: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanReport {
    pub snapshot: Summary,
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

pub async fn plan(
    app: &'static App,
    path: &Path,
    summary: Summary,
    concurrency: usize,
    quiet: bool,
) -> Result<PlanReport, Invalid> {
    let progress = Progress::new(summary.users + summary.groups + summary.events + summary.memberships, quiet);
    let mut report = PlanReport {
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
        |u| async move {
            let key = CutoverEntity::User(u.tenant.clone(), u.user.clone()).to_string();
            let read = with_retries(|| cutover::read_user(app, &u.tenant, &u.user)).await;
            classify(key, read.map(|state| state.exists.then(|| user_discrepancies(&u, &state))))
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
            |r| async move {
                let key = CutoverEntity::Room(r.tenant.clone(), r.kind, r.slug.clone()).to_string();
                let alias = app.identities.room_alias(&r.tenant, r.kind, &r.slug);
                let read = with_retries(|| cutover::read_room(app, &alias)).await;
                classify(key, read.map(|state| state.map(|state| room_discrepancies(&r, &state, None))))
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
            |r| async move {
                let key = CutoverEntity::Members(r.tenant.clone(), r.kind, r.slug.clone()).to_string();
                let who = |user: &str| format!("{key}:{user}");
                let units = r.members.len() as u64;
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
                                let mut items: Vec<Item> = diff.added.iter().map(|u| Item::Create(who(u))).collect();
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
            },
            |(units, items)| {
                progress.add(units);
                add(plan, errors, items);
            },
        )
        .await;
    }
    progress.finish();
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
    for error in &report.errors {
        out.push_str(&format!("could not read: {error}\n"));
    }
    out
}
