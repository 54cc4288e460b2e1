//! The example chat page (examples/web), served from the local gateway so that it shares the API's origin.
//! Only the built bundle is served (`examples/web/dist`, or `OPENMEET_WEB_DIR`); nothing else of the disk.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

const BUILD_HINT: &str =
    "The example page is not built: run scripts/web.sh build (npm ci and esbuild in examples/web)\n";

/// `/` and `/web` lead to the page.
pub async fn home() -> Response {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, "/web/")
        .body(Body::empty())
        .unwrap_or_default()
}

pub async fn serve(request: Request) -> Response {
    let path = request.uri().path().trim_start_matches("/web").trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    let Some(content_type) = safe_path(path).then(|| content_type(path)).flatten() else {
        return answer(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", b"not found\n".to_vec());
    };
    match tokio::fs::read(web_dir().join(path)).await {
        Ok(bytes) => answer(StatusCode::OK, content_type, bytes),
        Err(_) if path == "index.html" => {
            answer(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", BUILD_HINT.as_bytes().to_vec())
        }
        Err(_) => answer(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", b"not found\n".to_vec()),
    }
}

fn web_dir() -> PathBuf {
    std::env::var_os("OPENMEET_WEB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/web/dist")))
}

/// Plain relative names only: no `..`, no hidden files, no odd characters.
fn safe_path(path: &str) -> bool {
    path.len() <= 200
        && path.split('/').all(|segment| {
            !segment.is_empty()
                && !segment.starts_with('.')
                && segment.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        })
}

fn content_type(path: &str) -> Option<&'static str> {
    let extension = path.rsplit_once('.')?.1;
    Some(match extension {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "map" | "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => return None,
    })
}

fn answer(status: StatusCode, content_type: &'static str, bytes: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // The page talks to this origin (the API) and to the homeserver; it loads nothing from anywhere else.
    let homeserver = std::env::var("MATRIX_PUBLIC_URL").or_else(|_| std::env::var("MATRIX_HOMESERVER_URL"));
    if let Ok(policy) = HeaderValue::from_str(&policy(homeserver.ok().as_deref().and_then(origin).as_deref())) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

/// The page's CSP: it connects to this origin and to the homeserver origin the session route hands out (the
/// stack's configured `MATRIX_PUBLIC_URL`), nowhere else.
fn policy(homeserver_origin: Option<&str>) -> String {
    let connect = homeserver_origin.map(|origin| format!(" {origin}")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; \
         connect-src 'self'{connect}; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
}

/// `scheme://host[:port]` of an http(s) URL; `None` for anything else (nothing odd reaches the policy).
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    let valid = matches!(scheme, "http" | "https") && !authority.is_empty() && authority.chars().all(plain);
    valid.then(|| format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_of_known_types_are_served() {
        assert!(safe_path("index.html") && safe_path("assets/app.js"));
        for bad in ["../Cargo.toml", "a/../../b.js", ".env", "a//b.js", "a\\b.js", "%2e%2e/x.js"] {
            assert!(!safe_path(bad), "{bad}");
        }
        assert_eq!(content_type("app.js"), Some("text/javascript; charset=utf-8"));
        assert_eq!(content_type("secret.toml"), None);
        assert_eq!(content_type("noextension"), None);
    }

    #[test]
    fn the_page_connects_only_to_itself_and_the_homeserver() {
        assert_eq!(origin("http://127.0.0.1:8088/").as_deref(), Some("http://127.0.0.1:8088"));
        assert_eq!(origin("https://matrix.example.org/base?x#y").as_deref(), Some("https://matrix.example.org"));
        for bad in ["javascript:alert(1)", "ftp://x", "https://a b", "https://x;script-src *", "https://"] {
            assert_eq!(origin(bad), None, "{bad}");
        }
        let csp = policy(Some("https://matrix.example.org"));
        assert!(csp.contains("connect-src 'self' https://matrix.example.org;"), "{csp}");
        assert!(!csp.contains("http:") && !csp.contains("https:;") && !csp.contains('*'), "{csp}");
        assert!(policy(None).contains("connect-src 'self';"));
    }
}
