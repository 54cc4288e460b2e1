//! The deployment's secrets (appservice token, JWT secrets) from AWS Secrets Manager: one `GetSecretValue` at
//! container start, kept in memory for the container's life (docs/adr/0004-secrets.md). Locally they come from
//! plain environment variables instead.

use std::collections::HashMap;

use aws_config::SdkConfig;

use super::AwsLimits;
use crate::settings::ConfigError;

/// Names the secret's JSON keys map to: the environment variables that carry the same values locally.
pub const FIELDS: [(&str, &str); 3] = [
    ("appserviceToken", "MATRIX_AS_TOKEN"),
    ("jwtSecret", "OPENMEET_JWT_SECRET"),
    ("jwtSecretPrevious", "OPENMEET_JWT_SECRET_PREVIOUS"),
];

/// Shortest accepted secret, in bytes: an HS256 key needs 256 bits to be as strong as the algorithm; the
/// appservice token is the server's master key.
pub const MIN_SECRET_BYTES: usize = 32;

/// Reads the secret `arn` and returns its values under their environment variable names. The values never appear
/// in an error: a failure names the secret's field, or the service error's kind.
pub async fn fetch(sdk: &SdkConfig, arn: &str, limits: &AwsLimits) -> Result<HashMap<String, String>, ConfigError> {
    let config = aws_sdk_secretsmanager::config::Builder::from(sdk)
        .timeout_config(limits.timeouts())
        .retry_config(limits.retries())
        .build();
    let client = aws_sdk_secretsmanager::Client::from_conf(config);
    let output = client.get_secret_value().secret_id(arn).send().await.map_err(|error| ConfigError::Invalid {
        name: "OPENMEET_SECRETS_ARN",
        // The SDK's error display names the service error, never the secret's value.
        reason: format!("GetSecretValue failed: {}", super::unavailable("secretsmanager", error)),
    })?;
    let text = output.secret_string().ok_or(ConfigError::Invalid {
        name: "OPENMEET_SECRETS_ARN",
        reason: "the secret has no SecretString".into(),
    })?;
    parse(text)
}

/// The secret's JSON object → environment variable names. Unknown keys are refused (a typo must not silently
/// leave a secret unset); every value must be at least [`MIN_SECRET_BYTES`] long, an empty `jwtSecretPrevious`
/// meaning "none".
pub fn parse(text: &str) -> Result<HashMap<String, String>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { name: "OPENMEET_SECRETS_ARN", reason };
    let object: HashMap<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|_| invalid("the secret is not a JSON object of strings".into()))?;
    let mut values = HashMap::new();
    for (key, value) in object {
        let Some((_, env_name)) = FIELDS.iter().find(|(field, _)| *field == key) else {
            return Err(invalid(format!(
                "unknown field {key:?} (expected appserviceToken, jwtSecret, jwtSecretPrevious)"
            )));
        };
        let Some(value) = value.as_str() else { return Err(invalid(format!("field {key} is not a string"))) };
        if value.is_empty() && key == "jwtSecretPrevious" {
            continue;
        }
        if value.len() < MIN_SECRET_BYTES {
            return Err(invalid(format!("field {key} is shorter than {MIN_SECRET_BYTES} bytes")));
        }
        values.insert((*env_name).to_owned(), value.to_owned());
    }
    for (field, env_name) in &FIELDS[..2] {
        if !values.contains_key(*env_name) {
            return Err(invalid(format!("field {field} is missing")));
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "as-token-as-token-as-token-as-token-0";
    const CURRENT: &str = "current-secret-current-secret-current-0";

    #[test]
    fn fields_map_to_the_environment_names() {
        let text = serde_json::json!({"appserviceToken": TOKEN, "jwtSecret": CURRENT, "jwtSecretPrevious": ""});
        let values = parse(&text.to_string()).expect("valid secret");
        assert_eq!(values.get("MATRIX_AS_TOKEN").map(String::as_str), Some(TOKEN));
        assert_eq!(values.get("OPENMEET_JWT_SECRET").map(String::as_str), Some(CURRENT));
        assert!(!values.contains_key("OPENMEET_JWT_SECRET_PREVIOUS"));
    }

    #[test]
    fn short_missing_unknown_and_malformed_are_refused_without_echoing_values() {
        let short = "short-previous";
        let cases = [
            serde_json::json!({"appserviceToken": TOKEN, "jwtSecret": CURRENT, "jwtSecretPrevious": short}).to_string(),
            serde_json::json!({"appserviceToken": TOKEN}).to_string(),
            serde_json::json!({"appserviceToken": TOKEN, "jwtSecret": CURRENT, "jwtsecret": CURRENT}).to_string(),
            serde_json::json!({"appserviceToken": TOKEN, "jwtSecret": 42}).to_string(),
            format!("{TOKEN}{CURRENT}"),
        ];
        for case in cases {
            let message = parse(&case).expect_err("refused").to_string();
            assert!(!message.contains(TOKEN) && !message.contains(CURRENT) && !message.contains(short), "{message}");
        }
    }
}
