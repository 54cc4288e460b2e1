//! The one route table. The local gateway serves it, each function dispatches on it, and tests check
//! `template.yaml` and `openapi.yaml` against it, so a route exists in exactly one place.

use http::Method;

/// The Lambda function that owns a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    Provisioning,
    Rooms,
    Membership,
    Messages,
}

impl Function {
    pub const ALL: [Function; 4] = [Function::Provisioning, Function::Rooms, Function::Membership, Function::Messages];

    /// The crate/binary name, also the SAM logical id prefix (`ProvisioningFunction`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Function::Provisioning => "provisioning",
            Function::Rooms => "rooms",
            Function::Membership => "membership",
            Function::Messages => "messages",
        }
    }

    pub fn logical_id(self) -> &'static str {
        match self {
            Function::Provisioning => "ProvisioningFunction",
            Function::Rooms => "RoomsFunction",
            Function::Membership => "MembershipFunction",
            Function::Messages => "MessagesFunction",
        }
    }
}

/// Who may call a route, as far as the token alone decides. Finer rules (membership, sender) live in the domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed.
    Anyone,
    /// Only `role: service` tokens.
    Service,
    /// Only `role: user` tokens, acting as their own `sub`.
    User,
    /// Service tokens, or a user token whose `sub` is the `{userId}` of the path.
    ServiceOrSelf,
    /// Service tokens, or a user token; the domain checks what the user may do.
    ServiceOrUser,
}

/// A stable name for each route; handlers match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteId {
    Health,
    PutUser,
    GetUser,
    DeleteUser,
    CreateSession,
    DeleteSession,
    GetOperation,
    PutGroupRoom,
    PutEventRoom,
    CancelEventRoom,
    GetRoom,
    DeleteRoom,
    EnsureDirectRoom,
    PutMember,
    DeleteMember,
    ReconcileMembers,
    ListMembers,
    PostMessage,
    ListMessages,
    EditMessage,
    DeleteMessage,
    PutReaction,
    DeleteReaction,
    PutNotifications,
    GetNotifications,
    UploadMedia,
    GetNotificationPreferences,
    PutNotificationPreferences,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub id: RouteId,
    pub method: Method,
    /// API Gateway path syntax: `{name}` is one path segment.
    pub path: &'static str,
    pub function: Function,
    pub access: Access,
    /// The `operationId` of this route in `openapi.yaml`.
    pub operation_id: &'static str,
}

macro_rules! route {
    ($id:ident, $method:ident, $path:literal, $function:ident, $access:ident, $op:literal) => {
        Route {
            id: RouteId::$id,
            method: Method::$method,
            path: $path,
            function: Function::$function,
            access: Access::$access,
            operation_id: $op,
        }
    };
}

pub const ROUTES: &[Route] = &[
    route!(Health, GET, "/v1/health", Provisioning, Anyone, "getHealth"),
    route!(PutUser, PUT, "/v1/users/{userId}", Provisioning, Service, "putUser"),
    route!(GetUser, GET, "/v1/users/{userId}", Provisioning, ServiceOrSelf, "getUser"),
    route!(DeleteUser, DELETE, "/v1/users/{userId}", Provisioning, Service, "deleteUser"),
    route!(CreateSession, POST, "/v1/me/matrix-session", Provisioning, User, "createMatrixSession"),
    route!(DeleteSession, DELETE, "/v1/me/matrix-session", Provisioning, User, "deleteMatrixSession"),
    route!(GetOperation, GET, "/v1/operations/{operationId}", Provisioning, ServiceOrUser, "getOperation"),
    route!(PutGroupRoom, PUT, "/v1/groups/{slug}/room", Rooms, Service, "putGroupRoom"),
    route!(PutEventRoom, PUT, "/v1/events/{slug}/room", Rooms, Service, "putEventRoom"),
    route!(CancelEventRoom, POST, "/v1/events/{slug}/room/cancel", Rooms, Service, "cancelEventRoom"),
    route!(GetRoom, GET, "/v1/{kind}/{slug}/room", Rooms, ServiceOrUser, "getRoom"),
    route!(DeleteRoom, DELETE, "/v1/{kind}/{slug}/room", Rooms, Service, "deleteRoom"),
    route!(EnsureDirectRoom, POST, "/v1/me/direct/{otherUserId}", Rooms, User, "ensureDirectRoom"),
    route!(PutMember, PUT, "/v1/{kind}/{slug}/members/{userId}", Membership, Service, "putMember"),
    route!(DeleteMember, DELETE, "/v1/{kind}/{slug}/members/{userId}", Membership, Service, "deleteMember"),
    route!(ReconcileMembers, PUT, "/v1/{kind}/{slug}/members", Membership, Service, "reconcileMembers"),
    route!(ListMembers, GET, "/v1/{kind}/{slug}/members", Membership, ServiceOrUser, "listMembers"),
    route!(PostMessage, POST, "/v1/{kind}/{slug}/messages", Messages, ServiceOrUser, "postMessage"),
    route!(ListMessages, GET, "/v1/{kind}/{slug}/messages", Messages, ServiceOrUser, "listMessages"),
    route!(EditMessage, PUT, "/v1/{kind}/{slug}/messages/{eventId}", Messages, ServiceOrUser, "editMessage"),
    route!(DeleteMessage, DELETE, "/v1/{kind}/{slug}/messages/{eventId}", Messages, ServiceOrUser, "deleteMessage"),
    route!(PutReaction, PUT, "/v1/{kind}/{slug}/messages/{eventId}/reactions/{key}", Messages, User, "putReaction"),
    route!(
        DeleteReaction,
        DELETE,
        "/v1/{kind}/{slug}/messages/{eventId}/reactions/{key}",
        Messages,
        User,
        "deleteReaction"
    ),
    route!(PutNotifications, PUT, "/v1/{kind}/{slug}/notifications", Messages, User, "putNotifications"),
    route!(GetNotifications, GET, "/v1/{kind}/{slug}/notifications", Messages, User, "getNotifications"),
    route!(UploadMedia, POST, "/v1/{kind}/{slug}/media", Messages, User, "uploadMedia"),
    // The user's own chat notification channel (docs/adr/0008-notifications.md); the service does not set it.
    route!(
        GetNotificationPreferences,
        GET,
        "/v1/me/notification-preferences",
        Provisioning,
        User,
        "getNotificationPreferences"
    ),
    route!(
        PutNotificationPreferences,
        PUT,
        "/v1/me/notification-preferences",
        Provisioning,
        User,
        "putNotificationPreferences"
    ),
];

/// Path parameters of a matched route, in template order, percent-decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathParams(Vec<(&'static str, String)>);

impl PathParams {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| *key == name).map(|(_, value)| value.as_str())
    }
}

/// What matching a request against the table found.
#[derive(Debug)]
pub enum RouteMatch {
    Found(&'static Route, PathParams),
    /// The path exists under other methods, listed here.
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

/// Matches `method` and `path` (no query string) against the table. A literal segment beats a parameter, as in
/// API Gateway, so `/v1/groups/x/room` (PUT) and `/v1/{kind}/x/room` (GET) can coexist.
pub fn match_route(method: &Method, path: &str) -> RouteMatch {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut best: Option<(usize, &'static Route, PathParams)> = None;
    let mut allowed = Vec::new();
    for route in ROUTES {
        let Some((literals, params)) = match_template(route.path, &segments) else {
            continue;
        };
        if route.method != *method {
            allowed.push(route.method.clone());
            continue;
        }
        if best.as_ref().is_none_or(|(score, _, _)| literals > *score) {
            best = Some((literals, route, params));
        }
    }
    match best {
        Some((_, route, params)) => RouteMatch::Found(route, params),
        None if !allowed.is_empty() => RouteMatch::MethodNotAllowed(allowed),
        None => RouteMatch::NotFound,
    }
}

fn match_template(template: &'static str, segments: &[&str]) -> Option<(usize, PathParams)> {
    let parts: Vec<&'static str> = template.split('/').collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut literals = 0;
    let mut params = Vec::new();
    for (part, segment) in parts.into_iter().zip(segments) {
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if segment.is_empty() {
                return None;
            }
            let decoded = percent_decode(segment)?;
            params.push((name, decoded));
        } else if part == *segment {
            literals += 1;
        } else {
            return None;
        }
    }
    Some((literals, PathParams(params)))
}

fn percent_decode(segment: &str) -> Option<String> {
    let decoded: Vec<u8> = url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned().into_bytes())?;
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(method: Method, path: &str) -> (RouteId, PathParams) {
        match match_route(&method, path) {
            RouteMatch::Found(route, params) => (route.id, params),
            other => panic!("{method} {path}: {other:?}"),
        }
    }

    #[test]
    fn literal_segments_beat_parameters() {
        assert_eq!(found(Method::PUT, "/v1/groups/chess/room").0, RouteId::PutGroupRoom);
        assert_eq!(found(Method::GET, "/v1/groups/chess/room").0, RouteId::GetRoom);
        assert_eq!(found(Method::POST, "/v1/events/x/room/cancel").0, RouteId::CancelEventRoom);
    }

    #[test]
    fn parameters_are_extracted_and_decoded() {
        let (id, params) = found(Method::PUT, "/v1/events/e1/messages/%24abc%3Aloc/reactions/%F0%9F%91%8D");
        assert_eq!(id, RouteId::PutReaction);
        assert_eq!(params.get("eventId"), Some("$abc:loc"));
        assert_eq!(params.get("key"), Some("👍"));
        assert_eq!(params.get("kind"), Some("events"));
    }

    #[test]
    fn unknown_paths_and_methods_are_told_apart() {
        assert!(matches!(match_route(&Method::GET, "/v1/nope"), RouteMatch::NotFound));
        assert!(matches!(
            match_route(&Method::PATCH, "/v1/users/a"),
            RouteMatch::MethodNotAllowed(methods) if methods == [Method::PUT, Method::GET, Method::DELETE]
        ));
        assert!(matches!(match_route(&Method::GET, "/v1/users/"), RouteMatch::NotFound));
    }

    #[test]
    fn every_route_is_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(!(a.method == b.method && a.path == b.path), "{} {}", a.method, a.path);
                assert_ne!(a.operation_id, b.operation_id);
                assert_ne!(a.id, b.id);
            }
        }
    }
}
