//! A receiver's identity in one word ([`Thin`]), and a `dispatch_uid` in two ([`Uid`]), so
//! that the table's slot and each dispatch-list entry carry 8 bytes of identity instead of
//! 16, and a runtime receiver's metadata is 40 bytes with its reference count.
//!
//! [`Thin`] is a tagged pointer: a static receiver's `&'static ReceiverMeta` with its lowest
//! bit set, or, with it clear, a runtime receiver's [`RuntimeMeta`] behind one reference count
//! (an `Arc` without the weak count, which nothing here uses). Both are aligned to 8 bytes,
//! so the lowest bit of their address is free. [`Uid`] is a `&'static str` or a `Box<str>`
//! told apart by the top bit of its length, which no allocation reaches.
//!
//! The crate's `unsafe` code is in `raw`, except this, which is below it: `info` is the
//! bottom layer, which every other module names.

#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering, fence};

use super::{ReceiverMeta, RuntimeMeta};

/// A runtime receiver's metadata with its reference count.
struct Counted {
    count: AtomicUsize,
    meta: RuntimeMeta,
}

/// The tag of a static receiver's address.
const STATIC: usize = 1;

/// A receiver's metadata, static or counted: see the module's documentation.
pub(crate) struct Thin {
    /// `&'static ReceiverMeta` with [`STATIC`] set, or a `Box<Counted>` leaked for the counts.
    tagged: NonNull<u8>,
    _owns: PhantomData<Counted>,
}

// SAFETY: a `Thin` is a shared reference to immutable metadata that is `Send + Sync`
// (`ReceiverMeta` is a static's, `RuntimeMeta` holds only `'static` references and a `Uid`
// that owns its text), with an atomic count.
unsafe impl Send for Thin {}
// SAFETY: as for `Send`: `&Thin` gives only `&` to the metadata, and counts atomically.
unsafe impl Sync for Thin {}

/// What a [`Thin`] points to.
pub(crate) enum Meta<'a> {
    Static(&'static ReceiverMeta),
    Runtime(&'a RuntimeMeta),
}

const _: () = assert!(align_of::<ReceiverMeta>() > STATIC && align_of::<Counted>() > STATIC);

impl Thin {
    /// A static receiver's.
    pub(crate) const fn of_static(meta: &'static ReceiverMeta) -> Self {
        let address: *const ReceiverMeta = meta;
        Self {
            // SAFETY: the address of a reference is not null, so neither is one with a bit set.
            tagged: unsafe {
                NonNull::new_unchecked(address.cast::<u8>().cast_mut().wrapping_add(STATIC))
            },
            _owns: PhantomData,
        }
    }

    /// A runtime receiver's, counted once.
    pub(crate) fn runtime(meta: RuntimeMeta) -> Self {
        let counted = Box::new(Counted {
            count: AtomicUsize::new(1),
            meta,
        });
        Self {
            tagged: NonNull::from(Box::leak(counted)).cast(),
            _owns: PhantomData,
        }
    }

    /// The runtime metadata's count, if this is a runtime receiver's.
    fn counted(&self) -> Option<&Counted> {
        if self.tagged.addr().get() & STATIC != 0 {
            return None;
        }
        // SAFETY: without the tag, `tagged` came from `Box::leak` of a `Counted` (`runtime`),
        // which is freed only when the count this `Thin` holds is given up (`drop`).
        Some(unsafe { self.tagged.cast::<Counted>().as_ref() })
    }

    /// The metadata.
    #[inline]
    pub(crate) fn meta(&self) -> Meta<'_> {
        match self.counted() {
            Some(counted) => Meta::Runtime(&counted.meta),
            // SAFETY: with the tag, the address without it is a `&'static ReceiverMeta`'s
            // (`of_static`), so not null.
            None => Meta::Static(unsafe {
                NonNull::new_unchecked(self.tagged.as_ptr().wrapping_sub(STATIC))
                    .cast::<ReceiverMeta>()
                    .as_ref()
            }),
        }
    }

    /// Whether both are the same receiver's.
    pub(crate) fn same(&self, other: &Self) -> bool {
        self.tagged == other.tagged
    }
}

impl Clone for Thin {
    fn clone(&self) -> Self {
        if let Some(counted) = self.counted() {
            // Relaxed, as `Arc` does: the new reference is made from one already held.
            let old = counted.count.fetch_add(1, Ordering::Relaxed);
            assert!(
                old < isize::MAX as usize,
                "receiver identity count overflow"
            );
        }
        Self {
            tagged: self.tagged,
            _owns: PhantomData,
        }
    }
}

impl Drop for Thin {
    fn drop(&mut self) {
        let Some(counted) = self.counted() else {
            return;
        };
        // Release, then Acquire on the last one, as `Arc` does: every use of the metadata
        // through other references happens before it is freed.
        if counted.count.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        // SAFETY: this was the last reference to the `Counted` leaked by `runtime`.
        drop(unsafe { Box::from_raw(self.tagged.cast::<Counted>().as_ptr()) });
    }
}

/// A `dispatch_uid`: a `&'static str` or an owned `Box<str>`, in two words.
pub(crate) struct Uid {
    text: NonNull<u8>,
    /// The text's length, with [`OWNED`] set if `text` came from a leaked `Box<str>`.
    len: usize,
}

/// The bit of [`Uid::len`] that says the text is owned: no allocation is that large.
const OWNED: usize = 1 << (usize::BITS - 1);

// SAFETY: a `Uid` is a `&'static str` or a `Box<str>` it owns alone, both `Send + Sync`.
unsafe impl Send for Uid {}
// SAFETY: as for `Send`: `&Uid` gives only `&str`.
unsafe impl Sync for Uid {}

impl Uid {
    /// A borrowed uid.
    pub(crate) const fn borrowed(text: &'static str) -> Self {
        Self {
            // SAFETY: the address of a reference is not null.
            text: unsafe { NonNull::new_unchecked(text.as_ptr().cast_mut()) },
            len: text.len(),
        }
    }

    /// An owned uid.
    pub(crate) fn owned(text: Box<str>) -> Self {
        let len = text.len();
        Self {
            text: NonNull::from(Box::leak(text)).cast(),
            len: len | OWNED,
        }
    }

    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        // SAFETY: `text` and the length without `OWNED` are a `str`'s (`borrowed`, `owned`),
        // alive while `self` is: `'static`, or owned by `self`.
        unsafe {
            std::str::from_utf8_unchecked(std::slice::from_raw_parts(
                self.text.as_ptr(),
                self.len & !OWNED,
            ))
        }
    }
}

impl Drop for Uid {
    fn drop(&mut self) {
        if self.len & OWNED != 0 {
            let text = std::ptr::slice_from_raw_parts_mut(self.text.as_ptr(), self.len & !OWNED);
            // SAFETY: with `OWNED`, `text` is the `Box<str>` leaked by `owned`, owned by
            // `self` alone, and `self` is being dropped.
            drop(unsafe { Box::from_raw(text as *mut str) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::info::{ReceiverKind, SourceLocation};

    static META: ReceiverMeta = ReceiverMeta::new_static(
        "app::audit",
        "app",
        SourceLocation::new("a.rs", 1, 2),
        None,
        0,
    );

    #[test]
    fn a_static_identity_reads_back_its_metadata_and_is_one_word() {
        assert_eq!(size_of::<Thin>(), size_of::<usize>());
        assert_eq!(size_of::<Option<Thin>>(), size_of::<usize>());
        let thin = Thin::of_static(&META);
        let Meta::Static(meta) = thin.meta() else {
            panic!("a static receiver's")
        };
        assert!(std::ptr::eq(meta, &raw const META));
        assert!(thin.same(&thin.clone()));
    }

    #[test]
    fn a_runtime_identity_is_freed_with_its_last_clone() {
        let thin = Thin::runtime(RuntimeMeta::for_tests(Some(Uid::owned("uid".into()))));
        let clones: Vec<Thin> = (0..3).map(|_| thin.clone()).collect();
        drop(thin);
        let Meta::Runtime(meta) = clones[2].meta() else {
            panic!("a runtime receiver's")
        };
        assert_eq!(meta.kind(), ReceiverKind::Runtime);
        assert_eq!(meta.dispatch_uid(), Some("uid"));
        assert!(clones[0].same(&clones[1]));
        // Miri reports the metadata leaked, or freed twice, if the count is wrong.
        drop(clones);
    }

    #[test]
    fn a_uid_gives_back_its_text_borrowed_or_owned() {
        assert_eq!(size_of::<Option<Uid>>(), 2 * size_of::<usize>());
        assert_eq!(Uid::borrowed("static").as_str(), "static");
        assert_eq!(Uid::owned(String::from("owned").into()).as_str(), "owned");
        assert_eq!(Uid::borrowed("").as_str(), "");
        assert_eq!(Uid::owned("".into()).as_str(), "");
    }
}
