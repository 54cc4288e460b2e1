//! One homeserver event as the API's message: edits applied, redactions shown, senders mapped, attachments checked.

use std::collections::BTreeMap;

use ruma::MilliSecondsSinceUnixEpoch;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Attachment;
use super::content::{self, HTML_FORMAT};
use super::render;
use super::*;
use crate::homeserver::{MessageContent, TimelineEvent};
use crate::identity::{Identities, TenantId};

/// The API's view of one `m.room.message` event; `None` for anything else.
pub fn view(event: &TimelineEvent, identities: &Identities, tenant: &TenantId) -> Option<MessageView> {
    if !event.is_message() {
        return None;
    }
    let event_id = event.event_id.to_string();
    let sent_at = timestamp(event.origin_server_ts)?;
    let user_id = event
        .sender
        .as_ref()
        .and_then(|sender| identities.openmeet_user(sender))
        .filter(|(sender_tenant, _)| sender_tenant == tenant)
        .map(|(_, user)| user.to_string());
    let relates_to = event.content.relates_to.as_ref();
    let thread_root_id = relates_to.and_then(|relation| relation.thread_root()).map(|id| id.to_string());
    let reply_to_id = relates_to.and_then(|relation| relation.reply_to()).map(|id| id.to_string());
    let thread_reply_count = event.thread_count;

    if event.redacted {
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
    let content = event.current_content();
    let edited_at = match &event.latest_edit {
        Some(edit) if edit.content.new_content.is_some() => timestamp(edit.origin_server_ts),
        _ => None,
    };
    let body = content.body.clone().unwrap_or_default();
    let html = match (content.format.as_deref(), content.formatted_body.as_deref()) {
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

pub(super) fn timestamp(millis: Option<MilliSecondsSinceUnixEpoch>) -> Option<String> {
    let millis = i128::from(u64::from(millis?.get()));
    OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000).ok()?.format(&Rfc3339).ok()
}

/// The attachment of a media message (`m.image`, `m.file`, `m.video`, `m.audio` with a plain `url`).
pub(super) fn attachment_of(content: &MessageContent) -> Option<Attachment> {
    if !matches!(content.msgtype.as_deref()?, "m.image" | "m.file" | "m.video" | "m.audio") {
        return None;
    }
    let content_uri = content.url.as_deref()?;
    let mxc = content::parse_mxc(content_uri)?;
    let info = content.info.clone().unwrap_or_default();
    // Another client wrote this event: a type outside what uploads accept (HTML, SVG, anything made up) is shown as
    // an opaque download, never passed on for a reader to render.
    let mime_type = info
        .mimetype
        .map(|declared| declared.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .filter(|essence| super::super::media::is_accepted_type(essence))
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let dimension = |n: Option<u64>| n.and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0);
    let thumbnail_uri = match info.thumbnail_url.as_deref().and_then(content::parse_mxc) {
        Some(thumbnail) => Some(content::download_path(&thumbnail)),
        None if mime_type.starts_with("image/") => Some(content::thumbnail_path(&mxc)),
        None => None,
    };
    // Before Matrix 1.10 the body was the file's name; since then `filename` is, and the body a caption.
    let filename = [content.filename.as_deref(), content.body.as_deref()]
        .into_iter()
        .flatten()
        .find(|name| !name.is_empty())
        .and_then(super::super::media::displayable_filename);
    Some(Attachment {
        content_uri: content_uri.to_owned(),
        mime_type,
        size: info.size.unwrap_or(0),
        thumbnail_uri,
        filename,
        width: dimension(info.w),
        height: dimension(info.h),
    })
}
