//! A receiver function as the expansion sees it: each parameter says what it is given.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ItemFn, Pat, PatType, Type};

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

/// The parameters of `item`, in order; `self` parameters are left to validation.
pub(crate) fn params(item: &ItemFn) -> Vec<Param<'_>> {
    item.sig
        .inputs
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
