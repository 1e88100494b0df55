//! Procedural macros of the [`signals`](https://docs.rs/signals) crate: `#[receiver]` and
//! `signal!`. Depend on `signals`, which re-exports them with their documentation.
//!
//! Each macro parses its input into a typed view (`args`, `ast`), validates it (`valid`),
//! collecting every error with its span (`ctxt`), then expands it (`expand`, `signal`). On
//! any error the user's item is emitted unchanged next to the errors (`fallback`).

mod args;
mod ast;
mod ctxt;
mod expand;
mod fallback;
mod signal;
mod valid;

use proc_macro::TokenStream;

/// Registers a function as a receiver of one or more signals, at link time. Documented in the
/// `signals` crate.
#[proc_macro_attribute]
pub fn receiver(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = ctxt::Ctxt::default();
    let item = proc_macro2::TokenStream::from(item);
    let parsed_args = args::parse(args.into(), &mut cx);
    let function = syn::parse2::<ast::ReceiverFn>(item.clone()).ok();
    if function.is_none() {
        cx.error_at(
            proc_macro2::Span::call_site(),
            "#[receiver] goes on a function: `fn name(field: &Type, ...)`",
        );
    }
    if let Some(function) = &function {
        valid::check(&function.sig, &mut cx);
    }
    match (parsed_args, function) {
        (Some(args), Some(function)) if !cx.has_errors() => {
            expand::receiver(&args, &function).into()
        }
        _ => fallback::item_with_errors(item, cx).into(),
    }
}

/// Declares signals. Documented in the `signals` crate.
#[proc_macro]
pub fn signal(input: TokenStream) -> TokenStream {
    match syn::parse::<signal::Declarations>(input) {
        Ok(declarations) => signal::expand(declarations).into(),
        Err(error) => error.to_compile_error().into(),
    }
}
