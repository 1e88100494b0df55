//! Collects every error a macro input has, so that they are reported together (as `serde_derive`
//! does) instead of one per compile.
//!
//! Each stage records its errors through a shared `&Ctxt`; the pipeline then consumes the
//! context with [`Ctxt::check`] before it expands anything. A context dropped without that
//! check would lose its errors, and the expansion would go ahead on input known to be wrong:
//! its `Drop` panics instead, so that a path that forgets the check fails every test that
//! takes it.

use std::cell::RefCell;
use std::fmt::Display;

use proc_macro2::Span;
use quote::ToTokens;

pub(crate) struct Ctxt {
    /// `Some` until [`Ctxt::check`] takes the errors.
    errors: RefCell<Option<Vec<syn::Error>>>,
}

impl Ctxt {
    pub(crate) fn new() -> Self {
        Self {
            errors: RefCell::new(Some(Vec::new())),
        }
    }

    /// An error spanning `tokens`.
    pub(crate) fn error_spanned_by(&self, tokens: impl ToTokens, message: impl Display) {
        self.syn_error(syn::Error::new_spanned(tokens, message));
    }

    /// An error at `span`.
    pub(crate) fn error_at(&self, span: Span, message: impl Display) {
        self.syn_error(syn::Error::new(span, message));
    }

    /// An error from a parser.
    pub(crate) fn syn_error(&self, error: syn::Error) {
        self.errors
            .borrow_mut()
            .as_mut()
            .expect("a checked Ctxt records no more errors")
            .push(error);
    }

    /// Ends the context: every error recorded, combined into one that emits each at its span,
    /// in the order they were recorded.
    pub(crate) fn check(self) -> syn::Result<()> {
        let errors = self.errors.borrow_mut().take().unwrap_or_default();
        let mut errors = errors.into_iter();
        let Some(mut combined) = errors.next() else {
            return Ok(());
        };
        for error in errors {
            combined.combine(error);
        }
        Err(combined)
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        // Not while unwinding: a second panic would abort and hide the first.
        assert!(
            std::thread::panicking() || self.errors.borrow().is_none(),
            "signals-macros: a Ctxt was dropped without `check`; its errors were lost"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::Ctxt;
    use proc_macro2::Span;

    #[test]
    fn a_context_without_errors_checks_ok() {
        assert!(Ctxt::new().check().is_ok());
    }

    #[test]
    fn check_returns_every_error_in_the_order_recorded() {
        let cx = Ctxt::new();
        cx.error_at(Span::call_site(), "first");
        cx.syn_error(syn::Error::new(Span::call_site(), "second"));
        let messages: Vec<String> = cx
            .check()
            .unwrap_err()
            .into_iter()
            .map(|error| error.to_string())
            .collect();
        assert_eq!(messages, ["first", "second"]);
    }

    #[test]
    #[should_panic(expected = "dropped without `check`")]
    fn dropping_an_unchecked_context_panics() {
        let cx = Ctxt::new();
        cx.error_at(Span::call_site(), "lost");
        drop(cx);
    }
}
