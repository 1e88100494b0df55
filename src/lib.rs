#![doc = include_str!("../README.md")]

pub use signals_core::*;
