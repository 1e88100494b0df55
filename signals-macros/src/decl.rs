//! `signal!`'s input as the expansion sees it: an optional `crate = path;`, then declarations,
//! each `vis static name: Signal<Args, key = value, ...>;`.
//!
//! The input is cut after each `;` and every statement read on its own, so that a declaration
//! that does not parse is one error and the others are still read: every mistake of an
//! invocation is reported in one compile, each at its span.

use std::mem;

use proc_macro2::{Punct, Spacing, Span, TokenStream, TokenTree};
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, Path, Token, Type, TypeParamBound, Visibility};

use crate::ctxt::Ctxt;
use crate::options::{self, CRATE};

const SENDER: &str = "sender";
const OUTPUT: &str = "output";
const ANY: &str = "any";

const KEYS: &[&str] = &[SENDER, OUTPUT, ANY];

/// What one `signal!` invocation declares.
pub(crate) struct Declarations {
    /// `crate = path;`: the path of a renamed `signals` dependency.
    pub(crate) krate: Option<Path>,
    /// The declarations read, in order.
    pub(crate) declarations: Vec<Declaration>,
}

pub(crate) struct Declaration {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) name: Ident,
    /// `async Signal<..>`: receivers may be `async fn`; sends are awaited.
    pub(crate) asynchronous: bool,
    /// `durable Signal<..>`: sends are stored by the outbox and delivered after commit.
    pub(crate) durable: Option<Ident>,
    pub(crate) args: Type,
    pub(crate) sender: Option<SenderDecl>,
    pub(crate) output: Option<Type>,
    /// `any = View`, with its key for errors.
    pub(crate) any: Option<(Ident, Type)>,
    /// Whether it was read without a mistake: one with a mistake is still validated, so that
    /// all its errors are reported, but not emitted.
    pub(crate) read_right: bool,
}

pub(crate) enum SenderDecl {
    /// `sender = Type`: the sender is a value of that type.
    Value(Type),
    /// `sender = type M: Bounds`: the sender is a type.
    Type {
        param: Ident,
        bounds: Punctuated<TypeParamBound, Token![+]>,
    },
}

/// Reads an invocation's input; every problem is recorded in `cx`, and every declaration that
/// could be read returned.
pub(crate) fn parse(input: TokenStream, cx: &Ctxt) -> Declarations {
    let mut read = Declarations {
        krate: None,
        declarations: Vec::new(),
    };
    let mut crate_line_is_right = true;
    let (statements, missing_semicolon) = statements(input);
    for (index, statement) in statements.into_iter().enumerate() {
        let is_crate_line = matches!(
            statement.clone().into_iter().next(),
            Some(TokenTree::Ident(first)) if first == CRATE
        );
        if is_crate_line {
            crate_line_is_right &= read.crate_line(statement, index == 0, cx);
        } else if let Some(declaration) = declaration(statement, cx) {
            read.declarations.push(declaration);
        }
    }
    if let Some(last) = missing_semicolon {
        cx.error_at(last, "expected `;` after this declaration");
    }
    if !crate_line_is_right {
        // Emitted next to the errors, they would name the runtime by a wrong path.
        read.declarations.clear();
    }
    read
}

/// The input cut after each `;` (one inside brackets belongs to a type, as in `[u8; 4]`), each
/// statement with its `;`, so that an error at a statement's end points at it. A last statement
/// without one gets one, at its last token, which is returned for the error.
fn statements(input: TokenStream) -> (Vec<TokenStream>, Option<Span>) {
    let mut statements = Vec::new();
    let mut statement = TokenStream::new();
    let mut last = None;
    for token in input {
        let ends = matches!(&token, TokenTree::Punct(punct) if punct.as_char() == ';');
        last = Some(token.span());
        statement.extend([token]);
        if ends {
            statements.push(mem::take(&mut statement));
        }
    }
    if statement.is_empty() {
        return (statements, None);
    }
    let last = last.unwrap_or_else(Span::call_site);
    let mut semicolon = Punct::new(';', Spacing::Alone);
    semicolon.set_span(last);
    statement.extend([TokenTree::Punct(semicolon)]);
    statements.push(statement);
    (statements, Some(last))
}

impl Declarations {
    /// `crate = path;`, which must come first; whether it is right.
    fn crate_line(&mut self, statement: TokenStream, first: bool, cx: &Ctxt) -> bool {
        let parsed = Parser::parse2(
            |input: ParseStream<'_>| {
                let key = input.parse::<Token![crate]>()?;
                input.parse::<Token![=]>()?;
                let path = input.parse::<Path>()?;
                input.parse::<Token![;]>()?;
                Ok((key, path))
            },
            statement,
        );
        match parsed {
            Ok((_, path)) if first => {
                self.krate = Some(path);
                true
            }
            Ok((key, _)) => {
                cx.error_spanned_by(
                    key,
                    "`crate = path;` goes first in signal!, once, before the declarations",
                );
                false
            }
            Err(error) => {
                cx.syn_error(error);
                false
            }
        }
    }
}

/// One declaration, or `None` if it does not parse, with its errors recorded.
fn declaration(statement: TokenStream, cx: &Ctxt) -> Option<Declaration> {
    let parsed = Parser::parse2(
        |input: ParseStream<'_>| read_declaration(input, cx),
        statement,
    );
    match parsed {
        Ok(declaration) => Some(declaration),
        Err(error) => {
            cx.syn_error(error);
            None
        }
    }
}

/// `#[attrs] vis static name: (async | durable)? Signal<Args, key = value, ...>;`. A mistake in its kind
/// or its options is recorded and the rest still read.
fn read_declaration(input: ParseStream<'_>, cx: &Ctxt) -> syn::Result<Declaration> {
    let attrs = input.call(Attribute::parse_outer)?;
    let vis = input.parse()?;
    input.parse::<Token![static]>()?;
    let name = input.parse()?;
    input.parse::<Token![:]>()?;
    let asynchronous = input.parse::<Option<Token![async]>>()?.is_some();
    let mut durable = None;
    if input.peek(Ident) && input.peek2(Ident) {
        let mode: Ident = input.parse()?;
        if mode == "durable" {
            durable = Some(mode);
        } else {
            cx.error_spanned_by(
                &mode,
                "expected `async` or `durable` before `Signal`, or nothing",
            );
        }
    }
    let kind: Ident = input.parse()?;
    let kind_is_right = kind == "Signal";
    if !kind_is_right {
        cx.error_spanned_by(
            &kind,
            "expected `Signal<Args, sender = ...>`, `async Signal<Args, sender = ...>` or \
             `durable Signal<Args, sender = ...>`",
        );
    }
    input.parse::<Token![<]>()?;
    let args = input.parse()?;
    let entries = if input.peek(Token![,]) {
        input.parse::<Token![,]>()?;
        options::parse_entries(input, "Signal<PostUpgrade, sender = SiloMode>")?
    } else {
        Vec::new()
    };
    input.parse::<Token![>]>()?;
    input.parse::<Token![;]>()?;
    let mut declaration = Declaration {
        attrs,
        vis,
        name,
        asynchronous,
        durable,
        args,
        sender: None,
        output: None,
        any: None,
        read_right: kind_is_right,
    };
    declaration.options(entries, cx);
    Ok(declaration)
}

impl Declaration {
    /// The `key = value` options after the argument type.
    fn options(&mut self, entries: Vec<(Ident, TokenStream)>, cx: &Ctxt) {
        let given = entries.len();
        let entries = options::known_keys(entries, KEYS, unknown_key, cx);
        self.read_right &= entries.len() == given;
        for (key, value) in entries {
            let parsed = match key.to_string().as_str() {
                SENDER => parse_sender(value).map(|sender| self.sender = Some(sender)),
                OUTPUT => syn::parse2(value).map(|output| self.output = Some(output)),
                _ => syn::parse2(value).map(|any| self.any = Some((key, any))),
            };
            if let Err(error) = parsed {
                cx.syn_error(error);
                self.read_right = false;
            }
        }
    }
}

fn unknown_key(key: &Ident) -> String {
    if key == CRATE {
        return "`crate = path;` goes first in signal!, for all of its declarations: \
                `signal! { crate = events; pub static ... }`"
            .to_owned();
    }
    format!(
        "unknown key `{key}` in signal!; the keys are `sender` (a type, or `type M` for a signal \
         sent by a type), `output` and `any`"
    )
}

/// `sender = Type`, or `sender = type M` with optional bounds.
fn parse_sender(value: TokenStream) -> syn::Result<SenderDecl> {
    Parser::parse2(
        |input: ParseStream<'_>| {
            if !input.peek(Token![type]) {
                return input.parse().map(SenderDecl::Value);
            }
            input.parse::<Token![type]>()?;
            let param = input.parse()?;
            let bounds = if input.peek(Token![:]) {
                input.parse::<Token![:]>()?;
                Punctuated::parse_terminated(input)?
            } else {
                Punctuated::new()
            };
            Ok(SenderDecl::Type { param, bounds })
        },
        value,
    )
}
