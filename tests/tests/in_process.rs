//! In-process tests of every domain area: the functions' own code (`serve` → `http::serve` → the domain, the
//! retry worker's `process_batch`, the drift pass, the importer's and the cutover's entry points) runs in this
//! process against a mock homeserver (`integration_tests::mock_homeserver`, typed endpoint mocks that answer as
//! Synapse 1.163 does) and the AWS emulator of the local stack (moto, from `.local/stack.env`: a missing stack
//! fails these tests; Synapse is not used). Each test has its own tenant, homeserver and FIFO queue, so nothing
//! here meets the gateway's worker or another test. Fast enough to run on every save:
//! `cargo test -p integration-tests --test in_process`.

#[path = "in_process/cutover.rs"]
mod cutover;
#[path = "in_process/drift.rs"]
mod drift;
#[path = "in_process/import.rs"]
mod import;
#[path = "in_process/membership.rs"]
mod membership;
#[path = "in_process/messages.rs"]
mod messages;
#[path = "in_process/operations.rs"]
mod operations;
#[path = "in_process/rooms.rs"]
mod rooms;
#[path = "in_process/sessions.rs"]
mod sessions;
#[path = "in_process/support.rs"]
mod support;
#[path = "in_process/users.rs"]
mod users;
