//! Django-style signals and receivers for Rust, wired at compile time.
//!
//! See the [README](https://github.com/signals-rs/signals#readme) for a tour.

pub use signals_core::*;
