//! The layers of ADR 0007, checked by reading the sources: every `crate::…` path a file of `shared/src` names (and
//! every `shared::…` path of the HTTP functions and the cutover) must point to a layer it may know, and the
//! top-level modules of `shared`, like the domain's, import each other without a cycle; ARCHITECTURE.md names every
//! module placed in a layer. Comments and string literals are skipped; a failure names file:line and the rule.
//! Plain file reading: it runs in milliseconds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[path = "layers/scan.rs"]
mod scan;

use scan::{paths_in, source_files};

/// Modules that know nothing above them: other leaves at most.
const LEAVES: &[&str] = &["identity", "jobs", "long_step", "metrics", "routes", "settings", "token"];
/// The ports: the homeserver and AWS adapters, and what is built on them. They know leaves.
const PORTS: &[&str] = &["auth", "aws", "credentials", "homeserver"];
/// The one port built on another: acting as a user is a homeserver call.
const PORT_USES: &[(&str, &str)] = &[("credentials", "homeserver")];
/// The edge: HTTP, the API's error mapping, the write budget, configuration, composition (and their tests).
const EDGE: &[&str] =
    &["app", "config", "container", "error", "hostile_input", "http", "http_props", "ratelimit", "ratelimit_tests"];
/// The one item of the edge the domain may name: the clients it runs on.
const DOMAIN_MAY_NAME: &[&[&str]] = &[&["app", "App"]];

/// The domain's own layers: each module may import its own tier and those below.
const DOMAIN_TIERS: &[&[&str]] = &[
    // leaves (and `crate::domain`'s re-exports: DomainError, Outcome, OperationId)
    &["error", "outcome", "roles", "images", "room_policy", "rooms", "platform", "health"],
    // building blocks
    &["tenancy", "users", "room_lifecycle", "membership", "messages", "operations", "sessions", "direct", "push"],
    // orchestration
    &["requests", "replay", "drift", "retention", "reminders", "housekeeping", "cutover", "history_import"],
];

/// Crates outside `shared` with a layer of their own: what of `shared` they must not name.
const CRATES: &[(&str, &[&str], &str)] = &[
    ("functions/provisioning/src", HANDLERS_MUST_NOT, HANDLERS_WHY),
    ("functions/rooms/src", HANDLERS_MUST_NOT, HANDLERS_WHY),
    ("functions/membership/src", HANDLERS_MUST_NOT, HANDLERS_WHY),
    ("functions/messages/src", HANDLERS_MUST_NOT, HANDLERS_WHY),
    ("tools/cutover/src", &["http", "routes", "ratelimit", "container"], "a command, not an HTTP handler"),
];
const HANDLERS_MUST_NOT: &[&str] = &["homeserver", "aws", "credentials"];
const HANDLERS_WHY: &str = "an HTTP handler translates HTTP into domain calls and never reaches a port itself";

#[derive(Debug, PartialEq, Eq, Clone, Copy, PartialOrd, Ord)]
enum Layer {
    Leaf,
    Port,
    Domain,
    Edge,
}

fn layer(module: &str) -> Option<Layer> {
    if LEAVES.contains(&module) {
        Some(Layer::Leaf)
    } else if PORTS.contains(&module) {
        Some(Layer::Port)
    } else if module == "domain" {
        Some(Layer::Domain)
    } else {
        EDGE.contains(&module).then_some(Layer::Edge)
    }
}

fn domain_tier(module: &str) -> Option<usize> {
    DOMAIN_TIERS.iter().position(|tier| tier.contains(&module))
}

/// Why the module at `from` (its path in the crate) may not name `to`, or `None` when it may.
fn forbidden(from: &[String], to: &[String]) -> Option<String> {
    let (Some(source), Some(target)) = (from.first(), to.first()) else { return None };
    let Some(source_layer) = layer(source) else { return Some(format!("module `{source}` is in no layer (ADR 0007)")) };
    let Some(target_layer) = layer(target) else { return Some(format!("module `{target}` is in no layer (ADR 0007)")) };
    if source == target {
        return if source == "domain" { domain_forbidden(from, to) } else { None };
    }
    let allowed = match source_layer {
        Layer::Leaf => target_layer == Layer::Leaf,
        Layer::Port => target_layer == Layer::Leaf || PORT_USES.contains(&(source.as_str(), target.as_str())),
        Layer::Domain => {
            target_layer <= Layer::Port
                || DOMAIN_MAY_NAME.iter().any(|item| to.iter().map(String::as_str).eq(item.iter().copied()))
        }
        Layer::Edge => true,
    };
    (!allowed).then(|| format!("{source_layer:?} `{source}` must not know {target_layer:?} `{target}`"))
}

fn domain_forbidden(from: &[String], to: &[String]) -> Option<String> {
    let source = from.get(1)?;
    // `crate::domain::DomainError` and the other re-exports of the domain's root are its leaves.
    let target = match to.get(1) {
        Some(name) if name.starts_with(|c: char| c.is_ascii_lowercase()) => name.as_str(),
        _ => return None,
    };
    if source == target {
        return None;
    }
    let tier = |name: &str| domain_tier(name).ok_or_else(|| format!("domain module `{name}` is in no tier (ADR 0007)"));
    match (tier(source), tier(target)) {
        (Err(why), _) | (_, Err(why)) => Some(why),
        (Ok(s), Ok(t)) => (t > s).then(|| format!("domain `{source}` (tier {s}) must not know `{target}` (tier {t})")),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every import of `shared/src` as (file:line, from, to), `crate::App` read as the `app::App` lib.rs re-exports.
fn shared_imports() -> Vec<(String, Vec<String>, Vec<String>)> {
    let src = root().join("shared/src");
    let files = source_files(&src);
    let modules: BTreeSet<&[String]> = files.iter().map(|(_, module)| module.as_slice()).collect();
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap_or_default();
    let reexports: BTreeMap<String, Vec<String>> = paths_in(&lib.replace("pub use ", "pub use crate::"), "crate", &[])
        .into_iter()
        .filter_map(|named| Some((named.path.last()?.clone(), named.path)))
        .collect();
    let mut imports = Vec::new();
    for (file, module) in &files {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for named in paths_in(&text, "crate", module) {
            let mut path = named.path;
            if let Some(full) = path.first().and_then(|name| reexports.get(name)) {
                path.splice(..1, full.iter().cloned());
            }
            // `super::x` from a file's inline `mod tests` names the file's own items: keep it only if it is a module.
            if named.relative && !modules.contains(&path[..path.len().min(2)]) {
                continue;
            }
            let at = format!("{}:{}", file.strip_prefix(root()).unwrap_or(file).display(), named.line);
            imports.push((at, module.clone(), path));
        }
    }
    imports
}

#[test]
fn shared_imports_go_downwards_only() {
    let violations: Vec<String> = shared_imports()
        .into_iter()
        .filter_map(|(at, from, to)| forbidden(&from, &to).map(|why| format!("{at}: crate::{}: {why}", to.join("::"))))
        .collect();
    assert!(violations.is_empty(), "forbidden imports (ADR 0007):\n{}", violations.join("\n"));
}

#[test]
fn the_modules_import_each_other_without_a_cycle() {
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut domain: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, from, to) in shared_imports() {
        let (Some(source), Some(target)) = (from.first(), to.first()) else { continue };
        if source != target {
            top.entry(source.clone()).or_default().insert(target.clone());
        } else if source == "domain"
            && let (Some(s), Some(t)) = (from.get(1), to.get(1))
            && s != t
            && t.starts_with(|c: char| c.is_ascii_lowercase())
        {
            domain.entry(s.clone()).or_default().insert(t.clone());
        }
    }
    for (what, graph) in [("shared's top-level modules", &top), ("the domain's modules", &domain)] {
        if let Some(cycle) = scan::cycle(graph) {
            panic!("a cycle between {what}: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_handlers_and_the_cutover_keep_to_their_layer() {
    let mut violations = Vec::new();
    for (dir, must_not, why) in CRATES {
        for (file, _) in source_files(&root().join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            for named in paths_in(&text, "shared", &[]) {
                if named.path.first().is_some_and(|module| must_not.contains(&module.as_str())) {
                    let at = file.strip_prefix(root()).unwrap_or(&file).display().to_string();
                    violations.push(format!("{at}:{}: shared::{}: {why}", named.line, named.path.join("::")));
                }
            }
        }
    }
    assert!(violations.is_empty(), "forbidden imports (ADR 0007):\n{}", violations.join("\n"));
}

/// ARCHITECTURE.md's code map names every module placed in a layer here (test-only modules aside), so a new module
/// is placed in both.
#[test]
fn the_code_map_names_every_module_in_a_layer() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap_or_default();
    let tests_only = ["hostile_input", "http_props", "ratelimit_tests"];
    let modules = LEAVES.iter().chain(PORTS).chain(EDGE).chain(DOMAIN_TIERS.iter().flat_map(|tier| tier.iter()));
    let missing: Vec<&&str> = modules
        .filter(|name| !tests_only.contains(name))
        .filter(|name| !map.contains(&format!("`{name}`")) && !map.contains(&format!("`{name}/`")))
        .collect();
    assert!(missing.is_empty(), "modules ARCHITECTURE.md's code map does not name: {missing:?}");
}

/// The rules themselves, on made-up imports: each kind of violation is caught, the allowed ones pass.
#[test]
fn the_rules_catch_each_kind_of_violation() {
    let p = |path: &str| path.split("::").map(str::to_owned).collect::<Vec<_>>();
    let denied = [
        ("domain::replay", "config::RetryPolicy"),
        ("domain::messages::send", "ratelimit::limited"),
        ("domain::users", "error::ApiError"),
        ("domain::users", "http::Reply"),
        ("domain::users", "app::init_logging"),
        ("homeserver::ops", "domain::DomainError"),
        ("aws::vault", "homeserver::AccessToken"),
        ("homeserver", "aws::store"),
        ("settings", "config::Config"),
        ("identity", "auth::Caller"),
        ("domain::rooms", "domain::membership::apply"),
        ("domain::sessions", "domain::history_import::IMPORT_DEVICE"),
        ("domain::users", "domain::brand_new::thing"),
        ("brand_new", "identity::TenantId"),
    ];
    for (from, to) in denied {
        assert!(forbidden(&p(from), &p(to)).is_some(), "{from} -> {to} should be refused");
    }
    let allowed = [
        ("domain::users", "app::App"),
        ("domain::users", "homeserver::HomeserverError"),
        ("domain::rooms", "domain::DomainError"),
        ("domain::replay", "domain::membership"),
        ("credentials", "homeserver::Homeserver"),
        ("identity", "settings::ConfigError"),
        ("http", "domain::requests"),
    ];
    for (from, to) in allowed {
        assert_eq!(forbidden(&p(from), &p(to)), None, "{from} -> {to}");
    }
}
