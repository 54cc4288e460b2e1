//! The `push-gateway` function: Matrix's Push Gateway API (`POST /_matrix/push/v1/notify`), called by the
//! homeserver's pushers only (a private route, see docs/adr/0008-notifications.md).
