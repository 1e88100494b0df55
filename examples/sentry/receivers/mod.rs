//! The application's receivers, one file per concern, as Sentry's `src/sentry/receivers/`.
//! Each is wired by `#[receiver]` on its function; this module only makes the files part of the
//! program.

mod core;
mod email;
pub(crate) mod features;
mod feedback;
pub(crate) mod onboarding;
mod outbox;
mod owners;
mod stats;
mod useremail;
mod users;
