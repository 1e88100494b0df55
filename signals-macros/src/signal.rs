//! `signal!`: declares signals. Each declaration becomes a marker type named like the signal
//! (in the type namespace, so it shows in compiler messages), its `Signature` or
//! `TypeSignature`/`SentBy` impls, the `static` itself, and a registration that lets
//! `signals::registry()` list it.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::visit_mut::VisitMut;
use syn::{Attribute, Ident, Lifetime, Token, Type, TypeParamBound, TypeReference, Visibility};

use crate::ctxt::Ctxt;

const SENDER: &str = "sender";
const OUTPUT: &str = "output";
const ANY: &str = "any";

/// Every declaration of one `signal!` invocation.
pub(crate) struct Declarations(Vec<Declaration>);

struct Declaration {
    attrs: Vec<Attribute>,
    vis: Visibility,
    name: Ident,
    /// `async Signal<..>`: receivers may be `async fn`; sends are awaited.
    asynchronous: bool,
    args: Type,
    sender: Option<SenderDecl>,
    output: Option<Type>,
    any: Option<(Ident, Type)>,
}

enum SenderDecl {
    Value(Type),
    Type {
        param: Ident,
        bounds: Punctuated<TypeParamBound, Token![+]>,
    },
}

impl Parse for Declarations {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut declarations = Vec::new();
        while !input.is_empty() {
            declarations.push(input.parse()?);
        }
        Ok(Self(declarations))
    }
}

impl Parse for Declaration {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        input.parse::<Token![static]>()?;
        let name: Ident = input.parse()?;
        input.parse::<Token![:]>()?;
        let asynchronous = input.parse::<Option<Token![async]>>()?.is_some();
        let kind: Ident = input.parse()?;
        if kind != "Signal" {
            return Err(syn::Error::new(
                kind.span(),
                "expected `Signal<Args, sender = ...>` or `async Signal<Args, sender = ...>`",
            ));
        }
        input.parse::<Token![<]>()?;
        let args: Type = input.parse()?;
        let mut declaration = Self {
            attrs,
            vis,
            name,
            asynchronous,
            args,
            sender: None,
            output: None,
            any: None,
        };
        while input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
            if input.peek(Token![>]) {
                break;
            }
            declaration.parse_option(input)?;
        }
        input.parse::<Token![>]>()?;
        input.parse::<Token![;]>()?;
        Ok(declaration)
    }
}

impl Declaration {
    /// One `key = value` after the argument type.
    fn parse_option(&mut self, input: ParseStream<'_>) -> syn::Result<()> {
        let key = input.call(Ident::parse_any)?;
        input.parse::<Token![=]>()?;
        let duplicate = || syn::Error::new(key.span(), format_args!("`{key}` is given twice"));
        if key == SENDER {
            if self.sender.is_some() {
                return Err(duplicate());
            }
            self.sender = Some(if input.peek(Token![type]) {
                input.parse::<Token![type]>()?;
                let param = input.parse()?;
                let mut bounds = Punctuated::new();
                if input.peek(Token![:]) {
                    input.parse::<Token![:]>()?;
                    while !input.is_empty() && !input.peek(Token![,]) && !input.peek(Token![>]) {
                        bounds.push_value(input.parse()?);
                        if !input.peek(Token![+]) {
                            break;
                        }
                        bounds.push_punct(input.parse()?);
                    }
                }
                SenderDecl::Type { param, bounds }
            } else {
                SenderDecl::Value(input.parse()?)
            });
        } else if key == OUTPUT {
            if self.output.is_some() {
                return Err(duplicate());
            }
            self.output = Some(input.parse()?);
        } else if key == ANY {
            if self.any.is_some() {
                return Err(duplicate());
            }
            self.any = Some((key, input.parse()?));
        } else {
            return Err(syn::Error::new(
                key.span(),
                format_args!(
                    "unknown key `{key}` in signal!; the keys are `sender` (a type, or `type M` \
                     for a signal sent by a type), `output` and `any`"
                ),
            ));
        }
        Ok(())
    }
}

/// Turns `'_` and elided reference lifetimes into the arguments' lifetime `'a`, and reports any
/// other named lifetime.
struct ArgsLifetime<'cx> {
    lifetime: Lifetime,
    cx: &'cx Ctxt,
}

impl VisitMut for ArgsLifetime<'_> {
    fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
        if lifetime.ident == "_" {
            *lifetime = self.lifetime.clone();
        } else if lifetime.ident != "static" {
            self.cx.error_spanned_by(
                &*lifetime,
                "a signal's arguments borrow for the duration of one send: write `'_` (or \
                 `'static`) instead of a named lifetime",
            );
        }
    }

    fn visit_type_reference_mut(&mut self, reference: &mut TypeReference) {
        if reference.lifetime.is_none() {
            reference.lifetime = Some(self.lifetime.clone());
        }
        syn::visit_mut::visit_type_reference_mut(self, reference);
    }
}

pub(crate) fn expand(declarations: Declarations) -> TokenStream {
    let cx = Ctxt::new();
    let tokens: TokenStream = declarations
        .0
        .into_iter()
        .map(|declaration| expand_one(declaration, &cx))
        .collect();
    match cx.check() {
        Ok(()) => tokens,
        Err(errors) => errors.to_compile_error(),
    }
}

fn expand_one(declaration: Declaration, cx: &Ctxt) -> TokenStream {
    let Declaration {
        attrs,
        vis,
        name,
        asynchronous,
        mut args,
        sender,
        output,
        any,
    } = declaration;
    let krate = quote!(::signals);
    let mut lifetimes = ArgsLifetime {
        lifetime: Lifetime::new("'a", Span::mixed_site()),
        cx,
    };
    lifetimes.visit_type_mut(&mut args);
    let output = output.map_or_else(|| quote!(()), |output| quote!(#output));
    let (signature, signal_type) = match sender {
        Some(SenderDecl::Type { param, bounds }) => {
            let mut any = any.map(|(_, ty)| ty);
            if let Some(any) = &mut any {
                lifetimes.visit_type_mut(any);
            }
            let signature = type_signature(
                &name,
                &lifetimes.lifetime,
                &param,
                &bounds,
                &args,
                any.as_ref(),
                &output,
            );
            let signal_type = if asynchronous {
                quote!(#krate::AsyncTypeSignal)
            } else {
                quote!(#krate::TypeSignal)
            };
            (signature, signal_type)
        }
        sender => {
            if let Some((key, _)) = &any {
                lifetimes.cx.error_spanned_by(
                    key,
                    "`any` is the view that any-sender receivers of a signal sent by a type get; \
                     a signal sent by a value gives them its arguments",
                );
            }
            let sender = if let Some(SenderDecl::Value(ty)) = sender {
                quote!(#ty)
            } else {
                quote!(())
            };
            let lifetime = &lifetimes.lifetime;
            let signature = quote! {
                impl #krate::Signature for #name {
                    type Args<#lifetime> = #args;
                    type Sender = #sender;
                    type Output = #output;
                }
            };
            let signal_type = if asynchronous {
                quote!(#krate::AsyncSignal)
            } else {
                quote!(#krate::Signal)
            };
            (signature, signal_type)
        }
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

/// The `TypeSignature` and `SentBy` impls of a signal sent by a type: receivers for one type get
/// `args`, any-sender receivers the `any` view (made by `From`), or `()` without one.
fn type_signature(
    name: &Ident,
    lifetime: &Lifetime,
    param: &Ident,
    bounds: &Punctuated<TypeParamBound, Token![+]>,
    args: &Type,
    any: Option<&Type>,
    output: &TokenStream,
) -> TokenStream {
    let krate = quote!(::signals);
    let (any_type, any_fn) = match any {
        Some(any) => (
            quote!(#any),
            quote! {
                fn any_args<'b>(args: &'b Self::Args<'_>) -> Self::AnyArgs<'b> {
                    ::core::convert::From::from(args)
                }
            },
        ),
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
