//! Domain operations: plain async Rust over the homeserver client and the AWS adapters. Handlers in `functions/`
//! translate HTTP into these calls; they know nothing about Lambda.

pub mod health;
pub mod operations;
pub mod rooms;
pub mod sessions;
pub mod users;
