//! Checks what the macros read for what its syntax cannot say: a receiver's signature, a
//! signal's declaration. Every problem is recorded, spanned at the token that causes it.

use syn::visit::Visit;
use syn::{FnArg, GenericParam, Lifetime, Safety, Signature, Type, TypeImplTrait, TypeReference};

use crate::ctxt::Ctxt;
use crate::decl::{Declaration, SenderDecl};

/// A receiver is a safe, concrete, free function that borrows what it is given.
pub(crate) fn receiver_signature(sig: &Signature, cx: &Ctxt) {
    if let Some(constness) = &sig.constness {
        cx.error_spanned_by(
            constness,
            "a receiver cannot be a `const fn`: it runs when the signal is sent, and a const fn \
             can only call const fns; remove `const`",
        );
    }
    if let Safety::Unsafe(unsafety) = &sig.safety {
        cx.error_spanned_by(
            unsafety,
            "a receiver cannot be an `unsafe fn`: the dispatcher calls it without upholding any \
             safety contract; make it safe and use `unsafe` blocks inside",
        );
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(
            abi,
            "a receiver cannot have an `extern` ABI: the dispatcher calls it as a Rust function",
        );
    }
    for param in &sig.generics.params {
        if !matches!(param, GenericParam::Lifetime(_)) {
            cx.error_spanned_by(
                param,
                "a receiver cannot be generic: the registry needs one concrete function per \
                 signal; write one receiver per type, or stack #[receiver] attributes",
            );
        }
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        cx.error_spanned_by(
            where_clause,
            "a receiver cannot have a `where` clause: it must be one concrete function",
        );
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, "a receiver cannot be variadic");
    }
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => cx.error_spanned_by(
                receiver,
                "a receiver cannot take `self`: put #[receiver] on a free function, which may \
                 call the method",
            ),
            FnArg::Typed(param) => check_param_type(&param.ty, cx),
        }
    }
}

fn check_param_type(ty: &Type, cx: &Ctxt) {
    struct ImplTraitFinder<'cx> {
        cx: &'cx Ctxt,
    }
    impl<'ast> Visit<'ast> for ImplTraitFinder<'_> {
        fn visit_type_impl_trait(&mut self, ty: &'ast TypeImplTrait) {
            self.cx.error_spanned_by(
                ty,
                "a receiver cannot be generic: `impl Trait` parameters make it a generic \
                 function; name the parameter's type",
            );
        }
    }
    if let Type::Reference(TypeReference {
        mutability: Some(mutability),
        ..
    }) = ty
    {
        cx.error_spanned_by(
            mutability,
            "a receiver gets shared references to the signal's arguments, never `&mut`; \
             use a field with interior mutability (a `Mutex`, a `Cell`) to change things",
        );
    }
    ImplTraitFinder { cx }.visit_type(ty);
}

/// Whether a declaration is right: its types name no lifetime but `'_` and `'static`, and only a
/// signal sent by a type has an `any` view.
pub(crate) fn declaration(declaration: &Declaration, cx: &Ctxt) -> bool {
    struct NamedLifetimes<'cx> {
        cx: &'cx Ctxt,
        found: bool,
    }
    impl<'ast> Visit<'ast> for NamedLifetimes<'_> {
        fn visit_lifetime(&mut self, lifetime: &'ast Lifetime) {
            if lifetime.ident != "_" && lifetime.ident != "static" {
                self.found = true;
                self.cx.error_spanned_by(
                    lifetime,
                    "a signal's arguments borrow for the duration of one send: write `'_` (or \
                     `'static`) instead of a named lifetime",
                );
            }
        }
    }
    let mut lifetimes = NamedLifetimes { cx, found: false };
    lifetimes.visit_type(&declaration.args);
    let mut any_on_a_value_signal = false;
    if let Some((key, any)) = &declaration.any {
        if let Some(SenderDecl::Type { .. }) = declaration.sender {
            lifetimes.visit_type(any);
        } else {
            any_on_a_value_signal = true;
            cx.error_spanned_by(
                key,
                "`any` is the view that any-sender receivers of a signal sent by a type get; \
                 a signal sent by a value gives them its arguments",
            );
        }
    }
    !lifetimes.found && !any_on_a_value_signal && durable(declaration, cx)
}

/// Whether a type borrows: a lifetime or a reference other than `'static`.
struct Borrows(bool);
impl<'ast> Visit<'ast> for Borrows {
    fn visit_lifetime(&mut self, lifetime: &'ast Lifetime) {
        if lifetime.ident != "static" {
            self.0 = true;
        }
    }
    fn visit_type_reference(&mut self, reference: &'ast syn::TypeReference) {
        self.0 |= reference
            .lifetime
            .as_ref()
            .is_none_or(|l| l.ident != "static");
        syn::visit::visit_type_reference(self, reference);
    }
}

/// A durable signal's arguments are stored and its receivers' outputs dropped: it is sync, sent
/// by a value (its category), owns its arguments and has no `output`.
fn durable(declaration: &Declaration, cx: &Ctxt) -> bool {
    let Some(durable) = &declaration.durable else {
        return true;
    };
    let mut right = true;
    let mut wrong = |message: &str| {
        right = false;
        cx.error_spanned_by(durable, message);
    };
    if declaration.asynchronous {
        wrong(
            "a signal is `async` or `durable`, not both: a durable signal's worker runs plain receivers",
        );
    }
    if let Some(SenderDecl::Type { .. }) = declaration.sender {
        wrong(
            "a durable signal is sent by a value, its category (`sender = Category`), which is stored with each message",
        );
    }
    if declaration.output.is_some() {
        wrong(
            "a durable signal has no `output`: its receivers return `()` or `Result<(), E>`, and the worker keeps no responses",
        );
    }
    let mut borrows = Borrows(false);
    borrows.visit_type(&declaration.args);
    if borrows.0 {
        wrong(
            "a durable signal's arguments are stored, so they own their data: no borrowed fields or `'_`",
        );
    }
    right
}
