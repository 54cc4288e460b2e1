//! Markdown to Matrix HTML, and the one sanitiser every HTML body passes through (ours on the way out, anyone's on
//! the way back in history).
//!
//! Markdown is CommonMark with the GFM extensions strikethrough and tables, bare-URL autolinks and fenced code.
//! Raw HTML typed into a message is shown as text, never interpreted: people type `<b>` in chat to mean `<b>`.
//! Mentions of room members become pills (links to `https://matrix.to/#/@user`).

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag, TagEnd, TextMergeStream};

use super::mentions::{Mentionables, Segment, split_segments};

/// What a message body renders to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rendered {
    /// Sanitised `formatted_body`; `None` when the text has no formatting, so the plain `body` says it all.
    pub html: Option<String>,
    /// Matrix ids of the members mentioned (pills and `m.mentions.user_ids`), in order of first mention.
    pub user_ids: Vec<String>,
    /// `@room` by someone allowed to use it.
    pub room: bool,
}

/// Renders markdown; mentions of `mentionables` become pills.
pub fn markdown(text: &str, mentionables: &Mentionables) -> Rendered {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_STRIKETHROUGH);
    options.insert(Options::ENABLE_TABLES);
    let parser = TextMergeStream::new(Parser::new_ext(text, options));

    let mut mentions = MentionCollector::default();
    let mut events: Vec<Event<'_>> = Vec::new();
    // Inside a link or code nothing is linkified or mentioned.
    let mut link_depth = 0usize;
    let mut in_code_block = false;
    for event in parser {
        match event {
            Event::Start(Tag::Link { .. }) => {
                link_depth += 1;
                events.push(event);
            }
            Event::End(TagEnd::Link) => {
                link_depth = link_depth.saturating_sub(1);
                events.push(event);
            }
            Event::Start(Tag::CodeBlock(_)) => {
                in_code_block = true;
                events.push(event);
            }
            Event::End(TagEnd::CodeBlock) => {
                in_code_block = false;
                events.push(event);
            }
            // Typed HTML is text. A block of it becomes a paragraph of text.
            Event::Start(Tag::HtmlBlock) => events.push(Event::Start(Tag::Paragraph)),
            Event::End(TagEnd::HtmlBlock) => events.push(Event::End(TagEnd::Paragraph)),
            Event::Html(html) | Event::InlineHtml(html) => {
                push_text(&mut events, html, link_depth > 0 || in_code_block, mentionables, &mut mentions)
            }
            Event::Text(text) => {
                push_text(&mut events, text, link_depth > 0 || in_code_block, mentionables, &mut mentions)
            }
            Event::FootnoteReference(text) | Event::InlineMath(text) | Event::DisplayMath(text) => {
                events.push(Event::Text(text))
            }
            Event::TaskListMarker(_) => {}
            other => events.push(other),
        }
    }
    let mut html = String::with_capacity(text.len() * 2);
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    let html = sanitise(&html);
    // Sanitised the same way, so both sides are serialised alike.
    let plain = sanitise(&format!("<p>{}</p>\n", escape(text.trim())));
    Rendered { html: if html == plain { None } else { Some(html) }, user_ids: mentions.user_ids, room: mentions.room }
}

/// Mentions in a plain-text body: no HTML, but `m.mentions` all the same.
pub fn plain(text: &str, mentionables: &Mentionables) -> Rendered {
    let mut mentions = MentionCollector::default();
    for segment in split_segments(text, mentionables) {
        mentions.note(&segment);
    }
    Rendered { html: None, user_ids: mentions.user_ids, room: mentions.room }
}

#[derive(Default)]
struct MentionCollector {
    user_ids: Vec<String>,
    room: bool,
}

impl MentionCollector {
    fn note(&mut self, segment: &Segment<'_>) {
        match segment {
            Segment::User { target, .. } => {
                if !self.user_ids.contains(&target.user_id) {
                    self.user_ids.push(target.user_id.clone());
                }
            }
            Segment::Room => self.room = true,
            Segment::Text(_) | Segment::Url { .. } => {}
        }
    }
}

fn push_text<'a>(
    events: &mut Vec<Event<'a>>,
    text: CowStr<'a>,
    verbatim: bool,
    mentionables: &Mentionables,
    mentions: &mut MentionCollector,
) {
    if verbatim {
        events.push(Event::Text(text));
        return;
    }
    for segment in split_segments(&text, mentionables) {
        mentions.note(&segment);
        match segment {
            Segment::Text(part) => events.push(Event::Text(CowStr::from(part.to_owned()))),
            Segment::Room => events.push(Event::Text(CowStr::Borrowed("@room"))),
            Segment::Url { text, href } => push_link(events, href, text.to_owned()),
            Segment::User { target, .. } => {
                push_link(events, format!("https://matrix.to/#/{}", target.user_id), target.display_name.clone())
            }
        }
    }
}

fn push_link<'a>(events: &mut Vec<Event<'a>>, href: String, text: String) {
    events.push(Event::Start(Tag::Link {
        link_type: LinkType::Inline,
        dest_url: CowStr::from(href),
        title: CowStr::Borrowed(""),
        id: CowStr::Borrowed(""),
    }));
    events.push(Event::Text(CowStr::from(text)));
    events.push(Event::End(TagEnd::Link));
}

/// HTML-escapes text for element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// The tags and attributes the Matrix spec (client-server API, `m.room.message` `m.text`) lets a client render.
static SANITISER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let tags: HashSet<&'static str> = [
        "font",
        "del",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "p",
        "a",
        "ul",
        "ol",
        "sup",
        "sub",
        "li",
        "b",
        "i",
        "u",
        "strong",
        "em",
        "s",
        "code",
        "hr",
        "br",
        "div",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "caption",
        "pre",
        "span",
        "img",
        "details",
        "summary",
    ]
    .into_iter()
    .collect();
    let attributes: HashMap<&'static str, HashSet<&'static str>> = [
        ("font", vec!["data-mx-bg-color", "data-mx-color", "color"]),
        ("span", vec!["data-mx-bg-color", "data-mx-color", "data-mx-spoiler", "data-mx-maths"]),
        ("div", vec!["data-mx-maths"]),
        ("a", vec!["name", "href"]),
        ("img", vec!["width", "height", "alt", "title", "src"]),
        ("ol", vec!["start"]),
        ("code", vec!["class"]),
    ]
    .into_iter()
    .map(|(tag, attributes)| (tag, attributes.into_iter().collect()))
    .collect();
    let mut builder = ammonia::Builder::empty();
    builder
        .tags(tags)
        .tag_attributes(attributes)
        .generic_attributes(HashSet::new())
        .url_schemes(["https", "http", "ftp", "mailto", "magnet", "mxc"].into_iter().collect())
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(None)
        .strip_comments(true)
        .attribute_filter(|element, attribute, value| match (element, attribute) {
            // Images only from the homeserver's media repository: an outside URL would track readers.
            ("img", "src") => value.starts_with("mxc://").then(|| value.into()),
            ("a", "href") if value.starts_with("mxc://") => None,
            ("code", "class") => {
                let language = value.strip_prefix("language-")?;
                let safe = !language.is_empty()
                    && language.len() <= 32
                    && language.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '#'));
                safe.then(|| value.into())
            }
            ("font" | "span", "data-mx-color" | "data-mx-bg-color" | "color") => {
                let hex = value.strip_prefix('#')?;
                (hex.len() == 6 && hex.chars().all(|c| c.is_ascii_hexdigit())).then(|| value.into())
            }
            _ => Some(value.into()),
        });
    builder
});

/// Sanitises HTML to what the Matrix spec allows: no scripts, no event handlers, no `javascript:` or other
/// unknown URL schemes, images from `mxc://` only.
pub fn sanitise(html: &str) -> String {
    SANITISER.clean(html).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::messages::mentions::MentionTarget;

    fn nobody() -> Mentionables {
        Mentionables::default()
    }

    fn html(text: &str) -> String {
        markdown(text, &nobody()).html.unwrap_or_default()
    }

    #[test]
    fn plain_sentences_need_no_html() {
        assert_eq!(markdown("just words, nothing more", &nobody()).html, None);
        assert_eq!(markdown("a < b & c", &nobody()).html, None);
    }

    #[test]
    fn commonmark_and_gfm_render() {
        assert_eq!(html("**bold** and _it_"), "<p><strong>bold</strong> and <em>it</em></p>\n");
        assert!(html("~~gone~~").contains("<del>gone</del>"));
        let table = html("| a | b |\n|---|:-:|\n| 1 | 2 |");
        assert!(table.contains("<table>") && table.contains("<th>a</th>") && table.contains("<td>2</td>"), "{table}");
        assert!(!table.contains("style"), "{table}");
        let code = html("```rust\nfn main() {}\n```");
        assert_eq!(code, "<pre><code class=\"language-rust\">fn main() {}\n</code></pre>\n");
        assert!(html("see <https://openmeet.net>").contains(r#"<a href="https://openmeet.net">"#));
        let bare = html("see https://openmeet.net/events?x=1. Thanks");
        assert!(bare.contains(r#"<a href="https://openmeet.net/events?x=1">https://openmeet.net/events?x=1</a>."#));
        assert!(html("visit www.openmeet.net").contains(r#"<a href="http://www.openmeet.net">www.openmeet.net</a>"#));
        assert!(html("[site](https://openmeet.net)").contains(r#"<a href="https://openmeet.net">site</a>"#));
    }

    #[test]
    fn hostile_input_is_harmless() {
        let hostile = [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "[x](javascript:alert(1))",
            "[x](JaVaScRiPt:alert(1))",
            "[x](  javascript:alert(1))",
            "[x](data:text/html;base64,PHNjcmlwdD4=)",
            "[x](vbscript:msgbox)",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<div onclick=\"alert(1)\">x</div>",
            "<iframe src=https://evil.example></iframe>",
            "<svg><script>alert(1)</script></svg>",
            "<style>body{display:none}</style>",
            "![x](https://tracker.example/p.png)",
            "![x](javascript:alert(1))",
            "<p style=\"background:url(javascript:alert(1))\">x</p>",
            "```\"><script>alert(1)</script>\nx\n```",
            "<<script>script>alert(1)<</script>/script>",
        ];
        for input in hostile {
            let output = html(input);
            let lowered = output.to_lowercase();
            for forbidden in
                ["<script", "javascript:", "onerror=", "onclick=", "<iframe", "<svg", "<style", "data:", "vbscript"]
            {
                assert!(!lowered.contains(forbidden), "{input:?} rendered {output:?}");
            }
            assert!(!lowered.contains("src=\"https://tracker"), "{input:?} rendered {output:?}");
        }
        // Typed HTML stays readable as text.
        assert_eq!(markdown("<script>alert(1)</script>", &nobody()).html, None);
        assert_eq!(
            html("**b** <script>alert(1)</script>"),
            "<p><strong>b</strong> &lt;script&gt;alert(1)&lt;/script&gt;</p>\n"
        );
        assert!(html("![cat](mxc://localhost/abc)").contains(r#"<img src="mxc://localhost/abc" alt="cat">"#));
    }

    #[test]
    fn the_sanitiser_keeps_the_matrix_subset_and_drops_the_rest() {
        assert_eq!(
            sanitise(r##"<font data-mx-color="#ff0000" onclick="x">red</font><span data-mx-spoiler>s</span>"##),
            r##"<font data-mx-color="#ff0000">red</font><span data-mx-spoiler="">s</span>"##
        );
        assert_eq!(sanitise(r#"<code class="language-js evil">x</code>"#), "<code>x</code>");
        assert_eq!(sanitise(r#"<a href="/relative">x</a>"#), "<a>x</a>");
        assert_eq!(
            sanitise(r#"<a href="https://x.example" target="_blank">x</a>"#),
            r#"<a href="https://x.example">x</a>"#
        );
        assert_eq!(sanitise(r#"<font color="red;background:url(x)">x</font>"#), "<font>x</font>");
        assert_eq!(sanitise("<mx-reply>quoted</mx-reply>ok"), "quotedok");
    }

    #[test]
    fn mentions_become_pills_outside_code_and_links() {
        let mut mentionables = Mentionables::default();
        mentionables.insert(
            "jane",
            MentionTarget { user_id: "@om_t.jane:localhost".into(), display_name: "Jane <Doe>".into() },
        );
        let rendered = markdown("hi @jane, see `@jane` and [@jane](https://x.example)", &mentionables);
        let html = rendered.html.expect("html");
        assert_eq!(
            html,
            "<p>hi <a href=\"https://matrix.to/#/@om_t.jane:localhost\">Jane &lt;Doe&gt;</a>, see <code>@jane</code> and \
             <a href=\"https://x.example\">@jane</a></p>\n"
        );
        assert_eq!(rendered.user_ids, vec!["@om_t.jane:localhost".to_owned()]);
        assert!(!rendered.room);
        let unknown = markdown("hi @john", &mentionables);
        assert_eq!((unknown.html, unknown.user_ids.len()), (None, 0));
        let plain_text = plain("@jane and @jane again", &mentionables);
        assert_eq!((plain_text.html, plain_text.user_ids.len()), (None, 1));
    }
}
