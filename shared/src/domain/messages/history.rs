//! A page of history: the homeserver's events turned into the API's messages, newest first, edits applied,
//! redactions shown, reactions counted, senders mapped back to OpenMeet users.
//!
//! The room's timeline comes from `/messages` (only `m.room.message` events), the thread's from
//! `/relations/{root}/m.thread`; both page backwards and their tokens pass through as `next`. Edits arrive bundled
//! with the message they edit (the homeserver keeps only same-sender edits); reactions are read per message from
//! `/relations/{id}/m.annotation`, concurrently. The main timeline leaves out edits and thread replies (a thread
//! root tells how many replies it has); it reads a few homeserver pages at most to fill a page.

use std::collections::{BTreeMap, BTreeSet};

use ruma::UserId;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::content::{self, HTML_FORMAT};
use super::render;
use super::room::{self, Identity};
use super::{Actor, Attachment};
use crate::app::App;
use crate::domain::rooms::RoomRef;
use crate::error::ApiError;
use crate::homeserver::{HomeserverError, encode};
use crate::identity::{Identities, TenantId};

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 100;
/// Homeserver pages read at most to fill one page of the main timeline (edits and thread replies are skipped).
const MAX_ROUNDS: usize = 5;
/// The `next` of a thread page whose replies are all listed but whose root is not yet.
const ONLY_THE_ROOT_LEFT: &str = "om-thread-root";
/// Reactions of one message are read from one page of 100 (the newest hundred count), so a page of history costs
/// at most `MAX_ROUNDS + limit` homeserver calls (a thread page `2 + limit`), besides resolving the room.
const MAX_REACTION_PAGES: usize = 1;
/// Reaction lookups in flight at once.
const REACTION_CONCURRENCY: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub event_id: String,
    pub user_id: Option<String>,
    pub body: String,
    pub html: String,
    pub sent_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<String>,
    pub deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_root_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
    /// On a thread root: how many messages the thread holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_reply_count: Option<u64>,
    pub reactions: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessagePage {
    pub messages: Vec<MessageView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET .../messages` query parameters, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery {
    pub limit: usize,
    pub from: Option<String>,
    pub thread_root_id: Option<String>,
}

impl PageQuery {
    pub fn parse(limit: Option<&str>, from: Option<&str>, thread_root_id: Option<&str>) -> Result<Self, ApiError> {
        let invalid = |why: &str| ApiError::bad_request("invalid_parameter", why.to_owned());
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| invalid("limit must be an integer from 1 to 100"))?,
        };
        let from = match from {
            None => None,
            Some(token) if is_page_token(token) => Some(token.to_owned()),
            Some(_) => return Err(invalid("from must be the next token of a previous page")),
        };
        let thread_root_id = thread_root_id.map(super::parse_event_id).transpose()?;
        Ok(PageQuery { limit, from, thread_root_id })
    }
}

/// The shape of the homeserver's pagination tokens (`s12_3_0…`, `t4-56_0…`, sharded `m7~1.8~2.9…`) or our own
/// thread marker. Each number must fit in 63 bits: Synapse answers a larger one with a 500, not a 400.
fn is_page_token(token: &str) -> bool {
    if token == ONLY_THE_ROOT_LEFT {
        return true;
    }
    let Some(rest) = token.strip_prefix(['s', 't', 'm']) else {
        return false;
    };
    token.len() <= 512
        && rest.split(['_', '-', '~', '.']).all(|number| {
            !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) && number.parse::<i64>().is_ok()
        })
}

/// Reads one page as the actor (a member reads with their own identity, so the homeserver's history visibility
/// holds for them; the service reads as the platform's user).
pub async fn page(app: &App, room: &RoomRef, actor: &Actor, query: &PageQuery) -> Result<MessagePage, ApiError> {
    let (events, next) = match &query.thread_root_id {
        None => timeline(app, room, actor, query).await?,
        Some(root) => thread(app, room, actor, root, query).await?,
    };
    let mut messages: Vec<MessageView> =
        events.iter().filter_map(|event| view(event, &app.identities, actor.tenant())).collect();
    let wanted: Vec<String> = messages.iter().filter(|m| !m.deleted).map(|m| m.event_id.clone()).collect();
    let mut counted = count_reactions(app, room, actor, wanted).await?;
    for message in &mut messages {
        if let Some(reactions) = counted.remove(&message.event_id) {
            message.reactions = reactions;
        }
    }
    Ok(MessagePage { messages, next })
}

async fn get_as(app: &App, actor: &Actor, path: &str) -> Result<Value, ApiError> {
    let outcome = room::act(app, actor, |identity: Identity| async move {
        app.homeserver.call::<Value>(reqwest::Method::GET, path, identity.acting(), None::<&Value>).await
    })
    .await?;
    outcome.map_err(|refusal| match refusal {
        HomeserverError::Rejected { status: 403, .. } => ApiError::forbidden("only members of this room may read it"),
        HomeserverError::Rejected { status: 400, .. } => {
            ApiError::bad_request("invalid_parameter", "from is not a token of this listing")
        }
        other => room::refusal(other),
    })
}

async fn timeline(
    app: &App,
    room: &RoomRef,
    actor: &Actor,
    query: &PageQuery,
) -> Result<(Vec<Value>, Option<String>), ApiError> {
    let filter = r#"{"types":["m.room.message"]}"#;
    let mut listed = Vec::new();
    let mut from = query.from.clone();
    for _ in 0..MAX_ROUNDS {
        // Ask for exactly what is missing, so that a page never holds more than `limit` and nothing is skipped.
        let limit = (query.limit - listed.len()).to_string();
        let mut pairs = vec![("dir", "b"), ("limit", limit.as_str()), ("filter", filter)];
        if let Some(from) = &from {
            pairs.push(("from", from.as_str()));
        }
        let path = format!("{}/messages?{}", room::room_path(&room.room_id), room::query_string(&pairs));
        let page = get_as(app, actor, &path).await?;
        let chunk = page.get("chunk").and_then(Value::as_array).cloned().unwrap_or_default();
        let end = page.get("end").and_then(Value::as_str).map(str::to_owned);
        let exhausted = chunk.is_empty() || end.is_none();
        listed.extend(chunk.into_iter().filter(in_main_timeline));
        from = end;
        if exhausted || listed.len() >= query.limit {
            break;
        }
    }
    Ok((listed, from))
}

/// Edits are applied to what they edit and thread replies live in their thread.
fn in_main_timeline(event: &Value) -> bool {
    event.get("type").and_then(Value::as_str) == Some("m.room.message")
        && !matches!(room::rel_type(event), Some("m.replace" | "m.thread"))
}

async fn thread(
    app: &App,
    room: &RoomRef,
    actor: &Actor,
    root: &str,
    query: &PageQuery,
) -> Result<(Vec<Value>, Option<String>), ApiError> {
    let root_event = room::fetch_message(app, room, root).await?;
    if query.from.as_deref() == Some(ONLY_THE_ROOT_LEFT) {
        return Ok((vec![root_event], None));
    }
    let limit = query.limit.to_string();
    let mut pairs = vec![("dir", "b"), ("limit", limit.as_str())];
    if let Some(from) = &query.from {
        pairs.push(("from", from.as_str()));
    }
    let path = format!(
        "/_matrix/client/v1/rooms/{}/relations/{}/m.thread?{}",
        encode(room.room_id.as_str()),
        encode(root),
        room::query_string(&pairs)
    );
    let page = get_as(app, actor, &path).await?;
    let mut events: Vec<Value> = page
        .get("chunk")
        .and_then(Value::as_array)
        .map(|chunk| {
            chunk.iter().filter(|e| e.get("type").and_then(Value::as_str) == Some("m.room.message")).cloned().collect()
        })
        .unwrap_or_default();
    let mut next = page.get("next_batch").and_then(Value::as_str).map(str::to_owned);
    // The root opens the thread: it is the oldest, so it ends the last page, or makes a page of its own when the
    // replies filled this one.
    if next.is_none() {
        if events.len() < query.limit {
            events.push(root_event);
        } else {
            next = Some(ONLY_THE_ROOT_LEFT.to_owned());
        }
    }
    Ok((events, next))
}

/// Counts the reactions of each message; a message's lookup failing for lack of access counts nothing.
async fn count_reactions(
    app: &App,
    room: &RoomRef,
    actor: &Actor,
    event_ids: Vec<String>,
) -> Result<BTreeMap<String, BTreeMap<String, u64>>, ApiError> {
    if event_ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let identity = match actor {
        Actor::Platform { .. } => Identity::Platform,
        Actor::User { tenant, user } => Identity::User(app.credentials.server_device(tenant, user)),
    };
    let mut counted = BTreeMap::new();
    let mut pending = event_ids.into_iter();
    loop {
        let mut tasks = tokio::task::JoinSet::new();
        for event_id in pending.by_ref().take(REACTION_CONCURRENCY) {
            let homeserver = app.homeserver.clone();
            let identity = identity.clone();
            let room_id = room.room_id.to_string();
            tasks.spawn(async move {
                let reactions = reactions_of(&homeserver, &identity, &room_id, &event_id).await;
                (event_id, reactions)
            });
        }
        if tasks.is_empty() {
            return Ok(counted);
        }
        while let Some(joined) = tasks.join_next().await {
            let (event_id, reactions) = joined.map_err(|_| ApiError::Internal)?;
            counted.insert(event_id, reactions?);
        }
    }
}

async fn reactions_of(
    homeserver: &crate::homeserver::Homeserver,
    identity: &Identity,
    room_id: &str,
    event_id: &str,
) -> Result<BTreeMap<String, u64>, ApiError> {
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut from: Option<String> = None;
    for _ in 0..MAX_REACTION_PAGES {
        let mut pairs = vec![("limit", "100")];
        if let Some(from) = &from {
            pairs.push(("from", from.as_str()));
        }
        let path = format!(
            "/_matrix/client/v1/rooms/{}/relations/{}/m.annotation/m.reaction?{}",
            encode(room_id),
            encode(event_id),
            room::query_string(&pairs)
        );
        let page: Value = match homeserver.call(reqwest::Method::GET, &path, identity.acting(), None::<&Value>).await {
            Ok(page) => page,
            Err(HomeserverError::Rejected { .. }) => break,
            Err(error) => return Err(error.into()),
        };
        for reaction in page.get("chunk").and_then(Value::as_array).into_iter().flatten() {
            if room::is_redacted(reaction) {
                continue;
            }
            let key = reaction.pointer("/content/m.relates_to/key").and_then(Value::as_str);
            if let (Some(key), Some(sender)) = (key, room::sender(reaction)) {
                seen.insert((key.to_owned(), sender.to_owned()));
            }
        }
        from = page.get("next_batch").and_then(Value::as_str).map(str::to_owned);
        if from.is_none() {
            break;
        }
    }
    let mut counts = BTreeMap::new();
    for (key, _) in seen {
        *counts.entry(key).or_insert(0) += 1;
    }
    Ok(counts)
}

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

fn timestamp(millis: Option<&Value>) -> Option<String> {
    let millis = millis.and_then(Value::as_i64)?;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok()?.format(&Rfc3339).ok()
}

/// The attachment of a media message (`m.image`, `m.file`, `m.video`, `m.audio` with a plain `url`).
fn attachment_of(content: &Value) -> Option<Attachment> {
    let msgtype = content.get("msgtype").and_then(Value::as_str)?;
    if !matches!(msgtype, "m.image" | "m.file" | "m.video" | "m.audio") {
        return None;
    }
    let content_uri = content.get("url").and_then(Value::as_str)?;
    let mxc = content::parse_mxc(content_uri)?;
    let info = content.get("info");
    let mime_type = info
        .and_then(|info| info.get("mimetype"))
        .and_then(Value::as_str)
        .unwrap_or("application/octet-stream")
        .to_owned();
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
        .map(str::to_owned);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identities() -> Identities {
        Identities::new("om_", "localhost", "openmeet").expect("valid")
    }

    fn tenant() -> TenantId {
        TenantId::parse("acme").expect("tenant")
    }

    fn event(id: &str, sender: &str, content: Value) -> Value {
        json!({"type":"m.room.message","event_id":id,"sender":sender,"origin_server_ts":1_700_000_000_123_i64,
               "content":content,"unsigned":{}})
    }

    #[test]
    fn queries_are_checked() {
        assert_eq!(PageQuery::parse(None, None, None).expect("defaults").limit, DEFAULT_LIMIT);
        assert_eq!(PageQuery::parse(Some("100"), Some("t1-2_3"), Some("$r")).expect("valid").limit, 100);
        for (limit, from, root) in [
            (Some("0"), None, None),
            (Some("101"), None, None),
            (Some("x"), None, None),
            (None, Some(""), None),
            (None, None, Some("r")),
        ] {
            assert_eq!(PageQuery::parse(limit, from, root).expect_err("invalid").status(), 400);
        }
    }

    #[test]
    fn only_the_homeservers_token_shapes_pass() {
        for good in ["s12_3_0", "t6-586_0_0_0", "m7~1.8~2.9", "s9223372036854775807_0", ONLY_THE_ROOT_LEFT] {
            assert!(is_page_token(good), "{good}");
        }
        for bad in
            ["s99999999999999999999_0", "abc", "s", "s-1", "s1__2", "x12", "s1 2", "t1-2;drop", &"s1_".repeat(200)]
        {
            assert!(!is_page_token(bad), "{bad}");
        }
    }

    #[test]
    fn senders_map_back_to_users_of_the_tenant() {
        let content = json!({"msgtype":"m.text","body":"hi <b>"});
        let mine =
            view(&event("$1", "@om_acme.jane:localhost", content.clone()), &identities(), &tenant()).expect("shown");
        assert_eq!(mine.user_id.as_deref(), Some("jane"));
        assert_eq!(mine.html, "hi &lt;b&gt;");
        assert_eq!(mine.sent_at, "2023-11-14T22:13:20.123Z");
        for foreign in ["@openmeet:localhost", "@om_other.jane:localhost", "@jane:elsewhere"] {
            assert_eq!(
                view(&event("$1", foreign, content.clone()), &identities(), &tenant()).expect("shown").user_id,
                None
            );
        }
        let reaction = json!({"type":"m.reaction","event_id":"$r","sender":"@a:l","origin_server_ts":1,"content":{}});
        assert_eq!(view(&reaction, &identities(), &tenant()), None);
    }

    #[test]
    fn edits_apply_and_html_is_sanitised_again() {
        let mut message = event("$1", "@om_acme.jane:localhost", json!({"msgtype":"m.text","body":"old"}));
        message["unsigned"]["m.relations"] = json!({"m.replace": {
            "event_id":"$2","origin_server_ts":1_700_000_100_000_i64,
            "content":{"body":"* new","m.new_content":{"msgtype":"m.text","body":"new","format":HTML_FORMAT,
                       "formatted_body":"<b>new</b><img src=x onerror=alert(1)><script>x</script>"}}}});
        let shown = view(&message, &identities(), &tenant()).expect("shown");
        assert_eq!(shown.body, "new");
        assert_eq!(shown.html, "<b>new</b><img>");
        assert_eq!(shown.edited_at.as_deref(), Some("2023-11-14T22:15:00Z"));
    }

    #[test]
    fn redactions_threads_replies_and_attachments_have_their_shape() {
        let mut deleted = event("$1", "@om_acme.jane:localhost", json!({}));
        deleted["unsigned"]["redacted_because"] = json!({"type":"m.room.redaction"});
        let shown = view(&deleted, &identities(), &tenant()).expect("shown");
        assert!(shown.deleted && shown.body.is_empty() && shown.html.is_empty());

        let in_thread = event(
            "$2",
            "@om_acme.jane:localhost",
            json!({"msgtype":"m.text","body":"t",
            "m.relates_to":{"rel_type":"m.thread","event_id":"$root","is_falling_back":true,"m.in_reply_to":{"event_id":"$root"}}}),
        );
        let shown = view(&in_thread, &identities(), &tenant()).expect("shown");
        assert_eq!((shown.thread_root_id.as_deref(), shown.reply_to_id.as_deref()), (Some("$root"), None));
        assert!(!in_main_timeline(&in_thread));

        let reply = event(
            "$3",
            "@om_acme.jane:localhost",
            json!({"msgtype":"m.text","body":"r","m.relates_to":{"m.in_reply_to":{"event_id":"$1"}}}),
        );
        assert_eq!(view(&reply, &identities(), &tenant()).expect("shown").reply_to_id.as_deref(), Some("$1"));
        assert!(in_main_timeline(&reply));

        let image = event(
            "$4",
            "@om_acme.jane:localhost",
            json!({"msgtype":"m.image","body":"cat","filename":"cat.png",
            "url":"mxc://localhost/abc","info":{"mimetype":"image/png","size":10,"w":4,"h":3}}),
        );
        let attachment = view(&image, &identities(), &tenant()).expect("shown").attachment.expect("attachment");
        assert_eq!(
            attachment.thumbnail_uri.as_deref(),
            Some("/_matrix/client/v1/media/thumbnail/localhost/abc?width=320&height=240&method=scale")
        );
        assert_eq!((attachment.size, attachment.width, attachment.filename.as_deref()), (10, Some(4), Some("cat.png")));
        let legacy_file = event("$5", "@x:l", json!({"msgtype":"m.file","body":"a.pdf","url":"mxc://l/f"}));
        let attachment = view(&legacy_file, &identities(), &tenant()).expect("shown").attachment.expect("attachment");
        assert_eq!(
            (attachment.filename.as_deref(), attachment.mime_type.as_str(), attachment.thumbnail_uri),
            (Some("a.pdf"), "application/octet-stream", None)
        );
    }
}
