//! Procedural macros of the [`signals`](https://docs.rs/signals) crate: `#[receiver]` and
//! `signal!`. Depend on `signals`, which re-exports them with their documentation.
//!
//! Both macros run one pipeline (`pipeline`): parse the input into a typed view (`args` and
//! `ast` for `#[receiver]`, `decl` for `signal!`, both with `options` for their `key = value`
//! lists) and validate it (`valid`), recording every error with its span in one context
//! (`ctxt`); check the context; then expand (`receiver`, `signal`), or emit the errors next to
//! what of the input can be kept (`fallback`).

mod args;
mod ast;
mod ctxt;
mod decl;
mod fallback;
mod options;
mod receiver;
mod signal;
mod valid;

use proc_macro::TokenStream;
use proc_macro2::Span;

use crate::ctxt::Ctxt;

/// Registers a function as a receiver of one or more signals, at link time. Documented in the
/// `signals` crate.
#[proc_macro_attribute]
pub fn receiver(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    pipeline(
        |cx| {
            let args = args::parse(args.into(), cx);
            let function = syn::parse2::<ast::ReceiverFn>(item.clone()).map_err(|_| {
                syn::Error::new(
                    Span::call_site(),
                    "#[receiver] goes on a function: `fn name(field: &Type, ...)`",
                )
            })?;
            valid::receiver_signature(&function.sig, cx);
            Ok((args, function))
        },
        |(args, function)| receiver::expand(&args, &function),
        |_| item.clone(),
    )
}

/// Declares signals. Documented in the `signals` crate.
#[proc_macro]
pub fn signal(input: TokenStream) -> TokenStream {
    pipeline(
        |cx| {
            let mut input = decl::parse(input.into(), cx);
            input.declarations.retain(|declaration| {
                valid::declaration(declaration, cx) && declaration.read_right
            });
            Ok(input)
        },
        |input| signal::expand(&input),
        // The declarations that are right, so that code using them still compiles.
        |input| input.as_ref().map(signal::expand).unwrap_or_default(),
    )
}

/// The pipeline of both macros. `parse` reads the input and validates it, recording every
/// error in the context, and returns what it read, or the error that stopped it where the
/// input cannot be read at all. The context is then checked: without errors, `expand` expands
/// what was read; with any, every error is emitted, each at its span, next to what `fallback`
/// keeps of the input (given what was read, if it could be).
fn pipeline<T>(
    parse: impl FnOnce(&Ctxt) -> syn::Result<T>,
    expand: impl FnOnce(T) -> proc_macro2::TokenStream,
    fallback: impl FnOnce(Option<T>) -> proc_macro2::TokenStream,
) -> TokenStream {
    let cx = Ctxt::new();
    let parsed = parse(&cx);
    let tokens = match (parsed, cx.check()) {
        (Ok(input), Ok(())) => expand(input),
        (Ok(input), Err(errors)) => fallback::with_errors(&errors, fallback(Some(input))),
        (Err(unreadable), Ok(())) => fallback::with_errors(&unreadable, fallback(None)),
        (Err(unreadable), Err(mut errors)) => {
            errors.combine(unreadable);
            fallback::with_errors(&errors, fallback(None))
        }
    };
    tokens.into()
}
