//! The crate's `unsafe` code, in three parts, each keeping one invariant that its own types
//! enforce, so that the rest of the crate stays safe:
//!
//! - `publish`: a signal's snapshot, published as a raw `Arc` pointer that sends read under
//!   per-thread hazard pointers ([`Published`], [`Pin`]): a replaced snapshot is freed only
//!   once no send reads it.
//! - `call`: a receiver as sync sends call it ([`Receiver`]): a function pointer and the
//!   address of the receiver's code, which the receiver itself keeps alive, so that a call costs
//!   what calling a boxed closure costs.
//!
//! - `responses`: a sync send's [`Responses`], which keep the snapshot the send ran and copy
//!   each receiver's identity out of it without taking a reference count.
//!
//! One more part sits below this module, with the identity it implements: `info::thin`, a
//! receiver's identity in one word (a tagged pointer to its metadata, counted for runtime
//! receivers) and its `dispatch_uid` in two.
//!
//! Every `unsafe` block has a `SAFETY:` comment; the unit tests of every part exercise them.

#![allow(unsafe_code)]

mod call;
mod publish;
mod responses;

pub(crate) use call::{Receiver, StaticCallable, static_async_owner};
pub(crate) use publish::{Pin, Published};
pub use responses::{Response, Responses};
pub(crate) use responses::{lend, lend_into};
