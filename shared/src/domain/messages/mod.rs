//! Messages: send, format, mention, thread, reply, edit, delete, react, history, notifications, media.
