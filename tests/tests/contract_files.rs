//! `shared::routes::ROUTES` is the one route table. `openapi.yaml` (the contract OpenMeet codes against) must carry
//! exactly its routes: same method, path, owning function, `operationId`, access rule and path parameters, and
//! nothing else. `template.yaml` (what AWS deploys) carries path prefixes per function, not routes; API Gateway's
//! route selection over them must send every route to its function. These tests read the files only; no network.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use shared::routes::{Access, Function, ROUTES, Route};
use yaml_rust2::{Yaml, YamlLoader};

// Shared with events.rs, which alone uses `route_key`.
#[allow(dead_code)]
#[path = "contract_files/api_gateway.rs"]
mod api_gateway;

use api_gateway::{ApiEvent, routing_problems, template_api_events};

/// The operation keys of an OpenAPI path item; every other key (`parameters`, `summary`, `x-...`) is not an operation.
const OPENAPI_METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn repo_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

fn read_repo_file(name: &str) -> String {
    let path = repo_file(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

fn load_yaml(name: &str) -> Yaml {
    let text = read_repo_file(name);
    let mut documents =
        YamlLoader::load_from_str(&text).unwrap_or_else(|error| panic!("{name} is not valid YAML: {error}"));
    assert_eq!(documents.len(), 1, "{name} must hold exactly one YAML document, it holds {}", documents.len());
    documents.remove(0)
}

/// The name `x-openmeet-access` uses for an access rule. Exhaustive on purpose: a new variant must be named here.
fn access_name(access: Access) -> &'static str {
    match access {
        Access::Anyone => "Anyone",
        Access::Service => "Service",
        Access::User => "User",
        Access::ServiceOrSelf => "ServiceOrSelf",
        Access::ServiceOrUser => "ServiceOrUser",
    }
}

/// `{name}` segments of an API Gateway path template, in order.
fn path_parameters(path: &str) -> BTreeSet<String> {
    path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}')).map(str::to_owned).collect()
}

fn describe_route(route: &Route) -> String {
    format!("{} {} ({})", route.method.as_str(), route.path, route.operation_id)
}

/// Fails with every problem at once, one per line.
fn assert_no_problems(what: &str, problems: &[String]) {
    assert!(problems.is_empty(), "{what}:\n  - {}", problems.join("\n  - "));
}

fn set_difference<'a, T: Ord + std::fmt::Debug>(a: &'a BTreeSet<T>, b: &'a BTreeSet<T>) -> Vec<&'a T> {
    a.difference(b).collect()
}

// ------------------------------------------------------------------------------------------------------------------
// template.yaml
// ------------------------------------------------------------------------------------------------------------------

/// The template's HTTP API events are path prefixes, not routes (adding a route under a prefix edits nothing
/// there). Replaying API Gateway's route selection over them, every route of the table reaches the function that
/// owns it, nothing is ambiguous, every event is reached by some route, and a path matching no route reaches
/// `$default`'s function, which answers the contract's 404/405 as the local gateway does.
#[test]
fn template_http_api_events_send_every_route_to_its_function() {
    let template = load_yaml("template.yaml");
    let (events, mut problems) = template_api_events(&template);
    problems.extend(routing_problems(&events));
    assert_no_problems("template.yaml's HTTP API events and the route table differ", &problems);
}

/// The check above fails when a prefix is missing (the route falls to `$default`, another function), when two
/// events claim one path equally, and when an event reaches no route.
#[test]
fn routing_problems_are_found() {
    let template = load_yaml("template.yaml");
    let (events, _) = template_api_events(&template);
    assert!(routing_problems(&events).is_empty());
    let without_media: Vec<ApiEvent> =
        events.iter().filter(|event| event.path.as_deref() != Some("/v1/{kind}/{slug}/media")).cloned().collect();
    let problems = routing_problems(&without_media);
    assert!(
        problems.iter().any(|p| p.starts_with("uploadMedia:") && p.contains("ProvisioningFunction")),
        "{problems:?}"
    );
    let mut doubled = events.clone();
    doubled.push(ApiEvent { name: "Twin".to_owned(), ..events[events.len() - 1].clone() });
    assert!(routing_problems(&doubled).iter().any(|p| p.contains("match it equally")));
    let mut stray = events.clone();
    let stray_event =
        ApiEvent { path: Some("/v1/nothing/{proxy+}".to_owned()), name: "Stray".to_owned(), ..events[0].clone() };
    stray.push(stray_event);
    assert!(routing_problems(&stray).iter().any(|p| p.starts_with("Stray: no route")));
}

/// A route is added in three files: the route table, its handler and `openapi.yaml` (ADR 0007, "Routes"). Here
/// the two ways back to more: an HTTP API event for one method (a route, not a prefix) in `template.yaml`, and a
/// catch-all arm in a function crate, which would let a route compile without its handler.
#[test]
fn a_route_is_added_in_three_files() {
    let template = load_yaml("template.yaml");
    let (events, mut problems) = template_api_events(&template);
    for event in events.iter().filter(|event| event.method != "ANY") {
        problems
            .push(format!("{}: {} is one method of a path; events are ANY-method prefixes", event.name, event.method));
    }
    for function in Function::ALL {
        let dir = repo_file(&format!("functions/{}/src", function.name()));
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            for (index, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("_ =>") {
                    problems.push(format!("{}:{}: a catch-all arm `{}`", path.display(), index + 1, line.trim()));
                }
            }
        }
    }
    assert_no_problems("a route would need more than its three files", &problems);
}

#[test]
fn template_builds_each_function_from_its_binary() {
    let template = load_yaml("template.yaml");
    let resources = &template["Resources"];
    let mut expected: Vec<(&str, &str)> =
        Function::ALL.iter().map(|function| (function.logical_id(), function.name())).collect();
    expected.push(("RetryWorkerFunction", "retry-worker"));

    let mut problems = Vec::new();
    for (logical_id, binary) in expected {
        let resource = &resources[logical_id];
        if resource.is_badvalue() {
            problems.push(format!("template.yaml has no resource {logical_id}"));
            continue;
        }
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            problems.push(format!("{logical_id}: Type must be AWS::Serverless::Function"));
        }
        let metadata = &resource["Metadata"];
        if metadata["BuildMethod"].as_str() != Some("rust-cargolambda") {
            problems.push(format!("{logical_id}: Metadata.BuildMethod must be rust-cargolambda"));
        }
        let found = metadata["BuildProperties"]["Binary"].as_str();
        if found != Some(binary) {
            problems.push(format!("{logical_id}: Metadata.BuildProperties.Binary is {found:?}, expected {binary:?}"));
        }
    }
    assert_no_problems("template.yaml builds the wrong binaries", &problems);
}

#[test]
fn template_uses_long_form_intrinsics_only() {
    let text = read_repo_file("template.yaml");
    let mut problems = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let chars: Vec<char> = line.chars().collect();
        for (at, pair) in chars.windows(2).enumerate() {
            let starts_token = at == 0 || matches!(chars[at - 1], ' ' | '\t' | '[' | ',' | '{');
            if pair[0] == '!' && pair[1].is_ascii_uppercase() && starts_token {
                problems.push(format!("line {}: short-form intrinsic tag in `{}`", index + 1, line.trim()));
                break;
            }
        }
    }
    assert_no_problems("template.yaml must use long-form intrinsics (`Ref:`, `Fn::GetAtt:` ...)", &problems);
}

// ------------------------------------------------------------------------------------------------------------------
// openapi.yaml
// ------------------------------------------------------------------------------------------------------------------

#[derive(Debug, PartialEq, Eq)]
struct Operation {
    operation_id: Option<String>,
    function: Option<String>,
    access: Option<String>,
}

/// Every operation of `openapi.yaml`, keyed by (METHOD, path).
fn openapi_operations(openapi: &Yaml) -> BTreeMap<(String, String), &Yaml> {
    let paths = openapi["paths"].as_hash().expect("openapi.yaml has no `paths` mapping");
    let mut operations = BTreeMap::new();
    for (path, item) in paths {
        let path = path.as_str().expect("openapi.yaml: path keys must be strings");
        let item = item.as_hash().unwrap_or_else(|| panic!("openapi.yaml: path {path} is not a mapping"));
        for (method, operation) in item {
            let Some(method) = method.as_str().filter(|method| OPENAPI_METHODS.contains(method)) else {
                continue;
            };
            operations.insert((method.to_ascii_uppercase(), path.to_owned()), operation);
        }
    }
    operations
}

#[test]
fn openapi_operations_are_exactly_the_route_table() {
    let openapi = load_yaml("openapi.yaml");
    let operations = openapi_operations(&openapi);
    let text = |operation: &Yaml, key: &str| operation[key].as_str().map(str::to_owned);

    let mut problems = Vec::new();
    let mut expected_keys = BTreeSet::new();
    for route in ROUTES {
        let key = (route.method.as_str().to_owned(), route.path.to_owned());
        expected_keys.insert(key.clone());
        let Some(operation) = operations.get(&key) else {
            problems.push(format!("missing from openapi.yaml: {}", describe_route(route)));
            continue;
        };
        let found = Operation {
            operation_id: text(operation, "operationId"),
            function: text(operation, "x-openmeet-function"),
            access: text(operation, "x-openmeet-access"),
        };
        let expected = Operation {
            operation_id: Some(route.operation_id.to_owned()),
            function: Some(route.function.name().to_owned()),
            access: Some(access_name(route.access).to_owned()),
        };
        if found != expected {
            let shown = |value: &Option<String>| value.clone().unwrap_or_else(|| "(missing)".to_owned());
            problems.push(format!(
                "{} {}: openapi.yaml has operationId {}, x-openmeet-function {}, x-openmeet-access {}; \
                 the route table says {}, {}, {}",
                key.0,
                key.1,
                shown(&found.operation_id),
                shown(&found.function),
                shown(&found.access),
                shown(&expected.operation_id),
                shown(&expected.function),
                shown(&expected.access),
            ));
        }
    }
    for ((method, path), operation) in &operations {
        if !expected_keys.contains(&(method.clone(), path.clone())) {
            problems.push(format!(
                "in openapi.yaml but not in shared::routes::ROUTES: {method} {path} (operationId {})",
                text(operation, "operationId").unwrap_or_else(|| "(missing)".to_owned())
            ));
        }
    }
    let mut seen = BTreeMap::new();
    for ((method, path), operation) in &operations {
        if let Some(id) = text(operation, "operationId")
            && let Some((other_method, other_path)) = seen.insert(id.clone(), (method, path))
        {
            problems.push(format!("operationId {id} is used by {other_method} {other_path} and {method} {path}"));
        }
    }
    assert_no_problems("openapi.yaml and the route table differ", &problems);
}

/// Follows a local `$ref` (`#/components/parameters/Slug`) once; anything else is returned as is.
fn resolve<'a>(root: &'a Yaml, node: &'a Yaml) -> Result<&'a Yaml, String> {
    let Some(reference) = node["$ref"].as_str() else {
        return Ok(node);
    };
    let pointer =
        reference.strip_prefix("#/").ok_or_else(|| format!("$ref {reference} is not local to openapi.yaml"))?;
    let mut target = root;
    for token in pointer.split('/') {
        let token = token.replace("~1", "/").replace("~0", "~");
        target = &target[token.as_str()];
    }
    if target.is_badvalue() { Err(format!("$ref {reference} points at nothing")) } else { Ok(target) }
}

#[test]
fn openapi_declares_every_path_parameter() {
    let openapi = load_yaml("openapi.yaml");
    let mut problems = Vec::new();
    for route in ROUTES {
        let item = &openapi["paths"][route.path];
        let operation = &item[route.method.as_str().to_ascii_lowercase().as_str()];
        if operation.is_badvalue() {
            problems.push(format!("missing from openapi.yaml: {}", describe_route(route)));
            continue;
        }
        let mut declared = BTreeSet::new();
        for list in [&item["parameters"], &operation["parameters"]] {
            let Some(list) = list.as_vec() else {
                continue;
            };
            for parameter in list {
                let parameter = match resolve(&openapi, parameter) {
                    Ok(parameter) => parameter,
                    Err(error) => {
                        problems.push(format!("{}: {error}", describe_route(route)));
                        continue;
                    }
                };
                if parameter["in"].as_str() != Some("path") {
                    continue;
                }
                let Some(name) = parameter["name"].as_str() else {
                    problems.push(format!("{}: a path parameter without a name", describe_route(route)));
                    continue;
                };
                if parameter["required"].as_bool() != Some(true) {
                    problems.push(format!("{}: path parameter {name} must be `required: true`", describe_route(route)));
                }
                if parameter["schema"].is_badvalue() {
                    problems.push(format!("{}: path parameter {name} has no schema", describe_route(route)));
                }
                declared.insert(name.to_owned());
            }
        }
        let in_path = path_parameters(route.path);
        for name in set_difference(&in_path, &declared) {
            problems.push(format!("{}: path parameter {{{name}}} is not declared", describe_route(route)));
        }
        for name in set_difference(&declared, &in_path) {
            problems.push(format!("{}: declares path parameter {name}, which the path lacks", describe_route(route)));
        }
    }
    assert_no_problems("openapi.yaml path parameters differ from the route table", &problems);
}

#[test]
fn openapi_security_matches_access() {
    let openapi = load_yaml("openapi.yaml");
    let global = openapi["security"].as_vec().expect("openapi.yaml needs a top-level `security` requirement");
    assert!(
        global.iter().any(|requirement| !requirement["bearerAuth"].is_badvalue()),
        "openapi.yaml: the top-level security must require bearerAuth"
    );
    assert_eq!(
        openapi["components"]["securitySchemes"]["bearerAuth"]["scheme"].as_str(),
        Some("bearer"),
        "openapi.yaml: components.securitySchemes.bearerAuth must be an http bearer scheme"
    );

    let operations = openapi_operations(&openapi);
    let mut problems = Vec::new();
    for route in ROUTES {
        let Some(operation) = operations.get(&(route.method.as_str().to_owned(), route.path.to_owned())) else {
            continue; // reported by openapi_operations_are_exactly_the_route_table
        };
        let security = &operation["security"];
        let anonymous = security.as_vec().is_some_and(|requirements| requirements.is_empty());
        match route.access {
            Access::Anyone if !anonymous => {
                problems.push(format!("{}: anyone may call it, so it needs `security: []`", describe_route(route)))
            }
            Access::Anyone => {}
            _ if anonymous => problems.push(format!(
                "{}: access is {}, but `security: []` makes it anonymous",
                describe_route(route),
                access_name(route.access)
            )),
            _ => {}
        }
    }
    assert_no_problems("openapi.yaml security differs from the route table", &problems);
}
