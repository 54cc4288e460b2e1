//! The API's writes as a caller asks for them, over the domain's building blocks: resolve, change or queue the
//! change when the homeserver is out (`Outcome`), and record the result as the room's desired state. Handlers call
//! these; the retry worker replays the building blocks themselves.

mod membership;
mod rooms;
mod users;

pub use membership::*;
pub use rooms::*;
pub use users::*;
