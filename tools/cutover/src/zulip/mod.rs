//! `import-zulip` and `generate-zulip`: Zulip's organization export into the OpenMeet rooms (see `docs/cutover.md`,
//! "Importing the Zulip history").

pub mod delta;
pub mod export;
pub mod files;
pub mod generate;
pub mod history_room;
#[cfg(test)]
mod hostile_tests;
pub mod import;
pub mod live;
pub mod mapping;
pub mod report;
pub mod room;
