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
    /// Alias → room id, briefly.
    pub rooms: crate::domain::rooms::RoomCache,
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
    /// Builds every client from the environment. No network call: everything that can wait for
    /// first use does.
    pub async fn from_env() -> Result<App, InitError> {
        let config = Config::from_env()?;
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        App::new(config, &sdk).await
    }

    pub async fn new(config: Config, sdk: &aws_config::SdkConfig) -> Result<App, InitError> {
        let homeserver = Homeserver::new(config.homeserver.clone())?;
        let identities =
            Identities::new(&config.user_prefix, &config.homeserver.server_name, &config.platform_localpart)?;
        let store = Store::new(aws_sdk_dynamodb::Client::new(sdk), &config.table);
        let vault = Vault::new(aws_sdk_kms::Client::new(sdk), &config.kms_key_id);
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let queue_address = match (&config.queue_url, &config.queue_name) {
            (Some(url), _) => QueueAddress::Url(url.clone()),
            (None, Some(name)) => QueueAddress::Name(name.clone()),
            (None, None) => return Err(InitError::Config(ConfigError::Missing("OPENMEET_QUEUE_URL"))),
        };
        let queue = Queue::new(sqs, queue_address);
        let credentials = Credentials::new(homeserver.clone(), identities.clone());
        Ok(App {
            jwt: JwtVerifier::new(&config.jwt_secrets),
            config,
            homeserver,
            identities,
            store,
            vault,
            queue,
            credentials,
            fetcher: std::sync::OnceLock::new(),
            rooms: Default::default(),
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

/// JSON log lines to stdout, level from `RUST_LOG` (default `info`). Call once in `main`.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .try_init();
}
