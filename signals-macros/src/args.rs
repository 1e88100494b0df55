//! Parses `#[receiver(...)]`'s arguments into [`Args`]: `signal`, `sender`, `dispatch_uid`,
//! `priority` and `crate`, each a `key = value`, in any order, separated by commas.

use proc_macro2::{Span, TokenStream};
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, Lit, LitStr, Path, Token, Type, UnOp};

use crate::ctxt::Ctxt;
use crate::options::{self, CRATE};

pub(crate) const SIGNAL: &str = "signal";
pub(crate) const SENDER: &str = "sender";
pub(crate) const DISPATCH_UID: &str = "dispatch_uid";
pub(crate) const PRIORITY: &str = "priority";

const KEYS: &[&str] = &[SIGNAL, SENDER, DISPATCH_UID, PRIORITY, CRATE];

/// The arguments of one `#[receiver(...)]`.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) signals: Vec<Path>,
    pub(crate) sender: Option<Sender>,
    pub(crate) dispatch_uid: Option<LitStr>,
    pub(crate) priority: i32,
    pub(crate) krate: Option<Path>,
}

/// The sender a receiver listens to.
pub(crate) enum Sender {
    /// A type, for signals sent by a type (`sender = User`).
    Type(Type),
    /// A value, for signals sent by a value (`sender = SiloMode::Monolith`, `"push"`, `42`).
    Value(Expr),
}

/// Parses the attribute's arguments; every problem is recorded in `cx`, and what was read
/// returned (only to be expanded once `cx` is checked).
pub(crate) fn parse(tokens: TokenStream, cx: &Ctxt) -> Args {
    let entries = Parser::parse2(
        |input: ParseStream<'_>| {
            options::parse_entries(input, "#[receiver(signal = post_save, sender = User)]")
        },
        tokens,
    );
    let entries = match entries {
        Ok(entries) => entries,
        Err(error) => {
            cx.syn_error(error);
            return Args::default();
        }
    };
    let names_signal = entries.iter().any(|(key, _)| key == SIGNAL);
    let entries = options::known_keys(
        entries,
        KEYS,
        |key| {
            format!(
                "unknown key `{key}` in #[receiver]; the keys are `signal`, `sender`, \
                 `dispatch_uid`, `priority` and `crate`"
            )
        },
        cx,
    );
    let mut args = Args::default();
    for (key, value) in entries {
        let parsed = match key.to_string().as_str() {
            SIGNAL => parse_signals(value).map(|v| args.signals = v),
            SENDER => parse_sender(value).map(|v| args.sender = Some(v)),
            DISPATCH_UID => parse_dispatch_uid(value).map(|v| args.dispatch_uid = Some(v)),
            PRIORITY => parse_priority(value).map(|v| args.priority = v),
            _ => syn::parse2::<Path>(value).map(|v| args.krate = Some(v)),
        };
        if let Err(error) = parsed {
            cx.syn_error(error);
        }
    }
    if !names_signal {
        cx.error_at(
            Span::call_site(),
            "missing `signal = ...`: name the signal this function receives, \
             e.g. #[receiver(signal = post_save)]",
        );
    }
    args
}

/// `signal = path` or `signal = [path, path, ...]`.
fn parse_signals(value: TokenStream) -> syn::Result<Vec<Path>> {
    let span = value.span();
    let signals: Vec<Path> = Parser::parse2(
        |input: ParseStream<'_>| {
            if input.peek(syn::token::Bracket) {
                let content;
                syn::bracketed!(content in input);
                let list = Punctuated::<Path, Token![,]>::parse_terminated(&content)?;
                Ok(list.into_iter().collect())
            } else {
                Ok(vec![input.parse::<Path>()?])
            }
        },
        value,
    )
    .map_err(|error| {
        syn::Error::new(
            error.span(),
            "`signal` takes a signal's path or a list of them: `signal = post_save` or \
             `signal = [project_created, team_created]`",
        )
    })?;
    if signals.is_empty() {
        return Err(syn::Error::new(span, "`signal = []` names no signal"));
    }
    Ok(signals)
}

/// `sender = type T`, `sender = const EXPR`, or a type or value told apart by its syntax.
fn parse_sender(value: TokenStream) -> syn::Result<Sender> {
    Parser::parse2(
        |input: ParseStream<'_>| {
            if input.peek(Token![type]) {
                input.parse::<Token![type]>()?;
                return input.parse().map(Sender::Type);
            }
            if input.peek(Token![const]) {
                input.parse::<Token![const]>()?;
                return input.parse().map(Sender::Value);
            }
            let fork = input.fork();
            if let Ok(Type::Path(ty)) = fork.parse::<Type>() {
                if fork.is_empty() && ty.qself.is_none() && !looks_like_value(&ty.path) {
                    input.parse::<Type>()?;
                    return Ok(Sender::Type(Type::Path(ty)));
                }
            }
            input.parse().map(Sender::Value)
        },
        value,
    )
}

/// Whether a path names a value rather than a type: `Enum::Variant`, `Type::CONST` or a
/// `SCREAMING_CASE` constant of two letters or more. Any other path (`User`, `models::User`, a
/// generic type such as `W<u16>`, a one-letter `T`) is a type.
fn looks_like_value(path: &Path) -> bool {
    if path
        .segments
        .iter()
        .any(|segment| !segment.arguments.is_none())
    {
        return false; // generic arguments: a type
    }
    let mut segments = path.segments.iter().rev();
    let Some(last) = segments.next() else {
        return false;
    };
    let last = last.ident.to_string();
    let screaming = last.chars().filter(|c| c.is_alphabetic()).count() > 1
        && !last.chars().any(char::is_lowercase);
    let parent_is_type = segments
        .next()
        .is_some_and(|parent| parent.ident.to_string().starts_with(char::is_uppercase));
    screaming || parent_is_type
}

/// `dispatch_uid = "non-empty string"`.
fn parse_dispatch_uid(value: TokenStream) -> syn::Result<LitStr> {
    let span = value.span();
    let message =
        "`dispatch_uid` must be a string literal, e.g. dispatch_uid = \"create_user_email\"";
    let uid = match syn::parse2::<Lit>(value) {
        Ok(Lit::Str(uid)) => uid,
        Ok(other) => return Err(syn::Error::new(other.span(), message)),
        Err(_) => return Err(syn::Error::new(span, message)),
    };
    if uid.value().is_empty() {
        return Err(syn::Error::new(
            uid.span(),
            "`dispatch_uid` must not be empty: it names the receiver for deduplication",
        ));
    }
    Ok(uid)
}

/// `priority = integer`, negative allowed.
fn parse_priority(value: TokenStream) -> syn::Result<i32> {
    let span = value.span();
    let message = "`priority` must be an integer literal (higher runs first), e.g. priority = 10";
    let (negative, literal) = match syn::parse2::<Expr>(value) {
        Ok(Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        })) => (false, int),
        Ok(Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        })) => match *expr {
            Expr::Lit(ExprLit {
                lit: Lit::Int(int), ..
            }) => (true, int),
            _ => return Err(syn::Error::new(span, message)),
        },
        _ => return Err(syn::Error::new(span, message)),
    };
    if !matches!(literal.suffix(), "" | "i32") {
        return Err(syn::Error::new(
            literal.span(),
            format_args!(
                "`priority` is an i32: write it without a suffix (or with `i32`), not `{}`",
                literal.suffix()
            ),
        ));
    }
    let magnitude: i64 = literal
        .base10_parse()
        .map_err(|_| syn::Error::new(literal.span(), message))?;
    let value = if negative { -magnitude } else { magnitude };
    i32::try_from(value).map_err(|_| {
        syn::Error::new(
            span,
            format_args!("`priority` must fit in an i32, not {value}"),
        )
    })
}
