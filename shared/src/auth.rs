//! JWT verification: HS256 only, current or previous secret (rotation: docs/adr/0004-secrets.md), `exp` required
//! and in the future, `nbf` (when present) not in the future, both without leeway; `aud` and `iss` must match when
//! configured, and `exp` may lie at most a configured time ahead (24 h unless configured otherwise).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

pub use crate::identity::{Caller, Role};
use crate::identity::{TenantId, UserSlug};

/// An HS256 secret; never printed.
#[derive(Clone)]
pub struct JwtSecret(pub(crate) Vec<u8>);

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtSecret(<redacted>)")
    }
}

impl JwtSecret {
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        JwtSecret(secret.into())
    }
}

/// Why a request's bearer token was refused; every case is the same `401` to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unauthenticated(pub &'static str);

#[derive(Deserialize)]
struct Claims {
    sub: String,
    tenant: String,
    role: String,
    #[serde(default)]
    name: Option<String>,
    exp: u64,
    #[serde(default)]
    iat: Option<u64>,
}

/// Optional claim checks beyond the signature and `exp` (environment: `OPENMEET_JWT_AUDIENCE`,
/// `OPENMEET_JWT_ISSUER`, `OPENMEET_JWT_MAX_LIFETIME_SECS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwtPolicy {
    /// When set, `aud` is required and must name it.
    pub audience: Option<String>,
    /// When set, `iss` is required and must equal it.
    pub issuer: Option<String>,
    /// When set, a token may not be valid for longer than this: `exp` at most this far from now, and from `iat`
    /// when the token has one. Limits what a token stolen from a browser is worth.
    pub max_lifetime: Option<std::time::Duration>,
}

pub struct JwtVerifier {
    keys: Vec<DecodingKey>,
    validation: Validation,
    max_lifetime: Option<u64>,
}

impl JwtVerifier {
    pub fn new(secrets: &[JwtSecret]) -> Self {
        Self::with_policy(secrets, &JwtPolicy::default())
    }

    pub fn with_policy(secrets: &[JwtSecret], policy: &JwtPolicy) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // The same (zero) leeway for `exp` and `nbf`: a token not yet valid is refused like an expired one.
        validation.leeway = 0;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        // `validate_aud` is separate from the audience list: left on with no audience, any `aud` is refused.
        validation.validate_aud = policy.audience.is_some();
        if let Some(audience) = &policy.audience {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        if let Some(issuer) = &policy.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        JwtVerifier {
            keys: secrets.iter().map(|s| DecodingKey::from_secret(&s.0)).collect(),
            validation,
            max_lifetime: policy.max_lifetime.map(|d| d.as_secs()),
        }
    }

    /// A token whose validity reaches further than the configured maximum (see [`JwtPolicy::max_lifetime`]).
    fn too_long_lived(&self, claims: &Claims) -> bool {
        let Some(max) = self.max_lifetime else { return false };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        claims.exp.saturating_sub(now) > max || claims.iat.is_some_and(|iat| claims.exp.saturating_sub(iat) > max)
    }

    /// Verifies the `Authorization` header value. Every defect answers the same 401: the caller learns nothing
    /// about which check failed (the log does, without the token).
    pub fn verify(&self, authorization: Option<&str>) -> Result<Caller, Unauthenticated> {
        let token = authorization
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or(Unauthenticated("a bearer token is required"))
            .inspect_err(|_| crate::metrics::auth(crate::metrics::AuthKind::Jwt, false))?;
        let mut last_error = None;
        for key in &self.keys {
            match decode::<Claims>(token, key, &self.validation) {
                Ok(data) if self.too_long_lived(&data.claims) => {
                    tracing::info!(reason = "lifetime above OPENMEET_JWT_MAX_LIFETIME_SECS", "JWT rejected");
                    crate::metrics::auth(crate::metrics::AuthKind::Jwt, false);
                    return Err(Unauthenticated("the token is invalid or expired"));
                }
                Ok(data) => {
                    let caller = caller_from(data.claims);
                    crate::metrics::auth(crate::metrics::AuthKind::Jwt, caller.is_ok());
                    return caller;
                }
                Err(error) => last_error = Some(error),
            }
        }
        if let Some(error) = last_error {
            tracing::info!(reason = ?error.kind(), "JWT rejected");
        }
        crate::metrics::auth(crate::metrics::AuthKind::Jwt, false);
        Err(Unauthenticated("the token is invalid or expired"))
    }
}

/// The claims of a token this project issues: exactly what `JwtVerifier` reads, plus `iat`/`exp`.
#[derive(Serialize)]
struct IssuedClaims<'a> {
    sub: &'a str,
    tenant: &'a str,
    role: &'a str,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

/// An HS256 token for `caller`, valid `ttl_seconds` from now (the local stack's `token` command). Only a caller
/// `JwtVerifier` could have produced is accepted, so every minted token verifies.
pub fn mint(secret: &JwtSecret, caller: &Caller, ttl_seconds: u64) -> Result<String, jsonwebtoken::errors::Error> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let claims = IssuedClaims {
        sub: &caller.subject,
        tenant: caller.tenant.as_str(),
        role: if caller.is_service() { "service" } else { "user" },
        iat: now,
        exp: now.saturating_add(ttl_seconds),
        name: caller.display_name.as_deref(),
    };
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&secret.0))
}

fn caller_from(claims: Claims) -> Result<Caller, Unauthenticated> {
    let invalid = || Unauthenticated("the token's claims are invalid");
    let tenant = TenantId::parse(&claims.tenant).map_err(|_| invalid())?;
    let role = match claims.role.as_str() {
        "service" => Role::Service,
        "user" => Role::User(UserSlug::parse(&claims.sub).map_err(|_| invalid())?),
        _ => return Err(invalid()),
    };
    if claims.sub.is_empty() || claims.sub.len() > 128 {
        return Err(invalid());
    }
    let display_name = claims.name.filter(|n| !n.trim().is_empty());
    Ok(Caller { tenant, role, subject: claims.sub, display_name })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }

    fn token(secret: &str, alg: Algorithm, claims: serde_json::Value) -> String {
        encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret.as_bytes())).expect("encodable")
    }

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(&[JwtSecret::new("current"), JwtSecret::new("previous")])
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    #[test]
    fn minted_tokens_verify_as_the_same_caller() {
        let user = UserSlug::parse("jane").expect("slug");
        let tenant = TenantId::parse("acme").expect("tenant");
        let callers = [
            Caller {
                tenant: tenant.clone(),
                role: Role::User(user),
                subject: "jane".into(),
                display_name: Some("Jane".into()),
            },
            Caller { tenant, role: Role::Service, subject: "openmeet-api".into(), display_name: None },
        ];
        for caller in callers {
            let token = mint(&JwtSecret::new("previous"), &caller, 60).expect("mint");
            let verified = verifier().verify(Some(&bearer(&token))).expect("verifies");
            assert_eq!(
                (verified.tenant, verified.role, verified.subject),
                (caller.tenant, caller.role, caller.subject)
            );
            assert_eq!(verified.display_name, caller.display_name);
        }
        let service = Caller {
            tenant: TenantId::parse("acme").expect("tenant"),
            role: Role::Service,
            subject: "s".into(),
            display_name: None,
        };
        let foreign = mint(&JwtSecret::new("another secret"), &service, 60).expect("mint");
        assert_eq!(verifier().verify(Some(&bearer(&foreign))).expect_err("foreign").status(), 401);
    }

    #[test]
    fn valid_user_and_service_tokens() {
        let user = token(
            "current",
            Algorithm::HS256,
            json!({"sub":"jane","tenant":"acme","role":"user","exp":now()+60,"name":"Jane"}),
        );
        let caller = verifier().verify(Some(&bearer(&user))).expect("valid");
        assert_eq!(caller.user().map(UserSlug::as_str), Some("jane"));
        assert_eq!(caller.display_name.as_deref(), Some("Jane"));
        let service =
            token("previous", Algorithm::HS256, json!({"sub":"api","tenant":"acme","role":"service","exp":now()+60}));
        assert!(verifier().verify(Some(&bearer(&service))).expect("valid").is_service());
    }

    #[test]
    fn every_defect_is_unauthorized() {
        let claims = json!({"sub":"jane","tenant":"acme","role":"user","exp":now()+60});
        let defects = [
            token("wrong", Algorithm::HS256, claims.clone()),
            token("current", Algorithm::HS384, claims.clone()),
            token("current", Algorithm::HS256, json!({"sub":"jane","tenant":"acme","role":"user"})),
            token("current", Algorithm::HS256, json!({"sub":"jane","tenant":"acme","role":"user","exp":now()-1})),
            token("current", Algorithm::HS256, json!({"sub":"jane","tenant":"acme","role":"admin","exp":now()+60})),
            token("current", Algorithm::HS256, json!({"sub":"Jane!","tenant":"acme","role":"user","exp":now()+60})),
            token("current", Algorithm::HS256, json!({"sub":"jane","tenant":"a.b","role":"user","exp":now()+60})),
            // Not valid before a minute from now.
            token(
                "current",
                Algorithm::HS256,
                json!({"sub":"jane","tenant":"acme","role":"user","nbf":now()+60,"exp":now()+120}),
            ),
            "not.a.jwt".to_owned(),
        ];
        for defect in defects {
            let error = verifier().verify(Some(&bearer(&defect))).expect_err("must be rejected");
            assert_eq!(error.status(), 401, "{defect}");
        }
        assert_eq!(verifier().verify(None).expect_err("missing").status(), 401);
        assert_eq!(verifier().verify(Some("Basic abc")).expect_err("scheme").status(), 401);
    }

    #[test]
    fn a_token_already_valid_passes_its_nbf() {
        let claims = json!({"sub":"jane","tenant":"acme","role":"user","nbf":now()-1,"exp":now()+60});
        assert!(verifier().verify(Some(&bearer(&token("current", Algorithm::HS256, claims)))).is_ok());
    }

    #[test]
    fn alg_none_is_unauthorized() {
        let header = base64_url(r#"{"alg":"none","typ":"JWT"}"#);
        let body = base64_url(&format!(r#"{{"sub":"jane","tenant":"acme","role":"user","exp":{}}}"#, now() + 60));
        let unsigned = format!("{header}.{body}.");
        assert_eq!(verifier().verify(Some(&bearer(&unsigned))).expect_err("none").status(), 401);
    }

    #[test]
    fn audience_issuer_and_lifetime_are_enforced_when_configured() {
        let policy = JwtPolicy {
            audience: Some("openmeet-matrix".into()),
            issuer: Some("https://api.openmeet.net".into()),
            max_lifetime: Some(std::time::Duration::from_secs(3600)),
        };
        let strict = JwtVerifier::with_policy(&[JwtSecret::new("current")], &policy);
        let claims = |extra: serde_json::Value| {
            let mut claims = json!({"sub":"jane","tenant":"acme","role":"user","exp":now()+600,
                "aud":"openmeet-matrix","iss":"https://api.openmeet.net"});
            for (key, value) in extra.as_object().into_iter().flatten() {
                claims[key] = value.clone();
            }
            token("current", Algorithm::HS256, claims)
        };
        let fine =
            [claims(json!({})), claims(json!({"aud":["other","openmeet-matrix"]})), claims(json!({"iat":now()}))];
        for good in fine {
            strict.verify(Some(&bearer(&good))).expect("accepted");
        }
        let mut without_aud =
            json!({"sub":"jane","tenant":"acme","role":"user","exp":now()+600,"iss":"https://api.openmeet.net"});
        let rejected = [
            claims(json!({"aud":"someone-else"})),
            claims(json!({"iss":"https://evil.example"})),
            token("current", Algorithm::HS256, without_aud.clone()),
            {
                without_aud["aud"] = json!("openmeet-matrix");
                without_aud.as_object_mut().map(|o| o.remove("iss"));
                token("current", Algorithm::HS256, without_aud)
            },
            claims(json!({"exp":now()+3601+60})),
            claims(json!({"iat":now()-7200,"exp":now()+60})),
        ];
        for (index, bad) in rejected.iter().enumerate() {
            assert_eq!(strict.verify(Some(&bearer(bad))).expect_err("rejected").status(), 401, "case {index}");
        }
        // Without a policy the same checks are off: a year-long token without aud/iss passes.
        let lenient = token(
            "current",
            Algorithm::HS256,
            json!({"sub":"jane","tenant":"acme","role":"user","exp":now()+31_536_000}),
        );
        verifier().verify(Some(&bearer(&lenient))).expect("no policy, no lifetime cap");
    }

    fn base64_url(text: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }
}
