//! API Gateway's HTTP API route selection, replayed over `template.yaml`'s `HttpApi` events: which function a
//! request of the route table reaches.

use std::collections::BTreeSet;

use shared::routes::{Function, ROUTES, Route};
use yaml_rust2::Yaml;

/// One `HttpApi` event of `template.yaml`: a route of API Gateway (`path: None` is the `$default` route).
#[derive(Debug, Clone)]
pub struct ApiEvent {
    pub function: String,
    pub method: String,
    pub path: Option<String>,
    pub name: String,
}

/// Every `HttpApi` event of the template, and what is wrong with their shape.
pub fn template_api_events(template: &Yaml) -> (Vec<ApiEvent>, Vec<String>) {
    let resources = template["Resources"].as_hash().expect("template.yaml has no `Resources` mapping");
    let (mut events, mut problems) = (Vec::new(), Vec::new());
    for (logical_id, resource) in resources {
        let logical_id = logical_id.as_str().expect("template.yaml: resource logical ids must be strings");
        let Some(declared) = resource["Properties"]["Events"].as_hash() else {
            continue;
        };
        for (event_id, event) in declared {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let name = format!("{logical_id}.Events.{}", event_id.as_str().unwrap_or("<non-string event id>"));
            if !Function::ALL.iter().any(|function| function.logical_id() == logical_id) {
                problems.push(format!("{name}: only the route table's functions are on the HTTP API"));
            }
            let properties = &event["Properties"];
            if properties["ApiId"]["Ref"].as_str() != Some("HttpApi") {
                problems.push(format!("{name}: ApiId must be `Ref: HttpApi`"));
            }
            let (method, path) = match (properties["Method"].as_str(), properties["Path"].as_str()) {
                (Some(method), Some(path)) => (method.to_ascii_uppercase(), Some(path.to_owned())),
                // SAM's `$default` route: neither Method nor Path.
                (None, None) if properties["Method"].is_badvalue() && properties["Path"].is_badvalue() => {
                    ("ANY".to_owned(), None)
                }
                _ => {
                    problems.push(format!("{name}: an HttpApi event needs a string Method and Path, or neither"));
                    continue;
                }
            };
            events.push(ApiEvent { function: logical_id.to_owned(), method, path, name });
        }
    }
    if events.iter().filter(|event| event.path.is_none()).count() > 1 {
        problems.push("more than one $default route (an HttpApi event without Method and Path)".to_owned());
    }
    (events, problems)
}

/// How well an event's path matches `segments`, best first: a full match (more literal segments first), then a
/// greedy `{name+}` match (longer prefix first), then `$default`; `None` when it does not match.
fn api_gateway_rank(template: Option<&str>, segments: &[&str]) -> Option<(u8, usize)> {
    let Some(template) = template else {
        return Some((2, 0));
    };
    let parts: Vec<&str> = template.split('/').collect();
    let greedy = parts.last().is_some_and(|last| last.starts_with('{') && last.ends_with("+}"));
    let fixed = if greedy { &parts[..parts.len() - 1] } else { &parts[..] };
    let fits = if greedy { segments.len() > fixed.len() } else { segments.len() == fixed.len() };
    // A greedy variable needs at least one non-empty segment: `/{proxy+}` does not match `/`.
    if !fits || (greedy && segments[fixed.len()..].iter().all(|segment| segment.is_empty())) {
        return None;
    }
    let mut literals = 0;
    for (part, segment) in fixed.iter().zip(segments) {
        if part.starts_with('{') {
            if segment.is_empty() {
                return None;
            }
        } else if part == segment {
            literals += 1;
        } else {
            return None;
        }
    }
    Some(if greedy { (1, usize::MAX - fixed.len()) } else { (0, usize::MAX - literals) })
}

/// API Gateway's route selection for HTTP APIs ("Routing API requests" in its developer guide): a full match of
/// path and method, then a greedy path variable, then `$default`; an explicit method beats `ANY` on the same path.
/// Two events equally good for one request are reported: the template must not leave the choice to AWS.
pub fn api_gateway_select<'a>(
    events: &'a [ApiEvent],
    method: &str,
    path: &str,
) -> Result<Option<&'a ApiEvent>, String> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut ranked: Vec<((u8, usize, bool), &ApiEvent)> = events
        .iter()
        .filter(|event| event.method == "ANY" || event.method == method)
        .filter_map(|event| {
            let (class, specificity) = api_gateway_rank(event.path.as_deref(), &segments)?;
            Some(((class, specificity, event.method == "ANY"), event))
        })
        .collect();
    ranked.sort_by_key(|(rank, _)| *rank);
    match ranked.as_slice() {
        [] => Ok(None),
        [(best, event), (next, other), ..] if best == next => {
            Err(format!("{method} {path}: both {} and {} match it equally", event.name, other.name))
        }
        [(_, event), ..] => Ok(Some(event)),
    }
}

/// The `routeKey` API Gateway puts in a route's events: the event it selects (`ANY {path}`, or `$default`).
pub fn route_key(events: &[ApiEvent], route: &Route) -> Option<String> {
    let path = sample_paths(route).into_iter().next()?;
    let event = api_gateway_select(events, route.method.as_str(), &path).ok()??;
    Some(event.path.as_ref().map_or_else(|| "$default".to_owned(), |path| format!("{} {path}", event.method)))
}

/// Concrete request paths for a route template: each parameter filled with a sample (`{kind}` with both kinds).
fn sample_paths(route: &Route) -> Vec<String> {
    let fill = |kind: &str| {
        let segments = route.path.split('/').map(|segment| match segment {
            "{kind}" => kind.to_owned(),
            segment if segment.starts_with('{') => "x1".to_owned(),
            segment => segment.to_owned(),
        });
        segments.collect::<Vec<_>>().join("/")
    };
    let mut paths = vec![fill("groups"), fill("events")];
    paths.dedup();
    paths
}

/// Where API Gateway would send each route of the table, given `events`, and what is wrong with that.
pub fn routing_problems(events: &[ApiEvent]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut reached = BTreeSet::new();
    for route in ROUTES {
        for path in sample_paths(route) {
            match api_gateway_select(events, route.method.as_str(), &path) {
                Ok(Some(event)) if event.function == route.function.logical_id() => {
                    reached.insert(event.name.clone());
                }
                Ok(Some(event)) => problems.push(format!(
                    "{}: {} {path} reaches {} ({}), the route table says {}",
                    route.operation_id,
                    route.method,
                    event.function,
                    event.name,
                    route.function.logical_id()
                )),
                Ok(None) => {
                    problems.push(format!("{}: {} {path} matches no HttpApi event", route.operation_id, route.method))
                }
                Err(ambiguous) => problems.push(ambiguous),
            }
        }
    }
    for event in events.iter().filter(|event| event.path.is_some()) {
        if !reached.contains(&event.name) {
            problems.push(format!("{}: no route of the table reaches it", event.name));
        }
    }
    match api_gateway_select(events, "GET", "/v1/no-such-route") {
        Ok(Some(event)) if event.path.is_none() && event.function == Function::Provisioning.logical_id() => {}
        other => problems.push(format!("an unknown path must reach $default on ProvisioningFunction, got {other:?}")),
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The selection above agrees with API Gateway's documented examples, so the check means what it says.
    #[test]
    fn api_gateway_selection_follows_the_documented_priorities() {
        let event = |method: &str, path: Option<&str>, name: &str| ApiEvent {
            function: name.to_owned(),
            method: method.to_owned(),
            path: path.map(str::to_owned),
            name: name.to_owned(),
        };
        let events = [
            event("GET", Some("/pets/dog/1"), "exact"),
            event("GET", Some("/pets/dog/{id}"), "variable"),
            event("GET", Some("/pets/{proxy+}"), "greedy"),
            event("ANY", Some("/{proxy+}"), "any-greedy"),
            event("ANY", None, "default"),
        ];
        let chosen = |method: &str, path: &str| {
            api_gateway_select(&events, method, path).expect("unambiguous").map(|event| event.name.as_str())
        };
        assert_eq!(chosen("GET", "/pets/dog/1"), Some("exact"));
        assert_eq!(chosen("GET", "/pets/dog/2"), Some("variable"));
        assert_eq!(chosen("GET", "/pets/cat/1"), Some("greedy"));
        assert_eq!(chosen("POST", "/pets/cat/1"), Some("any-greedy"));
        assert_eq!(chosen("GET", "/"), Some("default"));
    }
}
