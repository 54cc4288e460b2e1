//! Adapters for the AWS services: DynamoDB (the store), KMS (the vault) and SQS (the queue).

pub mod aliases;
pub mod cutover_runs;
pub mod desired_state;
pub mod events;
pub mod idempotency;
pub mod intents;
pub mod keys;
pub mod operations;
pub mod push;
pub mod queue;
pub mod records;
pub mod secrets;
pub mod store;
pub mod users;
pub mod vault;
pub mod web_devices;

use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;

/// Time limits of every AWS SDK call. The SDK's defaults have no operation or read timeout: against an AWS endpoint
/// that accepts connections but never answers, a call hangs until the function's own deadline (API Gateway then
/// answers a bare 503 after 29 s and Lambda bills all of it). These bound a call, retries included, well inside the
/// 25 s function timeout, so the request answers its own 503 + `Retry-After` within a few seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsLimits {
    /// One attempt (connect + request + response). DynamoDB, KMS and SQS answer in tens of milliseconds.
    pub attempt: Duration,
    /// The whole call, back-off and retries included.
    pub operation: Duration,
    /// Attempts per call (standard retry mode: throttling and transient errors, exponential back-off).
    pub max_attempts: u32,
}

impl Default for AwsLimits {
    fn default() -> Self {
        AwsLimits { attempt: Duration::from_millis(1_500), operation: Duration::from_millis(4_000), max_attempts: 3 }
    }
}

impl AwsLimits {
    pub fn timeouts(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.attempt.min(Duration::from_secs(1)))
            .read_timeout(self.attempt)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }

    pub fn retries(&self) -> RetryConfig {
        RetryConfig::standard().with_max_attempts(self.max_attempts.max(1)).with_max_backoff(Duration::from_secs(1))
    }

    /// For a call that waits on purpose (an SQS long poll of `wait`): the same limits, stretched by the wait.
    pub fn long_poll(&self, wait: Duration) -> TimeoutConfig {
        AwsLimits { attempt: self.attempt + wait, operation: self.operation + wait, ..*self }.timeouts()
    }
}

/// The DynamoDB client with `limits` (every function and tool builds its clients here).
pub fn dynamodb(sdk: &SdkConfig, limits: &AwsLimits) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::config::Builder::from(sdk)
        .timeout_config(limits.timeouts())
        .retry_config(limits.retries())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// The KMS client with `limits`.
pub fn kms(sdk: &SdkConfig, limits: &AwsLimits) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::config::Builder::from(sdk)
        .timeout_config(limits.timeouts())
        .retry_config(limits.retries())
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// The SQS client with `limits`.
pub fn sqs(sdk: &SdkConfig, limits: &AwsLimits) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::config::Builder::from(sdk)
        .timeout_config(limits.timeouts())
        .retry_config(limits.retries())
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// The EventBridge client with `limits`.
pub fn eventbridge(sdk: &SdkConfig, limits: &AwsLimits) -> aws_sdk_eventbridge::Client {
    let config = aws_sdk_eventbridge::config::Builder::from(sdk)
        .timeout_config(limits.timeouts())
        .retry_config(limits.retries())
        .build();
    aws_sdk_eventbridge::Client::from_conf(config)
}

/// Reduces an SDK error to a loggable line: the SDK's `Display` names the service error, never request payloads.
pub(crate) fn unavailable<E: std::error::Error>(service: &'static str, error: E) -> BackendError {
    let mut detail = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        detail.push_str(": ");
        detail.push_str(&inner.to_string());
        source = inner.source();
    }
    BackendError::Unavailable { service, detail }
}

/// Failures of the AWS-backed ports (store, vault, queue): never the caller's fault, usually passing.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{service} call failed: {detail}")]
    Unavailable { service: &'static str, detail: String },
    #[error("{service} answered something unexpected: {detail}")]
    Corrupt { service: &'static str, detail: String },
}
