//! Membership: members of group and event rooms, their roles as power levels, and reconciling a whole list.

use lambda_http::{Body, Request, Response};
use shared::domain::Outcome;
use shared::domain::membership::{self, PutMemberInput, ReconcileInput, ReconcileReport};
use shared::domain::requests::{self, RoomPath};
use shared::domain::rooms;
use shared::http::{ApiRequest, QueuedAnswer, Reply};
use shared::identity::UserSlug;
use shared::routes::MembershipRoute as Route;
use shared::{ApiError, App};

pub async fn serve(app: &App, request: Request) -> Response<Body> {
    shared::http::serve(app, request, |route, request| handle(app, route, request)).await
}

/// Every input is validated before the room is resolved, so a bad request changes (and costs) nothing. Exhaustive
/// over the function's routes: a route added to the table without a handler here does not compile.
async fn handle(app: &App, route: Route, request: ApiRequest) -> Result<Reply, ApiError> {
    let caller = request.caller()?;
    let text = |value: &str| Ok::<_, ApiError>(value.to_owned());
    let (kind, slug) = (request.param("kind", text)?, request.param("slug", text)?);
    let path = RoomPath { kind: &kind, slug: &slug };
    match route {
        Route::PutMember => {
            let user = request.param("userId", UserSlug::parse)?;
            let force = flag(&request, "force")?;
            let input: PutMemberInput = request.json()?;
            let outcome = requests::put_member(app, caller, path, &user, input.role, force).await?;
            Ok(Reply::outcome(outcome, Reply::ok))
        }
        Route::DeleteMember => {
            let user = request.param("userId", UserSlug::parse)?;
            let (ban, force) = (flag(&request, "ban")?, flag(&request, "force")?);
            let outcome = requests::remove_member(app, caller, path, &user, ban, force).await?;
            Ok(Reply::outcome(outcome, |()| Reply::no_content()))
        }
        Route::ReconcileMembers => {
            let (dry_run, force) = (flag(&request, "dryRun")?, flag(&request, "force")?);
            let wanted = request.json::<ReconcileInput>()?.validate()?;
            let reconciled = requests::reconcile_members(app, caller, path, &wanted, dry_run, force).await?;
            Ok(match (reconciled.outcome, reconciled.planned) {
                (Outcome::Done(report), _) => Reply::ok(report),
                (Outcome::Queued(operation_id), planned) => {
                    let queued = QueuedAnswer { status: "queued", operation_id: &operation_id };
                    Reply::json(202, QueuedReconcile { queued, planned: planned.as_ref() })
                }
            })
        }
        Route::ListMembers => {
            let room = rooms::resolve_path(app, &caller.tenant, &kind, &slug).await?;
            rooms::require_member(app, &room, caller).await?;
            Ok(Reply::ok(membership::list(app, &caller.tenant, &room).await?))
        }
    }
}

/// `202` of a queued reconcile: the operation, and what it is going to change when that is known.
#[derive(serde::Serialize)]
struct QueuedReconcile<'a> {
    #[serde(flatten)]
    queued: QueuedAnswer<'a>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    planned: Option<&'a ReconcileReport>,
}

/// A boolean query parameter: absent is `false`; anything but `true`/`false` is refused.
fn flag(request: &ApiRequest, name: &str) -> Result<bool, ApiError> {
    match request.query(name) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::bad_request("invalid_parameter", format!("{name} must be true or false"))),
    }
}
