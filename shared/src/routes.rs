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

/// The routes of one function, one enum each: the function matches its own enum exhaustively, so a route declared
/// here without a handler does not compile. `RouteId` groups them by owning function.
pub trait FunctionRoute: Copy + std::fmt::Debug + Send + 'static {
    /// The function that owns these routes.
    const FUNCTION: Function;
    /// This function's route, when `id` is one of them.
    fn from_id(id: RouteId) -> Option<Self>;
}

#[derive(Debug, Clone)]
pub struct Route {
    pub id: RouteId,
    pub method: Method,
    /// API Gateway path syntax: `{name}` is one path segment.
    pub path: &'static str,
    /// The owning function, always `id`'s group (filled in by `route_table!`).
    pub function: Function,
    pub access: Access,
    /// The `operationId` of this route in `openapi.yaml`.
    pub operation_id: &'static str,
}

/// Declares each route once: its function's enum variant, method, path, access rule and `operationId`. From this
/// one list come the per-function enums, `RouteId` and `ROUTES`, so a variant cannot exist without its row.
macro_rules! route_table {
    ($($function:ident($group:ident) {
        $($id:ident: $method:ident $path:literal, $access:ident, $op:literal;)*
    })*) => {
        $(
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
            pub enum $group {
                $($id,)*
            }

            impl FunctionRoute for $group {
                const FUNCTION: Function = Function::$function;
                fn from_id(id: RouteId) -> Option<Self> {
                    #[allow(unreachable_patterns)]
                    match id {
                        RouteId::$function(route) => Some(route),
                        _ => None,
                    }
                }
            }
        )*

        /// A stable name for each route, grouped by the function that owns it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum RouteId {
            $($function($group),)*
        }

        pub const ROUTES: &[Route] = &[$($(
            Route {
                id: RouteId::$function($group::$id),
                method: Method::$method,
                path: $path,
                function: Function::$function,
                access: Access::$access,
                operation_id: $op,
            },
        )*)*];
    };
}

route_table! {
    Provisioning(ProvisioningRoute) {
        Health: GET "/v1/health", Anyone, "getHealth";
        PutUser: PUT "/v1/users/{userId}", Service, "putUser";
        GetUser: GET "/v1/users/{userId}", ServiceOrSelf, "getUser";
        DeleteUser: DELETE "/v1/users/{userId}", Service, "deleteUser";
        CreateSession: POST "/v1/me/matrix-session", User, "createMatrixSession";
        DeleteSession: DELETE "/v1/me/matrix-session", User, "deleteMatrixSession";
        GetOperation: GET "/v1/operations/{operationId}", ServiceOrUser, "getOperation";
        // The user's own chat notification channel (docs/adr/0008-notifications.md); the service does not set it.
        GetNotificationPreferences: GET "/v1/me/notification-preferences", User, "getNotificationPreferences";
        PutNotificationPreferences: PUT "/v1/me/notification-preferences", User, "putNotificationPreferences";
    }
    Rooms(RoomsRoute) {
        PutGroupRoom: PUT "/v1/groups/{slug}/room", Service, "putGroupRoom";
        PutEventRoom: PUT "/v1/events/{slug}/room", Service, "putEventRoom";
        CancelEventRoom: POST "/v1/events/{slug}/room/cancel", Service, "cancelEventRoom";
        GetRoom: GET "/v1/{kind}/{slug}/room", ServiceOrUser, "getRoom";
        DeleteRoom: DELETE "/v1/{kind}/{slug}/room", Service, "deleteRoom";
        EnsureDirectRoom: POST "/v1/me/direct/{otherUserId}", User, "ensureDirectRoom";
    }
    Membership(MembershipRoute) {
        PutMember: PUT "/v1/{kind}/{slug}/members/{userId}", Service, "putMember";
        DeleteMember: DELETE "/v1/{kind}/{slug}/members/{userId}", Service, "deleteMember";
        ReconcileMembers: PUT "/v1/{kind}/{slug}/members", Service, "reconcileMembers";
        ListMembers: GET "/v1/{kind}/{slug}/members", ServiceOrUser, "listMembers";
    }
    Messages(MessagesRoute) {
        PostMessage: POST "/v1/{kind}/{slug}/messages", ServiceOrUser, "postMessage";
        ListMessages: GET "/v1/{kind}/{slug}/messages", ServiceOrUser, "listMessages";
        EditMessage: PUT "/v1/{kind}/{slug}/messages/{eventId}", ServiceOrUser, "editMessage";
        DeleteMessage: DELETE "/v1/{kind}/{slug}/messages/{eventId}", ServiceOrUser, "deleteMessage";
        PutReaction: PUT "/v1/{kind}/{slug}/messages/{eventId}/reactions/{key}", User, "putReaction";
        DeleteReaction: DELETE "/v1/{kind}/{slug}/messages/{eventId}/reactions/{key}", User, "deleteReaction";
        PutNotifications: PUT "/v1/{kind}/{slug}/notifications", User, "putNotifications";
        GetNotifications: GET "/v1/{kind}/{slug}/notifications", User, "getNotifications";
        UploadMedia: POST "/v1/{kind}/{slug}/media", User, "uploadMedia";
    }
}

impl RouteId {
    /// The route's one raw-bytes body: every other non-GET route reads JSON under the JSON size limit.
    pub fn takes_raw_body(self) -> bool {
        self == RouteId::Messages(MessagesRoute::UploadMedia)
    }
}

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
        assert_eq!(found(Method::PUT, "/v1/groups/chess/room").0, RouteId::Rooms(RoomsRoute::PutGroupRoom));
        assert_eq!(found(Method::GET, "/v1/groups/chess/room").0, RouteId::Rooms(RoomsRoute::GetRoom));
        assert_eq!(found(Method::POST, "/v1/events/x/room/cancel").0, RouteId::Rooms(RoomsRoute::CancelEventRoom));
    }

    #[test]
    fn parameters_are_extracted_and_decoded() {
        let (id, params) = found(Method::PUT, "/v1/events/e1/messages/%24abc%3Aloc/reactions/%F0%9F%91%8D");
        assert_eq!(id, RouteId::Messages(MessagesRoute::PutReaction));
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

    /// Each route belongs to exactly one function's enum, the one its `function` names.
    #[test]
    fn every_route_is_in_its_functions_enum_only() {
        for route in ROUTES {
            let owners = [
                ProvisioningRoute::from_id(route.id).map(|_| ProvisioningRoute::FUNCTION),
                RoomsRoute::from_id(route.id).map(|_| RoomsRoute::FUNCTION),
                MembershipRoute::from_id(route.id).map(|_| MembershipRoute::FUNCTION),
                MessagesRoute::from_id(route.id).map(|_| MessagesRoute::FUNCTION),
            ];
            let owners: Vec<Function> = owners.into_iter().flatten().collect();
            assert_eq!(owners, [route.function], "{}", route.operation_id);
        }
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
