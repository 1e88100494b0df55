//! What a macro emits when its input is wrong: the errors, each at its span, and what of the
//! input can still be emitted (the user's function, unchanged; the signals declared right), so
//! that the errors are the only ones and rust-analyzer keeps working on the rest.

use proc_macro2::TokenStream;

pub(crate) fn with_errors(errors: &syn::Error, kept: TokenStream) -> TokenStream {
    let mut tokens = errors.to_compile_error();
    tokens.extend(kept);
    tokens
}
