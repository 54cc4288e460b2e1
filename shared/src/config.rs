//! Configuration, read once from the environment at container start.

use std::time::Duration;

pub use crate::auth::JwtSecret;
use crate::homeserver::{AccessToken, HomeserverConfig};
use crate::settings::number;
pub use crate::settings::{ConfigError, PushConfig, ReconcileLimits, RetryPolicy, SessionLimits};

/// Everything the functions need to know about their environment. Secrets are held in redacting types.
#[derive(Clone)]
pub struct Config {
    pub jwt_secrets: Vec<JwtSecret>,
    /// Optional `aud`/`iss` checks and the longest token lifetime accepted (`crate::auth`).
    pub jwt_policy: crate::auth::JwtPolicy,
    /// Timeouts and retries of every AWS SDK call (`crate::aws::AwsLimits`).
    pub aws: crate::aws::AwsLimits,
    pub homeserver: HomeserverConfig,
    /// The homeserver URL handed to browsers (may differ from the one the functions reach it on).
    pub public_homeserver_url: String,
    pub user_prefix: String,
    pub platform_localpart: String,
    pub table: String,
    pub kms_key_id: String,
    /// Set in AWS; otherwise `queue_name` is resolved on first use.
    pub queue_url: Option<String>,
    pub queue_name: Option<String>,
    /// Hosts whose https avatar URLs are copied into the media repository; empty: only `mxc://` avatars.
    pub avatar_hosts: Vec<String>,
    pub retry: RetryPolicy,
    pub reconcile: ReconcileLimits,
    pub sessions: SessionLimits,
    /// Write limits of the API, per user, per tenant and for the service (see `crate::ratelimit`).
    pub rate_limits: crate::ratelimit::RateLimits,
    /// Chat notifications (`crate::domain::push`, docs/adr/0008-notifications.md).
    pub push: PushConfig,
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn aws_limits(get: &impl Fn(&str) -> Option<String>) -> Result<crate::aws::AwsLimits, ConfigError> {
    let default = crate::aws::AwsLimits::default();
    let millis = |name, default: Duration| number(get, name, default.as_millis() as u64).map(Duration::from_millis);
    Ok(crate::aws::AwsLimits {
        attempt: millis("OPENMEET_AWS_ATTEMPT_TIMEOUT_MS", default.attempt)?,
        operation: millis("OPENMEET_AWS_TIMEOUT_MS", default.operation)?,
        max_attempts: number(get, "OPENMEET_AWS_MAX_ATTEMPTS", default.max_attempts.into())?.clamp(1, 10) as u32,
    })
}

impl Config {
    /// From the environment only (locally, and in tests): the secrets are plain environment variables.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(env_var)
    }

    /// What a deployed function runs: with `OPENMEET_SECRETS_ARN` set, the appservice token and the JWT secrets
    /// come from that Secrets Manager secret (one call, at start) and must not also be environment variables;
    /// without it, everything comes from the environment as in [`Config::from_env`].
    pub async fn load(sdk: &aws_config::SdkConfig) -> Result<Config, ConfigError> {
        let Some(arn) = env_var("OPENMEET_SECRETS_ARN") else { return Config::from_env() };
        for (_, name) in crate::aws::secrets::FIELDS {
            if env_var(name).is_some() {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "set in the environment although OPENMEET_SECRETS_ARN is: keep secrets in one place".into(),
                });
            }
        }
        let limits = aws_limits(&env_var)?;
        let secrets = crate::aws::secrets::fetch(sdk, &arn, &limits).await?;
        Self::from_lookup(|name| secrets.get(name).cloned().or_else(|| env_var(name)))
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let mut jwt_secrets = vec![JwtSecret::new(required("OPENMEET_JWT_SECRET")?)];
        let jwt_policy = crate::auth::JwtPolicy {
            audience: get("OPENMEET_JWT_AUDIENCE"),
            issuer: get("OPENMEET_JWT_ISSUER"),
            // A day unless configured (0 turns the cap off): a stolen token is worth a day at most.
            max_lifetime: match number(&get, "OPENMEET_JWT_MAX_LIFETIME_SECS", 86_400)? {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
        };
        if let Some(previous) = get("OPENMEET_JWT_SECRET_PREVIOUS") {
            jwt_secrets.push(JwtSecret::new(previous));
        }
        let homeserver_url = required("MATRIX_HOMESERVER_URL")?;
        let base_url = url::Url::parse(&homeserver_url)
            .map_err(|e| ConfigError::Invalid { name: "MATRIX_HOMESERVER_URL", reason: e.to_string() })?;
        // Every call carries the appservice token: in clear text only on loopback or inside the VPC.
        if base_url.scheme() == "http" && !is_loopback(&base_url) && get("OPENMEET_IN_VPC").as_deref() != Some("true") {
            return Err(ConfigError::Invalid {
                name: "MATRIX_HOMESERVER_URL",
                reason: "http:// only on loopback or when the functions run in a VPC (SubnetIds); use https://".into(),
            });
        }
        let timeout_ms = number(&get, "MATRIX_REQUEST_TIMEOUT_MS", 10_000)?;
        let user_prefix = get("MATRIX_USER_PREFIX").unwrap_or_else(|| "om_".to_owned());
        if !user_prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-=/".contains(c)) {
            return Err(ConfigError::Invalid {
                name: "MATRIX_USER_PREFIX",
                reason: "use lowercase letters, digits and _-=/ only".into(),
            });
        }
        Ok(Config {
            jwt_secrets,
            jwt_policy,
            aws: aws_limits(&get)?,
            homeserver: HomeserverConfig {
                base_url,
                server_name: required("MATRIX_SERVER_NAME")?,
                appservice_token: AccessToken::new(required("MATRIX_AS_TOKEN")?),
                request_timeout: Duration::from_millis(timeout_ms),
                circuit_threshold: number(&get, "MATRIX_CIRCUIT_THRESHOLD", 3)? as u32,
                circuit_cool_down: Duration::from_millis(number(&get, "MATRIX_CIRCUIT_COOL_DOWN_MS", 5_000)?),
            },
            retry: RetryPolicy {
                max_attempts: number(&get, "OPENMEET_RETRY_MAX_ATTEMPTS", 5)? as u32,
                base_delay: Duration::from_millis(number(&get, "OPENMEET_RETRY_BASE_DELAY_MS", 2_000)?),
                max_delay: Duration::from_millis(number(&get, "OPENMEET_RETRY_MAX_DELAY_MS", 900_000)?),
            },
            reconcile: ReconcileLimits {
                inline_changes: number(&get, "OPENMEET_RECONCILE_INLINE_CHANGES", 100)? as usize,
                slice: Duration::from_millis(number(&get, "OPENMEET_RECONCILE_SLICE_MS", 20_000)?),
            },
            sessions: SessionLimits {
                max_web_devices: number(&get, "OPENMEET_MAX_WEB_DEVICES", 10)?.max(1) as usize,
                idle_after: Duration::from_secs(number(&get, "OPENMEET_SESSION_IDLE_SECS", 30 * 24 * 60 * 60)?),
            },
            rate_limits: crate::ratelimit::RateLimits::from_lookup(&get)?,
            push: PushConfig { gateway_url: push_gateway_url(&get)?, event_bus: get("OPENMEET_EVENT_BUS") },
            public_homeserver_url: get("MATRIX_PUBLIC_URL").unwrap_or(homeserver_url),
            user_prefix,
            platform_localpart: get("MATRIX_PLATFORM_LOCALPART").unwrap_or_else(|| "openmeet".to_owned()),
            table: required("OPENMEET_TABLE")?,
            kms_key_id: required("OPENMEET_KMS_KEY_ID")?,
            queue_url: get("OPENMEET_QUEUE_URL"),
            queue_name: get("OPENMEET_QUEUE_NAME"),
            avatar_hosts: get("OPENMEET_AVATAR_HOSTS")
                .map(|hosts| hosts.split(',').map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect())
                .unwrap_or_default(),
        })
    }
}

/// `localhost` or a loopback address.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Synapse refuses a pusher whose URL's path is not exactly the notify endpoint: better to refuse it at start.
fn push_gateway_url(get: &impl Fn(&str) -> Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(value) = get("OPENMEET_PUSH_GATEWAY_URL") else { return Ok(None) };
    match url::Url::parse(&value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.path() == "/_matrix/push/v1/notify" => {
            Ok(Some(value))
        }
        _ => Err(ConfigError::Invalid {
            name: "OPENMEET_PUSH_GATEWAY_URL",
            reason: "an http(s) URL whose path is /_matrix/push/v1/notify".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    const MINIMAL: &[(&str, &str)] = &[
        ("OPENMEET_JWT_SECRET", "s"),
        ("MATRIX_HOMESERVER_URL", "http://127.0.0.1:8008"),
        ("MATRIX_SERVER_NAME", "localhost"),
        ("MATRIX_AS_TOKEN", "as"),
        ("OPENMEET_TABLE", "t"),
        ("OPENMEET_KMS_KEY_ID", "alias/k"),
    ];

    #[test]
    fn defaults_fill_the_optional_settings() {
        let config = Config::from_lookup(lookup(MINIMAL)).expect("valid config");
        assert_eq!(config.user_prefix, "om_");
        assert_eq!(config.public_homeserver_url, "http://127.0.0.1:8008");
        assert_eq!(config.jwt_secrets.len(), 1);
        assert_eq!(config.jwt_policy.max_lifetime, Some(Duration::from_secs(86_400)), "a day unless configured");
        assert!(config.avatar_hosts.is_empty());
    }

    #[test]
    fn plain_http_to_the_homeserver_only_on_loopback_or_in_a_vpc() {
        let with = |url: &'static str, in_vpc: Option<&'static str>| {
            let mut pairs: Vec<(&str, &str)> =
                MINIMAL.iter().filter(|(k, _)| *k != "MATRIX_HOMESERVER_URL").copied().collect();
            pairs.push(("MATRIX_HOMESERVER_URL", url));
            pairs.extend(in_vpc.map(|v| ("OPENMEET_IN_VPC", v)));
            Config::from_lookup(lookup(&pairs)).map(|_| ()).map_err(|e| e.to_string())
        };
        assert!(with("http://synapse.internal:8008", None).is_err_and(|e| e.contains("MATRIX_HOMESERVER_URL")));
        assert!(with("http://synapse.internal:8008", Some("false")).is_err());
        assert!(with("http://synapse.internal:8008", Some("true")).is_ok());
        for fine in
            ["https://matrix.example.org", "http://127.0.0.1:8008", "http://localhost:8008", "http://[::1]:8008"]
        {
            assert!(with(fine, None).is_ok(), "{fine}");
        }
    }

    #[test]
    fn a_missing_secret_is_named() {
        let error = Config::from_lookup(lookup(&MINIMAL[1..])).err().map(|e| e.to_string());
        assert_eq!(error.as_deref(), Some("environment variable OPENMEET_JWT_SECRET is required"));
    }

    /// Rotation (docs/adr/0004-secrets.md): with the previous secret configured, a token OpenMeet signed before
    /// the switch still verifies; one signed with any other secret does not; and the policy settings are read.
    #[test]
    fn rotation_accepts_current_and_previous_secrets() {
        use jsonwebtoken::{EncodingKey, Header, encode};
        let mut pairs = MINIMAL.to_vec();
        pairs.extend([
            ("OPENMEET_JWT_SECRET", "new-secret-new-secret-new-secret-0"),
            ("OPENMEET_JWT_SECRET_PREVIOUS", "old-secret-old-secret-old-secret-0"),
            ("OPENMEET_JWT_MAX_LIFETIME_SECS", "86400"),
        ]);
        let config = Config::from_lookup(lookup(&pairs)).expect("valid config");
        assert_eq!(config.jwt_policy.max_lifetime, Some(Duration::from_secs(86_400)));
        let verifier = crate::auth::JwtVerifier::with_policy(&config.jwt_secrets, &config.jwt_policy);
        let exp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) + 60;
        let signed = |secret: &str| {
            let claims = serde_json::json!({"sub":"jane","tenant":"acme","role":"user","exp":exp});
            let token =
                encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).expect("token");
            format!("Bearer {token}")
        };
        for secret in ["new-secret-new-secret-new-secret-0", "old-secret-old-secret-old-secret-0"] {
            verifier.verify(Some(&signed(secret))).expect("current and previous verify");
        }
        assert_eq!(verifier.verify(Some(&signed("older-secret-older-secret-older-0"))).expect_err("x").status(), 401);
    }

    #[test]
    fn aws_limits_default_and_override() {
        let config = Config::from_lookup(lookup(MINIMAL)).expect("valid config");
        assert_eq!(config.aws, crate::aws::AwsLimits::default());
        let mut pairs = MINIMAL.to_vec();
        pairs.extend([("OPENMEET_AWS_TIMEOUT_MS", "2500"), ("OPENMEET_AWS_MAX_ATTEMPTS", "0")]);
        let config = Config::from_lookup(lookup(&pairs)).expect("valid config");
        assert_eq!((config.aws.operation, config.aws.max_attempts), (Duration::from_millis(2_500), 1));
    }

    #[test]
    fn the_push_gateway_url_must_be_a_notify_url() {
        let with = |url: &str| {
            let mut pairs = MINIMAL.to_vec();
            pairs.push(("OPENMEET_PUSH_GATEWAY_URL", url));
            Config::from_lookup(lookup(&pairs)).map(|config| config.push.gateway_url)
        };
        assert_eq!(
            with("http://10.0.0.5/_matrix/push/v1/notify").ok().flatten().as_deref(),
            Some("http://10.0.0.5/_matrix/push/v1/notify")
        );
        for bad in ["http://10.0.0.5/push", "ftp://h/_matrix/push/v1/notify", "not a url"] {
            assert!(with(bad).is_err(), "{bad}");
        }
        assert!(Config::from_lookup(lookup(MINIMAL)).expect("valid").push.gateway_url.is_none());
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let config = Config::from_lookup(lookup(MINIMAL)).expect("valid config");
        assert_eq!(format!("{:?}", config.jwt_secrets), "[JwtSecret(<redacted>)]");
    }
}
