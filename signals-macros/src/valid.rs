//! Checks a receiver function's signature; every problem is recorded, spanned at the token that
//! causes it.

use syn::visit::Visit;
use syn::{FnArg, GenericParam, Safety, Signature, Type, TypeImplTrait, TypeReference};

use crate::ctxt::Ctxt;

pub(crate) fn check(sig: &Signature, cx: &Ctxt) {
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
