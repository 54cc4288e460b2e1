//! User provisioning: one Matrix user per OpenMeet user, its profile kept in sync, deactivation.

use ruma::api::client::account::register;
use ruma::api::error::ErrorCode;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::aws::store;
use crate::aws::users::{ProfileRecord, Users};
use crate::domain::DomainError;
use crate::domain::tenancy;
use crate::homeserver::{Acting, HomeserverError};
use crate::identity::{TenantId, UserSlug};

/// Body of `PUT /v1/users/{userId}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UserInput {
    pub display_name: String,
    /// Absent: leave the avatar alone; `null`: clear it; a string: set it.
    #[serde(default, with = "double_option")]
    pub avatar_url: Option<Option<String>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub user_id: String,
    pub matrix_user_id: String,
    pub display_name: String,
}

const MAX_DISPLAY_NAME: usize = 256;
const MAX_AVATAR_BYTES: usize = 2 * 1024 * 1024;

pub fn validate_display_name(name: &str) -> Result<String, DomainError> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_DISPLAY_NAME || trimmed.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "invalid_body",
            format!("displayName must be 1-{MAX_DISPLAY_NAME} characters without control characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// What to do with the avatar, decided before anything changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AvatarChange {
    Keep,
    Clear,
    Mxc(String),
    /// An https URL on the allow-list, copied into the media repository.
    Fetch(url::Url),
}

pub fn parse_avatar(avatar_url: Option<Option<String>>, allowed_hosts: &[String]) -> Result<AvatarChange, DomainError> {
    let unsupported = |why: &str| DomainError::invalid("unsupported_avatar_url", why.to_owned());
    match avatar_url {
        None => Ok(AvatarChange::Keep),
        Some(None) => Ok(AvatarChange::Clear),
        Some(Some(url)) if url.is_empty() => Ok(AvatarChange::Clear),
        Some(Some(url)) if url.starts_with("mxc://") => {
            let valid = url[6..].split_once('/').is_some_and(|(server, media)| {
                !server.is_empty()
                    && !media.is_empty()
                    && media.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            });
            if valid { Ok(AvatarChange::Mxc(url)) } else { Err(unsupported("avatarUrl is not a valid mxc:// URI")) }
        }
        Some(Some(url)) => {
            let parsed = url::Url::parse(&url).map_err(|_| unsupported("avatarUrl is not a URL"))?;
            let host_allowed = parsed.host_str().is_some_and(|host| allowed_hosts.iter().any(|h| h == host));
            let scheme_allowed = parsed.scheme() == "https" || (parsed.scheme() == "http" && is_loopback(&parsed));
            // `port()` is `None` for the scheme's default: an explicit other port could reach an internal service
            // on an allowed host (SSRF).
            if parsed.port().is_some() {
                return Err(unsupported("avatarUrl must use the default port of its scheme"));
            }
            if host_allowed && scheme_allowed {
                Ok(AvatarChange::Fetch(parsed))
            } else {
                Err(unsupported("avatarUrl must be an mxc:// URI or an https URL on a configured host"))
            }
        }
    }
}

fn is_loopback(url: &url::Url) -> bool {
    matches!(url.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback()) || url.host_str() == Some("localhost")
}

/// Ensures the Matrix user exists, carries this profile and is in the tenant's space (what lets them join the
/// tenant's public rooms with their own token; a user who left it by hand is back in with the next profile sync).
/// Returns the view and whether it was created now.
pub async fn ensure(
    app: &App,
    tenant: &TenantId,
    user: &UserSlug,
    display_name: &str,
    avatar: AvatarChange,
) -> Result<(UserView, bool), DomainError> {
    let ensured = ensure_profile(app, tenant, user, display_name, avatar).await?;
    tenancy::admit(app, tenant, &app.identities.matrix_user_id(tenant, user)).await?;
    Ok(ensured)
}

/// [`ensure`] without the tenant's space, for bulk paths (a reconcile provisioning its members): joins into one
/// room are serialised by the homeserver, so the tenant's space is admitted to when the user's own token first
/// needs it, at their first session (`sessions::create`).
pub async fn ensure_profile(
    app: &App,
    tenant: &TenantId,
    user: &UserSlug,
    display_name: &str,
    avatar: AvatarChange,
) -> Result<(UserView, bool), DomainError> {
    let user_id = app.identities.matrix_user_id(tenant, user);
    let created = register(app, tenant, user).await?;
    // The admin view, not the client profile API: profiles are only shown to users who share a room (tenant walls),
    // and a user just registered shares none yet, not even with the platform.
    let current = app.homeserver.admin_user(&user_id).await?.unwrap_or_default();
    if current.displayname.as_deref() != Some(display_name) {
        set_profile_field(app, tenant, user, "displayname", display_name).await?;
    }
    let record = Users(&app.store).profile(tenant, user).await?;
    let avatar_source = record.and_then(|record| record.avatar_source);
    let current_avatar = current.avatar_url.unwrap_or_default();
    let (wanted_avatar, source) = match avatar {
        AvatarChange::Keep => (None, avatar_source),
        AvatarChange::Clear => (Some(String::new()), None),
        AvatarChange::Mxc(mxc) => (Some(mxc.clone()), Some(mxc)),
        AvatarChange::Fetch(url) if avatar_source.as_deref() == Some(url.as_str()) && !current_avatar.is_empty() => {
            (None, avatar_source)
        }
        AvatarChange::Fetch(url) => (Some(copy_avatar(app, tenant, user, &url).await?), Some(url.to_string())),
    };
    if let Some(wanted) = wanted_avatar.filter(|wanted| *wanted != current_avatar) {
        set_profile_field(app, tenant, user, "avatar_url", &wanted).await?;
    }
    let profile = ProfileRecord {
        matrix_user_id: Some(user_id.to_string()),
        display_name: Some(display_name.to_owned()),
        avatar_source: source,
        updated_at: Some(store::now_secs()),
    };
    Users(&app.store).put_profile(tenant, user, &profile).await?;
    Ok((
        UserView {
            user_id: user.to_string(),
            matrix_user_id: user_id.to_string(),
            display_name: display_name.to_owned(),
        },
        created,
    ))
}

/// Sets one profile field as the user (on their server device).
async fn set_profile_field(
    app: &App,
    tenant: &TenantId,
    user: &UserSlug,
    field: &str,
    value: &str,
) -> Result<(), DomainError> {
    let user_id = app.identities.matrix_user_id(tenant, user);
    app.credentials
        .as_user(tenant, user, |device| {
            let user_id = &user_id;
            async move { app.homeserver.set_profile_field(user_id, field, value, Acting::User(&device)).await }
        })
        .await?;
    Ok(())
}

/// Registers the user through the appservice. `true` when newly created; a deleted (deactivated) user stays
/// retired: its Matrix id is never handed to anyone again.
pub async fn register(app: &App, tenant: &TenantId, user: &UserSlug) -> Result<bool, DomainError> {
    let mut request = register::v3::Request::new();
    request.username = Some(app.identities.localpart(tenant, user));
    request.inhibit_login = true;
    request.login_type = Some(register::LoginType::ApplicationService);
    match app.homeserver.send(request, Acting::Platform).await {
        Ok(_) => Ok(true),
        Err(HomeserverError::Rejected { errcode: ErrorCode::UserInUse, .. }) => {
            let user_id = app.identities.matrix_user_id(tenant, user);
            if app.homeserver.admin_user(&user_id).await?.is_some_and(|info| info.deactivated) {
                return Err(DomainError::conflict(
                    "user_deleted",
                    "this user was deleted; its Matrix identity is retired",
                ));
            }
            Ok(false)
        }
        Err(error) => Err(error.into()),
    }
}

const AVATAR_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// Reads a body chunk by chunk and stops as soon as it passes `limit` (a declared `Content-Length` over it is
/// refused before reading), so a huge or endless body never sits in memory. `Err(true)`: too large.
async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<bytes::Bytes, bool> {
    if response.content_length().is_some_and(|len| len > limit as u64) {
        return Err(true);
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(|_| false)? {
        if body.len() + chunk.len() > limit {
            return Err(true);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Copies an allow-listed avatar into the media repository, as the user; returns its `mxc://` URI.
async fn copy_avatar(app: &App, tenant: &TenantId, user: &UserSlug, url: &url::Url) -> Result<String, DomainError> {
    let unusable = |why: &str| DomainError::invalid("unsupported_avatar_url", format!("avatarUrl {why}"));
    let fetcher = app.avatar_fetcher().ok_or_else(|| unusable("could not be fetched"))?;
    let response = fetcher.get(url.clone()).send().await.map_err(|_| unusable("could not be fetched"))?;
    if !response.status().is_success() {
        return Err(unusable("could not be fetched"));
    }
    let content_type =
        response.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    // Raster types only: an SVG can carry script, and the homeserver cannot thumbnail it.
    if !AVATAR_TYPES.contains(&essence.as_str()) {
        return Err(unusable("is not a PNG, JPEG, GIF or WebP image"));
    }
    let bytes = read_limited(response, MAX_AVATAR_BYTES).await.map_err(|too_large| {
        if too_large { unusable("is larger than 2 MB") } else { unusable("could not be fetched") }
    })?;
    if crate::domain::images::image_dimensions(&essence, &bytes).is_none() {
        return Err(unusable("is not the image its Content-Type says"));
    }
    let uploaded = app
        .credentials
        .as_user(tenant, user, |token| {
            let (bytes, content_type) = (bytes.clone(), content_type.clone());
            async move { app.homeserver.upload(Some("avatar"), &content_type, bytes, Acting::User(&token)).await }
        })
        .await?;
    Ok(uploaded)
}

/// The user as the homeserver knows it; `None` if never provisioned or deactivated.
pub async fn get(app: &App, tenant: &TenantId, user: &UserSlug) -> Result<Option<UserView>, DomainError> {
    let user_id = app.identities.matrix_user_id(tenant, user);
    let Some(info) = app.homeserver.admin_user(&user_id).await?.filter(|info| !info.deactivated) else {
        return Ok(None);
    };
    Ok(Some(UserView {
        user_id: user.to_string(),
        matrix_user_id: user_id.to_string(),
        display_name: info.displayname.unwrap_or_else(|| user.to_string()),
    }))
}

/// Deactivates the Matrix user (which logs out every device) and forgets everything stored about them.
pub async fn delete(app: &App, tenant: &TenantId, user: &UserSlug) -> Result<(), DomainError> {
    let user_id = app.identities.matrix_user_id(tenant, user);
    app.homeserver.deactivate_user(&user_id).await?;
    crate::domain::operations::discard_for_deleted_user(app, tenant, user).await?;
    Users(&app.store).forget(tenant, user).await?;
    Ok(())
}

/// Whether this container has seen the user provisioned (a cheap check before the first session).
pub async fn is_provisioned(app: &App, tenant: &TenantId, user: &UserSlug) -> Result<bool, DomainError> {
    Ok(Users(&app.store).exists(tenant, user).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves one response on a local port: `head` then `chunk` repeated until the client hangs up (an endless body).
    async fn endless_server(head: &'static str, chunk: &'static [u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            while !chunk.is_empty() && socket.write_all(chunk).await.is_ok() {}
        });
        format!("http://{address}/a.png")
    }

    #[tokio::test]
    async fn avatar_bodies_are_cut_off_while_streaming() {
        const CHUNK: &[u8] = b"10000\r\n";
        // An endless chunked body: refused once past the limit, not read to the end (it has none).
        let chunk: &'static [u8] = Box::leak([CHUNK, &[b'a'; 0x10000], b"\r\n"].concat().into_boxed_slice());
        let url =
            endless_server("HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n", chunk)
                .await;
        let response = reqwest::get(url).await.expect("answer");
        assert_eq!(read_limited(response, MAX_AVATAR_BYTES).await, Err(true));
        // A declared length over the limit is refused before a byte of the body is read.
        let url = endless_server("HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", b"a").await;
        let response = reqwest::get(url).await.expect("answer");
        assert_eq!(read_limited(response, MAX_AVATAR_BYTES).await, Err(true));
        // Within the limit: the whole body.
        let url = endless_server("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc", b"").await;
        let response = reqwest::get(url).await.expect("answer");
        assert_eq!(read_limited(response, MAX_AVATAR_BYTES).await.as_deref(), Ok(b"abc".as_slice()));
    }

    #[test]
    fn avatar_urls_are_checked_before_anything_changes() {
        let hosts = vec!["cdn.openmeet.net".to_owned()];
        assert_eq!(parse_avatar(None, &hosts).ok(), Some(AvatarChange::Keep));
        assert_eq!(parse_avatar(Some(None), &hosts).ok(), Some(AvatarChange::Clear));
        assert!(matches!(parse_avatar(Some(Some("mxc://localhost/abc_D-1".into())), &hosts), Ok(AvatarChange::Mxc(_))));
        assert!(parse_avatar(Some(Some("mxc://localhost/../x".into())), &hosts).is_err());
        assert!(matches!(
            parse_avatar(Some(Some("https://cdn.openmeet.net/a.png".into())), &hosts),
            Ok(AvatarChange::Fetch(_))
        ));
        assert!(parse_avatar(Some(Some("https://evil.example/a.png".into())), &hosts).is_err());
        assert!(parse_avatar(Some(Some("http://cdn.openmeet.net/a.png".into())), &hosts).is_err());
        assert!(parse_avatar(Some(Some("javascript:alert(1)".into())), &hosts).is_err());
        assert!(parse_avatar(Some(Some("https://cdn.openmeet.net:8443/a.png".into())), &hosts).is_err());
        assert!(parse_avatar(Some(Some("https://cdn.openmeet.net:443/a.png".into())), &hosts).is_ok());
    }

    #[test]
    fn user_input_tells_absent_from_null_and_refuses_unknown_fields() {
        let absent: UserInput = serde_json::from_str(r#"{"displayName":"A"}"#).expect("valid");
        assert_eq!(absent.avatar_url, None);
        let null: UserInput = serde_json::from_str(r#"{"displayName":"A","avatarUrl":null}"#).expect("valid");
        assert_eq!(null.avatar_url, Some(None));
        assert!(serde_json::from_str::<UserInput>(r#"{"displayName":"A","admin":true}"#).is_err());
    }

    #[test]
    fn display_names_are_bounded() {
        assert!(validate_display_name("  ").is_err());
        assert!(validate_display_name(&"x".repeat(257)).is_err());
        assert!(validate_display_name("a\u{0}b").is_err());
        assert_eq!(validate_display_name(" Jane ").ok().as_deref(), Some("Jane"));
    }
}
