//! `@userId` mentions and bare-URL autolinks inside a run of text.
//!
//! A mention is `@` at the start of a word followed by an OpenMeet user id (`[a-z0-9._-]`); a trailing `.` ends a
//! sentence rather than the id when the longer id is no member. `@room` is the whole room: honoured only for
//! moderators and above, otherwise it stays text (so a user id `room` cannot be mentioned). Addresses such as
//! `jane@example.org` are not mentions.

use std::collections::HashMap;

/// A room member that can be mentioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MentionTarget {
    pub user_id: String,
    pub display_name: String,
}

/// Who may be mentioned in one message: the room's members by OpenMeet user id, and whether `@room` counts.
#[derive(Debug, Clone, Default)]
pub struct Mentionables {
    members: HashMap<String, MentionTarget>,
    pub room_allowed: bool,
}

impl Mentionables {
    pub fn insert(&mut self, user_id: &str, target: MentionTarget) {
        self.members.insert(user_id.to_owned(), target);
    }

    pub fn get(&self, user_id: &str) -> Option<&MentionTarget> {
        self.members.get(user_id)
    }
}

/// A piece of a text run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment<'a> {
    Text(&'a str),
    User { text: &'a str, target: &'a MentionTarget },
    Room,
    Url { text: &'a str, href: String },
}

/// The `@` words of a text, before anyone knows who is in the room: decides what must be looked up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Candidates {
    pub user_ids: Vec<String>,
    pub room: bool,
}

pub const ROOM_MENTION: &str = "room";
const MAX_USER_ID: usize = 64;

fn id_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
}

/// Whether an `@` at byte `at` starts a word (so `jane@example.org` is no mention).
fn at_word_start(text: &str, at: usize) -> bool {
    text[..at].chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')))
}

/// The id after an `@` at byte `at`, if it is one: lowercase id characters not followed by another word character.
fn id_after(text: &str, at: usize) -> Option<&str> {
    let rest = &text[at + 1..];
    let end = rest.char_indices().find(|(_, c)| !id_char(*c)).map_or(rest.len(), |(i, _)| i);
    let next = rest[end..].chars().next();
    if end == 0 || end > MAX_USER_ID || next.is_some_and(|c| c.is_alphanumeric()) {
        return None;
    }
    Some(&rest[..end])
}

/// Every `@word` that could be a mention.
pub fn candidates(text: &str) -> Candidates {
    let mut found = Candidates::default();
    for (at, _) in text.match_indices('@') {
        if !at_word_start(text, at) {
            continue;
        }
        let Some(id) = id_after(text, at) else {
            continue;
        };
        let id = if id == ROOM_MENTION { id } else { id.trim_end_matches('.') };
        if id == ROOM_MENTION {
            found.room = true;
        } else if !id.is_empty() && !found.user_ids.iter().any(|known| known == id) {
            found.user_ids.push(id.to_owned());
        }
    }
    found
}

/// Splits a run of text into plain text, mentions and bare URLs.
pub fn split_segments<'a>(text: &'a str, mentionables: &'a Mentionables) -> Vec<Segment<'a>> {
    if !text.contains('@') && !text.contains("http") && !text.contains("www.") {
        return vec![Segment::Text(text)];
    }
    let mut segments = Vec::new();
    let mut plain_from = 0;
    let mut position = 0;
    while position < text.len() {
        let found = if text[position..].starts_with('@') {
            mention_at(text, position, mentionables)
        } else {
            url_at(text, position)
        };
        match found {
            Some((segment, length)) => {
                if plain_from < position {
                    segments.push(Segment::Text(&text[plain_from..position]));
                }
                segments.push(segment);
                position += length;
                plain_from = position;
            }
            None => position += text[position..].chars().next().map_or(1, char::len_utf8),
        }
    }
    if plain_from < text.len() {
        segments.push(Segment::Text(&text[plain_from..]));
    }
    segments
}

fn mention_at<'a>(text: &'a str, at: usize, mentionables: &'a Mentionables) -> Option<(Segment<'a>, usize)> {
    if !at_word_start(text, at) {
        return None;
    }
    let id = id_after(text, at)?;
    if id == ROOM_MENTION {
        return mentionables.room_allowed.then_some((Segment::Room, 1 + id.len()));
    }
    // The longest id that is a member: `@jane.` at a sentence's end is `@jane`.
    let mut candidate = id;
    loop {
        if let Some(target) = mentionables.get(candidate) {
            let length = 1 + candidate.len();
            return Some((Segment::User { text: &text[at..at + length], target }, length));
        }
        candidate = candidate.strip_suffix('.')?;
    }
}

/// A bare URL (`http://`, `https://`, `www.`) starting at byte `at`, as GFM's extended autolinks find them.
fn url_at(text: &str, at: usize) -> Option<(Segment<'_>, usize)> {
    let rest = &text[at..];
    let (scheme_less, href_prefix) = if rest.starts_with("https://") || rest.starts_with("http://") {
        (false, "")
    } else if rest.starts_with("www.") {
        (true, "http://")
    } else {
        return None;
    };
    let boundary =
        text[..at].chars().next_back().is_none_or(|c| c.is_whitespace() || matches!(c, '*' | '_' | '~' | '('));
    if !boundary {
        return None;
    }
    let end = rest.find(|c: char| c.is_whitespace() || c == '<').unwrap_or(rest.len());
    let mut candidate = &rest[..end];
    loop {
        let trimmed = candidate.trim_end_matches(['?', '!', '.', ',', ':', '*', '_', '~', '\'', '"']);
        let trimmed = if trimmed.ends_with(')') && trimmed.matches('(').count() < trimmed.matches(')').count() {
            &trimmed[..trimmed.len() - 1]
        } else {
            trimmed
        };
        if trimmed.len() == candidate.len() {
            break;
        }
        candidate = trimmed;
    }
    let after_scheme = if scheme_less { candidate } else { candidate.split_once("//").map_or("", |(_, rest)| rest) };
    let host = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    let host_ok = host.contains('.')
        && !host.starts_with('.')
        && !host.ends_with('.')
        && host.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !host_ok {
        return None;
    }
    let href = format!("{href_prefix}{candidate}");
    url::Url::parse(&href).ok()?;
    Some((Segment::Url { text: candidate, href }, candidate.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> Mentionables {
        let mut mentionables = Mentionables::default();
        for id in ["jane", "jane.doe", "bob-2"] {
            mentionables.insert(
                id,
                MentionTarget { user_id: format!("@om_t.{id}:localhost"), display_name: id.to_uppercase() },
            );
        }
        mentionables
    }

    fn users(text: &str, mentionables: &Mentionables) -> Vec<String> {
        split_segments(text, mentionables)
            .into_iter()
            .filter_map(|segment| match segment {
                Segment::User { target, .. } => Some(target.user_id.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn candidates_are_at_words_only() {
        let found = candidates("hey @jane.doe. and @bob-2, mail jane@example.org, @Room @room @x_y");
        assert_eq!(found.user_ids, vec!["jane.doe", "bob-2", "x_y"]);
        assert!(found.room);
        assert_eq!(candidates("@janeDoe @"), Candidates::default());
    }

    #[test]
    fn mentions_resolve_to_members_only() {
        let m = members();
        assert_eq!(users("@jane.doe.", &m), vec!["@om_t.jane.doe:localhost"]);
        assert_eq!(users("@jane.", &m), vec!["@om_t.jane:localhost"]);
        assert_eq!(users("(@bob-2)", &m), vec!["@om_t.bob-2:localhost"]);
        assert!(users("@john jane@x.org a@jane", &m).is_empty());
        let segments = split_segments("hi @jane!", &m);
        assert_eq!(segments.len(), 3);
        assert_eq!(segments[0], Segment::Text("hi "));
        assert!(matches!(segments[1], Segment::User { text: "@jane", .. }));
        assert_eq!(segments[2], Segment::Text("!"));
    }

    #[test]
    fn room_mentions_need_permission() {
        let mut m = members();
        assert_eq!(split_segments("@room hi", &m), vec![Segment::Text("@room hi")]);
        m.room_allowed = true;
        assert_eq!(split_segments("@room hi", &m), vec![Segment::Room, Segment::Text(" hi")]);
        assert_eq!(split_segments("@rooms", &m), vec![Segment::Text("@rooms")]);
    }

    #[test]
    fn bare_urls_are_found_and_trimmed() {
        let m = Mentionables::default();
        let url = |text: &'static str| -> Vec<String> {
            split_segments(text, &m)
                .into_iter()
                .filter_map(|s| match s {
                    Segment::Url { href, .. } => Some(href),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(url("go to https://a.example/x?y=1."), vec!["https://a.example/x?y=1"]);
        assert_eq!(url("(see https://a.example/wiki/A_(b))"), vec!["https://a.example/wiki/A_(b)"]);
        assert_eq!(url("(https://a.example)"), vec!["https://a.example"]);
        assert_eq!(url("www.a.example, ok"), vec!["http://www.a.example"]);
        assert!(url("xhttps://a.example https:// http://nohost www.").is_empty());
        assert_eq!(url("ünïcode https://a.example"), vec!["https://a.example"]);
    }
}
