//! `signal!`'s expansion: each checked declaration becomes a marker type named like the signal
//! (in the type namespace, so it shows in compiler messages), its `Signature` or
//! `TypeSignature`/`SentBy` impls, the `static` itself, and a registration that lets
//! `signals::registry()` list it. A `durable` declaration is a `DurableSignal` whose
//! `Signature` gives receivers `outbox::Delivered<Payload>` (the stored payload and its
//! delivery), with an `outbox::DurableSignature` impl naming the payload. Every path to the
//! runtime starts with the invocation's `crate = path`, or `::signals`.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::punctuated::Punctuated;
use syn::visit_mut::VisitMut;
use syn::{Ident, Lifetime, Token, Type, TypeParamBound, TypeReference};

use crate::decl::{Declaration, Declarations, SenderDecl};
use crate::options;

/// Turns `'_` and elided reference lifetimes into the arguments' lifetime (validation has
/// ruled out any other but `'static`).
struct ArgsLifetime<'l> {
    lifetime: &'l Lifetime,
}

impl VisitMut for ArgsLifetime<'_> {
    fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
        if lifetime.ident == "_" {
            *lifetime = self.lifetime.clone();
        }
    }

    fn visit_type_reference_mut(&mut self, reference: &mut TypeReference) {
        if reference.lifetime.is_none() {
            reference.lifetime = Some(self.lifetime.clone());
        }
        syn::visit_mut::visit_type_reference_mut(self, reference);
    }
}

pub(crate) fn expand(input: &Declarations) -> TokenStream {
    let krate = options::runtime(input.krate.as_ref());
    input
        .declarations
        .iter()
        .map(|declaration| Expansion::new(&krate, declaration).tokens())
        .collect()
}

/// One declaration, with what its items share.
struct Expansion<'a> {
    /// The runtime's path.
    krate: &'a TokenStream,
    declaration: &'a Declaration,
    /// The lifetime of the arguments, `'a`, hygienic.
    lifetime: Lifetime,
    /// The argument type, with its lifetimes turned into `lifetime`.
    args: Type,
    output: TokenStream,
}

impl<'a> Expansion<'a> {
    fn new(krate: &'a TokenStream, declaration: &'a Declaration) -> Self {
        let lifetime = Lifetime::new("'a", Span::mixed_site());
        let args = with_lifetime(&declaration.args, &lifetime);
        let output = declaration
            .output
            .as_ref()
            .map_or_else(|| quote!(()), |output| quote!(#output));
        Self {
            krate,
            declaration,
            lifetime,
            args,
            output,
        }
    }

    fn tokens(&self) -> TokenStream {
        let Self {
            krate, declaration, ..
        } = self;
        let Declaration {
            attrs,
            vis,
            name,
            asynchronous,
            ..
        } = declaration;
        let (signature, signal_type) = match (&declaration.sender, asynchronous) {
            _ if declaration.durable.is_some() => {
                (self.durable_signature(), quote!(#krate::DurableSignal))
            }
            (Some(SenderDecl::Type { param, bounds }), false) => (
                self.type_signature(param, bounds),
                quote!(#krate::TypeSignal),
            ),
            (Some(SenderDecl::Type { param, bounds }), true) => (
                self.type_signature(param, bounds),
                quote!(#krate::AsyncTypeSignal),
            ),
            (_, false) => (self.value_signature(), quote!(#krate::Signal)),
            (_, true) => (self.value_signature(), quote!(#krate::AsyncSignal)),
        };
        let location = quote_spanned! {name.span()=>
            #krate::__private::SourceLocation::new(::core::file!(), ::core::line!(), ::core::column!())
        };
        quote! {
            #[doc(hidden)]
            #[allow(non_camel_case_types, clippy::empty_enum)]
            #vis enum #name {}

            #signature

            #(#attrs)*
            #[allow(non_upper_case_globals)]
            #vis static #name: #signal_type<#name> = #signal_type::new(::core::stringify!(#name));

            #krate::__private::register!(signal: #krate::__private::Declaration::new(
                &#name,
                ::core::module_path!(),
                #location,
            ));
        }
    }

    /// The `Sender` of a value signal's `Signature`: the declared value type, or `()` for a
    /// signal sent without sender.
    fn sender_type(&self) -> TokenStream {
        if let Some(SenderDecl::Value(ty)) = &self.declaration.sender {
            quote!(#ty)
        } else {
            quote!(())
        }
    }

    /// The `Signature` impl of a signal sent by a value, or without sender.
    fn value_signature(&self) -> TokenStream {
        let Self {
            krate,
            lifetime,
            args,
            output,
            ..
        } = self;
        let name = &self.declaration.name;
        let sender = self.sender_type();
        quote! {
            impl #krate::Signature for #name {
                type Args<#lifetime> = #args;
                type Sender = #sender;
                type Output = #output;
            }
        }
    }

    /// The `Signature` and `DurableSignature` impls of a durable signal: receivers get the
    /// stored arguments with their delivery.
    fn durable_signature(&self) -> TokenStream {
        let Self {
            krate,
            lifetime,
            args,
            ..
        } = self;
        let name = &self.declaration.name;
        let sender = self.sender_type();
        let outbox = quote!(#krate::outbox);
        quote! {
            impl #krate::Signature for #name {
                type Args<#lifetime> = #outbox::Delivered<#lifetime, #args>;
                type Sender = #sender;
                type Output = ();
            }
            impl #outbox::DurableSignature for #name {
                type Payload = #args;
                fn delivered<#lifetime>(
                    payload: &#lifetime #args,
                    delivery: &#lifetime #outbox::Delivery<#lifetime>,
                ) -> #outbox::Delivered<#lifetime, #args> {
                    #outbox::Delivered::new(payload, delivery)
                }
            }
        }
    }

    /// The `TypeSignature` and `SentBy` impls of a signal sent by a type: receivers for one type
    /// get the arguments, any-sender receivers the `any` view (made by `From`), or `()` without
    /// one.
    fn type_signature(
        &self,
        param: &Ident,
        bounds: &Punctuated<TypeParamBound, Token![+]>,
    ) -> TokenStream {
        let Self {
            krate,
            lifetime,
            args,
            output,
            ..
        } = self;
        let name = &self.declaration.name;
        let (any_type, any_fn) = match &self.declaration.any {
            Some((_, any)) => {
                let any = with_lifetime(any, lifetime);
                (
                    quote!(#any),
                    quote! {
                        fn any_args<'b>(args: &'b Self::Args<'_>) -> Self::AnyArgs<'b> {
                            ::core::convert::From::from(args)
                        }
                    },
                )
            }
            None => (
                quote!(()),
                quote! {
                    fn any_args<'b>(_: &'b Self::Args<'_>) -> Self::AnyArgs<'b> {}
                },
            ),
        };
        let bounds = bounds.iter();
        quote! {
            impl #krate::TypeSignature for #name {
                type AnyArgs<#lifetime> = #any_type;
                type Output = #output;
            }
            impl<#param: #(#bounds +)* 'static> #krate::SentBy<#param> for #name {
                type Args<#lifetime> = #args;
                #any_fn
            }
        }
    }
}

/// `ty` with `'_` and elided reference lifetimes turned into `lifetime`.
fn with_lifetime(ty: &Type, lifetime: &Lifetime) -> Type {
    let mut ty = ty.clone();
    ArgsLifetime { lifetime }.visit_type_mut(&mut ty);
    ty
}

#[cfg(test)]
mod tests {
    use crate::ctxt::Ctxt;
    use crate::{decl, valid};

    #[test]
    fn an_elided_reference_in_the_arguments_borrows_for_one_send() {
        let cx = Ctxt::new();
        let input = decl::parse(
            quote::quote!(
                pub static s: Signal<Wrapper<&str>, sender = u8>;
            ),
            &cx,
        );
        let right = valid::declaration(&input.declarations[0], &cx);
        cx.check().unwrap();
        assert!(right);
        let tokens = super::expand(&input).to_string();
        assert!(
            tokens.contains("type Args < 'a > = Wrapper < & 'a str >"),
            "{tokens}"
        );
    }
}
