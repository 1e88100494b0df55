//! The link-time collections of every [`Registration`] and [`Declaration`] in the program, by
//! `linkme` (linker sections) when its feature is on, otherwise by `inventory` (constructors
//! run before `main`). Generated code submits through [`register!`](crate::__private::register),
//! so users never name either crate.

use super::{Declaration, Registration};

#[cfg(not(any(feature = "inventory", feature = "linkme")))]
compile_error!(
    "signals needs a registry backend: enable its `inventory` (default) or `linkme` feature"
);

/// Every receiver registration, in link order (which the registry does not rely on).
#[cfg(feature = "linkme")]
#[linkme::distributed_slice]
pub static REGISTRATIONS: [Registration];

/// Every signal declaration, in link order.
#[cfg(feature = "linkme")]
#[linkme::distributed_slice]
pub static DECLARATIONS: [Declaration];

#[cfg(feature = "linkme")]
pub(crate) fn registrations() -> impl Iterator<Item = &'static Registration> {
    REGISTRATIONS.iter()
}

#[cfg(feature = "linkme")]
pub(crate) fn declarations() -> impl Iterator<Item = &'static Declaration> {
    DECLARATIONS.iter()
}

#[cfg(all(feature = "inventory", not(feature = "linkme")))]
inventory::collect!(Registration);

#[cfg(all(feature = "inventory", not(feature = "linkme")))]
inventory::collect!(Declaration);

#[cfg(all(feature = "inventory", not(feature = "linkme")))]
pub(crate) fn registrations() -> impl Iterator<Item = &'static Registration> {
    inventory::iter::<Registration>.into_iter()
}

#[cfg(all(feature = "inventory", not(feature = "linkme")))]
pub(crate) fn declarations() -> impl Iterator<Item = &'static Declaration> {
    inventory::iter::<Declaration>.into_iter()
}

/// Submits a static receiver or a signal declaration, at item position:
/// `register!(receiver: Registration::new(..))` or `register!(signal: Declaration::new(..))`.
#[cfg(feature = "linkme")]
#[doc(hidden)]
#[macro_export]
macro_rules! __register {
    (receiver: $registration:expr) => {
        $crate::__register!(@slice REGISTRATIONS, Registration, $registration);
    };
    (signal: $declaration:expr) => {
        $crate::__register!(@slice DECLARATIONS, Declaration, $declaration);
    };
    (@slice $slice:ident, $ty:ident, $value:expr) => {
        const _: () = {
            #[$crate::__private::linkme::distributed_slice($crate::__private::$slice)]
            #[linkme(crate = $crate::__private::linkme)]
            static ITEM: $crate::__private::$ty = $value;
        };
    };
}

/// Submits a static receiver or a signal declaration, at item position:
/// `register!(receiver: Registration::new(..))` or `register!(signal: Declaration::new(..))`.
#[cfg(all(feature = "inventory", not(feature = "linkme")))]
#[doc(hidden)]
#[macro_export]
macro_rules! __register {
    (receiver: $registration:expr) => {
        $crate::__private::inventory::submit! { $registration }
    };
    (signal: $declaration:expr) => {
        $crate::__private::inventory::submit! { $declaration }
    };
}
