//! OpenMeet's chat notification channel (docs/adr/0008-notifications.md): every user has one pusher on the
//! homeserver pointing at the private push gateway, which turns each notification into one OpenMeet event on the
//! event bus, without the message's content.
//!
//! - [`pushers`]: the user's pusher (set on their first session, repaired on later ones, removed when they turn
//!   chat notifications off; deactivation removes it with the user) and the sweep of foreign pushers.
//! - [`notify`]: the Push Gateway API's notify, checked and turned into a [`notify::ChatNotification`].
//! - [`preferences`]: the user's chat notification preference, applied to the pusher.

pub mod notify;
pub mod preferences;
pub mod pushers;

/// The `app_id` of every pusher the platform sets.
pub const APP_ID: &str = "org.openmeet.chat";

/// The key of a pusher's `data` naming the Matrix user it belongs to: the homeserver sends `data` (without `url`)
/// back with every notification, and the notify itself names no user.
pub const DATA_USER: &str = "org.openmeet.user";
