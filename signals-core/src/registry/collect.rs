//! The link-time collection of every [`Registration`] in the program, by `linkme` (a linker
//! section) when its feature is on, otherwise by `inventory` (constructors run before
//! `main`). Generated code registers through [`register!`](crate::__private::register), so
//! users never name either crate.

use super::Registration;

#[cfg(not(any(feature = "inventory", feature = "linkme")))]
compile_error!(
    "signals needs a registry backend: enable its `inventory` (default) or `linkme` feature"
);

/// Every registration, in link order (which the registry does not rely on).
#[cfg(feature = "linkme")]
#[linkme::distributed_slice]
pub static REGISTRATIONS: [Registration];

/// Every registration in the program, in no particular order.
#[cfg(feature = "linkme")]
pub fn all() -> impl Iterator<Item = &'static Registration> {
    REGISTRATIONS.iter()
}

#[cfg(all(feature = "inventory", not(feature = "linkme")))]
inventory::collect!(Registration);

/// Every registration in the program, in no particular order.
#[cfg(all(feature = "inventory", not(feature = "linkme")))]
pub fn all() -> impl Iterator<Item = &'static Registration> {
    inventory::iter::<Registration>.into_iter()
}

/// Registers a static receiver: `register!(Registration::value(...))`, at item position.
#[cfg(feature = "linkme")]
#[doc(hidden)]
#[macro_export]
macro_rules! __register {
    ($registration:expr) => {
        const _: () = {
            #[$crate::__private::linkme::distributed_slice($crate::__private::REGISTRATIONS)]
            #[linkme(crate = $crate::__private::linkme)]
            static REGISTRATION: $crate::__private::Registration = $registration;
        };
    };
}

/// Registers a static receiver: `register!(Registration::value(...))`, at item position.
#[cfg(all(feature = "inventory", not(feature = "linkme")))]
#[doc(hidden)]
#[macro_export]
macro_rules! __register {
    ($registration:expr) => {
        $crate::__private::inventory::submit! { $registration }
    };
}
