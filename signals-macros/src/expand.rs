//! Expands a checked `#[receiver]` into the user's function followed by one registration per
//! signal. Each registration's adapter is a non-capturing closure that calls the function with
//! its parameters taken by name from the signal's argument struct; type errors in it are
//! spanned at the user's tokens.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ItemFn, Path, ReturnType};

use crate::args::{Args, Sender};
use crate::ast::{self, Param};

pub(crate) fn receiver(args: &Args, item: &ItemFn) -> TokenStream {
    let private = args.krate.as_ref().map_or_else(
        || quote!(::signals::__private),
        |krate| quote!(#krate::__private),
    );
    let registrations = args.signals.iter().map(|signal| {
        if item.sig.asyncness.is_some() {
            require_async(&private, signal)
        } else {
            registration(&private, signal, args, item)
        }
    });
    quote! {
        #item
        #(#registrations)*
    }
}

/// An `async fn` needs an async signal; sync signals reject it with a spanned message.
fn require_async(private: &TokenStream, signal: &Path) -> TokenStream {
    let check = quote_spanned!(signal.span()=> #private::require_async(&#signal));
    quote! {
        const _: () = {
            #check;
        };
    }
}

fn registration(private: &TokenStream, signal: &Path, args: &Args, item: &ItemFn) -> TokenStream {
    let function = &item.sig.ident;
    let sender = Ident::new("__signals_sender", Span::mixed_site());
    let arguments = Ident::new("__signals_args", Span::mixed_site());
    let call_args = ast::params(item).into_iter().map(|param| match param {
        Param::Sender { span } => quote_spanned!(span=> #sender),
        Param::Field {
            name,
            by_ref: true,
            span,
        } => quote_spanned!(span=> #private::AsParam::as_param(&#arguments.#name)),
        Param::Field {
            name,
            by_ref: false,
            span,
        } => quote_spanned!(span=> #private::copy_field(&#arguments.#name)),
        Param::Whole { span } => quote_spanned!(span=> #arguments),
    });
    let output_span = match &item.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => function.span(),
    };
    let call = quote_spanned! {output_span=>
        #private::IntoResponse::into_response(#function(#(#call_args),*))
    };
    let adapter = quote!(|#sender, #arguments| #call);
    let receiver = match &args.sender {
        None => {
            let build = quote_spanned!(signal.span()=> #private::any_receiver);
            quote!(#build(&#signal, #adapter))
        }
        Some(Sender::Value(value)) => {
            let build = quote_spanned!(value.span()=> #private::value_receiver);
            let value = quote_spanned!(value.span()=> &#value);
            quote!(#build(&#signal, #value, #adapter))
        }
        Some(Sender::Type(ty)) => {
            let build = quote_spanned!(ty.span()=> #private::type_receiver::<_, #ty>);
            quote!(#build(&#signal, #adapter))
        }
    };
    let dispatch_uid = args.dispatch_uid.as_ref().map_or_else(
        || quote!(::core::option::Option::None),
        |uid| quote!(::core::option::Option::Some(#uid)),
    );
    let priority = args.priority;
    let location = quote_spanned! {function.span()=>
        #private::SourceLocation::new(::core::file!(), ::core::line!(), ::core::column!())
    };
    quote! {
        #private::register!(receiver: #private::Registration::new(
            &#receiver,
            #private::ReceiverMeta::new_static(
                ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#function)),
                ::core::module_path!(),
                #location,
                #dispatch_uid,
                #priority,
            ),
        ));
    }
}
