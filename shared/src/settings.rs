//! What every module's settings parser shares: the error of a missing or invalid environment variable and the
//! number parser. A leaf module, so the modules whose settings `crate::config` gathers need not import it back.

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

pub(crate) fn number(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match get(name) {
        Some(value) => {
            value.parse().map_err(|e: std::num::ParseIntError| ConfigError::Invalid { name, reason: e.to_string() })
        }
        None => Ok(default),
    }
}
