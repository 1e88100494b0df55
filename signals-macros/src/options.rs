//! Options as both macros write them: `key = value` lists (`#[receiver(signal = post_save,
//! sender = User)]`, `Signal<Args, sender = SiloMode, output = u64>`), each key known and given
//! once; and the runtime's path, `crate = path` for a renamed dependency.

use proc_macro2::{Spacing, TokenStream, TokenTree};
use quote::quote;
use syn::ext::IdentExt;
use syn::parse::ParseStream;
use syn::{Ident, Path, Token};

use crate::ctxt::Ctxt;

/// The key, in both macros, of the path the runtime is named by.
pub(crate) const CRATE: &str = "crate";

/// `key = value, ...`, up to the end of `input` or to a `>` that closes an enclosing `<`, with
/// each value's tokens kept for its own parser. `example` shows the form in the error for a
/// list that does not have it.
pub(crate) fn parse_entries(
    input: ParseStream<'_>,
    example: &str,
) -> syn::Result<Vec<(Ident, TokenStream)>> {
    let mut entries = Vec::new();
    while !input.is_empty() && !input.peek(Token![>]) {
        let key = input.call(Ident::parse_any).map_err(|error| {
            syn::Error::new(
                error.span(),
                format_args!("expected `key = value`, e.g. {example}"),
            )
        })?;
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(
                key.span(),
                format_args!("expected `{key} = ...`"),
            ));
        }
        input.parse::<Token![=]>()?;
        let value = parse_value(input)?;
        if value.is_empty() {
            return Err(syn::Error::new(
                key.span(),
                format_args!("`{key} =` needs a value"),
            ));
        }
        entries.push((key, value));
        if input.is_empty() || input.peek(Token![>]) {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(entries)
}

/// A value's tokens: up to the next `,`, or `>`, outside angle brackets (`sender = Pair<u8,
/// u16>`); the `>` of an arrow (`output = fn() -> u8`) closes nothing.
fn parse_value(input: ParseStream<'_>) -> syn::Result<TokenStream> {
    let mut value = TokenStream::new();
    let mut angles = 0_usize;
    let mut after_joint_minus = false;
    loop {
        let closes = !after_joint_minus && input.peek(Token![>]);
        if input.is_empty() || (angles == 0 && (input.peek(Token![,]) || closes)) {
            return Ok(value);
        }
        let token = input.parse::<TokenTree>()?;
        after_joint_minus = false;
        if let TokenTree::Punct(punct) = &token {
            match punct.as_char() {
                '<' => angles += 1,
                '>' if closes => angles -= 1,
                '-' => after_joint_minus = punct.spacing() == Spacing::Joint,
                _ => {}
            }
        }
        value.extend([token]);
    }
}

/// The entries whose key is one of `keys`, each key once; an unknown key (`unknown` says why)
/// or a repeated one is an error in `cx`, and left out.
pub(crate) fn known_keys(
    entries: Vec<(Ident, TokenStream)>,
    keys: &[&str],
    unknown: impl Fn(&Ident) -> String,
    cx: &Ctxt,
) -> Vec<(Ident, TokenStream)> {
    let mut known: Vec<(Ident, TokenStream)> = Vec::new();
    for (key, value) in entries {
        if !keys.iter().any(|name| key == name) {
            cx.error_spanned_by(&key, unknown(&key));
        } else if known.iter().any(|(seen, _)| *seen == key) {
            cx.error_spanned_by(&key, format_args!("`{key}` is given twice"));
        } else {
            known.push((key, value));
        }
    }
    known
}

/// The path generated code names the runtime by: `crate = path`, or `::signals`.
pub(crate) fn runtime(krate: Option<&Path>) -> TokenStream {
    krate.map_or_else(|| quote!(::signals), |krate| quote!(#krate))
}
