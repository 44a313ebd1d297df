//! The poll-mode worker loop.
