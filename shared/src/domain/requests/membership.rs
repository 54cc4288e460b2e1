//! The membership routes' operations as the API asks for them: resolve the room, change it or queue the change when
//! the homeserver is out, and record the result as the room's desired state (drift repair restores it). Each change
//! is stamped with a version so a replay never overrides a newer intent.

use crate::app::App;
use crate::domain::drift::intent;
use crate::domain::membership::{self, MemberView, ReconcileReport, Reconciled, Role};
use crate::domain::operations::{self, DeferredReconcile, MemberChange, Operation};
use crate::domain::{DomainError, OperationId, Outcome, rooms};
use crate::identity::Caller;
use crate::identity::UserSlug;

/// The `{kind}/{slug}` of a room as the caller named it (resolved inside, so a queued change can resolve it again).
#[derive(Debug, Clone, Copy)]
pub struct RoomPath<'a> {
    pub kind: &'a str,
    pub slug: &'a str,
}

/// Makes `user` a member with `role`, now or (homeserver out) later.
pub async fn put_member(
    app: &App,
    caller: &Caller,
    path: RoomPath<'_>,
    user: &UserSlug,
    role: Role,
    force: bool,
) -> Result<Outcome<MemberView>, DomainError> {
    let version = operations::now_version();
    let done = async {
        let room = rooms::resolve_path(app, &caller.tenant, path.kind, path.slug).await?;
        membership::put(app, &caller.tenant, &room, user, role, force).await
    }
    .await;
    change_or_queue(app, caller, done, path, user, MemberChange::Put { role }, version, force).await
}

/// Removes (or bans) `user`, now or (homeserver out) later.
pub async fn remove_member(
    app: &App,
    caller: &Caller,
    path: RoomPath<'_>,
    user: &UserSlug,
    ban: bool,
    force: bool,
) -> Result<Outcome<()>, DomainError> {
    let version = operations::now_version();
    let done = async {
        let room = rooms::resolve_path(app, &caller.tenant, path.kind, path.slug).await?;
        membership::remove(app, &caller.tenant, &room, user, ban, force).await
    }
    .await;
    change_or_queue(app, caller, done, path, user, MemberChange::Remove { ban }, version, force).await
}

/// What a reconcile request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    /// Done now (or, with `dry_run`, what would be done), or queued.
    pub outcome: Outcome<ReconcileReport>,
    /// Of a reconcile queued for being too large for one request: what it is going to change.
    pub planned: Option<ReconcileReport>,
}

/// Makes the room's membership equal `wanted`: inline when small enough, queued otherwise or when the homeserver is
/// out. Done or queued, the list becomes the room's desired state and supersedes older queued member changes.
pub async fn reconcile_members(
    app: &App,
    caller: &Caller,
    path: RoomPath<'_>,
    wanted: &[(UserSlug, Role)],
    dry_run: bool,
    force: bool,
) -> Result<Reconciliation, DomainError> {
    let version = operations::now_version();
    let queued_reconcile = || {
        Operation::Reconcile(DeferredReconcile {
            tenant: caller.tenant.to_string(),
            kind: path.kind.to_owned(),
            slug: path.slug.to_owned(),
            members: operations::roster(wanted),
            version,
            force,
        })
    };
    let done = async {
        let room = rooms::resolve_path(app, &caller.tenant, path.kind, path.slug).await?;
        membership::reconcile(app, &caller.tenant, &room, wanted, dry_run, force).await
    }
    .await;
    if dry_run {
        let (Reconciled::Applied(report) | Reconciled::TooLarge(report)) = done?;
        return Ok(Reconciliation { outcome: Outcome::Done(report), planned: None });
    }
    let answer = match operations::defer_on_outage(app, caller, done, queued_reconcile).await? {
        Outcome::Done(Reconciled::Applied(report)) => Reconciliation { outcome: Outcome::Done(report), planned: None },
        Outcome::Done(Reconciled::TooLarge(report)) => {
            let queued = operations::defer(app, caller, OperationId::new(), queued_reconcile()).await?;
            Reconciliation { outcome: Outcome::Queued(queued), planned: Some(report) }
        }
        Outcome::Queued(queued) => Reconciliation { outcome: Outcome::Queued(queued), planned: None },
    };
    let tenant = caller.tenant.as_str();
    operations::record_reconcile(app, tenant, path.kind, path.slug, version).await?;
    intent::record_roster(app, &caller.tenant, path.kind, path.slug, wanted, version).await?;
    Ok(answer)
}

/// Records the intent of a member change that succeeded, or queues it (stamped with its version) when the
/// homeserver is out.
#[allow(clippy::too_many_arguments)]
async fn change_or_queue<T>(
    app: &App,
    caller: &Caller,
    done: Result<T, DomainError>,
    path: RoomPath<'_>,
    user: &UserSlug,
    change: MemberChange,
    version: u64,
    force: bool,
) -> Result<Outcome<T>, DomainError> {
    let tenant = caller.tenant.to_string();
    if done.is_ok() {
        operations::record_member_intent(app, &tenant, path.kind, path.slug, user.as_str(), version).await?;
    }
    let role = match &change {
        MemberChange::Put { role } => Some(*role),
        MemberChange::Remove { .. } => None,
    };
    let outcome = operations::defer_on_outage(app, caller, done, || Operation::Membership {
        tenant: tenant.clone(),
        kind: path.kind.to_owned(),
        slug: path.slug.to_owned(),
        user: user.to_string(),
        change,
        version,
        force,
    })
    .await?;
    // Done or queued, this is now the member's desired state (drift repair restores it).
    intent::record_member(app, &caller.tenant, path.kind, path.slug, user, role, version).await?;
    Ok(outcome)
}
