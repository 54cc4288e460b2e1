//! The documentation agrees with the code (issue 27). No services needed: it reads files and runs the two
//! command-line tools' `--help`. Fails with every problem at once, one per line:
//! - every link inside the repository (markdown links in `*.md`, anchors included) resolves, and nothing points
//!   outside the repository;
//! - routes are documented in openapi.yaml only: docs/integration.md points there, with no row per route;
//! - every flag of `openmeet-cutover` and `openmeet-local` has help text, and their `--help` names the exit codes,
//!   the environment, an example and a runbook;
//! - the README's ADR index is docs/adr/, and its code map names every top-level folder;
//! - the README's prerequisites are the Debian packages the scripts install, and the Node.js version they check;
//! - the contradictions issue 27 found stay fixed: every operation that can answer 202 is listed as deferred,
//!   every error status whose openapi response declares `Retry-After` sends one, a refused appservice token is a
//!   retryable 503, and every `OPENMEET_*`/`MATRIX_*` setting the docs name exists in the code.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use integration_tests::repo_root;
use shared::error::ApiError;
use shared::homeserver::HomeserverError;
use shared::routes::ROUTES;
use yaml_rust2::YamlLoader;

#[path = "docs_check/markdown.rs"]
mod markdown;

use markdown::{SKIPPED_DIRS, anchors, files, link_targets, section};

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn assert_none(what: &str, problems: &[String]) {
    assert!(problems.is_empty(), "{what}:\n  - {}", problems.join("\n  - "));
}

#[test]
fn links_inside_the_repository_resolve() {
    let root = repo_root();
    let mut markdown = Vec::new();
    files(&root, &[".md"], &mut markdown);
    let mut problems = Vec::new();
    for file in &markdown {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let name = file.strip_prefix(&root).unwrap_or(file).display().to_string();
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") || target.is_empty() {
                continue;
            }
            let (path, anchor) = target.split_once('#').map_or((target.as_str(), None), |(p, a)| (p, Some(a)));
            let resolved = if path.is_empty() { file.clone() } else { file.parent().unwrap_or(&root).join(path) };
            if !resolved.exists() {
                problems.push(format!("{name}: link to {target}: no such file"));
                continue;
            }
            let markdown_target = resolved.extension().is_some_and(|e| e == "md");
            if let (Some(anchor), true) = (anchor, markdown_target) {
                let headings = anchors(&std::fs::read_to_string(&resolved).unwrap_or_default());
                if !headings.contains(anchor) {
                    problems.push(format!("{name}: link to {target}: no heading with that anchor"));
                }
            }
        }
    }
    assert_none("links that do not resolve", &problems);
}

#[test]
fn nothing_points_outside_the_repository() {
    let root = repo_root();
    // Built from parts, so this file does not find itself.
    let needles = [["..", "/shared/"].concat(), ["shared", "/design"].concat()];
    let mut sources = Vec::new();
    let suffixes = [".md", ".rs", ".yaml", ".yml", ".toml", ".sh", ".py", ".js", ".mjs", ".tmpl", ".conf"];
    files(&root, &suffixes, &mut sources);
    let problems: Vec<String> = sources
        .iter()
        .filter_map(|file| {
            let text = std::fs::read_to_string(file).ok()?;
            let needle = needles.iter().find(|n| text.contains(n.as_str()))?;
            Some(format!("{} names {needle}", file.strip_prefix(&root).unwrap_or(file).display()))
        })
        .collect();
    assert_none("files pointing outside the repository", &problems);
}

/// A route is documented once, in openapi.yaml: the guide points there instead of repeating a row per route, so
/// adding a route edits no guide. It names no route template of the table in its route reference.
#[test]
fn the_integration_guide_points_at_openapi_for_routes() {
    let guide = read("docs/integration.md");
    let reference = section(&guide, "## Route reference");
    let mut problems = Vec::new();
    if !reference.contains("(../openapi.yaml)") {
        problems.push("its \"Route reference\" section does not link openapi.yaml".to_owned());
    }
    for route in ROUTES {
        let cell = format!("`{} {}`", route.method.as_str(), route.path);
        if reference.contains(&cell) {
            problems.push(format!("its \"Route reference\" repeats {cell}, which openapi.yaml states"));
        }
    }
    assert_none("the integration guide's route reference", &problems);
}

/// Builds `bin` of `package` once per test run (the tests crate cannot depend on a binary) and runs it.
fn run(package: &str, bin: &str, args: &[&str]) -> (i32, String) {
    // Built once per test binary run: the tools' help is read many times.
    static BUILT: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());
    let mut built = BUILT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !built.contains(bin) {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--locked", "-q", "-p", package, "--bin", bin])
            .current_dir(repo_root())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building {bin} failed");
        built.insert(bin.to_owned());
    }
    drop(built);
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| repo_root().join("target"));
    let output = Command::new(target.join("debug").join(bin)).args(args).output().expect("the binary runs");
    let text = [output.stdout, output.stderr].concat();
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&text).into_owned())
}

/// Flag lines of a help text (`  --flag …` or `  -f, --flag …`) that carry no description after the flag.
fn undescribed_flags(help: &str) -> Vec<String> {
    help.lines()
        .map(str::trim)
        .filter(|line| line.starts_with("--") || (line.starts_with('-') && line.contains(", --")))
        .filter(|line| {
            // Description: text after a gap of two or more spaces following the flag (and its value name).
            // clap prints `[default: …]` there even for a flag without a description.
            line.split_once("  ").is_none_or(|(_, description)| {
                let text = description.split('[').next().unwrap_or_default();
                text.trim().is_empty()
            })
        })
        .map(str::to_owned)
        .collect()
}

fn runbook_problems(tool: &str, help: &str) -> Vec<String> {
    ["Exit codes", "Environment", "Example", "docs/"]
        .iter()
        .filter(|needle| !help.contains(**needle))
        .map(|needle| format!("{tool} --help does not name {needle:?}"))
        .collect()
}

#[test]
fn every_cutover_flag_has_help_text() {
    let (code, help) = run("openmeet-cutover", "openmeet-cutover", &["--help"]);
    assert_eq!(code, 0, "{help}");
    let mut problems = runbook_problems("openmeet-cutover", &help);
    let commands = subcommands(&help);
    assert!(commands.len() >= 5, "no subcommands found in:\n{help}");
    for command in commands {
        let (code, help) = run("openmeet-cutover", "openmeet-cutover", &[&command, "--help"]);
        assert_eq!(code, 0, "{command}: {help}");
        problems.extend(runbook_problems(&format!("openmeet-cutover {command}"), &help));
        problems.extend(undescribed_flags(&help).into_iter().map(|f| format!("openmeet-cutover {command}: {f}")));
    }
    assert_none("openmeet-cutover flags without help text", &problems);
}

/// The subcommands a clap `--help` lists (its `Commands:` section), without `help`.
fn subcommands(help: &str) -> Vec<String> {
    help.split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

/// `openmeet-local`: a group per job (stack, ops, serve, bootstrap); every command of every group, as the cutover's.
#[test]
fn every_local_tool_flag_has_help_text() {
    let (code, help) = run("openmeet-local", "openmeet-local", &["--help"]);
    assert_eq!(code, 0, "{help}");
    let mut problems = runbook_problems("openmeet-local", &help);
    let groups = subcommands(&help);
    let mut ops = Vec::new();
    for group in &groups {
        let (code, text) = run("openmeet-local", "openmeet-local", &[group, "--help"]);
        let commands = subcommands(&text);
        if group == "ops" {
            ops.clone_from(&commands);
        }
        let mut paths: Vec<Vec<&str>> = commands.iter().map(|c| vec![group.as_str(), c.as_str()]).collect();
        if commands.is_empty() {
            paths.push(vec![group.as_str()]);
        } else if code != 0 {
            problems.push(format!("openmeet-local {group} --help: exit {code}: {text}"));
        }
        for path in paths {
            let name = format!("openmeet-local {}", path.join(" "));
            let (code, text) = run("openmeet-local", "openmeet-local", &[&path[..], &["--help"]].concat());
            if code != 0 || !text.contains(&name) {
                problems.push(format!("{name} --help: exit {code}: {text}"));
            }
            problems.extend(runbook_problems(&name, &text));
            problems.extend(undescribed_flags(&text).into_iter().map(|f| format!("{name}: {f}")));
        }
    }
    // The commands the runbooks and the README name.
    for command in
        ["redrive", "upgrade-rooms", "drift-repair", "retention", "reminders", "sweep-expired", "sweep-sessions"]
    {
        if !ops.iter().any(|c| c == command) {
            problems.push(format!("openmeet-local ops --help does not list {command}"));
        }
    }
    for group in ["stack", "ops", "serve"] {
        if !groups.iter().any(|g| g == group) {
            problems.push(format!("openmeet-local --help does not list {group}"));
        }
    }
    assert_none("openmeet-local flags without help text", &problems);
}

#[test]
fn the_adr_index_is_docs_adr() {
    let mut adrs = Vec::new();
    files(&repo_root().join("docs/adr"), &[".md"], &mut adrs);
    let on_disk: BTreeSet<String> =
        adrs.iter().filter_map(|p| p.file_name()).map(|n| format!("docs/adr/{}", n.to_string_lossy())).collect();
    let readme = read("README.md");
    let index: BTreeSet<String> = link_targets(section(&readme, "## Decisions (ADRs)")).into_iter().collect();
    let mut problems: Vec<String> =
        on_disk.difference(&index).map(|a| format!("{a} is missing from the README's ADR index")).collect();
    problems
        .extend(index.difference(&on_disk).map(|a| format!("the README's ADR index names {a}, which is not there")));
    assert_none("README ADR index vs docs/adr", &problems);
}

#[test]
fn the_code_map_names_every_top_level_folder() {
    let readme = read("README.md");
    let map = section(&readme, "## Code map");
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(repo_root()).expect("the repository").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let hidden = name.starts_with('.') && name != ".ci";
        let folder = entry.path().is_dir() && !hidden && !SKIPPED_DIRS.contains(&name.as_str());
        if folder && !map.contains(&format!("[`{name}/`]({name})")) {
            problems.push(format!("{name}/ has no entry [`{name}/`]({name}) in the README's code map"));
        }
    }
    assert_none("top-level folders missing from the code map", &problems);
}

/// Debian packages the project's scripts and supervisor install with apt-get.
fn installed_packages() -> BTreeSet<String> {
    let root = repo_root();
    let mut sources = Vec::new();
    files(&root.join("scripts"), &[".sh"], &mut sources);
    files(&root.join("functions/local/src"), &[".rs"], &mut sources);
    let mut packages = BTreeSet::new();
    let is_package = |w: &str| {
        !w.is_empty()
            && !w.starts_with('-')
            && w.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c))
    };
    for file in sources {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#') && !l.trim_start().starts_with("//")) {
            // Shell: `apt-get install -y -q a b`; Rust: `apt_install(&["a", "b"])`, `&["install", "-y", "a"]`,
            // and the `missing.push("a")` lists handed to apt_install.
            if let Some(rest) = line.split("apt-get install").nth(1) {
                packages.extend(
                    rest.split_whitespace()
                        .take_while(|w| is_package(w) || w.starts_with('-'))
                        .filter(|w| is_package(w))
                        .map(str::to_owned),
                );
            }
            let quoted: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
            let listed =
                line.contains("apt_install(&[") || line.contains("&[\"install\"") || line.contains("missing.push(\"");
            if listed && !line.contains("format!") {
                let words = quoted.into_iter().filter(|w| is_package(w) && !["install", "apt-get"].contains(w));
                packages.extend(words.map(str::to_owned));
            }
        }
    }
    packages
}

#[test]
fn the_prerequisites_are_what_the_scripts_install() {
    let readme = read("README.md");
    let prerequisites = section(&readme, "### Prerequisites");
    let listed_line = prerequisites
        .split("\n- ")
        .find(|item| item.starts_with("Debian packages installed when missing"))
        .expect("a 'Debian packages installed when missing' item in the README's Prerequisites");
    let listed: BTreeSet<String> =
        listed_line.split('`').skip(1).step_by(2).filter(|w| !w.contains([' ', '/'])).map(str::to_owned).collect();
    let installed = installed_packages();
    let mut problems: Vec<String> = installed
        .difference(&listed)
        .map(|p| format!("the scripts install {p}; the README does not list it"))
        .collect();
    problems.extend(listed.difference(&installed).map(|p| format!("the README lists {p}; no script installs it")));
    // The Node.js version the page's build checks (`major < N`).
    let web = read("functions/local/src/stack/web_page.rs");
    let node = web.split("major < ").nth(1).and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()).unwrap_or("?");
    if !prerequisites.contains(&format!("Node.js ≥ {node}")) {
        problems.push(format!("the build checks Node.js ≥ {node}; the prerequisites do not say so"));
    }
    if !installed.is_empty() && !prerequisites.contains("root") {
        problems.push("the scripts install with apt-get, which needs root; the prerequisites do not say so".into());
    }
    assert_none("README prerequisites vs the scripts", &problems);
}

#[test]
fn every_operation_that_can_queue_is_listed_as_deferred() {
    let text = read("openapi.yaml");
    let doc = &YamlLoader::load_from_str(&text).expect("openapi.yaml parses")[0];
    let info = doc["info"]["description"].as_str().unwrap_or_default();
    // The list: "The deferrable writes are … `x`, `y`. Every other operation …".
    let deferred = info
        .split("The deferrable writes are")
        .nth(1)
        .and_then(|s| s.split(". Every other").next())
        .expect("openapi's \"Deferred writes\" lists the deferrable writes");
    let mut problems = Vec::new();
    for (_, item) in doc["paths"].as_hash().into_iter().flatten() {
        for (_, operation) in item.as_hash().into_iter().flatten() {
            let Some(id) = operation["operationId"].as_str() else { continue };
            let queues = operation["responses"].as_hash().is_some_and(|r| r.keys().any(|k| k.as_str() == Some("202")));
            let named = deferred.contains(&format!("`{id}`"));
            if queues && !named {
                problems.push(format!("{id} answers 202 but \"Deferred writes\" does not list it"));
            }
            if named && !queues {
                problems.push(format!("\"Deferred writes\" lists {id}, which has no 202 response"));
            }
        }
    }
    assert_none("openapi's deferred writes", &problems);
}

/// One answer of each kind the API gives, to compare with what openapi promises per status.
fn every_error() -> Vec<ApiError> {
    let retry = Duration::from_secs(3);
    vec![
        ApiError::bad_request("invalid_body", "x"),
        ApiError::Unauthorized("x"),
        ApiError::forbidden("x"),
        ApiError::not_found("x"),
        ApiError::conflict("conflict", "x"),
        ApiError::InProgress,
        ApiError::PayloadTooLarge("x".into()),
        ApiError::UnsupportedMediaType("x"),
        ApiError::RateLimited { retry_after: retry },
        ApiError::TooManyRequests { retry_after: retry, scope: "user" },
        ApiError::HomeserverUnavailable { retry_after: retry },
        ApiError::HomeserverRejected("x".into()),
        ApiError::DependencyUnavailable { retry_after: retry },
        ApiError::Internal,
    ]
}

#[test]
fn every_status_whose_response_declares_retry_after_sends_it() {
    let text = read("openapi.yaml");
    let doc = &YamlLoader::load_from_str(&text).expect("openapi.yaml parses")[0];
    let responses = &doc["components"]["responses"];
    let declares = |name: &str| !responses[name]["headers"]["Retry-After"].is_badvalue();
    let mut statuses = BTreeSet::new();
    for (_, item) in doc["paths"].as_hash().into_iter().flatten() {
        for (_, operation) in item.as_hash().into_iter().flatten() {
            for (status, response) in operation["responses"].as_hash().into_iter().flatten() {
                let name = response["$ref"].as_str().and_then(|r| r.rsplit('/').next()).unwrap_or_default();
                if declares(name) {
                    statuses.insert(status.as_str().and_then(|s| s.parse::<u16>().ok()).unwrap_or_default());
                }
            }
        }
    }
    assert!(statuses.contains(&502) && statuses.contains(&503), "openapi declares Retry-After on {statuses:?}");
    let problems: Vec<String> = every_error()
        .into_iter()
        .filter(|e| statuses.contains(&e.status()) && e.retry_after_secs().is_none())
        .map(|e| format!("{} {} is sent without the Retry-After openapi declares", e.status(), e.code()))
        .collect();
    assert_none("answers missing Retry-After", &problems);
}

#[test]
fn a_refused_appservice_token_is_a_retryable_503_as_adr_0004_says() {
    let answer = ApiError::from(HomeserverError::UnknownToken);
    assert_eq!((answer.status(), answer.retryable()), (503, true), "a token rotation must not turn writes into drops");
    assert!(answer.retry_after_secs().is_some());
    assert!(read("docs/adr/0004-secrets.md").contains("retryable `503"), "ADR 0004 states the rotation's answer");
}

/// `OPENMEET_…`/`MATRIX_…` names in `text`.
fn setting_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("OPENMEET_").chain(text.match_indices("MATRIX_")) {
        if at > 0 && text[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let name: String =
            text[at..].chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
        if !name.ends_with('_') {
            names.insert(name);
        }
    }
    names
}

#[test]
fn every_setting_the_docs_name_exists_in_the_code() {
    let root = repo_root();
    let mut docs = Vec::new();
    files(&root, &[".md"], &mut docs);
    files(&root.join("synapse-module"), &[".py"], &mut docs);
    let mut code = Vec::new();
    for dir in ["shared", "functions", "tools", "tests", "scripts"] {
        files(&root.join(dir), &[".rs", ".sh", ".tmpl", ".py", ".js"], &mut code);
    }
    let mut code_text = read("template.yaml");
    for file in code {
        code_text.push_str(&std::fs::read_to_string(file).unwrap_or_default());
    }
    let mut defined = setting_names(&code_text);
    // A device id, not a setting: ADR 0005 names a device the MAS plan would add.
    defined.insert("OPENMEET_ADMIN".into());
    let mut problems = Vec::new();
    for file in docs {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for name in setting_names(&text).difference(&defined) {
            problems.push(format!(
                "{} names {name}, which no code reads",
                file.strip_prefix(&root).unwrap_or(&file).display()
            ));
        }
    }
    assert_none("settings the docs name that do not exist", &problems);
}
