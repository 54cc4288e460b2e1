//! Reading Rust sources just well enough for the layer test: which files make up which module, the paths a file
//! names (`crate::a::{b, c::d}`, `super::x`), with comments and string literals blanked out first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, with its module path (`domain/drift/mod.rs` → `["domain", "drift"]`).
pub fn source_files(dir: &Path) -> Vec<(PathBuf, Vec<String>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let entries = std::fs::read_dir(&next).unwrap_or_else(|e| panic!("{}: {e}", next.display()));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let relative = path.strip_prefix(dir).unwrap_or(&path).with_extension("");
                let mut module: Vec<String> =
                    relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                if matches!(module.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                    module.pop();
                }
                files.push((path, module));
            }
        }
    }
    files.sort();
    files
}

/// The text with comments, strings and character literals replaced by spaces (line breaks kept).
pub fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let (c, next) = (chars[i], chars.get(i + 1).copied());
        let end = if c == '/' && next == Some('/') {
            chars[i..].iter().position(|&c| c == '\n').map_or(chars.len(), |n| i + n)
        } else if c == '/' && next == Some('*') {
            block_comment_end(&chars, i)
        } else if c == '"' || (c == 'r' && matches!(next, Some('"' | '#')) && !ident_before(&chars, i)) {
            string_end(&chars, i)
        } else if c == '\'' {
            char_literal_end(&chars, i)
        } else {
            out.push(c);
            i += 1;
            continue;
        };
        out.extend(chars[i..end].iter().map(|&c| blank(c)));
        i = end;
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

fn block_comment_end(chars: &[char], start: usize) -> usize {
    let (mut depth, mut i) = (0, start);
    while i + 1 < chars.len() {
        match (chars[i], chars[i + 1]) {
            ('/', '*') => (depth, i) = (depth + 1, i + 2),
            ('*', '/') => {
                (depth, i) = (depth - 1, i + 2);
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    chars.len()
}

/// The end of `"…"`, `r"…"` or `r#"…"#` starting at `start`.
fn string_end(chars: &[char], start: usize) -> usize {
    let mut i = start;
    if chars[i] == 'r' {
        i += 1;
        let hashes = chars[i..].iter().take_while(|&&c| c == '#').count();
        i += hashes + 1;
        while i < chars.len() {
            if chars[i] == '"' && chars[i + 1..].iter().take(hashes).filter(|&&c| c == '#').count() == hashes {
                return i + 1 + hashes;
            }
            i += 1;
        }
        return chars.len();
    }
    i += 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// The end of a character literal at `start`, or just past the quote of a lifetime (`'a`).
fn char_literal_end(chars: &[char], start: usize) -> usize {
    match (chars.get(start + 1), chars.get(start + 2)) {
        (Some('\\'), _) => chars[start + 2..].iter().position(|&c| c == '\'').map_or(chars.len(), |n| start + 3 + n),
        (Some(_), Some('\'')) => start + 3,
        _ => start + 1,
    }
}

/// A path a file names: its line, its segments from the crate's root, and whether it was written `super::…`.
pub struct Named {
    pub line: usize,
    pub path: Vec<String>,
    pub relative: bool,
}

/// Every path starting with `root::` (`crate` or an external crate's name) or `super::` in `text`. `super::` is
/// resolved against `module` (the file's module path) as if the file had no inline module: the caller keeps it only
/// when it names a module (a file's own `mod tests` cannot be told apart by reading alone).
pub fn paths_in(text: &str, root: &str, module: &[String]) -> Vec<Named> {
    let code = code_only(text);
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let (mut i, mut line, mut counted) = (0, 1, 0);
    while i < bytes.len() {
        let rest = &code[i..];
        let boundary =
            i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b':');
        line += bytes[counted..i].iter().filter(|&&b| b == b'\n').count();
        counted = i;
        if boundary && rest.starts_with(root) && code[i + root.len()..].starts_with("::") {
            let mut end = i + root.len() + 2;
            for path in parse_tree(&code, &mut end, Vec::new()) {
                found.push(Named { line, path, relative: false });
            }
            i = end;
        } else if boundary && root == "crate" && rest.starts_with("super::") {
            let mut base = module.to_vec();
            let mut end = i;
            while code[end..].starts_with("super::") {
                base.pop();
                end += "super::".len();
            }
            for path in parse_tree(&code, &mut end, base.clone()) {
                if path.len() > base.len() {
                    found.push(Named { line, path, relative: true });
                }
            }
            i = end;
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    found
}

/// Parses `a::b`, `a::{b, c::{d}}` or `{…}` at `at`, each full path prefixed with `prefix`; `self` is the prefix.
fn parse_tree(code: &str, at: &mut usize, prefix: Vec<String>) -> Vec<Vec<String>> {
    let mut path = prefix;
    loop {
        skip_space(code, at);
        if code[*at..].starts_with('{') {
            *at += 1;
            let mut all = Vec::new();
            loop {
                skip_space(code, at);
                if code[*at..].starts_with('}') || *at >= code.len() {
                    *at += 1;
                    return all;
                }
                all.extend(parse_tree(code, at, path.clone()));
                skip_space(code, at);
                if code[*at..].starts_with(',') {
                    *at += 1;
                }
            }
        }
        let ident: String = code[*at..].chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '*').collect();
        if ident.is_empty() {
            return vec![path];
        }
        *at += ident.len();
        if ident != "self" {
            path.push(ident);
        }
        if code[*at..].starts_with("::") {
            *at += 2;
        } else {
            // `as alias` or the end of the path.
            return vec![path];
        }
    }
}

fn skip_space(code: &str, at: &mut usize) {
    *at += code[*at..].len() - code[*at..].trim_start().len();
}

/// A cycle of `graph`, if it has one, as the names along it (the first repeated at the end).
pub fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn paths_are_read_from_code_only() {
    let text = r#"
use crate::a::{b, c::{d, e}};
// use crate::commented;
let s = "crate::in_a_string";
fn f<'a>(x: &'a str) -> char { crate::g::h(x); '"' }
use super::sibling::Item;
"#;
    let module = ["domain".to_owned(), "x".to_owned()];
    let found: Vec<(usize, String)> =
        paths_in(text, "crate", &module).into_iter().map(|named| (named.line, named.path.join("::"))).collect();
    let expected = [(2, "a::b"), (2, "a::c::d"), (2, "a::c::e"), (5, "g::h"), (6, "domain::sibling::Item")];
    assert_eq!(found, expected.map(|(line, path)| (line, path.to_owned())));
}
