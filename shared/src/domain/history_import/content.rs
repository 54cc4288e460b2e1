//! A Zulip message's markdown as OpenMeet markdown, and the Matrix contents the import sends: the same rendering
//! and the same `m.room.message` shapes as live messages (`messages::render`, `messages::content`), plus an
//! `org.openmeet.zulip` field naming where each event came from ([`Imported`]: the live content with that field
//! flattened in; ruma's typed contents do not carry it). Handed to the homeserver as the JSON it serialises to.
//!
//! Zulip syntax handled: mentions `@**Name|id**` (silent `@_**…**`) become `@userId` when the person is mapped
//! (the renderer then makes the pill and `m.mentions`), else their name; wildcard mentions (`@**all**`) stay text
//! (history must not ping a room); stream links `#**stream>topic**` become text; `:emoji_name:` becomes Unicode when
//! known; links to uploads (`[name](/user_uploads/…)`) become the file's name, the file itself a separate event.

use ruma::events::relation::RelationType;
use serde::Serialize;
use serde_json::Value;

use super::emoji;
use crate::domain::DomainError;
use crate::domain::messages::Attachment;
use crate::domain::messages::content::{self, Placement};
use crate::domain::messages::mentions::Mentionables;
use crate::domain::messages::render::{self, Rendered};

const UPLOADS: &str = "/user_uploads/";
/// The field every imported event carries: the Zulip message (and part) it came from.
pub use crate::domain::messages::content::IMPORT_ORIGIN_FIELD as ORIGIN_FIELD;

/// A message's text in OpenMeet markdown and the uploads it links to (Zulip `path_id`s, in order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Converted {
    pub text: String,
    pub uploads: Vec<String>,
}

/// Converts Zulip markdown. `person(name, id)` answers the OpenMeet user id of a mentioned Zulip user, if mapped.
pub fn convert(markdown: &str, person: &dyn Fn(&str, Option<i64>) -> Option<String>) -> Converted {
    let mut uploads = Vec::new();
    let text = upload_links(markdown, &mut uploads);
    let text = mentions(&text, person);
    let text = stream_links(&text);
    Converted { text: emoji_names(&text), uploads }
}

/// `[name](/user_uploads/path)` → `name`, collecting the path.
fn upload_links(text: &str, uploads: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        let (before, after) = rest.split_at(at);
        let target = &after[2..];
        let Some(close) = target.find(')') else { break };
        let url = &target[..close];
        let path = url.strip_prefix(UPLOADS).or_else(|| url.find(UPLOADS).map(|i| &url[i + UPLOADS.len()..]));
        let open = before.rfind('[');
        match (path, open) {
            (Some(path), Some(open)) if !path.is_empty() => {
                out.push_str(&before[..open]);
                out.push_str(&before[open + 1..]);
                uploads.push(path.to_owned());
            }
            _ => {
                out.push_str(before);
                out.push_str(&after[..2 + close + 1]);
            }
        }
        rest = &target[close + 1..];
    }
    out.push_str(rest);
    out
}

fn mentions(text: &str, person: &dyn Fn(&str, Option<i64>) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("@") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (silent, inner) = match after {
            _ if after.starts_with("**") => (false, &after[2..]),
            _ if after.starts_with("_**") => (true, &after[3..]),
            _ => {
                out.push('@');
                rest = after;
                continue;
            }
        };
        let Some(end) = inner.find("**").filter(|end| plausible_name(&inner[..*end])) else {
            out.push('@');
            rest = after;
            continue;
        };
        let mention = &inner[..end];
        let (name, id) = match mention.rsplit_once('|') {
            Some((name, id)) => (name, id.parse::<i64>().ok()),
            None => (mention, None),
        };
        match person(name, id) {
            Some(user) if !silent => out.push_str(&format!("@{user}")),
            // A silent mention names without notifying: the name, as text.
            _ if silent => out.push_str(name),
            _ => out.push_str(&format!("@{name}")),
        }
        rest = &inner[end + 2..];
    }
    out.push_str(rest);
    out
}

/// What can sit between `**` of a mention or stream link: a name, not a stretch of text.
fn plausible_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 200 && !name.starts_with(char::is_whitespace) && !name.contains(['\n', '*'])
}

fn stream_links(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("#**") {
        out.push_str(&rest[..at]);
        let inner = &rest[at + 3..];
        let Some(end) = inner.find("**").filter(|end| plausible_name(&inner[..*end])) else {
            out.push_str("#**");
            rest = inner;
            continue;
        };
        let link = &inner[..end];
        match link.split_once('>') {
            Some((stream, topic)) => out.push_str(&format!("#{stream} > {topic}")),
            None => out.push_str(&format!("#{link}")),
        }
        rest = &inner[end + 2..];
    }
    out.push_str(rest);
    out
}

fn emoji_names(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(':') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let name_end = after.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-')));
        match name_end {
            Some(end) if end > 0 && after[end..].starts_with(':') => match emoji::by_name(&after[..end]) {
                Some(emoji) => {
                    out.push_str(emoji);
                    rest = &after[end + 1..];
                }
                None => {
                    out.push(':');
                    rest = after;
                }
            },
            _ => {
                out.push(':');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Where an imported event came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub message_id: i64,
    pub topic: &'a str,
    /// `message`, `file` or `reaction`.
    pub part: &'a str,
}

/// An imported event's content: the live shape, plus where it came from under [`ORIGIN_FIELD`].
#[derive(Serialize)]
struct Imported<'a, C> {
    #[serde(flatten)]
    content: C,
    #[serde(rename = "org.openmeet.zulip")]
    origin: OriginField<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OriginField<'a> {
    message_id: i64,
    topic: &'a str,
    part: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    edited: bool,
}

/// A reaction's `m.relates_to` (ruma's `Annotation` needs a parsed event id; ours come from our own sends).
#[derive(Serialize)]
struct Reaction<'a> {
    #[serde(rename = "m.relates_to")]
    relates_to: Annotation<'a>,
}

#[derive(Serialize)]
struct Annotation<'a> {
    rel_type: RelationType,
    event_id: &'a str,
    key: &'a str,
}

fn with_origin(content: impl Serialize, origin: &Origin<'_>, edited: bool) -> Value {
    let origin = OriginField { message_id: origin.message_id, topic: origin.topic, part: origin.part, edited };
    // Serialising plain structs of strings and numbers cannot fail.
    serde_json::to_value(Imported { content, origin }).unwrap_or_default()
}

/// A message's text as an `m.room.message`. A thread's root names the topic on its first line.
pub fn text_message(
    text: &str,
    mentionables: &Mentionables,
    placement: &Placement,
    origin: &Origin<'_>,
    edited: bool,
) -> Result<Value, DomainError> {
    let body = match placement {
        Placement::Timeline => format!("**{}**\n\n{text}", topic_title(origin.topic)),
        _ => text.to_owned(),
    };
    let rendered = render::markdown(&body, mentionables);
    Ok(with_origin(content::message_content(&body, &rendered, None, placement)?, origin, edited))
}

/// How a topic is named in its thread's root: Zulip's empty topic is "general chat".
pub fn topic_title(topic: &str) -> &str {
    if topic.trim().is_empty() { "general chat" } else { topic }
}

/// An uploaded file as its own `m.room.message` (`m.image`, `m.file`, …), placed after the message linking it.
pub fn file_message(attachment: &Attachment, placement: &Placement, origin: &Origin<'_>) -> Result<Value, DomainError> {
    let body = attachment.filename.clone().unwrap_or_else(|| "file".into());
    let content = content::message_content(&body, &Rendered::default(), Some(attachment), placement)?;
    Ok(with_origin(content, origin, false))
}

/// A reaction (`m.annotation`) with its key.
pub fn reaction(event_id: &str, key: &str, origin: &Origin<'_>) -> Value {
    let relates_to = Annotation { rel_type: RelationType::Annotation, event_id, key };
    with_origin(Reaction { relates_to }, origin, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn people(name: &str, id: Option<i64>) -> Option<String> {
        (name == "Alice Smith" || id == Some(7)).then(|| "alice".to_owned())
    }

    #[test]
    fn zulip_markdown_becomes_openmeet_markdown() {
        let converted = convert(
            "hi @**Alice Smith|7** and @**Ghost** (@_**Alice Smith**) see #**general>lunch** :tada: :parrot: \
             [plan.pdf](/user_uploads/2/ab/xyz/plan.pdf) [site](https://example.org) @**all**",
            &people,
        );
        assert_eq!(
            converted.text,
            "hi @alice and @Ghost (Alice Smith) see #general > lunch 🎉 :parrot: plan.pdf [site](https://example.org) @all"
        );
        assert_eq!(converted.uploads, vec!["2/ab/xyz/plan.pdf".to_owned()]);
    }

    #[test]
    fn unterminated_syntax_is_kept_as_text() {
        let converted = convert("a @** b #** c [x](/user_uploads/ d: e:", &people);
        assert_eq!(converted.text, "a @** b #** c [x](/user_uploads/ d: e:");
        assert!(converted.uploads.is_empty());
    }

    #[test]
    fn a_root_names_its_topic_and_every_event_its_origin() {
        let origin = Origin { message_id: 5, topic: "lunch", part: "message" };
        let root =
            text_message("hello", &Mentionables::default(), &Placement::Timeline, &origin, true).expect("content");
        assert!(root["body"].as_str().is_some_and(|b| b.starts_with("**lunch**")), "{root}");
        assert_eq!(root[ORIGIN_FIELD]["messageId"], 5);
        assert_eq!(root[ORIGIN_FIELD]["edited"], true);
        let placement = Placement::Thread { root: "$r".into(), in_reply_to: "$r".into(), is_falling_back: true };
        let reply = text_message("yes", &Mentionables::default(), &placement, &origin, false).expect("content");
        assert_eq!(reply["body"], "yes");
        assert_eq!(reply["m.relates_to"]["rel_type"], "m.thread");
        let reacted = reaction("$e", "👍", &Origin { message_id: 5, topic: "lunch", part: "reaction" });
        assert_eq!(
            reacted,
            serde_json::json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": "$e", "key": "👍"},
                               ORIGIN_FIELD: {"messageId": 5, "topic": "lunch", "part": "reaction"}})
        );
    }
}
