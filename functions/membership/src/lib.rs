//! Membership: members of group and event rooms, their roles as power levels, and reconciling a whole list.

use lambda_http::{Body, Request, Response};
use shared::auth::Caller;
use shared::domain::drift::intent;
use shared::domain::membership::{self, PutMemberInput, ReconcileInput, ReconcileReport, Reconciled};
use shared::domain::operations::{self, DeferredReconcile, MemberChange, Operation};
use shared::domain::rooms;
use shared::http::{ApiRequest, Reply};
use shared::identity::UserSlug;
use shared::routes::{Function, RouteId};
use shared::{ApiError, App};

pub async fn serve(app: &App, request: Request) -> Response<Body> {
    shared::http::serve(app, Function::Membership, request, |request| handle(app, request)).await
}

/// Every input is validated before the room is resolved, so a bad request changes (and costs) nothing.
async fn handle(app: &App, request: ApiRequest) -> Result<Reply, ApiError> {
    let caller = request.caller()?;
    let (kind, slug) = (request.param("kind", |k| Ok(k.to_owned()))?, request.param("slug", |s| Ok(s.to_owned()))?);
    match request.route.id {
        RouteId::PutMember => {
            let user = request.param("userId", UserSlug::parse)?;
            let force = flag(&request, "force")?;
            let input: PutMemberInput = request.json()?;
            let change = MemberChange::Put { role: input.role };
            let version = operations::now_version();
            let outcome = async {
                let room = rooms::resolve_path(app, &caller.tenant, &kind, &slug).await?;
                membership::put(app, &caller.tenant, &room, &user, input.role, force).await
            }
            .await;
            match defer(app, caller, outcome, (&kind, &slug, &user), change, version, force).await? {
                Ok(member) => Ok(Reply::ok(member)),
                Err(queued) => Ok(Reply::json(202, queued)),
            }
        }
        RouteId::DeleteMember => {
            let user = request.param("userId", UserSlug::parse)?;
            let (ban, force) = (flag(&request, "ban")?, flag(&request, "force")?);
            let version = operations::now_version();
            let outcome = async {
                let room = rooms::resolve_path(app, &caller.tenant, &kind, &slug).await?;
                membership::remove(app, &caller.tenant, &room, &user, ban, force).await
            }
            .await;
            match defer(app, caller, outcome, (&kind, &slug, &user), MemberChange::Remove { ban }, version, force)
                .await?
            {
                Ok(()) => Ok(Reply::no_content()),
                Err(queued) => Ok(Reply::json(202, queued)),
            }
        }
        RouteId::ReconcileMembers => {
            let (dry_run, force) = (flag(&request, "dryRun")?, flag(&request, "force")?);
            let wanted = request.json::<ReconcileInput>()?.validate()?;
            let version = operations::now_version();
            let queued_reconcile = || {
                Operation::Reconcile(DeferredReconcile {
                    tenant: caller.tenant.to_string(),
                    kind: kind.clone(),
                    slug: slug.clone(),
                    members: operations::roster(&wanted),
                    version,
                    force,
                })
            };
            let outcome = async {
                let room = rooms::resolve_path(app, &caller.tenant, &kind, &slug).await?;
                membership::reconcile(app, &caller.tenant, &room, &wanted, dry_run, force).await
            }
            .await;
            if dry_run {
                let (Reconciled::Applied(report) | Reconciled::TooLarge(report)) = outcome?;
                return Ok(Reply::ok(report));
            }
            let reply = match operations::defer_on_outage(app, caller, outcome, queued_reconcile).await? {
                Ok(Reconciled::Applied(report)) => Reply::ok(report),
                Ok(Reconciled::TooLarge(report)) => {
                    let queued =
                        operations::defer(app, caller, operations::new_operation_id(), queued_reconcile()).await?;
                    Reply::json(202, QueuedReconcile { queued, report })
                }
                Err(queued) => Reply::json(202, queued),
            };
            // Stamped once the reconcile is done or queued: it supersedes older queued member changes.
            operations::record_reconcile(app, caller.tenant.as_str(), &kind, &slug, version).await?;
            intent::record_roster(app, &caller.tenant, &kind, &slug, &wanted, version).await?;
            Ok(reply)
        }
        RouteId::ListMembers => {
            let room = rooms::resolve_path(app, &caller.tenant, &kind, &slug).await?;
            rooms::require_member(app, &room, caller).await?;
            Ok(Reply::ok(membership::list(app, &caller.tenant, &room).await?))
        }
        _ => Err(ApiError::Internal),
    }
}

/// Records the intent of a member change that succeeded, or queues it (stamped with its version) when the
/// homeserver is out, so a replay never overrides a newer intent.
async fn defer<T>(
    app: &App,
    caller: &Caller,
    outcome: Result<T, ApiError>,
    (kind, slug, user): (&str, &str, &UserSlug),
    change: MemberChange,
    version: u64,
    force: bool,
) -> Result<Result<T, operations::Queued>, ApiError> {
    let tenant = caller.tenant.to_string();
    if outcome.is_ok() {
        operations::record_member_intent(app, &tenant, kind, slug, user.as_str(), version).await?;
    }
    let role = match &change {
        MemberChange::Put { role } => Some(*role),
        MemberChange::Remove { .. } => None,
    };
    let answer = operations::defer_on_outage(app, caller, outcome, || Operation::Membership {
        tenant: tenant.clone(),
        kind: kind.to_owned(),
        slug: slug.to_owned(),
        user: user.to_string(),
        change,
        version,
        force,
    })
    .await?;
    // Done or queued, this is now the member's desired state (drift repair restores it).
    intent::record_member(app, &caller.tenant, kind, slug, user, role, version).await?;
    Ok(answer)
}

/// `202` of a reconcile too large for one request: the operation, and what it is going to change.
#[derive(serde::Serialize)]
struct QueuedReconcile {
    #[serde(flatten)]
    queued: operations::Queued,
    #[serde(flatten)]
    report: ReconcileReport,
}

/// A boolean query parameter: absent is `false`; anything but `true`/`false` is refused.
fn flag(request: &ApiRequest, name: &str) -> Result<bool, ApiError> {
    match request.query(name) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::bad_request("invalid_parameter", format!("{name} must be true or false"))),
    }
}
