//! The user routes' deletion as the API asks for it: done now, or queued when the homeserver is out.

use crate::app::App;
use crate::domain::operations::{self, Operation};
use crate::domain::{DomainError, Outcome, users};
use crate::identity::{Caller, UserSlug};

/// `DELETE /v1/users/{id}`: deleted now, or (homeserver out) queued for the retry worker.
pub async fn delete_user(app: &App, caller: &Caller, user: &UserSlug) -> Result<Outcome<()>, DomainError> {
    let done = users::delete(app, &caller.tenant, user).await;
    let operation = || Operation::DeleteUser { tenant: caller.tenant.to_string(), user: user.to_string() };
    operations::defer_on_outage(app, caller, done, operation).await
}
