//! `#[receiver]`'s expansion: a checked receiver becomes the user's function with one
//! registration per signal first in its body. Each registration's adapter is a non-capturing
//! closure that calls the function with its parameters taken by name from the signal's
//! argument struct.
//!
//! Every generated expression that a mistake can break is spanned at the user's token that
//! decides it (the parameter, the return type, the sender, the signal), so that the compiler's
//! error lands there and not on the attribute.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, Path, ReturnType, Signature};

use crate::args::{Args, Sender};
use crate::ast::{self, Param, ReceiverFn};
use crate::options;

/// The adapter closure's parameters: hygienic (`mixed_site`), wherever they are written.
const SENDER: &str = "__signals_sender";
const ARGUMENTS: &str = "__signals_args";

/// The function, with its registrations first in its body: items there are compiled wherever
/// the function is, and can name it only if it is a free function, as a receiver must be (so
/// that a receiver in an `impl` block is one error, at its name).
pub(crate) fn expand(args: &Args, item: &ReceiverFn) -> TokenStream {
    let registrations: TokenStream = args
        .signals
        .iter()
        .map(|signal| registration(args, signal, &item.sig))
        .collect();
    item.with_items(&registrations)
}

/// The runtime's hidden module, with every token located at `span`.
fn private(args: &Args, span: Span) -> TokenStream {
    let runtime = options::runtime(args.krate.as_ref());
    located_at(quote!(#runtime::__private), span)
}

/// `tokens` with every token located at `span`, keeping its name resolution.
fn located_at(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|tree| match tree {
            TokenTree::Group(group) => {
                let mut located = Group::new(group.delimiter(), located_at(group.stream(), span));
                located.set_span(group.span().located_at(span));
                TokenTree::Group(located)
            }
            mut other => {
                other.set_span(other.span().located_at(span));
                other
            }
        })
        .collect()
}

/// A hygienic identifier of the adapter, located at `span`.
fn local(name: &str, span: Span) -> Ident {
    Ident::new(name, Span::mixed_site().located_at(span))
}

fn registration(args: &Args, signal: &Path, sig: &Signature) -> TokenStream {
    let function = &sig.ident;
    let call_args = ast::params(sig).into_iter().map(|param| match param {
        Param::Sender { span } => {
            let private = private(args, span);
            let sender = local(SENDER, span);
            quote_spanned!(span=> #private::SenderParam::sender_param(#sender))
        }
        Param::Field { name, by_ref, span } => {
            let private = private(args, span);
            let arguments = local(ARGUMENTS, span);
            if by_ref {
                quote_spanned!(span=> #private::AsParam::as_param(&#arguments.#name))
            } else {
                quote_spanned!(span=> #private::copy_field(&#arguments.#name))
            }
        }
        Param::Whole { span } => local(ARGUMENTS, span).into_token_stream(),
    });
    let output_span = match &sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => function.span(),
    };
    let respond = private(args, output_span);
    let sender = local(SENDER, Span::call_site());
    let arguments = local(ARGUMENTS, Span::call_site());
    // An `async fn` becomes a closure returning its boxed future, which borrows the arguments;
    // the coercion to a `Send` future is spanned at `async`, where a non-`Send` future errs.
    let (adapter, prefix) = match &sig.asyncness {
        None => {
            let call = quote_spanned! {output_span=>
                #respond::respond(#function(#(#call_args),*))
            };
            (quote!(|#sender, #arguments| #call), "")
        }
        Some(asyncness) => {
            let call = quote_spanned! {output_span=>
                #respond::respond(#function(#(#call_args),*).await)
            };
            let future = quote_spanned! {asyncness.span()=>
                ::std::boxed::Box::pin(async move { #call })
            };
            (quote!(|#sender, #arguments| #future), "async_")
        }
    };

    let meta = {
        let private = private(args, Span::call_site());
        let location = quote_spanned! {function.span()=>
            #private::SourceLocation::new(::core::file!(), ::core::line!(), ::core::column!())
        };
        let dispatch_uid = args.dispatch_uid.as_ref().map_or_else(
            || quote!(::core::option::Option::None),
            |uid| quote!(::core::option::Option::Some(#uid)),
        );
        let priority = args.priority;
        quote! {
            #private::ReceiverMeta::new_static(
                ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#function)),
                ::core::module_path!(),
                #location,
                #dispatch_uid,
                #priority,
            )
        }
    };

    // The registration is spanned at the token that decides the signal-kind check: the signal
    // for an any-sender receiver, the sender otherwise.
    let register = match &args.sender {
        None => {
            let span = signal.span();
            let private = private(args, span);
            let build = Ident::new(&format!("{prefix}any_receiver"), span);
            quote_spanned!(span=> #private::#build(&#signal, &#adapter, #meta))
        }
        Some(Sender::Value(value)) => {
            let span = value.span();
            let private = private(args, span);
            let build = Ident::new(&format!("{prefix}value_receiver"), span);
            quote_spanned!(span=> #private::#build(&#signal, &#value, &#adapter, #meta))
        }
        Some(Sender::Type(ty)) => {
            let span = ty.span();
            let private = private(args, span);
            let build = Ident::new(&format!("{prefix}type_receiver"), span);
            quote_spanned!(span=> #private::#build::<_, #ty, _>(&#signal, &#adapter, #meta))
        }
    };
    let private = private(args, Span::call_site());
    quote! {
        #private::register!(receiver: #register);
    }
}
