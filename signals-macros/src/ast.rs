//! A receiver function as the expansion sees it: its signature, parsed, and its body, kept as
//! tokens (as `tracing`'s `#[instrument]` does) so that a body that does not parse is
//! reported by the compiler itself; and what each parameter is given.

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{ToTokens, TokenStreamExt};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, Ident, Pat, PatType, Signature, Type, Visibility};

/// A function item, its body unparsed.
pub(crate) struct ReceiverFn {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    pub(crate) body: Group,
}

impl Parse for ReceiverFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let body: Group = input.parse()?;
        if body.delimiter() != Delimiter::Brace {
            return Err(syn::Error::new(body.span(), "expected the function's body"));
        }
        Ok(Self {
            attrs,
            vis,
            sig,
            body,
        })
    }
}

impl ReceiverFn {
    /// The function with `items` placed first in its body, after its inner attributes.
    pub(crate) fn with_items(&self, items: &TokenStream) -> TokenStream {
        let mut inner_attributes = TokenStream::new();
        let mut rest = self.body.stream().into_iter().peekable();
        // `#![...]` must stay first in the body.
        loop {
            let mut lookahead = rest.clone();
            let is_inner = matches!(
                (lookahead.next(), lookahead.next(), lookahead.next()),
                (
                    Some(proc_macro2::TokenTree::Punct(pound)),
                    Some(proc_macro2::TokenTree::Punct(bang)),
                    Some(proc_macro2::TokenTree::Group(attribute)),
                ) if pound.as_char() == '#' && bang.as_char() == '!'
                    && attribute.delimiter() == Delimiter::Bracket
            );
            if !is_inner {
                break;
            }
            inner_attributes.extend(rest.by_ref().take(3));
        }
        let mut body = Group::new(
            Delimiter::Brace,
            quote::quote!(#inner_attributes #items #(#rest)*),
        );
        body.set_span(self.body.span());
        let mut tokens = TokenStream::new();
        tokens.append_all(&self.attrs);
        self.vis.to_tokens(&mut tokens);
        self.sig.to_tokens(&mut tokens);
        body.to_tokens(&mut tokens);
        tokens
    }
}

/// The name of the parameter that receives the sender.
pub(crate) const SENDER_PARAM: &str = "sender";

/// What one parameter of a receiver is given.
pub(crate) enum Param<'a> {
    /// A parameter named `sender`: the sender, as the signal passes it.
    Sender { span: Span },
    /// A parameter named like a field of the argument struct: that field, borrowed when the
    /// parameter is a reference, copied otherwise.
    Field {
        name: &'a Ident,
        by_ref: bool,
        span: Span,
    },
    /// A pattern (`PostSave { instance, .. }: &PostSave<User>`): the whole argument struct.
    Whole { span: Span },
}

/// The parameters of `sig`, in order; `self` parameters are left to validation.
pub(crate) fn params(sig: &Signature) -> Vec<Param<'_>> {
    sig.inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(param) => Some(param),
            FnArg::Receiver(_) => None,
        })
        .map(param)
        .collect()
}

fn param(param: &PatType) -> Param<'_> {
    let span = param.span();
    match &*param.pat {
        Pat::Ident(binding) if binding.subpat.is_none() && binding.ident == SENDER_PARAM => {
            Param::Sender { span }
        }
        Pat::Ident(binding) if binding.subpat.is_none() => Param::Field {
            name: &binding.ident,
            by_ref: matches!(&*param.ty, Type::Reference(_)),
            span,
        },
        _ => Param::Whole { span },
    }
}
