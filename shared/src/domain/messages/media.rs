//! Uploads for message attachments, into the homeserver's media repository as the member.
//!
//! Accepted types (anything else: `400 unsupported_media_type`): images the homeserver can thumbnail (PNG, JPEG,
//! GIF, WebP; the bytes must be what the type says), video (MP4, WebM, QuickTime), audio (MPEG, MP4/AAC, Ogg, WAV,
//! WebM, FLAC), PDF, plain text and CSV, and the common office formats (Word, Excel, PowerPoint, both legacy and
//! OOXML, and OpenDocument text/spreadsheet/presentation). SVG and HTML are refused: they can carry scripts.

use bytes::Bytes;

use super::content::{self, parse_mxc};
use super::room::{self, Identity};
use super::{Actor, Attachment};
use crate::app::App;
use crate::domain::DomainError;

/// Largest upload through the API: 6 MiB.
pub const MAX_UPLOAD_BYTES: usize = 6 * 1024 * 1024;

const IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];
const OTHER_TYPES: [&str; 25] = [
    "video/mp4",
    "video/webm",
    "video/quicktime",
    "audio/mpeg",
    "audio/mp4",
    "audio/aac",
    "audio/ogg",
    "audio/wav",
    "audio/x-wav",
    "audio/webm",
    "audio/flac",
    "application/pdf",
    "text/plain",
    "text/csv",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "application/rtf",
    "application/zip",
];

/// A checked upload, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The media type as sent to the homeserver (parameters such as `charset` kept).
    pub content_type: String,
    /// The media type without parameters, lowercase.
    pub essence: String,
    pub filename: Option<String>,
    pub dimensions: Option<(u32, u32)>,
}

/// Checks what arrived before anything is stored.
pub fn check(content_type: Option<&str>, filename: Option<&str>, body: &[u8]) -> Result<Upload, DomainError> {
    if body.len() > MAX_UPLOAD_BYTES {
        return Err(DomainError::TooLarge(format!(
            "uploads through the API are limited to {MAX_UPLOAD_BYTES} bytes; send larger files to the homeserver directly"
        )));
    }
    if body.is_empty() {
        return Err(DomainError::invalid("invalid_body", "the upload is empty"));
    }
    let content_type = content_type
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| DomainError::invalid("invalid_body", "Content-Type is required"))?;
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if !IMAGE_TYPES.contains(&essence.as_str()) && !OTHER_TYPES.contains(&essence.as_str()) {
        return Err(DomainError::invalid(
            "unsupported_media_type",
            format!("files of type {essence} cannot be attached; see uploadMedia for the accepted types"),
        ));
    }
    let filename = filename.map(check_filename).transpose()?;
    let dimensions = if IMAGE_TYPES.contains(&essence.as_str()) {
        let dimensions = image_dimensions(&essence, body)
            .ok_or_else(|| DomainError::invalid("invalid_body", format!("the body is not a valid {essence} image")))?;
        Some(dimensions)
    } else if matches_declared_type(&essence, content_type, body) {
        None
    } else {
        return Err(DomainError::invalid("invalid_body", format!("the body is not a valid {essence} file")));
    };
    Ok(Upload { content_type: content_type.to_owned(), essence, filename, dimensions })
}

/// Whether the leading bytes are what the declared (non-image) type says, by each format's magic number. A small
/// table rather than a sniffing crate: the accepted list is short and fixed, the question is "is it the declared
/// type" (not "what is it"), and a table keeps the check auditable and the dependency tree small.
fn matches_declared_type(essence: &str, content_type: &str, body: &[u8]) -> bool {
    let at = |offset: usize, magic: &[u8]| body.get(offset..offset + magic.len()) == Some(magic);
    let zip = at(0, b"PK\x03\x04");
    let ole2 = at(0, &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]);
    let iso_media = ["ftyp", "moov", "mdat", "wide", "free", "skip"].iter().any(|atom| at(4, atom.as_bytes()));
    let ebml = at(0, &[0x1A, 0x45, 0xDF, 0xA3]);
    let id3 = at(0, b"ID3");
    let frame_sync =
        |mask: u8, value: u8| body.first() == Some(&0xFF) && body.get(1).is_some_and(|b| b & mask == value);
    match essence {
        "video/mp4" | "audio/mp4" | "video/quicktime" => iso_media,
        "video/webm" | "audio/webm" => ebml,
        "audio/mpeg" => id3 || frame_sync(0xE0, 0xE0),
        // ADTS frames, or an ID3 tag before them.
        "audio/aac" => id3 || frame_sync(0xF6, 0xF0),
        "audio/ogg" => at(0, b"OggS"),
        "audio/wav" | "audio/x-wav" => at(0, b"RIFF") && at(8, b"WAVE"),
        "audio/flac" => at(0, b"fLaC") || id3,
        "application/pdf" => at(0, b"%PDF-"),
        "application/rtf" => at(0, b"{\\rtf"),
        "application/msword" | "application/vnd.ms-excel" | "application/vnd.ms-powerpoint" => ole2,
        // OpenDocument names its own type in an uncompressed first entry, `mimetype`.
        odf if odf.starts_with("application/vnd.oasis.opendocument.") => {
            zip && at(30, b"mimetype") && at(38, odf.as_bytes())
        }
        "application/zip" => zip || at(0, b"PK\x05\x06"),
        ooxml if ooxml.starts_with("application/vnd.openxmlformats-officedocument.") => zip,
        "text/plain" | "text/csv" => is_text(content_type, body),
        _ => false,
    }
}

/// Text: a UTF-16 byte-order mark, or no NUL byte and UTF-8 (any other charset must be declared).
fn is_text(content_type: &str, body: &[u8]) -> bool {
    if body.starts_with(&[0xFF, 0xFE]) || body.starts_with(&[0xFE, 0xFF]) {
        return true;
    }
    let declared_charset = content_type.to_ascii_lowercase().contains("charset=");
    !body.contains(&0) && (declared_charset || std::str::from_utf8(body).is_ok())
}

/// Whether uploads of this media type (lowercase, no parameters) are accepted.
pub fn is_accepted_type(essence: &str) -> bool {
    IMAGE_TYPES.contains(&essence) || OTHER_TYPES.contains(&essence)
}

/// Characters that reorder or hide text (bidi overrides and isolates, zero-width marks): a name carrying them can
/// pose as another (`invoice\u{202E}fdp.exe` shows as `invoiceexe.pdf`).
pub fn is_deceptive(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Whether a file name is safe to store and show: 1-255 characters, no path separator, control or deceptive one.
pub fn is_safe_filename(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 255
        && !name.chars().any(|c| c.is_control() || is_deceptive(c) || c == '/' || c == '\\')
}

/// A file name from someone else's event, made safe to show: the unsafe characters replaced, cut to 255.
pub fn displayable_filename(name: &str) -> Option<String> {
    let shown: String = name
        .chars()
        .map(|c| if c.is_control() || is_deceptive(c) || c == '/' || c == '\\' { '_' } else { c })
        .take(255)
        .collect();
    let shown = shown.trim();
    (!shown.is_empty()).then(|| shown.to_owned())
}

fn check_filename(name: &str) -> Result<String, DomainError> {
    let valid = is_safe_filename(name);
    if valid {
        Ok(name.to_owned())
    } else {
        Err(DomainError::invalid(
            "invalid_parameter",
            "filename must be 1-255 characters without path separators or control characters",
        ))
    }
}

/// Stores the bytes as the member; answers the attachment to pass to `postMessage`.
pub async fn upload(app: &App, actor: &Actor, upload: &Upload, body: Bytes) -> Result<Attachment, DomainError> {
    let size = body.len() as u64;
    let content_uri = room::act(app, actor, |identity: Identity| {
        let (filename, body, content_type) = (upload.filename.as_deref(), body.clone(), upload.content_type.as_str());
        async move { app.homeserver.upload(filename, content_type, body, identity.acting()).await }
    })
    .await?
    .map_err(room::refusal)?;
    let content_uri = content_uri.as_str();
    let mxc = parse_mxc(content_uri).ok_or(DomainError::HomeserverAnswer("the upload answered a bad content_uri"))?;
    Ok(Attachment {
        content_uri: content_uri.to_owned(),
        mime_type: upload.essence.clone(),
        size,
        thumbnail_uri: upload.dimensions.map(|_| content::thumbnail_path(&mxc)),
        filename: upload.filename.clone(),
        width: upload.dimensions.map(|(width, _)| width),
        height: upload.dimensions.map(|(_, height)| height),
    })
}

pub use crate::domain::images::image_dimensions;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_types_must_carry_their_magic_bytes() {
        let odt = [b"PK\x03\x04".as_slice(), &[0; 26], b"mimetypeapplication/vnd.oasis.opendocument.text"].concat();
        let cases: [(&str, &[u8]); 12] = [
            ("application/pdf", b"%PDF-1.7\n"),
            ("video/mp4", b"\x00\x00\x00\x18ftypmp42"),
            ("video/webm", &[0x1A, 0x45, 0xDF, 0xA3, 0x01]),
            ("audio/mpeg", b"ID3\x04\x00"),
            ("audio/ogg", b"OggS\x00"),
            ("audio/wav", b"RIFF\x24\x00\x00\x00WAVEfmt "),
            ("audio/flac", b"fLaC\x00"),
            ("application/msword", &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]),
            ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", b"PK\x03\x04rest"),
            ("application/vnd.oasis.opendocument.text", &odt),
            ("application/rtf", b"{\\rtf1\\ansi"),
            ("text/csv", "a,b\nä,ö\n".as_bytes()),
        ];
        for (essence, body) in cases {
            assert!(check(Some(essence), None, body).is_ok(), "{essence}");
            // An executable, an HTML page and a ZIP named as this type are all refused.
            for other in [b"MZ\x90\x00\x03\x00".as_slice(), b"<html><script>", b"PK\x03\x04x"] {
                if essence.contains("openxml") && other.starts_with(b"PK") {
                    continue;
                }
                let refused = check(Some(essence), None, other);
                assert!(
                    refused.as_ref().is_err_and(|e| e.code() == "invalid_body") || essence.starts_with("text/"),
                    "{essence}"
                );
            }
        }
        // An OpenDocument spreadsheet is not a text document.
        let ods =
            [b"PK\x03\x04".as_slice(), &[0; 26], b"mimetypeapplication/vnd.oasis.opendocument.spreadsheet"].concat();
        assert!(check(Some("application/vnd.oasis.opendocument.text"), None, &ods).is_err());
        assert!(check(Some("text/plain"), None, b"a\x00b").is_err(), "binary is not text");
        assert!(check(Some("text/plain; charset=latin1"), None, b"caf\xe9").is_ok());
        assert!(check(Some("text/plain"), None, b"caf\xe9").is_err());
    }

    /// A 3×2 PNG header (IHDR only; enough for the check).
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
        png.extend(width.to_be_bytes());
        png.extend(height.to_be_bytes());
        png.extend([8, 6, 0, 0, 0]);
        png
    }

    #[test]
    fn image_headers_give_dimensions() {
        assert_eq!(image_dimensions("image/png", &png_header(3, 2)), Some((3, 2)));
        assert_eq!(image_dimensions("image/gif", b"GIF89a\x05\x00\x07\x00rest"), Some((5, 7)));
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00, 0x20, 0x00, 0x40, 0x03,
        ];
        assert_eq!(image_dimensions("image/jpeg", &jpeg), Some((64, 32)));
        let mut webp = b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00".to_vec();
        webp.extend([0x09, 0x00, 0x00, 0x04, 0x00, 0x00]);
        assert_eq!(image_dimensions("image/webp", &webp), Some((10, 5)));
        assert_eq!(image_dimensions("image/png", b"<html>"), None);
        assert_eq!(image_dimensions("image/jpeg", &png_header(1, 1)), None);
    }

    #[test]
    fn uploads_are_checked_before_storing() {
        let png = png_header(3, 2);
        let checked = check(Some("image/png"), Some("cat.png"), &png).expect("valid");
        assert_eq!((checked.essence.as_str(), checked.dimensions), ("image/png", Some((3, 2))));
        let text = check(Some("Text/Plain; charset=utf-8"), None, b"hello").expect("valid");
        assert_eq!((text.essence.as_str(), text.content_type.as_str()), ("text/plain", "Text/Plain; charset=utf-8"));
        assert_eq!(check(None, None, b"x").expect_err("no type").status(), 400);
        assert_eq!(check(Some("text/plain"), None, b"").expect_err("empty").status(), 400);
        let svg = check(Some("image/svg+xml"), None, b"<svg/>").expect_err("svg");
        assert_eq!((svg.status(), svg.code()), (400, "unsupported_media_type"));
        assert_eq!(check(Some("text/html"), None, b"<p>").expect_err("html").code(), "unsupported_media_type");
        assert_eq!(check(Some("image/png"), None, b"<script>").expect_err("not png").code(), "invalid_body");
        assert_eq!(check(Some("text/plain"), Some("../x"), b"x").expect_err("path").code(), "invalid_parameter");
        let spoof = check(Some("text/plain"), Some("invoice\u{202E}fdp.exe"), b"x").expect_err("bidi override");
        assert_eq!(spoof.code(), "invalid_parameter");
        assert_eq!(displayable_filename("a/b\u{202E}c\u{0}.png").as_deref(), Some("a_b_c_.png"));
        assert_eq!(displayable_filename(" \u{200B} ").as_deref(), Some("_"));
        assert_eq!(displayable_filename("").as_deref(), None);
        assert_eq!(displayable_filename(&"x".repeat(300)).map(|n| n.len()), Some(255));
        assert_eq!(check(Some("application/pdf"), None, b"MZ\x90\x00").expect_err("exe as pdf").code(), "invalid_body");
        let big = vec![b'a'; MAX_UPLOAD_BYTES + 1];
        assert_eq!(check(Some("text/plain"), None, &big).expect_err("big").status(), 413);
        assert!(check(Some("text/plain"), None, &big[1..]).is_ok());
    }
}
