#![doc = include_str!("../README.md")]

pub use signals_core::*;

pub use signals_macros::{receiver, signal};
