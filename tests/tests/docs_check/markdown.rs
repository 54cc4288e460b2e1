//! Reading the repository's markdown the way GitHub renders it: sections, heading anchors, link targets.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Build output, dependencies and local state: never documentation.
pub const SKIPPED_DIRS: [&str; 7] = ["target", ".git", ".local", "node_modules", ".aws-sam", "dist", "__pycache__"];

/// Files under `dir` whose name ends with one of `suffixes`, skipping build output and dependencies.
pub fn files(dir: &Path, suffixes: &[&str], found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_str()) {
                files(&path, suffixes, found);
            }
        } else if suffixes.iter().any(|s| name.ends_with(s)) {
            found.push(path);
        }
    }
}

/// The text of a markdown section: from the heading line `heading` to the next heading of the same or a higher level.
pub fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("no section {heading:?}")) + 1;
    let level = heading.chars().take_while(|c| *c == '#').count();
    let body = &text[start + heading.len()..];
    let end = body
        .match_indices("\n#")
        .find(|(i, _)| body[i + 1..].chars().take_while(|c| *c == '#').count() <= level)
        .map_or(body.len(), |(i, _)| i);
    &body[..end]
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces to `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Markdown outside fenced code blocks.
fn prose(text: &str) -> String {
    let mut fenced = false;
    let mut kept = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept
}

pub fn anchors(markdown: &str) -> BTreeSet<String> {
    prose(markdown).lines().filter(|l| l.starts_with('#')).map(|l| slug(l.trim_start_matches('#'))).collect()
}

/// `(target)` of every `[text](target)` outside code.
pub fn link_targets(markdown: &str) -> Vec<String> {
    let text = prose(markdown);
    let mut targets = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            targets.push(rest[..end].trim().to_owned());
        }
    }
    targets
}
