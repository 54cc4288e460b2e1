//! Unit tests.

use super::super::content::HTML_FORMAT;
use super::*;
use crate::homeserver::TimelineEvent;
use crate::identity::{Identities, TenantId};
use serde_json::{Value, json};

fn identities() -> Identities {
    Identities::new("om_", "localhost", "openmeet").expect("valid")
}

fn tenant() -> TenantId {
    TenantId::parse("acme").expect("tenant")
}

/// An event as the homeserver serves it (the wire JSON), read as the port reads it.
fn event(id: &str, sender: &str, content: Value) -> TimelineEvent {
    typed(wire(id, sender, content))
}

fn wire(id: &str, sender: &str, content: Value) -> Value {
    json!({"type":"m.room.message","event_id":id,"sender":sender,"origin_server_ts":1_700_000_000_123_i64,
           "content":content,"unsigned":{}})
}

fn typed(event: Value) -> TimelineEvent {
    serde_json::from_value(event).expect("an event")
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
    for bad in ["s99999999999999999999_0", "abc", "s", "s-1", "s1__2", "x12", "s1 2", "t1-2;drop", &"s1_".repeat(200)] {
        assert!(!is_page_token(bad), "{bad}");
    }
}

#[test]
fn senders_map_back_to_users_of_the_tenant() {
    let content = json!({"msgtype":"m.text","body":"hi <b>"});
    let mine = view(&event("$1", "@om_acme.jane:localhost", content.clone()), &identities(), &tenant()).expect("shown");
    assert_eq!(mine.user_id.as_deref(), Some("jane"));
    assert_eq!(mine.html, "hi &lt;b&gt;");
    assert_eq!(mine.sent_at, "2023-11-14T22:13:20.123Z");
    for foreign in ["@openmeet:localhost", "@om_other.jane:localhost", "@jane:elsewhere"] {
        assert_eq!(
            view(&event("$1", foreign, content.clone()), &identities(), &tenant()).expect("shown").user_id,
            None
        );
    }
    let reaction =
        typed(json!({"type":"m.reaction","event_id":"$r","sender":"@a:l","origin_server_ts":1,"content":{}}));
    assert_eq!(view(&reaction, &identities(), &tenant()), None);
}

#[test]
fn edits_apply_and_html_is_sanitised_again() {
    let mut message = wire("$1", "@om_acme.jane:localhost", json!({"msgtype":"m.text","body":"old"}));
    message["unsigned"]["m.relations"] = json!({"m.replace": {
        "event_id":"$2","origin_server_ts":1_700_000_100_000_i64,
        "content":{"body":"* new","m.new_content":{"msgtype":"m.text","body":"new","format":HTML_FORMAT,
                   "formatted_body":"<b>new</b><img src=x onerror=alert(1)><script>x</script>"}}}});
    let shown = view(&typed(message), &identities(), &tenant()).expect("shown");
    assert_eq!(shown.body, "new");
    assert_eq!(shown.html, "<b>new</b><img>");
    assert_eq!(shown.edited_at.as_deref(), Some("2023-11-14T22:15:00Z"));
}

#[test]
fn redactions_threads_replies_and_attachments_have_their_shape() {
    let mut deleted = wire("$1", "@om_acme.jane:localhost", json!({}));
    deleted["unsigned"]["redacted_because"] = json!({"type":"m.room.redaction"});
    let shown = view(&typed(deleted), &identities(), &tenant()).expect("shown");
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

#[test]
fn another_clients_mime_type_and_filename_are_checked() {
    let hostile = event(
        "$6",
        "@om_acme.mallory:localhost",
        json!({"msgtype":"m.image","body":"x","filename":"invoice\u{202E}fdp.exe/../x",
        "url":"mxc://localhost/svg","info":{"mimetype":"image/svg+xml","size":10}}),
    );
    let attachment = view(&hostile, &identities(), &tenant()).expect("shown").attachment.expect("attachment");
    assert_eq!(attachment.mime_type, "application/octet-stream", "never passed on as SVG");
    assert_eq!(attachment.thumbnail_uri, None, "nor thumbnailed as an image");
    assert_eq!(attachment.filename.as_deref(), Some("invoice_fdp.exe_.._x"));
    let html =
        event("$7", "@x:l", json!({"msgtype":"m.file","body":"a","url":"mxc://l/f","info":{"mimetype":"Text/HTML"}}));
    assert_eq!(
        view(&html, &identities(), &tenant()).expect("shown").attachment.expect("a").mime_type,
        "application/octet-stream"
    );
    let pdf = event(
        "$8",
        "@x:l",
        json!({"msgtype":"m.file","body":"a","url":"mxc://l/f","info":{"mimetype":"Application/PDF"}}),
    );
    assert_eq!(
        view(&pdf, &identities(), &tenant()).expect("shown").attachment.expect("a").mime_type,
        "application/pdf"
    );
}
