//! The clients a function needs, built once per container and borrowed by every invocation.

use crate::auth::JwtVerifier;
use crate::aws::queue::{Queue, QueueAddress};
use crate::aws::store::Store;
use crate::aws::vault::Vault;
use crate::config::{Config, ConfigError};
use crate::credentials::Credentials;
use crate::homeserver::Homeserver;
use crate::identity::Identities;

pub struct App {
    pub config: Config,
    pub jwt: JwtVerifier,
    pub homeserver: Homeserver,
    pub identities: Identities,
    pub store: Store,
    pub vault: Vault,
    pub queue: Queue,
    pub credentials: Credentials,
    /// Caches and in-process locks of this container.
    pub container: crate::container::ContainerState,
    /// Fetches avatars from allow-listed hosts; separate from the homeserver client (other timeouts, no auth, no
    /// redirects). Built on first use: most invocations never fetch an avatar.
    fetcher: std::sync::OnceLock<Option<reqwest::Client>>,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("homeserver client: {0}")]
    Homeserver(#[from] crate::homeserver::HomeserverError),
}

impl App {
    /// Builds every client from the environment. One network call at most: the secrets, when they live in
    /// Secrets Manager (`OPENMEET_SECRETS_ARN`); everything else waits for first use.
    pub async fn from_env() -> Result<App, InitError> {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let config = Config::load(&sdk).await?;
        App::new(config, &sdk).await
    }

    pub async fn new(config: Config, sdk: &aws_config::SdkConfig) -> Result<App, InitError> {
        let homeserver = Homeserver::new(config.homeserver.clone())?;
        let identities =
            Identities::new(&config.user_prefix, &config.homeserver.server_name, &config.platform_localpart)?;
        // Every AWS call is bounded (timeouts, retries) to fit inside the function's own deadline.
        let store = Store::new(crate::aws::dynamodb(sdk, &config.aws), &config.table);
        let vault = Vault::new(crate::aws::kms(sdk, &config.aws), &config.kms_key_id);
        let sqs = crate::aws::sqs(sdk, &config.aws);
        let queue_address = match (&config.queue_url, &config.queue_name) {
            (Some(url), _) => QueueAddress::Url(url.clone()),
            (None, Some(name)) => QueueAddress::Name(name.clone()),
            (None, None) => return Err(InitError::Config(ConfigError::Missing("OPENMEET_QUEUE_URL"))),
        };
        let queue = Queue::new(sqs, queue_address);
        let credentials = Credentials::new(homeserver.clone(), identities.clone());
        Ok(App {
            jwt: JwtVerifier::with_policy(&config.jwt_secrets, &config.jwt_policy),
            config,
            homeserver,
            identities,
            store,
            vault,
            queue,
            credentials,
            fetcher: std::sync::OnceLock::new(),
            container: Default::default(),
        })
    }

    /// The avatar fetcher, or `None` if the TLS stack could not be set up (then no avatar can be copied).
    pub fn avatar_fetcher(&self) -> Option<&reqwest::Client> {
        self.fetcher
            .get_or_init(|| {
                reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(5))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .ok()
            })
            .as_ref()
    }
}

/// The whole `main` of an HTTP function: logging, the clients built once, then `serve` for every API Gateway
/// request.
pub async fn run_http<Serve, Answer>(serve: Serve) -> Result<(), lambda_http::Error>
where
    Serve: Fn(&'static App, lambda_http::Request) -> Answer,
    Answer: std::future::Future<Output = lambda_http::Response<lambda_http::Body>> + Send,
{
    init_logging();
    // The clients live as long as the process (the Lambda container): leaking them lends every invocation a
    // plain `&'static` borrow.
    let app: &'static App = Box::leak(Box::new(App::from_env().await?));
    lambda_http::run(lambda_http::service_fn(move |request| {
        let answer = serve(app, request);
        async move { Ok::<_, std::convert::Infallible>(answer.await) }
    }))
    .await
}

/// Libraries that log whole requests, responses or events at debug/trace: the Lambda runtime (the raw API Gateway
/// event, with its `Authorization` header), the AWS SDK and its HTTP stack (KMS plaintexts, Secrets Manager
/// values, DynamoDB items), hyper/reqwest/rustls. Capped at `info` whatever `RUST_LOG` asks for: a `trace` level
/// must never print a token or a secret. Their warnings and errors still show.
const QUIET_TARGETS: &[&str] = &[
    "aws_config",
    "aws_runtime",
    "aws_sdk_dynamodb",
    "aws_sdk_kms",
    "aws_sdk_secretsmanager",
    "aws_sdk_sqs",
    "aws_sdk_sts",
    "aws_sdk_sso",
    "aws_sdk_ssooidc",
    "aws_smithy_http_client",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_types",
    "aws_smithy_http",
    "aws_smithy_json",
    "aws_lambda_events",
    "lambda_runtime",
    "lambda_runtime_api_client",
    "lambda_http",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "tower",
    "tower_http",
];

/// The log filter: `RUST_LOG` (default `info`), with [`QUIET_TARGETS`] capped at `info`. Directives for the same
/// target that come later win, so the caps go last.
pub fn log_filter(rust_log: Option<&str>) -> tracing_subscriber::EnvFilter {
    let mut directives = rust_log.filter(|v| !v.trim().is_empty()).unwrap_or("info").to_owned();
    for target in QUIET_TARGETS {
        directives.push_str(&format!(",{target}=info"));
    }
    tracing_subscriber::EnvFilter::try_new(&directives).unwrap_or_else(|_| {
        let fallback = QUIET_TARGETS.iter().fold("info".to_owned(), |acc, t| format!("{acc},{t}=info"));
        tracing_subscriber::EnvFilter::new(fallback)
    })
}

/// JSON log lines to stdout, level from `RUST_LOG` (default `info`; see [`log_filter`]). Call once in `main`.
pub fn init_logging() {
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::log_filter;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut buffer) = self.0.lock() {
                buffer.extend_from_slice(bytes);
            }
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// `LogLevel: trace` (and a `RUST_LOG` that names the SDK itself) still never lets the runtime, the SDK or the
    /// HTTP stack print what they carry; their warnings and the functions' own trace lines still show.
    #[test]
    fn trace_never_lets_runtime_sdk_or_http_stack_print_payloads() {
        for rust_log in [Some("trace"), Some("trace,aws_smithy_runtime=trace,lambda_runtime=trace"), None, Some("x[")] {
            let captured = Captured::default();
            let writer = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_env_filter(log_filter(rust_log))
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", body = "SECRET-1", "response");
                tracing::debug!(target: "aws_smithy_http_client::hyper_1", "SECRET-2");
                tracing::debug!(target: "lambda_runtime::layers::api_response", event = "SECRET-3", "event");
                tracing::trace!(target: "lambda_runtime_api_client", "SECRET-4");
                tracing::trace!(target: "hyper_util::client::legacy", "SECRET-5");
                tracing::debug!(target: "aws_sdk_kms::operation", plaintext = "SECRET-6", "decrypt");
                tracing::warn!(target: "aws_smithy_runtime::client", "sdk warning kept");
                tracing::info!(target: "shared::domain", "own info kept");
            });
            let text = String::from_utf8(captured.0.lock().map(|b| b.clone()).unwrap_or_default()).unwrap_or_default();
            assert!(!text.contains("SECRET"), "{rust_log:?}: {text}");
            assert!(text.contains("sdk warning kept") && text.contains("own info kept"), "{rust_log:?}: {text}");
        }
    }
}
