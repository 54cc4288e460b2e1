//! The `m.room.message` contents we send: text, attachments, threads, replies, edits, mentions; and the size check
//! that keeps every one of them under the homeserver's event limit.
//!
//! Typed ([`NewMessage`], [`EditContent`]) over ruma's `FormattedBody` and `RelationType` and the port's
//! `Mentions` and `MediaInfo`, serialised with exactly the keys clients and the tests read: not ruma's
//! `RoomMessageEventContent`, which drops `is_falling_back: false` and has no `w`/`h` for files and audio.
//!
//! JSON kept on purpose: an edit's `m.new_content` starts from the current content as served
//! ([`crate::homeserver::MessageContent::json`]), so keys we do not model survive the edit.

use ruma::events::relation::RelationType;
use ruma::events::room::message::FormattedBody;
use serde::Serialize;
use serde_json::{Map, Value};

use super::render::Rendered;
use super::{Attachment, MAX_CONTENT_BYTES};
use crate::domain::DomainError;
use crate::homeserver::MessageContent as Current;
use crate::homeserver::timeline::{MediaInfo, Mentions};

pub const HTML_FORMAT: &str = "org.matrix.custom.html";
/// The field every event the history import sends carries (the Zulip message and part it came from): what tells
/// imported history from live talk, here and in the push gateway.
pub const IMPORT_ORIGIN_FIELD: &str = "org.openmeet.zulip";
/// Thumbnails the API hands out: the homeserver scales them on request, with the reader's own session.
const THUMBNAIL_QUERY: &str = "width=320&height=240&method=scale";

/// An `mxc://server/media` URI, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mxc<'a> {
    pub server: &'a str,
    pub media_id: &'a str,
}

pub fn parse_mxc(uri: &str) -> Option<Mxc<'_>> {
    let (server, media_id) = uri.strip_prefix("mxc://")?.split_once('/')?;
    let server_ok = !server.is_empty()
        && server.len() <= 255
        && server.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    let media_ok = !media_id.is_empty()
        && media_id.len() <= 255
        && media_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    (server_ok && media_ok).then_some(Mxc { server, media_id })
}

/// The authenticated thumbnail endpoint of a media item, relative to the homeserver's URL.
pub fn thumbnail_path(mxc: &Mxc<'_>) -> String {
    format!("/_matrix/client/v1/media/thumbnail/{}/{}?{THUMBNAIL_QUERY}", mxc.server, mxc.media_id)
}

/// The authenticated download endpoint of a media item, relative to the homeserver's URL.
pub fn download_path(mxc: &Mxc<'_>) -> String {
    format!("/_matrix/client/v1/media/download/{}/{}", mxc.server, mxc.media_id)
}

/// What a `thumbnailUri` of an attachment points at, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Thumbnail {
    /// The homeserver's own thumbnail of the attachment: readers derive it from `url`, the event carries nothing.
    OfContent,
    /// A separately uploaded thumbnail: `info.thumbnail_url`.
    Uploaded(String),
}

fn parse_thumbnail(attachment: &Attachment, content: &Mxc<'_>) -> Result<Option<Thumbnail>, DomainError> {
    let Some(uri) = attachment.thumbnail_uri.as_deref() else {
        return Ok(None);
    };
    let invalid = || {
        DomainError::invalid(
            "invalid_body",
            "attachment.thumbnailUri must be the thumbnailUri of an upload, a media download path or an mxc:// URI",
        )
    };
    if let Some(mxc) = parse_mxc(uri) {
        return Ok(Some(Thumbnail::Uploaded(format!("mxc://{}/{}", mxc.server, mxc.media_id))));
    }
    let (path, _query) = uri.split_once('?').unwrap_or((uri, ""));
    if let Some(rest) = path.strip_prefix("/_matrix/client/v1/media/thumbnail/") {
        let (server, media_id) = rest.split_once('/').ok_or_else(invalid)?;
        return if server == content.server && media_id == content.media_id {
            Ok(Some(Thumbnail::OfContent))
        } else {
            Err(invalid())
        };
    }
    if let Some(rest) = path.strip_prefix("/_matrix/client/v1/media/download/") {
        let uploaded = format!("mxc://{rest}");
        return if parse_mxc(&uploaded).is_some() { Ok(Some(Thumbnail::Uploaded(uploaded))) } else { Err(invalid()) };
    }
    Err(invalid())
}

/// Checks an attachment of `postMessage` before anything is sent.
pub fn check_attachment(attachment: &Attachment) -> Result<(), DomainError> {
    let invalid = |why: &str| DomainError::invalid("invalid_body", format!("attachment.{why}"));
    let content = parse_mxc(&attachment.content_uri).ok_or_else(|| invalid("contentUri must be an mxc:// URI"))?;
    let mime_ok = attachment.mime_type.len() <= 255
        && attachment.mime_type.split_once('/').is_some_and(|(kind, sub)| {
            !kind.is_empty()
                && !sub.is_empty()
                && attachment.mime_type.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        });
    if !mime_ok {
        return Err(invalid("mimeType must be a media type such as image/png"));
    }
    // Only what an upload accepts: readers must never be told a file is HTML or SVG.
    if !super::media::is_accepted_type(&attachment.mime_type.to_ascii_lowercase()) {
        return Err(invalid("mimeType must be one of the types uploadMedia accepts"));
    }
    if let Some(name) = &attachment.filename
        && !super::media::is_safe_filename(name)
    {
        return Err(invalid("filename must be 1-255 characters without path separators or control characters"));
    }
    if attachment.width == Some(0) || attachment.height == Some(0) {
        return Err(invalid("width and height must be positive"));
    }
    parse_thumbnail(attachment, &content)?;
    Ok(())
}

/// The message type an attachment is sent as.
pub fn msgtype_for(attachment: Option<&Attachment>) -> &'static str {
    match attachment.map(|a| a.mime_type.split('/').next().unwrap_or("")) {
        None => "m.text",
        Some("image") => "m.image",
        Some("video") => "m.video",
        Some("audio") => "m.audio",
        Some(_) => "m.file",
    }
}

/// `m.mentions`: always present, so clients and push rules never fall back to guessing from the body.
pub fn mentions(user_ids: &[String], room: bool) -> Mentions {
    Mentions { user_ids: user_ids.to_vec(), room }
}

/// Where a new message sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Timeline,
    Reply {
        to: String,
    },
    /// In a thread; `in_reply_to` is the thread's latest event (a fallback for thread-unaware clients) unless the
    /// message is a real reply inside the thread.
    Thread {
        root: String,
        in_reply_to: String,
        is_falling_back: bool,
    },
}

/// A new message's content, as sent.
#[derive(Debug, Clone, Serialize)]
pub struct NewMessage {
    pub msgtype: &'static str,
    pub body: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub formatted: Option<FormattedBody>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileFields>,
    #[serde(rename = "m.mentions")]
    pub mentions: Mentions,
    #[serde(rename = "m.relates_to", skip_serializing_if = "Option::is_none")]
    pub relates_to: Option<RelatesTo>,
}

/// The keys of a media message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileFields {
    pub url: String,
    pub filename: String,
    pub info: MediaInfo,
}

/// An edit's content: the fallback `* …` for clients without edit support, and the whole new content.
#[derive(Debug, Clone, Serialize)]
pub struct EditContent {
    pub msgtype: Value,
    pub body: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub formatted: Option<FormattedBody>,
    #[serde(rename = "m.mentions")]
    pub mentions: Mentions,
    /// JSON kept on purpose (see the module's doc).
    #[serde(rename = "m.new_content")]
    pub new_content: Map<String, Value>,
    #[serde(rename = "m.relates_to")]
    pub relates_to: RelatesTo,
}

/// `m.relates_to` as we send it: a reply, a thread (with its fallback reply), an edit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelatesTo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rel_type: Option<RelationType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_falling_back: Option<bool>,
    #[serde(rename = "m.in_reply_to", skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<InReplyTo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InReplyTo {
    pub event_id: String,
}

impl RelatesTo {
    fn of(placement: &Placement) -> Option<Self> {
        match placement {
            Placement::Timeline => None,
            Placement::Reply { to } => Some(RelatesTo {
                rel_type: None,
                event_id: None,
                is_falling_back: None,
                in_reply_to: Some(InReplyTo { event_id: to.clone() }),
            }),
            Placement::Thread { root, in_reply_to, is_falling_back } => Some(RelatesTo {
                rel_type: Some(RelationType::Thread),
                event_id: Some(root.clone()),
                is_falling_back: Some(*is_falling_back),
                in_reply_to: Some(InReplyTo { event_id: in_reply_to.clone() }),
            }),
        }
    }
}

fn to_json(value: impl Serialize) -> Result<Value, DomainError> {
    serde_json::to_value(value).map_err(|_| DomainError::Internal)
}

fn formatted(html: Option<&str>) -> Option<FormattedBody> {
    html.map(FormattedBody::html)
}

/// The content of a new message.
pub fn message_content(
    body: &str,
    rendered: &Rendered,
    attachment: Option<&Attachment>,
    placement: &Placement,
) -> Result<NewMessage, DomainError> {
    let content = NewMessage {
        msgtype: msgtype_for(attachment),
        body: body.to_owned(),
        formatted: formatted(rendered.html.as_deref()),
        file: attachment.map(file_fields).transpose()?,
        mentions: mentions(&rendered.user_ids, rendered.room),
        relates_to: RelatesTo::of(placement),
    };
    ensure_fits(&content)?;
    Ok(content)
}

fn file_fields(attachment: &Attachment) -> Result<FileFields, DomainError> {
    check_attachment(attachment)?;
    let mxc = parse_mxc(&attachment.content_uri).ok_or(DomainError::Internal)?;
    let thumbnail_url = match parse_thumbnail(attachment, &mxc)? {
        Some(Thumbnail::Uploaded(uri)) => Some(uri),
        _ => None,
    };
    Ok(FileFields {
        url: attachment.content_uri.clone(),
        // Since Matrix 1.10 `filename` names the file and `body` is its caption.
        filename: attachment.filename.clone().unwrap_or_else(|| mxc.media_id.to_owned()),
        info: MediaInfo {
            mimetype: Some(attachment.mime_type.clone()),
            size: Some(attachment.size),
            w: attachment.width.map(u64::from),
            h: attachment.height.map(u64::from),
            thumbnail_url,
        },
    })
}

/// The content of an edit of `original_id`, whose current content is `current`. `m.new_content` is the whole new
/// content (an attachment keeps its file; only the text changes); the top level is the fallback `* ...` for clients
/// without edit support, and mentions only the people this edit newly mentions, so nobody is notified twice.
pub fn edit_content(
    original_id: &str,
    current: &Current,
    body: &str,
    rendered: &Rendered,
) -> Result<EditContent, DomainError> {
    let mut new_content = current.json().clone();
    for stale in ["body", "format", "formatted_body", "m.mentions", "m.relates_to", "m.new_content"] {
        new_content.remove(stale);
    }
    let msgtype = new_content.entry("msgtype").or_insert_with(|| Value::from("m.text")).clone();
    new_content.insert("body".into(), Value::from(body));
    if let Some(html) = formatted(rendered.html.as_deref()) {
        new_content.extend(to_json(html)?.as_object().cloned().unwrap_or_default());
    }
    new_content.insert("m.mentions".into(), to_json(mentions(&rendered.user_ids, rendered.room))?);

    let already = current.mentions.clone().unwrap_or_default();
    let newly: Vec<String> = rendered.user_ids.iter().filter(|id| !already.user_ids.contains(id)).cloned().collect();
    let content = EditContent {
        msgtype,
        body: format!("* {body}"),
        formatted: rendered.html.as_deref().map(|html| FormattedBody::html(format!("* {html}"))),
        mentions: mentions(&newly, rendered.room && !already.room),
        new_content,
        relates_to: RelatesTo {
            rel_type: Some(RelationType::Replacement),
            event_id: Some(original_id.to_owned()),
            is_falling_back: None,
            in_reply_to: None,
        },
    };
    ensure_fits(&content)?;
    Ok(content)
}

/// Whether an edit would change nothing: the text and its rendering equal what is shown now.
pub fn same_text(current: &Current, body: &str, rendered: &Rendered) -> bool {
    current.body.as_deref() == Some(body)
        && current.formatted_body.as_deref() == rendered.html.as_deref()
        && (rendered.html.is_none() || current.format.as_deref() == Some(HTML_FORMAT))
}

/// `413` when the content would make an event the homeserver refuses.
pub fn ensure_fits(content: &impl Serialize) -> Result<(), DomainError> {
    let size = serde_json::to_vec(content).map(|bytes| bytes.len()).unwrap_or(usize::MAX);
    if size > MAX_CONTENT_BYTES {
        return Err(DomainError::TooLarge(format!(
            "the rendered message is {size} bytes; the homeserver's limit leaves room for {MAX_CONTENT_BYTES}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::messages::MAX_BODY_BYTES;
    use crate::domain::messages::mentions::Mentionables;
    use crate::domain::messages::render;
    use serde_json::json;

    /// What goes on the wire: the tests compare the JSON clients read.
    fn wire(
        body: &str,
        rendered: &Rendered,
        attachment: Option<&Attachment>,
        placement: &Placement,
    ) -> Result<Value, DomainError> {
        message_content(body, rendered, attachment, placement).map(|content| to_json(content).expect("json"))
    }

    fn image() -> Attachment {
        Attachment {
            content_uri: "mxc://localhost/AbC_1-2".into(),
            mime_type: "image/png".into(),
            size: 1234,
            thumbnail_uri: Some(
                "/_matrix/client/v1/media/thumbnail/localhost/AbC_1-2?width=320&height=240&method=scale".into(),
            ),
            filename: Some("cat.png".into()),
            width: Some(640),
            height: Some(480),
        }
    }

    #[test]
    fn text_messages_carry_html_and_mentions() {
        let rendered = Rendered { html: Some("<p><b>x</b></p>".into()), user_ids: vec!["@a:l".into()], room: true };
        let content = wire("**x**", &rendered, None, &Placement::Timeline).expect("fits");
        assert_eq!(
            content,
            json!({"msgtype":"m.text","body":"**x**","format":HTML_FORMAT,"formatted_body":"<p><b>x</b></p>",
                   "m.mentions":{"user_ids":["@a:l"],"room":true}})
        );
        let plain = wire("x", &Rendered::default(), None, &Placement::Timeline).expect("fits");
        assert_eq!(plain, json!({"msgtype":"m.text","body":"x","m.mentions":{}}));
    }

    #[test]
    fn threads_and_replies_relate() {
        let thread = Placement::Thread { root: "$root".into(), in_reply_to: "$last".into(), is_falling_back: true };
        let content = wire("x", &Rendered::default(), None, &thread).expect("fits");
        assert_eq!(
            content["m.relates_to"],
            json!({"rel_type":"m.thread","event_id":"$root","is_falling_back":true,"m.in_reply_to":{"event_id":"$last"}})
        );
        // A genuine reply inside a thread says `is_falling_back: false` (ruma's own type would leave it out).
        let in_thread = Placement::Thread { root: "$root".into(), in_reply_to: "$e".into(), is_falling_back: false };
        let content = wire("x", &Rendered::default(), None, &in_thread).expect("fits");
        assert_eq!(content["m.relates_to"]["is_falling_back"], false);
        let reply = wire("x", &Rendered::default(), None, &Placement::Reply { to: "$e".into() }).expect("ok");
        assert_eq!(reply["m.relates_to"], json!({"m.in_reply_to":{"event_id":"$e"}}));
    }

    #[test]
    fn attachments_become_media_messages() {
        let content = wire("a cat", &Rendered::default(), Some(&image()), &Placement::Timeline).expect("ok");
        assert_eq!(content["msgtype"], "m.image");
        assert_eq!(content["url"], "mxc://localhost/AbC_1-2");
        assert_eq!(content["filename"], "cat.png");
        assert_eq!(content["body"], "a cat");
        assert_eq!(content["info"], json!({"mimetype":"image/png","size":1234,"w":640,"h":480}));

        let mut pdf = image();
        pdf.mime_type = "application/pdf".into();
        pdf.thumbnail_uri = Some("/_matrix/client/v1/media/download/localhost/thumb1".into());
        let content = wire("doc", &Rendered::default(), Some(&pdf), &Placement::Timeline).expect("ok");
        assert_eq!(content["msgtype"], "m.file");
        assert_eq!(content["info"]["thumbnail_url"], "mxc://localhost/thumb1");

        let mut foreign = image();
        foreign.thumbnail_uri = Some("/_matrix/client/v1/media/thumbnail/localhost/other".into());
        assert_eq!(check_attachment(&foreign).expect_err("other media").status(), 400);
        for bad_uri in ["https://x/y", "mxc://localhost/../x", "mxc://localhost/", "mxc:///x"] {
            let mut bad = image();
            bad.content_uri = bad_uri.into();
            assert_eq!(check_attachment(&bad).expect_err("bad uri").status(), 400, "{bad_uri}");
        }
        let mut bad_name = image();
        bad_name.filename = Some("../etc/passwd".into());
        assert!(check_attachment(&bad_name).is_err());
    }

    #[test]
    fn edits_replace_the_whole_content_and_notify_only_new_mentions() {
        let current = json!({"msgtype":"m.image","body":"old","url":"mxc://l/m","info":{"size":1},
                             "m.mentions":{"user_ids":["@a:l"]}});
        let rendered =
            Rendered { html: Some("<p>new</p>".into()), user_ids: vec!["@a:l".into(), "@b:l".into()], room: false };
        let current: Current = serde_json::from_value(current).expect("content");
        let edit = to_json(edit_content("$orig", &current, "new", &rendered).expect("fits")).expect("json");
        assert_eq!(edit["body"], "* new");
        assert_eq!(edit["formatted_body"], "* <p>new</p>");
        assert_eq!(edit["m.mentions"], json!({"user_ids":["@b:l"]}));
        assert_eq!(edit["m.relates_to"], json!({"rel_type":"m.replace","event_id":"$orig"}));
        let new_content = &edit["m.new_content"];
        assert_eq!(new_content["url"], "mxc://l/m");
        assert_eq!(new_content["msgtype"], "m.image");
        assert_eq!(new_content["m.mentions"], json!({"user_ids":["@a:l","@b:l"]}));
        let new_content: Current = serde_json::from_value(new_content.clone()).expect("content");
        assert!(same_text(&new_content, "new", &rendered));
        assert!(!same_text(&new_content, "newer", &rendered));
        assert_eq!(edit["msgtype"], "m.image");
        assert_eq!(new_content.json()["info"], json!({"size":1}), "keys we do not model survive");
    }

    #[test]
    fn the_largest_plain_body_fits_and_an_explosive_rendering_is_refused() {
        let longest = "a".repeat(MAX_BODY_BYTES);
        let rendered = render::markdown(&longest, &Mentionables::default());
        assert!(wire(&longest, &rendered, None, &Placement::Timeline).is_ok());
        // Every `*a*` (3 bytes) renders to `<em>a</em>` (10 bytes): the event would pass 64 KiB.
        let emphasis = "*a* ".repeat(MAX_BODY_BYTES / 4);
        let rendered = render::markdown(&emphasis, &Mentionables::default());
        let refused = wire(&emphasis, &rendered, None, &Placement::Timeline).expect_err("too big");
        assert_eq!(refused.status(), 413);
        // Characters JSON escapes grow too; the check measures the bytes actually sent.
        let quotes = "\"".repeat(MAX_BODY_BYTES);
        let rendered = render::markdown(&quotes, &Mentionables::default());
        assert_eq!(wire(&quotes, &rendered, None, &Placement::Timeline).map(|_| ()).map_err(|e| e.status()), Err(413));
    }
}
