//! Domain operations: plain async Rust over the homeserver client and the AWS adapters. Handlers in `functions/`
//! translate HTTP into these calls; they know nothing about Lambda.

pub mod cutover;
pub mod direct;
pub mod drift;
mod error;
pub mod health;
pub mod history_import;
pub mod housekeeping;
pub mod images;
pub mod membership;
pub mod messages;
pub mod operations;
mod outcome;
pub mod platform;
pub mod push;
pub mod reminders;
pub mod replay;
pub mod requests;
pub mod retention;
pub mod roles;
pub mod room_lifecycle;
pub mod room_policy;
pub mod rooms;
pub mod sessions;
pub mod tenancy;
pub mod users;

pub use error::DomainError;
pub use outcome::{OperationId, Outcome};
