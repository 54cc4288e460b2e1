//! The authorization matrix (tests/authz-matrix.yaml) against the running stack: every route of the route table,
//! called by every kind of caller, answers the status class the matrix gives. A route without a row, or a row for
//! no route, fails. Fixtures are made once; the cells of a route run refusals first and the service last, so one
//! destructive success (a delete) comes after every refusal of the same target.

use std::collections::HashMap;

use integration_tests::{Stack, stack, unique};
use reqwest::Method;
use serde_json::{Value, json};
use shared::routes::MembershipRoute as Mb;
use shared::routes::MessagesRoute as Ms;
use shared::routes::ProvisioningRoute as P;
use shared::routes::RoomsRoute as Rm;
use shared::routes::{ROUTES, RouteId};
use yaml_rust2::{Yaml, YamlLoader};

const CALLERS: [&str; 8] = ["service", "self", "member", "moderator", "owner", "nonmember", "otherTenant", "expired"];

/// What the matrix expects of one cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Success,
    Status(u16),
}

impl Expect {
    fn admits(self, status: u16) -> bool {
        match self {
            Expect::Success => (200..300).contains(&status),
            Expect::Status(wanted) => status == wanted,
        }
    }
}

fn matrix() -> HashMap<String, [Expect; 8]> {
    let path = integration_tests::repo_root().join("tests/authz-matrix.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc = YamlLoader::load_from_str(&text).expect("valid YAML").pop().expect("one document");
    let callers: Vec<&str> = doc["callers"].as_vec().expect("callers").iter().filter_map(Yaml::as_str).collect();
    assert_eq!(callers, CALLERS, "the matrix's columns");
    let rows = doc["routes"].as_hash().expect("routes");
    rows.iter()
        .map(|(route, cells)| {
            let route = route.as_str().expect("operationId").to_owned();
            let cells: Vec<Expect> = cells
                .as_vec()
                .unwrap_or_else(|| panic!("{route}: a list of cells"))
                .iter()
                .map(|cell| match cell {
                    Yaml::String(s) if s == "2xx" => Expect::Success,
                    Yaml::Integer(n) => Expect::Status(u16::try_from(*n).expect("a status")),
                    other => panic!("{route}: bad cell {other:?}"),
                })
                .collect();
            let cells: [Expect; 8] = cells.try_into().unwrap_or_else(|_| panic!("{route}: one cell per caller"));
            (route, cells)
        })
        .collect()
}

/// Made once: two tenants, the users, the room under test and a room per destructive route.
struct Fixtures {
    tenant: String,
    other_tenant: String,
    message: String,
    operation: String,
    victim: String,
}

const SELF: &str = "self-user";
const MEMBER: &str = "member-user";
const MODERATOR: &str = "moderator-user";
const OWNER: &str = "owner-user";
const NONMEMBER: &str = "nonmember-user";
const LEAVER: &str = "leaver-user";
const PEER: &str = "peer-user";
const DEVICE: &str = "AUTHZMATRIX";

fn event_room_body() -> Value {
    json!({"name": "Matrix event", "startsAt": "2030-01-01T10:00:00Z", "visibility": "private"})
}

async fn ok(s: &Stack, method: Method, path: &str, token: &str, body: Option<Value>) -> Value {
    let (status, answer) = s.api(method.clone(), path, Some(token), body).await;
    assert!(status.is_success(), "fixture {method} {path}: {status} {answer}");
    answer
}

async fn fixtures(s: &Stack) -> Fixtures {
    let tenant = unique("authz");
    let other_tenant = unique("authz-u");
    let service = s.service_jwt(&tenant);
    let victim = unique("victim");
    for user in [SELF, MEMBER, MODERATOR, OWNER, NONMEMBER, LEAVER, PEER, victim.as_str()] {
        s.provision(&tenant, user, user).await;
    }
    let room = json!({"name": "Matrix room", "visibility": "private"});
    for slug in ["room", "doomed", "reconciled"] {
        ok(s, Method::PUT, &format!("/v1/groups/{slug}/room"), &service, Some(room.clone())).await;
    }
    for slug in ["event", "cancelled"] {
        ok(s, Method::PUT, &format!("/v1/events/{slug}/room"), &service, Some(event_room_body())).await;
    }
    for (user, role) in
        [(SELF, "member"), (MEMBER, "member"), (MODERATOR, "moderator"), (OWNER, "owner"), (LEAVER, "member")]
    {
        let path = format!("/v1/groups/room/members/{user}");
        ok(s, Method::PUT, &path, &service, Some(json!({"role": role}))).await;
    }
    let message = post(s, &tenant).await;
    let operation = operation_of(s, &tenant, SELF).await;
    Fixtures { tenant, other_tenant, message, operation, victim }
}

/// A message by `self` in the room under test.
async fn post(s: &Stack, tenant: &str) -> String {
    let token = s.user_jwt(tenant, SELF, None);
    let body = json!({"body": "matrix", "format": "plain"});
    let answer = ok(s, Method::POST, "/v1/groups/room/messages", &token, Some(body)).await;
    answer["eventId"].as_str().expect("eventId").to_owned()
}

/// A queued operation started by `user`, written as the functions write one (a real outage is not needed to ask
/// who may read it).
async fn operation_of(s: &Stack, tenant: &str, user: &str) -> String {
    use aws_sdk_dynamodb::types::AttributeValue::{N, S};
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dynamodb = aws_sdk_dynamodb::Client::new(&s.aws().await);
    dynamodb
        .put_item()
        .table_name(s.var("OPENMEET_TABLE"))
        .item("pk", S(format!("OP#{id}")))
        .item("sk", S("OP".into()))
        .item("tenant", S(tenant.into()))
        .item("owner", S(format!("user:{user}")))
        .item("status", S("queued".into()))
        .item("attempts", N("0".into()))
        .send()
        .await
        .expect("operation record");
    id
}

/// A request body: none, JSON, or raw bytes with their type.
enum Payload {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

struct Call {
    method: Method,
    path: String,
    payload: Payload,
    headers: Vec<(&'static str, String)>,
    /// The user the request is about (the `self` caller).
    subject: String,
}

/// A PNG header (signature and IHDR), which is what the upload check reads.
fn png() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    png.extend(2u32.to_be_bytes());
    png.extend(2u32.to_be_bytes());
    png.extend([8, 6, 0, 0, 0]);
    png
}

/// How each route is called. The match is exhaustive: a new route does not compile until it has a way in here.
async fn call(s: &Stack, route: RouteId, fx: &Fixtures) -> Call {
    use Payload::{Json, None as Empty, Raw};
    let message = &fx.message;
    let thumbs = "%F0%9F%91%8D";
    let (method, path, payload) = match route {
        RouteId::Provisioning(P::Health) => (Method::GET, "/v1/health".to_owned(), Empty),
        RouteId::Provisioning(P::PutUser) => {
            (Method::PUT, format!("/v1/users/{SELF}"), Json(json!({"displayName": SELF})))
        }
        RouteId::Provisioning(P::GetUser) => (Method::GET, format!("/v1/users/{SELF}"), Empty),
        RouteId::Provisioning(P::DeleteUser) => (Method::DELETE, format!("/v1/users/{}", fx.victim), Empty),
        RouteId::Provisioning(P::CreateSession) => {
            (Method::POST, "/v1/me/matrix-session".into(), Json(json!({"deviceId": DEVICE})))
        }
        RouteId::Provisioning(P::DeleteSession) => {
            (Method::DELETE, "/v1/me/matrix-session".into(), Json(json!({"deviceId": DEVICE})))
        }
        RouteId::Provisioning(P::GetOperation) => (Method::GET, format!("/v1/operations/{}", fx.operation), Empty),
        RouteId::Rooms(Rm::PutGroupRoom) => {
            (Method::PUT, "/v1/groups/room/room".into(), Json(json!({"name": "Matrix room", "visibility": "private"})))
        }
        RouteId::Rooms(Rm::PutEventRoom) => (Method::PUT, "/v1/events/event/room".into(), Json(event_room_body())),
        RouteId::Rooms(Rm::CancelEventRoom) => {
            (Method::POST, "/v1/events/cancelled/room/cancel".into(), Json(json!({})))
        }
        RouteId::Rooms(Rm::GetRoom) => (Method::GET, "/v1/groups/room/room".into(), Empty),
        RouteId::Rooms(Rm::DeleteRoom) => (Method::DELETE, "/v1/groups/doomed/room".into(), Empty),
        RouteId::Rooms(Rm::EnsureDirectRoom) => (Method::POST, format!("/v1/me/direct/{PEER}"), Empty),
        RouteId::Membership(Mb::PutMember) => {
            (Method::PUT, format!("/v1/groups/room/members/{SELF}"), Json(json!({"role": "member"})))
        }
        RouteId::Membership(Mb::DeleteMember) => (Method::DELETE, format!("/v1/groups/room/members/{LEAVER}"), Empty),
        RouteId::Membership(Mb::ReconcileMembers) => {
            (Method::PUT, "/v1/groups/reconciled/members".into(), Json(json!({"members": []})))
        }
        RouteId::Membership(Mb::ListMembers) => (Method::GET, "/v1/groups/room/members".into(), Empty),
        RouteId::Messages(Ms::PostMessage) => {
            (Method::POST, "/v1/groups/room/messages".into(), Json(json!({"body": "hello", "format": "plain"})))
        }
        RouteId::Messages(Ms::ListMessages) => (Method::GET, "/v1/groups/room/messages?limit=5".into(), Empty),
        RouteId::Messages(Ms::EditMessage) => (
            Method::PUT,
            format!("/v1/groups/room/messages/{}", enc(message)),
            Json(json!({"body": "edited", "format": "plain"})),
        ),
        // Each cell deletes a message of its own, so an earlier success leaves the next cell something to delete.
        RouteId::Messages(Ms::DeleteMessage) => {
            (Method::DELETE, format!("/v1/groups/room/messages/{}", enc(&post(s, &fx.tenant).await)), Empty)
        }
        RouteId::Messages(Ms::PutReaction) => {
            (Method::PUT, format!("/v1/groups/room/messages/{}/reactions/{thumbs}", enc(message)), Empty)
        }
        RouteId::Messages(Ms::DeleteReaction) => {
            (Method::DELETE, format!("/v1/groups/room/messages/{}/reactions/{thumbs}", enc(message)), Empty)
        }
        RouteId::Messages(Ms::PutNotifications) => {
            (Method::PUT, "/v1/groups/room/notifications".into(), Json(json!({"level": "mentions"})))
        }
        RouteId::Messages(Ms::GetNotifications) => (Method::GET, "/v1/groups/room/notifications".into(), Empty),
        RouteId::Messages(Ms::UploadMedia) => {
            (Method::POST, "/v1/groups/room/media?filename=a.png".into(), Raw("image/png", png()))
        }
        RouteId::Provisioning(P::GetNotificationPreferences) => {
            (Method::GET, "/v1/me/notification-preferences".into(), Empty)
        }
        RouteId::Provisioning(P::PutNotificationPreferences) => {
            (Method::PUT, "/v1/me/notification-preferences".into(), Json(json!({"chat": "on"})))
        }
    };
    let subject = match route {
        RouteId::Provisioning(P::DeleteUser) => fx.victim.clone(),
        RouteId::Membership(Mb::DeleteMember) => LEAVER.to_owned(),
        _ => SELF.to_owned(),
    };
    let headers = match route {
        RouteId::Messages(Ms::PostMessage) => vec![("Idempotency-Key", unique("authz"))],
        _ => Vec::new(),
    };
    Call { method, path, payload, headers, subject }
}

fn enc(segment: &str) -> String {
    integration_tests::encode_path(segment)
}

fn token(s: &Stack, fx: &Fixtures, caller: &str, subject: &str) -> String {
    match caller {
        "service" => s.service_jwt(&fx.tenant),
        "self" => s.user_jwt(&fx.tenant, subject, None),
        "member" => s.user_jwt(&fx.tenant, MEMBER, None),
        "moderator" => s.user_jwt(&fx.tenant, MODERATOR, None),
        "owner" => s.user_jwt(&fx.tenant, OWNER, None),
        "nonmember" => s.user_jwt(&fx.tenant, NONMEMBER, None),
        "otherTenant" => s.user_jwt(&fx.other_tenant, subject, None),
        "expired" => {
            s.jwt_with(json!({"sub": "openmeet-api", "tenant": fx.tenant, "role": "service", "exp": 1_000_000}))
        }
        other => panic!("unknown caller {other}"),
    }
}

async fn send(s: &Stack, call: &Call, token: &str) -> (u16, String) {
    let mut request = s.http.request(call.method.clone(), format!("{}{}", s.api, call.path)).bearer_auth(token);
    for (name, value) in &call.headers {
        request = request.header(*name, value);
    }
    request = match &call.payload {
        Payload::None => request,
        Payload::Json(body) => request.json(body),
        Payload::Raw(content_type, bytes) => request.header("Content-Type", *content_type).body(bytes.clone()),
    };
    let response = request.send().await.unwrap_or_else(|e| panic!("the gateway is not answering: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn every_route_answers_every_caller_as_the_matrix_says() {
    let s = stack();
    let matrix = matrix();
    // Rows and routes match exactly.
    let routes: Vec<&str> = ROUTES.iter().map(|r| r.operation_id).collect();
    let missing: Vec<&&str> = routes.iter().filter(|r| !matrix.contains_key(**r)).collect();
    let extra: Vec<&String> = matrix.keys().filter(|k| !routes.contains(&k.as_str())).collect();
    assert!(missing.is_empty() && extra.is_empty(), "routes without a row: {missing:?}; rows for no route: {extra:?}");

    let fx = fixtures(s).await;
    let mut failures = Vec::new();
    let mut cells = 0;
    for route in ROUTES {
        let expected = matrix[route.operation_id];
        // Refusals first, then successes, the service's last: a destructive success never precedes a refusal.
        let mut order: Vec<usize> = (0..CALLERS.len()).collect();
        order.sort_by_key(|&i| (expected[i] == Expect::Success, CALLERS[i] == "service"));
        let mut row = vec![String::new(); CALLERS.len()];
        for i in order {
            let call = call(s, route.id, &fx).await;
            let token = token(s, &fx, CALLERS[i], &call.subject);
            let (status, body) = send(s, &call, &token).await;
            cells += 1;
            row[i] = status.to_string();
            if !expected[i].admits(status) {
                failures.push(format!(
                    "{} {} as {}: {status}, the matrix says {:?}: {}",
                    call.method,
                    route.path,
                    CALLERS[i],
                    expected[i],
                    body.chars().take(200).collect::<String>()
                ));
            }
        }
        println!("{:<22} {}", route.operation_id, row.join(" "));
    }
    println!("authorization matrix: {cells} cells, {} routes x {} callers", ROUTES.len(), CALLERS.len());
    assert!(failures.is_empty(), "{} cells differ from the matrix:\n{}", failures.len(), failures.join("\n"));
}
