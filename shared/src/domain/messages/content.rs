//! The `m.room.message` contents we send: text, attachments, threads, replies, edits, mentions; and the size check
//! that keeps every one of them under the homeserver's event limit.
//!
//! Built as JSON (`json!`), not as ruma's `RoomMessageEventContent`: an edit copies the original's content, whose
//! unknown keys must survive; the size check measures exactly the bytes sent; and ruma would add or reshape keys
//! (mention fallbacks, thumbnail info) that clients and the tests read as they are. They reach the homeserver
//! through ruma's raw-content request (`Homeserver::send_message_event`).

use serde_json::{Map, Value, json};

use super::render::Rendered;
use super::{Attachment, MAX_CONTENT_BYTES};
use crate::domain::DomainError;

pub const HTML_FORMAT: &str = "org.matrix.custom.html";
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
pub fn mentions_value(user_ids: &[String], room: bool) -> Value {
    let mut mentions = Map::new();
    if !user_ids.is_empty() {
        mentions.insert("user_ids".into(), json!(user_ids));
    }
    if room {
        mentions.insert("room".into(), Value::Bool(true));
    }
    Value::Object(mentions)
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

/// The content of a new message.
pub fn message_content(
    body: &str,
    rendered: &Rendered,
    attachment: Option<&Attachment>,
    placement: &Placement,
) -> Result<Value, DomainError> {
    let mut content = Map::new();
    content.insert("msgtype".into(), json!(msgtype_for(attachment)));
    content.insert("body".into(), json!(body));
    if let Some(html) = &rendered.html {
        content.insert("format".into(), json!(HTML_FORMAT));
        content.insert("formatted_body".into(), json!(html));
    }
    if let Some(attachment) = attachment {
        add_attachment(&mut content, attachment)?;
    }
    content.insert("m.mentions".into(), mentions_value(&rendered.user_ids, rendered.room));
    match placement {
        Placement::Timeline => {}
        Placement::Reply { to } => {
            content.insert("m.relates_to".into(), json!({"m.in_reply_to": {"event_id": to}}));
        }
        Placement::Thread { root, in_reply_to, is_falling_back } => {
            content.insert(
                "m.relates_to".into(),
                json!({
                    "rel_type": "m.thread",
                    "event_id": root,
                    "is_falling_back": is_falling_back,
                    "m.in_reply_to": {"event_id": in_reply_to},
                }),
            );
        }
    }
    let content = Value::Object(content);
    ensure_fits(&content)?;
    Ok(content)
}

fn add_attachment(content: &mut Map<String, Value>, attachment: &Attachment) -> Result<(), DomainError> {
    check_attachment(attachment)?;
    let mxc = parse_mxc(&attachment.content_uri).ok_or(DomainError::Internal)?;
    content.insert("url".into(), json!(attachment.content_uri));
    // Since Matrix 1.10 `filename` names the file and `body` is its caption.
    let filename = attachment.filename.clone().unwrap_or_else(|| mxc.media_id.to_owned());
    content.insert("filename".into(), json!(filename));
    let mut info = Map::new();
    info.insert("mimetype".into(), json!(attachment.mime_type));
    info.insert("size".into(), json!(attachment.size));
    if let Some(width) = attachment.width {
        info.insert("w".into(), json!(width));
    }
    if let Some(height) = attachment.height {
        info.insert("h".into(), json!(height));
    }
    if let Some(Thumbnail::Uploaded(uri)) = parse_thumbnail(attachment, &mxc)? {
        info.insert("thumbnail_url".into(), json!(uri));
    }
    content.insert("info".into(), Value::Object(info));
    Ok(())
}

/// The content of an edit of `original_id`, whose current content is `current`. `m.new_content` is the whole new
/// content (an attachment keeps its file; only the text changes); the top level is the fallback `* ...` for clients
/// without edit support, and mentions only the people this edit newly mentions, so nobody is notified twice.
pub fn edit_content(original_id: &str, current: &Value, body: &str, rendered: &Rendered) -> Result<Value, DomainError> {
    let mut new_content = match current {
        Value::Object(current) => current.clone(),
        _ => Map::new(),
    };
    for stale in ["body", "format", "formatted_body", "m.mentions", "m.relates_to", "m.new_content"] {
        new_content.remove(stale);
    }
    if !new_content.contains_key("msgtype") {
        new_content.insert("msgtype".into(), json!("m.text"));
    }
    new_content.insert("body".into(), json!(body));
    if let Some(html) = &rendered.html {
        new_content.insert("format".into(), json!(HTML_FORMAT));
        new_content.insert("formatted_body".into(), json!(html));
    }
    new_content.insert("m.mentions".into(), mentions_value(&rendered.user_ids, rendered.room));

    let already: Vec<&str> = current
        .pointer("/m.mentions/user_ids")
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let newly: Vec<String> = rendered.user_ids.iter().filter(|id| !already.contains(&id.as_str())).cloned().collect();
    let room_newly = rendered.room && current.pointer("/m.mentions/room").and_then(Value::as_bool) != Some(true);

    let mut content = Map::new();
    content.insert("msgtype".into(), new_content.get("msgtype").cloned().unwrap_or(json!("m.text")));
    content.insert("body".into(), json!(format!("* {body}")));
    if let Some(html) = &rendered.html {
        content.insert("format".into(), json!(HTML_FORMAT));
        content.insert("formatted_body".into(), json!(format!("* {html}")));
    }
    content.insert("m.mentions".into(), mentions_value(&newly, room_newly));
    content.insert("m.new_content".into(), Value::Object(new_content));
    content.insert("m.relates_to".into(), json!({"rel_type": "m.replace", "event_id": original_id}));
    let content = Value::Object(content);
    ensure_fits(&content)?;
    Ok(content)
}

/// Whether an edit would change nothing: the text and its rendering equal what is shown now.
pub fn same_text(current: &Value, body: &str, rendered: &Rendered) -> bool {
    let field = |name: &str| current.get(name).and_then(Value::as_str);
    field("body") == Some(body)
        && field("formatted_body") == rendered.html.as_deref()
        && (rendered.html.is_none() || field("format") == Some(HTML_FORMAT))
}

/// `413` when the content would make an event the homeserver refuses.
pub fn ensure_fits(content: &Value) -> Result<(), DomainError> {
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
        let content = message_content("**x**", &rendered, None, &Placement::Timeline).expect("fits");
        assert_eq!(
            content,
            json!({"msgtype":"m.text","body":"**x**","format":HTML_FORMAT,"formatted_body":"<p><b>x</b></p>",
                   "m.mentions":{"user_ids":["@a:l"],"room":true}})
        );
        let plain = message_content("x", &Rendered::default(), None, &Placement::Timeline).expect("fits");
        assert_eq!(plain, json!({"msgtype":"m.text","body":"x","m.mentions":{}}));
    }

    #[test]
    fn threads_and_replies_relate() {
        let thread = Placement::Thread { root: "$root".into(), in_reply_to: "$last".into(), is_falling_back: true };
        let content = message_content("x", &Rendered::default(), None, &thread).expect("fits");
        assert_eq!(
            content["m.relates_to"],
            json!({"rel_type":"m.thread","event_id":"$root","is_falling_back":true,"m.in_reply_to":{"event_id":"$last"}})
        );
        let reply =
            message_content("x", &Rendered::default(), None, &Placement::Reply { to: "$e".into() }).expect("ok");
        assert_eq!(reply["m.relates_to"], json!({"m.in_reply_to":{"event_id":"$e"}}));
    }

    #[test]
    fn attachments_become_media_messages() {
        let content = message_content("a cat", &Rendered::default(), Some(&image()), &Placement::Timeline).expect("ok");
        assert_eq!(content["msgtype"], "m.image");
        assert_eq!(content["url"], "mxc://localhost/AbC_1-2");
        assert_eq!(content["filename"], "cat.png");
        assert_eq!(content["body"], "a cat");
        assert_eq!(content["info"], json!({"mimetype":"image/png","size":1234,"w":640,"h":480}));

        let mut pdf = image();
        pdf.mime_type = "application/pdf".into();
        pdf.thumbnail_uri = Some("/_matrix/client/v1/media/download/localhost/thumb1".into());
        let content = message_content("doc", &Rendered::default(), Some(&pdf), &Placement::Timeline).expect("ok");
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
        let edit = edit_content("$orig", &current, "new", &rendered).expect("fits");
        assert_eq!(edit["body"], "* new");
        assert_eq!(edit["formatted_body"], "* <p>new</p>");
        assert_eq!(edit["m.mentions"], json!({"user_ids":["@b:l"]}));
        assert_eq!(edit["m.relates_to"], json!({"rel_type":"m.replace","event_id":"$orig"}));
        let new_content = &edit["m.new_content"];
        assert_eq!(new_content["url"], "mxc://l/m");
        assert_eq!(new_content["msgtype"], "m.image");
        assert_eq!(new_content["m.mentions"], json!({"user_ids":["@a:l","@b:l"]}));
        assert!(same_text(new_content, "new", &rendered));
        assert!(!same_text(new_content, "newer", &rendered));
    }

    #[test]
    fn the_largest_plain_body_fits_and_an_explosive_rendering_is_refused() {
        let longest = "a".repeat(MAX_BODY_BYTES);
        let rendered = render::markdown(&longest, &Mentionables::default());
        assert!(message_content(&longest, &rendered, None, &Placement::Timeline).is_ok());
        // Every `*a*` (3 bytes) renders to `<em>a</em>` (10 bytes): the event would pass 64 KiB.
        let emphasis = "*a* ".repeat(MAX_BODY_BYTES / 4);
        let rendered = render::markdown(&emphasis, &Mentionables::default());
        let refused = message_content(&emphasis, &rendered, None, &Placement::Timeline).expect_err("too big");
        assert_eq!(refused.status(), 413);
        // Characters JSON escapes grow too; the check measures the bytes actually sent.
        let quotes = "\"".repeat(MAX_BODY_BYTES);
        let rendered = render::markdown(&quotes, &Mentionables::default());
        assert_eq!(
            message_content(&quotes, &rendered, None, &Placement::Timeline).map(|_| ()).map_err(|e| e.status()),
            Err(413)
        );
    }
}
