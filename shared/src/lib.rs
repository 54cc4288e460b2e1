//! Shared code of the OpenMeet Matrix functions: configuration, the route table, authentication, the homeserver
//! client, the AWS adapters, credentials, and the domain operations the function handlers call.

pub mod app;
pub mod auth;
pub mod aws;
pub mod config;
pub mod container;
pub mod credentials;
pub mod domain;
pub mod error;
pub mod homeserver;
#[cfg(test)]
mod hostile_input;
pub mod http;
pub mod identity;
pub mod jobs;
pub mod long_step;
pub mod metrics;
pub mod ratelimit;
pub mod routes;
pub mod settings;
pub mod token;

pub use app::App;
pub use error::ApiError;
