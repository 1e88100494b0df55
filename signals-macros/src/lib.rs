//! Procedural macros of the `signals` crate.
