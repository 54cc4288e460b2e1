//! One homeserver event as the API's message: edits applied, redactions shown, senders mapped, attachments checked.

use std::collections::BTreeMap;

use ruma::UserId;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Attachment;
use super::content::{self, HTML_FORMAT};
use super::render;
use super::room::{self};
use super::*;
use crate::identity::{Identities, TenantId};

/// The API's view of one `m.room.message` event; `None` for anything else.
pub fn view(event: &Value, identities: &Identities, tenant: &TenantId) -> Option<MessageView> {
    if event.get("type").and_then(Value::as_str) != Some("m.room.message") {
        return None;
    }
    let event_id = event.get("event_id").and_then(Value::as_str)?.to_owned();
    let sent_at = timestamp(event.get("origin_server_ts"))?;
    let user_id = room::sender(event)
        .and_then(|sender| UserId::parse(sender).ok())
        .and_then(|sender| identities.openmeet_user(&sender))
        .filter(|(sender_tenant, _)| sender_tenant == tenant)
        .map(|(_, user)| user.to_string());
    let original = event.get("content").cloned().unwrap_or(Value::Null);
    let relates_to = original.get("m.relates_to");
    let thread_root_id = relates_to
        .filter(|relation| relation.get("rel_type").and_then(Value::as_str) == Some("m.thread"))
        .and_then(|relation| relation.get("event_id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let falling_back = relates_to.and_then(|r| r.get("is_falling_back")).and_then(Value::as_bool) == Some(true);
    let reply_to_id = relates_to
        .filter(|_| !falling_back)
        .and_then(|relation| relation.pointer("/m.in_reply_to/event_id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let thread_reply_count = event.pointer("/unsigned/m.relations/m.thread/count").and_then(Value::as_u64);

    if room::is_redacted(event) {
        return Some(MessageView {
            event_id,
            user_id,
            body: String::new(),
            html: String::new(),
            sent_at,
            edited_at: None,
            deleted: true,
            thread_root_id,
            reply_to_id,
            attachment: None,
            thread_reply_count,
            reactions: BTreeMap::new(),
        });
    }
    let edit = event.pointer("/unsigned/m.relations/m.replace").filter(|edit| !edit.is_null());
    let (content, edited_at) = match edit.and_then(|edit| edit.pointer("/content/m.new_content")) {
        Some(new_content) => (new_content, edit.and_then(|edit| timestamp(edit.get("origin_server_ts")))),
        None => (&original, None),
    };
    let body = content.get("body").and_then(Value::as_str).unwrap_or("").to_owned();
    let html =
        match (content.get("format").and_then(Value::as_str), content.get("formatted_body").and_then(Value::as_str)) {
            // Written by anyone's client: sanitised again on the way out.
            (Some(HTML_FORMAT), Some(formatted)) => render::sanitise(formatted),
            _ => render::escape(&body),
        };
    Some(MessageView {
        event_id,
        user_id,
        body,
        html,
        sent_at,
        edited_at,
        deleted: false,
        thread_root_id,
        reply_to_id,
        attachment: attachment_of(content),
        thread_reply_count,
        reactions: BTreeMap::new(),
    })
}

pub(super) fn timestamp(millis: Option<&Value>) -> Option<String> {
    let millis = millis.and_then(Value::as_i64)?;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok()?.format(&Rfc3339).ok()
}

/// The attachment of a media message (`m.image`, `m.file`, `m.video`, `m.audio` with a plain `url`).
pub(super) fn attachment_of(content: &Value) -> Option<Attachment> {
    let msgtype = content.get("msgtype").and_then(Value::as_str)?;
    if !matches!(msgtype, "m.image" | "m.file" | "m.video" | "m.audio") {
        return None;
    }
    let content_uri = content.get("url").and_then(Value::as_str)?;
    let mxc = content::parse_mxc(content_uri)?;
    let info = content.get("info");
    // Another client wrote this event: a type outside what uploads accept (HTML, SVG, anything made up) is shown as
    // an opaque download, never passed on for a reader to render.
    let mime_type = info
        .and_then(|info| info.get("mimetype"))
        .and_then(Value::as_str)
        .map(|declared| declared.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .filter(|essence| super::super::media::is_accepted_type(essence))
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let dimension = |name: &str| {
        info.and_then(|info| info.get(name))
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
    };
    let thumbnail_uri =
        match info.and_then(|info| info.get("thumbnail_url")).and_then(Value::as_str).and_then(content::parse_mxc) {
            Some(thumbnail) => Some(content::download_path(&thumbnail)),
            None if mime_type.starts_with("image/") => Some(content::thumbnail_path(&mxc)),
            None => None,
        };
    // Before Matrix 1.10 the body was the file's name; since then `filename` is, and the body a caption.
    let filename = [content.get("filename"), content.get("body")]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|name| !name.is_empty())
        .and_then(super::super::media::displayable_filename);
    Some(Attachment {
        content_uri: content_uri.to_owned(),
        mime_type,
        size: info.and_then(|info| info.get("size")).and_then(Value::as_u64).unwrap_or(0),
        thumbnail_uri,
        filename,
        width: dimension("w"),
        height: dimension("h"),
    })
}
