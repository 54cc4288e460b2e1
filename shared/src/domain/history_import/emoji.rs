//! Zulip emoji to Unicode. A reaction carries its code point(s) (`emoji_code`, hex joined by `-`, as in
//! `1f468-200d-1f4bb`), so reactions need no name table; `:name:` in message text does, and this table holds the
//! names people type most. Custom (realm) emoji and unknown names stay as `:name:` text.

/// The Unicode text of a Zulip `unicode_emoji` code (`1f44d`, `1f468-200d-1f4bb`); `None` if it is not one.
pub fn from_code(code: &str) -> Option<String> {
    if code.is_empty() {
        return None;
    }
    code.split('-').map(|part| u32::from_str_radix(part, 16).ok().and_then(char::from_u32)).collect()
}

/// The key of a reaction: Unicode for `unicode_emoji`, `:name:` for custom emoji (`realm_emoji`, `zulip_extra_emoji`)
/// and for codes that are not code points.
pub fn reaction_key(reaction_type: &str, emoji_code: &str, emoji_name: &str) -> String {
    match reaction_type {
        "unicode_emoji" => from_code(emoji_code).unwrap_or_else(|| format!(":{emoji_name}:")),
        _ => format!(":{emoji_name}:"),
    }
}

/// Names of Zulip's emoji set (Google's names, as Zulip's `name_to_codepoint`) that people type most.
const NAMES: &[(&str, &str)] = &[
    ("+1", "👍"),
    ("-1", "👎"),
    ("thumbs_up", "👍"),
    ("thumbs_down", "👎"),
    ("smile", "😄"),
    ("smiley", "😃"),
    ("grinning", "😀"),
    ("laughing", "😆"),
    ("joy", "😂"),
    ("rolling_on_the_floor_laughing", "🤣"),
    ("slight_smile", "🙂"),
    ("wink", "😉"),
    ("blush", "😊"),
    ("heart_eyes", "😍"),
    ("thinking", "🤔"),
    ("confused", "😕"),
    ("cry", "😢"),
    ("sob", "😭"),
    ("angry", "😠"),
    ("scream", "😱"),
    ("sunglasses", "😎"),
    ("upside_down", "🙃"),
    ("heart", "❤️"),
    ("tada", "🎉"),
    ("octopus", "🐙"),
    ("fire", "🔥"),
    ("rocket", "🚀"),
    ("eyes", "👀"),
    ("clap", "👏"),
    ("pray", "🙏"),
    ("wave", "👋"),
    ("ok", "🆗"),
    ("check", "✅"),
    ("check_mark", "✔️"),
    ("x", "❌"),
    ("star", "⭐"),
    ("sparkles", "✨"),
    ("bulb", "💡"),
    ("warning", "⚠️"),
    ("coffee", "☕"),
    ("muscle", "💪"),
    ("hundred", "💯"),
    ("100", "💯"),
    ("working_on_it", "🛠️"),
    ("question", "❓"),
    ("exclamation", "❗"),
];

pub fn by_name(name: &str) -> Option<&'static str> {
    NAMES.iter().find(|(known, _)| *known == name).map(|(_, emoji)| *emoji)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_become_unicode_and_custom_emoji_text() {
        assert_eq!(from_code("1f44d").as_deref(), Some("👍"));
        assert_eq!(from_code("1f468-200d-1f4bb").as_deref(), Some("👨\u{200d}💻"));
        assert_eq!(from_code("zz"), None);
        assert_eq!(from_code("110000"), None);
        assert_eq!(reaction_key("unicode_emoji", "1f389", "tada"), "🎉");
        assert_eq!(reaction_key("realm_emoji", "12", "party_parrot"), ":party_parrot:");
        assert_eq!(reaction_key("zulip_extra_emoji", "zulip", "zulip"), ":zulip:");
        assert_eq!(by_name("tada"), Some("🎉"));
        assert_eq!(by_name("party_parrot"), None);
    }
}
